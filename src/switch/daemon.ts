// The switch: wires config, datapath, ports, FDB policy, workers, control and
// metrics together, and takes them down again in reverse order.
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { SwitchConfig } from './config.js';
import { ControlServer } from './control.js';
import { FdbManager } from './fdb.js';
import { vlanMembers } from './flood.js';
import { ensureBpffs } from './host.js';
import { MetricsServer } from './metrics.js';
import { bpfObjectPath, loadNative, type NativeAddon, type NativeDatapath, type PortCounters } from './native.js';
import { CreatedDevices, PortTable, type Port } from './ports.js';
import { Supervisor } from './supervisor.js';
import { FDB_FLAG_STATIC, type Clock, type FdbEntry, type FdbTable, type LearnEvent } from './types.js';

export const VERSION = '0.1.0';
const LIBXDP_DIR = '/sys/fs/bpf/xdp';

/** The native FDB table seen through the interface the policy code expects. */
function nativeFdbTable(dp: NativeDatapath): FdbTable {
  return {
    put: (vlan, mac, port, flags) => dp.fdbPut(vlan, mac, port, flags),
    delete: (vlan, mac) => dp.fdbDelete(vlan, mac),
    get: (vlan, mac) => dp.fdbGet(vlan, mac),
    entries: () => dp.fdbEntries(),
    clear: () => dp.fdbClear(),
    get size() {
      return dp.fdbInfo().size;
    },
    get capacity() {
      return dp.fdbInfo().capacity;
    },
  };
}

export class Switch {
  readonly native: NativeAddon;
  readonly datapath: NativeDatapath;
  readonly ports: PortTable;
  readonly fdb: FdbManager;
  readonly clock: Clock;
  private supervisor?: Supervisor;
  private control?: ControlServer;
  private metrics?: MetricsServer;
  private agingTimer?: NodeJS.Timeout;
  private floodVlans = new Set<number>();
  readonly learnResults: Record<string, number> = {};
  /** libxdp makes /sys/fs/bpf/xdp for its lock; we remove it again if we caused it. */
  private libxdpDirExisted = true;

  constructor(readonly config: SwitchConfig, readonly log: Logger) {
    this.native = loadNative();
    this.clock = { nowMs: () => this.native.monotonicMs() };
    this.datapath = new this.native.Datapath({
      workers: config.workers,
      framesPerWorker: config.datapath.frames_per_worker,
      fdbCapacity: config.fdb.capacity,
      bpfObject: bpfObjectPath,
    });
    const created = new CreatedDevices(path.join(path.dirname(config.control.socket), `${config.bridge}.devices.json`));
    this.ports = new PortTable({ native: this.native, created, datapath: this.datapath, xdpMode: config.datapath.xdp_mode, log });
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
    const internal = config.ports.find((p) => p.name === config.bridge) ?? { name: config.bridge, type: 'internal' as const };
    await this.addPort(internal, true, false);
    for (const p of config.ports) if (p.name !== config.bridge) await this.addPort(p, false, false);
    for (const s of config.fdb.static) {
      const port = this.ports.byName(s.port);
      if (port && !this.fdb.addStatic(s.vlan, s.mac, port.index)) log.warn({ entry: s }, 'FDB full: static entry not added');
    }
    this.applyFloodSets();
    this.supervisor = new Supervisor({ workers: config.workers, log, onLearn: (ev) => this.onLearn(ev) });
    this.supervisor.start();
    this.agingTimer = setInterval(() => this.fdb.age(), 1000);
    this.control = new ControlServer(this, config.control.socket);
    await this.control.listen();
    if (config.metrics.listen && config.metrics.listen !== 'off') {
      this.metrics = new MetricsServer(this, config.metrics.listen);
      await this.metrics.listen();
    }
    log.info({ ports: this.ports.list().map((p) => p.name), workers: config.workers, control: config.control.socket, metrics: config.metrics.listen }, 'vswitchd ready');
  }

  async addPort(cfg: SwitchConfig['ports'][number], internal: boolean, commit = true): Promise<Port> {
    const port = await this.ports.add(cfg, internal);
    this.fdb.setPortUp(port.index, true);
    if (commit) this.applyFloodSets();
    return port;
  }

  async removePort(name: string): Promise<void> {
    const port = this.ports.byName(name);
    if (!port) throw new Error(`no port named ${name}`);
    this.fdb.setPortUp(port.index, false);  // flushes its learned MACs
    for (const e of this.fdb.entries({ port: port.index })) this.fdb.removeStatic(e.vlan, e.mac);
    await this.ports.remove(port.index);
    this.applyFloodSets();
  }

  /** Recomputes every VLAN's flood set from the ports and publishes it to the workers. */
  applyFloodSets(): void {
    const members = vlanMembers(this.ports.list().map((p) => ({ index: p.index, vlan: p.vlan, up: p.up })));
    for (const vlan of this.floodVlans) if (!members.has(vlan)) this.datapath.setFloodSet(vlan, []);
    for (const [vlan, ports] of members) this.datapath.setFloodSet(vlan, ports);
    this.floodVlans = new Set(members.keys());
    this.datapath.commit();
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
    for (const p of this.ports.list()) out[p.name] = this.datapath.portCounters(p.index);
    return out;
  }

  fdbView(filter: { vlan?: number; port?: string } = {}): { vlan: number; mac: string; port: string; static: boolean; age_s: number }[] {
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
