// The switch: wires config, datapath, ports, FDB policy, workers, control and
// metrics together, applies changes at run time (ports, reload, devices that
// come and go), and takes everything down again in reverse order.
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type BondConfig, type PortConfig, type SwitchConfig } from '../config/config.js';
import { ControlServer } from '../operate/control-server.js';
import { FdbManager } from '../l2/fdb.js';
import { egressTagged, vlanMembers } from '../l2/vlan-rules.js';
import { deleteLink, ensureBpffs, puntDrops, puntNames, stalePuntDevices } from '../ports/hygiene.js';
import { MetricsServer } from '../operate/metrics.js';
import type { FdbRow, ReloadResult, SwitchApi, VlanRow } from '../operate/switch-api.js';
import { bpfObjectPath, loadNative, type NativeAddon, type NativeDatapath, type PortCounters, type WorkerCounters } from '../datapath/native.js';
import { LinkMonitor, type LinkEvent } from '../ports/link-monitor.js';
import { BondManager, readCarrier } from '../bond/manager.js';
import { CreatedDevices, PortTable, bondPortConfig, type Port } from '../ports/ports.js';
import { Supervisor } from '../datapath/supervisor.js';
import { FDB_FLAG_STATIC, type Clock, type FdbEntry, type FdbTable, type LearnEvent } from '../types.js';

const LIBXDP_DIR = '/sys/fs/bpf/xdp';

/** Keys whose change needs a restart; reload reports them and leaves them as they run. */
const RESTART_KEYS = ['bridge', 'workers', 'datapath', 'fdb.capacity', 'control.socket', 'metrics.listen'] as const;

/** The native FDB table seen through the interface the policy code expects. */
function nativeFdbTable(dp: NativeDatapath): FdbTable {
  return {
    put: (vlan, mac, port, flags) => dp.fdbPut(vlan, mac, port, flags),
    delete: (vlan, mac) => dp.fdbDelete(vlan, mac),
    get: (vlan, mac) => dp.fdbGet(vlan, mac),
    entries: () => dp.fdbEntries(),
    expired: (cutoffMs) => dp.fdbExpired(cutoffMs),
    clear: () => dp.fdbClear(),
    get size() {
      return dp.fdbInfo().size;
    },
    get capacity() {
      return dp.fdbInfo().capacity;
    },
  };
}

function readMacOf(dev: string): string {
  return readFileSync(`/sys/class/net/${dev}/address`, 'utf8').trim();
}

function samePortConfig(a: PortConfig, b: PortConfig): boolean {
  return JSON.stringify([a.type, a.vlan, a.trunks, a.native_vlan]) === JSON.stringify([b.type, b.vlan, b.trunks, b.native_vlan]);
}

export class Switch implements SwitchApi {
  readonly native: NativeAddon;
  readonly datapath: NativeDatapath;
  readonly ports: PortTable;
  readonly fdb: FdbManager;
  readonly clock: Clock;
  private bonds?: BondManager;
  private readonly internalTapFd: number;
  private supervisor?: Supervisor;
  private control?: ControlServer;
  private metrics?: MetricsServer;
  private monitor?: LinkMonitor;
  private agingTimer?: NodeJS.Timeout;
  private floodVlans = new Set<number>();
  /** Serialises changes (reload, port add/del, link events): each sees the last one's result. */
  private changeQueue: Promise<unknown> = Promise.resolve();
  readonly learnResults: Record<string, number> = {};
  /** libxdp makes /sys/fs/bpf/xdp for its lock; we remove it again if we caused it. */
  private libxdpDirExisted = true;

  constructor(public config: SwitchConfig, readonly log: Logger, readonly configFile?: string) {
    this.native = loadNative();
    this.clock = { nowMs: () => this.native.monotonicMs() };
    // The internal port's tap exists for the life of the process: the UMEM is anchored on it.
    try {
      this.internalTapFd = this.native.openTap(config.bridge, false);
    } catch (err) {
      const busy = /busy/i.test((err as Error).message);
      throw new Error(`internal port ${config.bridge}: ${(err as Error).message}${busy ? ' (is another vswitchd running with bridge ' + config.bridge + '?)' : ''}`);
    }
    this.datapath = new this.native.Datapath({
      anchorDevice: config.bridge,
      workers: config.workers,
      framesPerWorker: config.datapath.frames_per_worker,
      fdbCapacity: config.fdb.capacity,
      bpfObject: bpfObjectPath,
      fastPath: config.datapath.fast_path !== 'off',
    });
    const created = new CreatedDevices(path.join(path.dirname(config.control.socket), `${config.bridge}.devices.json`));
    this.ports = new PortTable({ native: this.native, created, datapath: this.datapath, xdpMode: config.datapath.xdp_mode, fastPath: config.datapath.fast_path, bridge: config.bridge, log });
    this.fdb = new FdbManager({
      table: nativeFdbTable(this.datapath),
      clock: this.clock,
      agingMs: config.fdb.aging * 1000,
      maxPerPort: config.fdb.max_per_port,
    });
  }

  async start(): Promise<void> {
    const { config, log } = this;
    if (await ensureBpffs()) log.info('mounted bpffs at /sys/fs/bpf');
    this.libxdpDirExisted = existsSync(LIBXDP_DIR);
    // Punt pairs of a run that was killed (ports that are still configured get theirs again).
    for (const dev of stalePuntDevices(puntNames(config.bridge, 0).prefix)) {
      await deleteLink(dev).catch(() => undefined);
      log.info({ device: dev }, 'removed a punt pair left by an earlier run');
    }
    // Watch links before adding ports, so a device that appears meanwhile is not missed.
    this.monitor = new LinkMonitor((ev) => this.serialize(() => this.onLinkEvent(ev)), (err) => log.error({ err }, 'link monitor'));
    this.monitor.start();
    // Inside serialize(): link events about the devices being added wait until they are.
    await this.serialize(async () => {
      const internal = config.ports.find((p) => p.name === config.bridge) ?? { name: config.bridge, type: 'internal' as const };
      await this.ports.add(internal, true, undefined, this.internalTapFd);
      for (const p of config.ports) if (p.name !== config.bridge) await this.ports.add(p, false);
      this.bonds = new BondManager({
        datapath: this.datapath,
        ports: this.ports,
        fdb: this.fdb,
        clock: this.clock,
        log,
        systemMac: readMacOf(config.bridge),
        commit: () => this.applyPorts(),
      });
      for (const b of config.bonds) await this.bonds.add(b);
      this.addStatics(config.fdb.static);
      this.applyPorts();
    });
    this.supervisor = new Supervisor({
      workers: config.workers,
      log,
      onLearn: (ev) => this.onLearn(ev),
      onPunt: (port, frame) => this.bonds?.onPunt(port, frame),
    });
    this.supervisor.start();
    this.bonds!.start();
    this.agingTimer = setInterval(() => this.fdb.age(), 1000);
    this.control = new ControlServer(this, config.control.socket);
    await this.control.listen();
    if (config.metrics.listen && config.metrics.listen !== 'off') {
      this.metrics = new MetricsServer(this, config.metrics.listen);
      await this.metrics.listen();
    }
    log.info({ ports: this.ports.list().map((p) => p.name), workers: config.workers, control: config.control.socket, metrics: config.metrics.listen }, 'vswitchd ready');
  }

  /** Runs change after every change queued before it. */
  serialize<T>(change: () => Promise<T> | T): Promise<T> {
    const next = this.changeQueue.then(change);
    this.changeQueue = next.catch(() => undefined);
    return next;
  }

  private addStatics(statics: SwitchConfig['fdb']['static']): void {
    for (const s of statics) {
      const port = this.ports.byName(s.port);
      if (port && !this.fdb.addStatic(s.vlan, s.mac, port.index)) this.log.warn({ entry: s }, 'FDB full: static entry not added');
    }
  }

  /** Publishes port states and every VLAN's flood set to the workers. */
  private applyPorts(): void {
    const ports = this.ports.list().filter((p) => !p.bond);  // legs carry their bond's traffic
    for (const p of ports) this.fdb.setPortUp(p.index, p.up);  // a port going down flushes its MACs
    this.bonds?.writeAll();
    const members = vlanMembers(ports.map((p) => ({ index: p.index, vlan: p.vlan, up: p.up })));
    for (const vlan of this.floodVlans) if (!members.has(vlan)) this.datapath.setFloodSet(vlan, []);
    for (const [vlan, list] of members) this.datapath.setFloodSet(vlan, list);
    this.floodVlans = new Set(members.keys());
    this.datapath.commit();
  }

  addPort(cfg: PortConfig): Promise<Port> {
    return this.serialize(async () => {
      if (cfg.name === this.config.bridge) throw new Error(`${cfg.name} is the internal port`);
      const port = await this.ports.add(cfg, false);
      this.applyPorts();
      this.config = { ...this.config, ports: [...this.config.ports, cfg] };
      return port;
    });
  }

  removePort(name: string): Promise<void> {
    return this.serialize(async () => {
      const port = this.ports.byName(name);
      if (!port) throw new Error(`no port named ${name}`);
      if (port.kind === 'internal') throw new Error(`${name} is the internal port; it goes when the switch stops`);
      await this.dropPort(port);
      this.applyPorts();
      this.config = { ...this.config, ports: this.config.ports.filter((p) => p.name !== name) };
    });
  }

  private async dropPort(port: Port): Promise<void> {
    this.fdb.setPortUp(port.index, false);
    for (const e of this.fdb.entries({ port: port.index })) this.fdb.removeStatic(e.vlan, e.mac);
    await this.ports.remove(port.index);
  }

  /** A device of one of our ports disappeared or (re)appeared. */
  private async onLinkEvent(ev: LinkEvent): Promise<void> {
    const port = this.ports.byName(ev.name);
    if (!port) return;
    if (ev.kind === 'deleted' && port.up) {
      await this.ports.detach(port, 'device deleted');
      this.bonds?.onCarrier(port.name, false);
      this.applyPorts();
    } else if (ev.kind === 'new' && !port.up && port.kind !== 'internal') {
      await this.ports.attach(port).catch((err: Error) => this.log.error({ port: port.name, err: err.message }, 'port could not come back'));
      if (port.up) {
        this.applyPorts();
        this.log.info({ port: port.name }, 'port back: its device reappeared');
      }
    }
    if (ev.kind === 'new' && port.up && ev.mtu !== undefined && this.ports.setMtu(port, ev.mtu)) this.datapath.commit();
    if (ev.kind === 'new') this.bonds?.onCarrier(port.name, ev.carrier && readCarrier(port.name));
  }

  /** Reads the config file again and applies the difference; a bad file changes nothing. */
  reload(): Promise<ReloadResult> {
    return this.serialize(async () => {
      if (!this.configFile) throw new Error('no config file to reload');
      let next: SwitchConfig;
      try {
        next = loadConfig(this.configFile);
      } catch (err) {
        if (err instanceof ConfigError) this.log.error({ issues: err.issues }, 'reload refused: the config has errors; the running config stays');
        throw err;
      }
      const result = await this.applyConfig(next);
      this.log.info(result, 'reloaded');
      return result;
    });
  }

  private async applyConfig(next: SwitchConfig): Promise<ReloadResult> {
    const prev = this.config;
    const changes: string[] = [];
    const needsRestart = RESTART_KEYS.filter((key) => {
      const get = (c: SwitchConfig) => JSON.stringify(key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c));
      return get(prev) !== get(next);
    });
    const wanted = new Map(next.ports.filter((p) => p.name !== next.bridge).map((p) => [p.name, p]));
    for (const port of this.ports.list()) {
      if (port.bond || port.kind === 'bond') continue;  // bonds change with a restart
      if (port.kind === 'internal') {
        const cfg = next.ports.find((p) => p.name === port.name) ?? { name: port.name, type: 'internal' as const };
        if (!samePortConfig(port.cfg, cfg)) this.changePortVlan(port, cfg, changes);
        continue;
      }
      const cfg = wanted.get(port.name);
      if (!cfg || (cfg.type ?? port.kind) !== (port.cfg.type ?? port.kind)) {
        await this.dropPort(port);
        changes.push(`port ${port.name} removed`);
      } else if (!samePortConfig(port.cfg, cfg)) {
        this.changePortVlan(port, cfg, changes);
      }
    }
    // Bonds after port removals (a port may have become a leg) and before port
    // additions (a leg may have become a port).
    await this.applyBonds(prev.bonds, next.bonds, changes);
    for (const cfg of wanted.values()) {
      if (this.ports.byName(cfg.name)) continue;
      await this.ports.add(cfg, false);
      changes.push(`port ${cfg.name} added`);
    }
    if (next.fdb.aging !== prev.fdb.aging) {
      this.fdb.setAging(next.fdb.aging * 1000);
      changes.push(`fdb.aging ${prev.fdb.aging} -> ${next.fdb.aging}`);
    }
    if (next.fdb.max_per_port !== prev.fdb.max_per_port) {
      this.fdb.setMaxPerPort(next.fdb.max_per_port);
      changes.push(`fdb.max_per_port ${prev.fdb.max_per_port} -> ${next.fdb.max_per_port}`);
    }
    const key = (s: SwitchConfig['fdb']['static'][number]) => `${s.vlan}/${s.mac}/${s.port}`;
    const nextStatics = new Set(next.fdb.static.map(key));
    for (const s of prev.fdb.static) if (!nextStatics.has(key(s)) && this.fdb.removeStatic(s.vlan, s.mac)) changes.push(`static ${s.mac} vlan ${s.vlan} removed`);
    const prevStatics = new Set(prev.fdb.static.map(key));
    const added = next.fdb.static.filter((s) => !prevStatics.has(key(s)));
    // Every configured static, not only the new ones: a port or bond rebuilt above lost its statics.
    this.addStatics(next.fdb.static);
    for (const s of added) changes.push(`static ${s.mac} vlan ${s.vlan} -> ${s.port} added`);
    if (next.log.level !== prev.log.level) {
      this.log.level = next.log.level;
      changes.push(`log.level ${prev.log.level} -> ${next.log.level}`);
    }
    this.applyPorts();
    // Keys that need a restart keep their running values.
    this.config = { ...next, bridge: prev.bridge, workers: prev.workers, datapath: prev.datapath, control: prev.control, metrics: prev.metrics, fdb: { ...next.fdb, capacity: prev.fdb.capacity } };
    return { changes, needsRestart: [...needsRestart] };
  }

  /**
   * A bond whose VLAN keys alone changed is changed in place; any other change
   * rebuilds it (legs and LACP start over, as at start-up); new bonds are added.
   */
  private async applyBonds(prev: BondConfig[], next: BondConfig[], changes: string[]): Promise<void> {
    const bonds = this.bonds;
    if (!bonds) return;
    const nextByName = new Map(next.map((b) => [b.name, b]));
    const withoutVlan = ({ vlan: _v, trunks: _t, native_vlan: _n, ...rest }: BondConfig) => JSON.stringify(rest);
    for (const old of prev) {
      const cfg = nextByName.get(old.name);
      if (cfg && JSON.stringify(cfg) === JSON.stringify(old)) continue;
      const port = this.ports.byName(old.name);
      if (cfg && port && withoutVlan(cfg) === withoutVlan(old)) {
        bonds.setVlanConfig(cfg);
        this.changePortVlan(port, bondPortConfig(cfg), changes);
        continue;
      }
      await bonds.remove(old.name, (p) => this.dropPort(p));
      changes.push(cfg ? `bond ${old.name} rebuilt` : `bond ${old.name} removed`);
    }
    for (const cfg of next) {
      if (bonds.configOf(cfg.name)) continue;
      await bonds.add(cfg);
      changes.push(`bond ${cfg.name} added`);
    }
  }

  private changePortVlan(port: Port, cfg: PortConfig, changes: string[]): void {
    this.ports.setVlan(port, cfg);
    // Its MACs were learned in the old VLANs.
    this.fdb.flushPort(port.index);
    changes.push(`port ${port.name} vlan ${JSON.stringify(port.vlan)}`);
  }

  private onLearn(events: LearnEvent[]): void {
    for (const ev of events) {
      const result = this.fdb.learn(ev);
      this.learnResults[result] = (this.learnResults[result] ?? 0) + 1;
      if (result === 'learned' || result === 'moved') {
        this.log.debug({ vlan: ev.vlan, mac: ev.mac, port: this.ports.get(ev.port)?.name, result }, 'fdb');
      }
    }
  }

  portCounters(): Record<string, PortCounters> {
    const out: Record<string, PortCounters> = {};
    for (const p of this.ports.list()) {
      const { fast, ...slow } = this.datapath.portCounters(p.index);
      const afxdp = { rx_packets: slow.rx_packets, rx_bytes: slow.rx_bytes, tx_packets: slow.tx_packets, tx_bytes: slow.tx_bytes };
      out[p.name] = {
        rx_packets: slow.rx_packets + fast.rx_packets,
        rx_bytes: slow.rx_bytes + fast.rx_bytes,
        tx_packets: slow.tx_packets + fast.tx_packets,
        tx_bytes: slow.tx_bytes + fast.tx_bytes,
        flood_packets: slow.flood_packets,
        // punt_dropped: lost by the kernel before the hot loop could count them (tc ports).
        drops: { ...slow.drops, punt_dropped: p.punt ? puntDrops(p.punt.near) : 0 },
        paths: { afxdp, fast },
      };
    }
    return out;
  }

  bondStatus(name?: string) {
    const all = this.bonds?.status(name) ?? [];
    if (name !== undefined && all.length === 0) throw new Error(`no bond named ${name}`);
    return all;
  }

  workerRestarts(): number[] {
    return this.supervisor ? [...this.supervisor.restarts] : new Array<number>(this.config.workers).fill(0);
  }

  workerCounters(): WorkerCounters[] {
    return Array.from({ length: this.config.workers }, (_, w) => this.datapath.workerCounters(w));
  }

  vlans(): VlanRow[] {
    const ports = this.ports.list();
    const members = vlanMembers(ports.map((p) => ({ index: p.index, vlan: p.vlan, up: true })));
    return [...members].map(([vlan, list]) => ({
      vlan,
      ports: list.map((i) => {
        const p = this.ports.get(i)!;
        return { name: p.name, tagged: egressTagged(p.vlan, vlan) };
      }),
    }));
  }

  fdbView(filter: { vlan?: number; port?: string } = {}): FdbRow[] {
    const portIndex = filter.port !== undefined ? this.ports.byName(filter.port)?.index ?? -1 : undefined;
    const now = this.clock.nowMs();
    return this.fdb
      .entries({ ...(filter.vlan !== undefined ? { vlan: filter.vlan } : {}), ...(portIndex !== undefined ? { port: portIndex } : {}) })
      .map((e: FdbEntry) => ({
        vlan: e.vlan,
        mac: e.mac,
        port: this.ports.get(e.port)?.name ?? `#${e.port}`,
        static: (e.flags & FDB_FLAG_STATIC) !== 0,
        age_s: Math.max(0, Math.round((now - e.lastSeenMs) / 1000)),
      }));
  }

  async stop(): Promise<void> {
    if (this.agingTimer) clearInterval(this.agingTimer);
    this.monitor?.stop();
    this.bonds?.stop();
    await this.changeQueue;
    await this.control?.close();
    await this.metrics?.close();
    await this.supervisor?.stop();
    for (const p of this.ports.list().reverse()) {
      await this.ports.remove(p.index).catch((err: unknown) => this.log.error({ port: p.name, err }, 'removing port failed'));
    }
    this.datapath.close();
    if (!this.libxdpDirExisted && existsSync(LIBXDP_DIR) && readdirSync(LIBXDP_DIR).length === 0) rmdirSync(LIBXDP_DIR);
    this.log.info('vswitchd stopped');
  }
}
