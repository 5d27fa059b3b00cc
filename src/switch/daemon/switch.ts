// The switch: wires config, datapath, ports, FDB policy, workers, control and
// metrics together, applies changes at run time (ports, reload, devices that
// come and go), and takes everything down again in reverse order.
import { POLICY_DROP_REASONS, samePolicy, STORM_REASONS } from '../ports/policy.js';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type BondConfig, type PortConfig, type SwitchConfig } from '../config/config.js';
import { ControlServer } from '../operate/control-server.js';
import { FdbManager } from '../l2/fdb.js';
import { egressTagged, vlanMembers } from '../l2/vlan-rules.js';
import { deleteLink, deviceCounters, ensureBpffs, puntNames, puntPairExists, restorePeer, setLinkAddress, stalePuntDevices } from '../ports/hygiene.js';
import { KernelDrops, type PortDevices } from '../ports/kernel-drops.js';
import type { EarlyStart, Inherited } from './early.js';
import { Handover, inheritedFds, isLinkFdName, isXskFdName, linkFdName, MAP_NAMES, programBuild, puntFdName, puntXskFdName, tapFdName, xskFdName, xskNamesOf, type HandedPort, type HandoverState, type SlowCounters } from './handover.js';
import { isLoopbackAddress, MetricsServer } from '../operate/metrics.js';
import { bridgeMac } from '../l2/mac.js';
import type { FdbRow, ReloadResult, SwitchApi, VlanRow } from '../operate/switch-api.js';
import { bpfObjectPath, loadNative, type NativeAddon, type NativeDatapath, type NativePortCounters, type PortCounters, type WorkerCounters, type XskCounters } from '../datapath/native.js';
import { LinkMonitor, type LinkEvent } from '../ports/link-monitor.js';
import { BondManager, readCarrier } from '../bond/manager.js';
import { CreatedDevices, PortTable, bondPortConfig, type AdoptedPort, type Port } from '../ports/ports.js';
import { Supervisor } from '../datapath/supervisor.js';
import { MirrorTable, type MirrorRow } from './mirrors.js';
import { Evpn, type TunnelStatus } from '../tunnel/evpn.js';
import { FDB_FLAG_STATIC, type Clock, type FdbEntry, type FdbTable, type LearnEvent } from '../types.js';

const LIBXDP_DIR = '/sys/fs/bpf/xdp';

/** Keys whose change needs a restart; reload reports them and leaves them as they run. */
const RESTART_KEYS = ['bridge', 'bridge_mac', 'workers', 'datapath', 'fdb.capacity', 'control.socket', 'metrics.listen'] as const;

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
  /** VXLAN tunnels and FRR's control surface (config key vxlan). */
  private evpn?: Evpn;
  private readonly internalTapFd: number;
  private supervisor?: Supervisor;
  private control?: ControlServer;
  private metrics?: MetricsServer;
  private monitor?: LinkMonitor;
  private agingTimer?: NodeJS.Timeout;
  private floodVlans = new Set<number>();
  /** The fill-ring share last warned about (see warnFillShare). */
  private warnedFillShare = 0;
  /** Serialises changes (reload, port add/del, link events): each sees the last one's result. */
  private changeQueue: Promise<unknown> = Promise.resolve();
  readonly learnResults: Record<string, number> = {};
  private readonly kernelDrops = new KernelDrops();
  /** Per port and storm reason: the drops seen a second ago, whether it was capped, its drops when capping began. */
  private readonly stormSeen = new Map<string, Record<string, { drops: number; capped: boolean; since: number }>>();
  /** libxdp makes /sys/fs/bpf/xdp for its lock; we remove it again if we caused it. */
  private libxdpDirExisted = true;
  /** What a restart hands to the next daemon, and what this one was handed. */
  readonly handover: Handover;
  /** The previous daemon's ports, when this start adopted its datapath. */
  private handed?: Map<string, HandedPort>;
  /** The hot loop's counters as the previous daemon left them: counted on from. */
  private counterBase: Record<string, SlowCounters> = {};
  /** Per port: its adopted sockets' counts when the previous daemon last saved them (counted in counterBase). */
  private readonly xskStart = new Map<string, Record<string, number>>();
  private workerBase: Record<string, number>[] = [];
  /** Handed-over links given to ports at start; reconcile() drops those no port took. */
  private readonly adoptedLinks = new Map<string, number>();
  private readonly adoptedPuntLinks = new Map<string, number>();
  /** programBuild() of this build's BPF objects; handed over with the links. */
  private readonly programs: string;
  /** The handed-over links run this build's programs: they stay, nothing is loaded per port. */
  private keepPrograms = false;
  private readonly startedMs: number;
  /** The mirrors (SPAN) and their datapath slots. */
  private readonly mirrorTable: MirrorTable;

  /** The early start's datapath and workers (a restart), taken over here. */
  private readonly early?: EarlyStart;

  constructor(public config: SwitchConfig, readonly log: Logger, readonly configFile?: string, inherited?: Inherited) {
    this.native = loadNative();
    this.clock = { nowMs: () => this.native.monotonicMs() };
    this.startedMs = this.clock.nowMs();
    inherited?.log.attach(log);
    this.handover = inherited?.handover ?? new Handover(this.native, inheritedFds(), log);
    const state = this.handover.readState();
    const early = inherited?.early;
    if (early) {
      const d = early.state.datapath!;
      const differs = [
        config.bridge !== early.state.bridge && 'bridge',
        config.fdb.capacity !== early.state.fdbCapacity && 'fdb.capacity',
        config.workers !== d.workers && 'workers',
        config.datapath.frames_per_worker !== d.framesPerWorker && 'datapath.frames_per_worker',
        config.datapath.fast_path !== d.fastPathMode && 'datapath.fast_path',
        config.datapath.xdp_mode !== d.xdpMode && 'datapath.xdp_mode',
      ].filter(Boolean);
      if (differs.length) early.fallback(`the config changed ${differs.join(', ')}`);
      early.release();
      this.early = early;
    } else {
      // Only the early start adopts the AF_XDP side; here the sockets get made anew, and
      // the old ones must be released first (their queues are taken until then).
      const dropped = this.handover.dropXsks();
      if (dropped.length) log.info({ sockets: dropped.length }, 'the handed-over AF_XDP sockets and UMEM are released: new ones are made');
    }
    const refuse = state && (state.layout !== this.native.layoutVersion ? `map layout ${state.layout}, this build's is ${this.native.layoutVersion}`
      : state.bridge !== config.bridge ? `bridge ${state.bridge}` : state.fdbCapacity !== config.fdb.capacity ? `fdb.capacity ${state.fdbCapacity}` : undefined);
    const maps = early ? {} : Object.fromEntries(MAP_NAMES.flatMap((n) => {
      const fd = this.handover.take(n);
      return fd === undefined ? [] : [[n, fd]];
    })) as Record<string, number>;
    // The internal port's tap exists for the life of the process: the UMEM is anchored on it.
    // After a restart it is the same tap (same MAC, the host's addresses on it kept).
    const tapFd = early?.tapFd ?? this.handover.take(tapFdName(config.bridge));
    try {
      this.internalTapFd = tapFd ?? this.native.openTap(config.bridge, false);
    } catch (err) {
      const busy = /busy/i.test((err as Error).message);
      throw new Error(`internal port ${config.bridge}: ${(err as Error).message}${busy ? ' (is another vswitchd running with bridge ' + config.bridge + '?)' : ''}`);
    }
    const tcObject = process.env.VSWITCHD_TC_OBJECT ?? path.join(path.dirname(bpfObjectPath), 'tc_fastpath.bpf.o');
    this.programs = programBuild([bpfObjectPath, tcObject]);
    const options = {
      anchorDevice: config.bridge,
      workers: config.workers,
      framesPerWorker: config.datapath.frames_per_worker,
      fdbCapacity: config.fdb.capacity,
      bpfObject: bpfObjectPath,
      // A test build of the tc program (the upgrade test) or a packaged one elsewhere.
      tcObject,
      fastPath: config.datapath.fast_path !== 'off',
    };
    let datapath: NativeDatapath | undefined = early?.datapath;
    if (state && !refuse && (early || MAP_NAMES.every((n) => maps[n] !== undefined))) {
      try {
        datapath ??= new this.native.Datapath({ ...options, adopt: maps });
        this.handed = new Map(state.ports.map((p) => [p.name, p]));
        this.counterBase = state.counters ?? {};
        if (early?.xsks) for (const p of state.ports) if (p.xskLive) this.xskStart.set(p.name, p.xskLive);
        if (state.workers?.length === config.workers) this.workerBase = state.workers;
        this.keepPrograms = state.programs === this.programs;
        log.info({ ports: state.ports.length, early: early ? [...early.ports] : false, programs: this.keepPrograms ? 'kept (same build)' : 'replaced (another build)', fdb_entries: datapath.fdbInfo().size, handed_over_ms_ago: this.clock.nowMs() - state.savedAtMs, process_uptime_ms: Math.round(process.uptime() * 1000) }, 'adopting the running datapath');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot adopt the running datapath: starting afresh (the FDB is relearned)');
      }
    } else if (state || Object.keys(maps).length) {
      log.warn({ reason: refuse ?? 'maps missing' }, 'not adopting the running datapath: starting afresh (the FDB is relearned)');
      for (const fd of Object.values(maps)) this.native.closeFd(fd);
    }
    if (!datapath) {
      // The old programs go: the new ones (fresh maps) are attached port by port.
      for (const [name, fd] of this.handover.inherited) {
        if (isLinkFdName(name)) this.native.detachLink(fd);
        else this.native.closeFd(fd);
      }
      this.handover.inherited.clear();
      datapath = new this.native.Datapath(options);
    }
    this.datapath = datapath;
    const created = new CreatedDevices(path.join(path.dirname(config.control.socket), `${config.bridge}.devices.json`));
    this.ports = new PortTable({ native: this.native, created, datapath: this.datapath, xdpMode: config.datapath.xdp_mode, fastPath: config.datapath.fast_path, bridge: config.bridge, log, ...(state?.learned ? { learned: { ...state.learned } } : {}) });
    this.fdb = new FdbManager({
      table: nativeFdbTable(this.datapath),
      clock: this.clock,
      agingMs: config.fdb.aging * 1000,
      maxPerPort: config.fdb.max_per_port,
      onPortFull: (port, full) => {
        this.datapath.setLearnFull(port, full);
        const name = this.ports?.get(port)?.name ?? `#${port}`;
        if (full) log.warn({ port: name }, 'port at its MAC limit: frames from new sources are dropped (mac_limit) until entries age out');
        else log.info({ port: name }, 'port below its MAC limit again: learning');
      },
      onChange: (vlan, mac, port) => this.onFdbChange(vlan, mac, port),
    });
    if (this.handed && state?.fdbStats) Object.assign(this.fdb.stats, state.fdbStats);
    this.mirrorTable = new MirrorTable((slot) => this.datapath.mirrorCounters(slot));
    this.mirrorTable.set(config.mirrors);
    if (this.handed && state?.mirrors) this.mirrorTable.carryOver(state.mirrors);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    if (await ensureBpffs()) log.info('mounted bpffs at /sys/fs/bpf');
    this.libxdpDirExisted = existsSync(LIBXDP_DIR);
    // Punt pairs of a run that was killed (ports that are still configured get theirs again);
    // an adopted datapath keeps its pairs until it is reconciled.
    const handedPairs = new Set([...(this.handed?.values() ?? [])].map((p) => puntNames(config.bridge, p.index).near));
    for (const dev of stalePuntDevices(puntNames(config.bridge, 0).prefix)) {
      if (handedPairs.has(dev)) continue;
      await deleteLink(dev).catch(() => undefined);
      log.info({ device: dev }, 'removed a punt pair left by an earlier run');
    }
    // The same MAC at every start (neighbours' ARP entries stay right); the tap is still down.
    await setLinkAddress(config.bridge, bridgeMac(config.bridge, config.bridge_mac));
    // Watch links before adding ports, so a device that appears meanwhile is not missed.
    this.monitor = new LinkMonitor((ev) => this.serialize(() => this.onLinkEvent(ev)), (err) => log.error({ err }, 'link monitor'));
    this.monitor.start();
    // Workers first: each port carries its slow path as soon as it is attached (after a
    // restart, the sooner the hot loop runs, the shorter the slow path's gap).
    if (this.early) {
      // Running since the early start: learned MACs reported meanwhile are learned now.
      this.supervisor = this.early.supervisor;
      this.early.setHandlers((ev) => this.onLearn(ev), (port, frame) => this.bonds?.onPunt(port, frame));
    } else {
      this.supervisor = new Supervisor({
        workers: config.workers,
        log,
        onLearn: (ev) => this.onLearn(ev),
        onPunt: (port, frame) => this.bonds?.onPunt(port, frame),
      });
      this.supervisor.start();
    }
    // Inside serialize(): link events about the devices being added wait until they are.
    await this.serialize(async () => {
      const internal = config.ports.find((p) => p.name === config.bridge) ?? { name: config.bridge, type: 'internal' as const };
      // Adopted ports keep their indices (the FDB and the running programs name ports by
      // index); no other port may take one of them before the reconciliation.
      this.ports.reserve(new Set([...(this.handed?.values() ?? [])].map((p) => p.index)));
      await this.ports.preloadLinkInfo(config.ports.map((p) => p.name));
      await this.ports.add(internal, true, undefined, this.internalTapFd, this.adoptFor(config.bridge));
      const others = config.ports.filter((p) => p.name !== config.bridge);
      for (const p of others.filter((q) => this.handed?.has(q.name))) await this.ports.add(p, false, undefined, undefined, this.adoptFor(p.name));
      for (const p of others.filter((q) => !this.handed?.has(q.name))) await this.ports.add(p, false);
      if (config.vxlan) {
        this.evpn = new Evpn({ config: config.vxlan, log, onRemote: (vlan, mac, vtep) => this.onRemote(vlan, mac, vtep) });
        await this.evpn.start();
        // Adopted like configured ports after a restart: the devices were taken over as they are.
        for (const p of this.evpn.tunnelPorts()) await this.ports.add(p, false, undefined, undefined, this.adoptFor(p.name));
        this.advertiseExisting();
        await this.evpn.reconcile();
      }
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
    if (this.handed) await this.serialize(() => this.reconcile());
    this.bonds!.start();
    this.publishHandover();
    this.agingTimer = setInterval(() => {
      this.refreshRemote();
      this.fdb.age();
      this.saveState();
      this.watchStorms();
    }, 1000);
    this.control = new ControlServer(this, config.control.socket);
    await this.control.listen();
    if (config.metrics.listen && config.metrics.listen !== 'off') {
      this.metrics = new MetricsServer(this, config.metrics.listen);
      await this.metrics.listen();
      const bound = this.metrics.boundAddress();
      if (!isLoopbackAddress(bound)) {
        log.warn({ listen: config.metrics.listen, address: bound }, 'metrics endpoint is not on a loopback address: hosts, VMs and containers that can reach it can read it');
      }
    }
    log.info({ ports: this.ports.list().map((p) => p.name), workers: config.workers, control: config.control.socket, metrics: config.metrics.listen }, 'vswitchd ready');
  }

  private adoptFor(name: string): AdoptedPort | undefined {
    const p = this.handed?.get(name);
    if (!p) return undefined;
    // A port the early start serves: its links are in the datapath already.
    const served = (fd: number) => (this.early?.ports.has(name) && fd >= 0 ? fd : undefined);
    const linkFd = this.handover.take(linkFdName(name)) ?? served(this.datapath.hookLinkFd(p.index));
    if (linkFd !== undefined) this.adoptedLinks.set(name, linkFd);
    const puntLinkFd = this.handover.take(puntFdName(name)) ?? served(this.datapath.puntLinkFd(p.index));
    if (puntLinkFd !== undefined) this.adoptedPuntLinks.set(name, puntLinkFd);
    return {
      index: p.index,
      ...(linkFd !== undefined ? { linkFd } : {}),
      ...(puntLinkFd !== undefined ? { puntLinkFd } : {}),
      ...(this.keepPrograms ? { keepPrograms: true } : {}),
      ...(p.peerChanges ? { peerChanges: p.peerChanges } : {}),
      // The datapath holds the handed-over sockets (the early start gave them): the port takes its own.
      ...(this.early?.xsks ? { xsks: xskNamesOf(p) } : {}),
    };
  }

  /**
   * The end of an adoption (OVS's flow-restore-wait): the config's ports are all
   * in, the workers run; now the running programs' tables follow the new View,
   * and what the previous daemon had that the config no longer has goes.
   */
  private async reconcile(): Promise<void> {
    const handed = this.handed!;
    // Handed-over sockets no port took are closed; the store lets go of them too.
    const unclaimed = this.datapath.releaseFastPorts();
    for (const name of unclaimed) this.handover.forget(name);
    this.ports.reserve(new Set());
    const removed: string[] = [];
    for (const p of handed.values()) {
      if (this.ports.byName(p.name)) continue;
      // Served by the early start, gone from the config: out of the datapath (its links detached).
      if (this.early?.ports.has(p.name) && !this.ports.get(p.index)) this.datapath.removePort(p.index);
      for (const fdName of [linkFdName(p.name), puntFdName(p.name)]) {
        const linkFd = this.handover.take(fdName);
        if (linkFd !== undefined) this.native.detachLink(linkFd);
        this.handover.forget(fdName);
      }
      const punt = puntNames(this.config.bridge, p.index);
      if (puntPairExists(punt.near, punt.far) && !this.ports.list().some((q) => q.punt?.near === punt.near)) await deleteLink(punt.near).catch(() => undefined);
      if (p.peerChanges) await restorePeer(p.peerChanges);
      if (!this.ports.get(p.index)) this.datapath.resetPortIndex(p.index);
      removed.push(p.name);
    }
    // Learned entries of ports that are gone.
    let flushed = 0;
    const gone = new Set(this.fdb.entries().map((e) => e.port).filter((i) => !this.ports.get(i)));
    for (const index of gone) flushed += this.fdb.flushPort(index);
    // A link handed to a port that did not take it (its device is gone: the port is down).
    for (const [links, fdOf, fdName] of [[this.adoptedLinks, (i: number) => this.datapath.hookLinkFd(i), linkFdName], [this.adoptedPuntLinks, (i: number) => this.datapath.puntLinkFd(i), puntFdName]] as const) {
      for (const [name, fd] of links) {
        const port = this.ports.byName(name);
        if (port && fdOf(port.index) === fd) continue;
        this.native.detachLink(fd);
        this.handover.forget(fdName(name));
      }
      links.clear();
    }
    // What was handed over and not taken (a bond leg gets a new link; an unknown name):
    // links are detached, and the store forgets them before this daemon stores its own.
    for (const [name, fd] of this.handover.inherited) {
      if (isLinkFdName(name)) this.native.detachLink(fd);
      else this.native.closeFd(fd);
      this.handover.forget(name);
    }
    this.handover.inherited.clear();
    const adopted = this.ports.list().filter((p) => p.adopted).map((p) => p.name);
    this.log.info({ adopted, added: this.ports.list().filter((p) => !p.adopted && p.kind !== 'bond').map((p) => p.name), removed, fdb_entries: this.fdb.size, fdb_flushed: flushed, took_ms: this.clock.nowMs() - this.startedMs },
      'datapath adopted; reconciled with the config');
    this.handed = undefined;
  }

  /** Puts the datapath's fds in the store (systemd's, or the next re-exec's) and the state beside them. */
  private publishHandover(): void {
    const h = this.handover;
    for (const [name, fd] of Object.entries(this.datapath.handoverFds())) h.store(name, fd);
    const internal = this.ports.list().find((p) => p.kind === 'internal');
    if (internal) h.store(tapFdName(this.config.bridge), this.internalTapFd);
    for (const p of this.ports.list()) {
      for (const [fdName, fd] of [[linkFdName(p.name), this.datapath.hookLinkFd(p.index)], [puntFdName(p.name), this.datapath.puntLinkFd(p.index)]] as const) {
        if (p.up && fd >= 0) h.store(fdName, fd);
        else h.remove(fdName);
      }
    }
    // The AF_XDP sockets: frames wait in their rings across a restart, the next daemon adopts them.
    const xsks = new Map<string, number>();
    for (const p of this.ports.list()) {
      if (!p.up || p.kind === 'internal' || p.kind === 'bond') continue;
      const fds = this.datapath.xskFds(p.index);
      fds.device.forEach((fd, q) => xsks.set(xskFdName(p.name, q), fd));
      if (fds.punt >= 0) xsks.set(puntXskFdName(p.name), fds.punt);
    }
    h.sync((name) => isXskFdName(name) && !name.startsWith('umem'), xsks);
    this.saveState();
  }

  private saveState(raw = this.readPortCounters(), counters: Record<string, SlowCounters> = this.slowCounters(raw)): void {
    const state: HandoverState = {
      layout: this.native.layoutVersion,
      xsk: this.native.xskLayout,
      programs: this.programs,
      bridge: this.config.bridge,
      fdbCapacity: this.config.fdb.capacity,
      datapath: { workers: this.config.workers, framesPerWorker: this.config.datapath.frames_per_worker, fastPath: this.config.datapath.fast_path !== 'off', fastPathMode: this.config.datapath.fast_path, xdpMode: this.config.datapath.xdp_mode },
      ports: this.ports.list().filter((p) => p.kind !== 'bond').map((p) => ({
        name: p.name,
        index: p.index,
        ...(p.hook ? { hook: p.hook } : {}),
        ...(p.peerChanges ? { peerChanges: p.peerChanges } : {}),
        kind: p.kind,
        up: p.up,
        ...(p.bond ? { bond: p.bond } : {}),
        queues: p.queues,
        ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
        vlan: p.vlan,
        ...(p.punt ? { punt: p.punt } : {}),
        ...(p.attached ? { attached: p.attached } : {}),
        ...(raw.get(p.name) ? { xskLive: { ...raw.get(p.name)!.xskLive } } : {}),
      })),
      counters,
      workers: this.workerCounters() as unknown as Record<string, number>[],
      fdbStats: this.fdb.stats as unknown as Record<string, unknown>,
      mirrors: Object.fromEntries(this.mirrorTable.rows(this.mirrorPorts()).map((m) => [m.name, { frames: m.frames, bytes: m.bytes, lost: m.lost }])),
      learned: this.ports.learnedMacs(),
      savedAtMs: this.clock.nowMs(),
    };
    this.handover.writeState(state);
  }

  /**
   * A restart that keeps the datapath: the state is saved and the process leaves
   * without taking anything down. reexec: start this program again in this
   * process (`vswitchctl restart`); otherwise exit (systemd's restart, which sent
   * RestartKillSignal=SIGUSR2, starts the next daemon with the fd store).
   */
  restartKeepingDatapath(reexec: boolean): never {
    if (this.agingTimer) clearInterval(this.agingTimer);
    this.monitor?.stop();
    this.evpn?.detach();
    this.publishHandover();
    this.log.info({ reexec, handed_over: this.ports.list().length }, 'restarting: the datapath stays and is handed to the next daemon');
    // The workers let go of the sockets, whose rings the next daemon adopts as they are
    // (in the store with the UMEM's memfd): nothing is closed, so the exit is quick.
    const filled = this.datapath.quiesceForRestart();
    this.log.info({ frames_to_fill_rings: filled }, 'workers parked: the sockets wait in the fd store for the next daemon');
    if (reexec) this.handover.reexec([process.execPath, ...process.execArgv, ...process.argv.slice(1)]);
    this.native.exitNow(0);
  }

  /** `vswitchctl restart`: answered first, then the process starts again in place. */
  restart(): { restarting: true; pid: number } {
    setTimeout(() => void this.changeQueue.then(() => this.restartKeepingDatapath(true)), 2);  // once the reply is written (it is, this turn)
    return { restarting: true, pid: process.pid };
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
    for (const p of this.ports.list()) this.kernelDrops.track(p.index, this.portDevices(p));
    this.bonds?.writeAll();
    // A mirror's output receives only copies: never flooded to.
    const outputs = this.mirrorTable.outputs();
    const members = vlanMembers(ports.filter((p) => !outputs.has(p.name)).map((p) => ({ index: p.index, vlan: p.vlan, up: p.up })));
    for (const vlan of this.floodVlans) if (!members.has(vlan)) this.datapath.setFloodSet(vlan, []);
    for (const [vlan, list] of members) this.datapath.setFloodSet(vlan, list);
    this.floodVlans = new Set(members.keys());
    this.datapath.setMirrors(this.mirrorTable.native(this.mirrorPorts()));
    this.datapath.commit();
    this.warnFillShare(ports);
  }

  /** Ports as mirrors name them: an index while the port is up. */
  private mirrorPorts() {
    return { indexOf: (name: string) => {
      const p = this.ports.byName(name);
      return p && p.up && !p.bond && p.kind !== 'bond' ? p.index : undefined;
    } };
  }

  mirrors(): MirrorRow[] {
    return this.mirrorTable.rows(this.mirrorPorts());
  }

  /** The port's part in the mirrors (an output receives only copies: never an FDB destination). */
  mirrorRole(name: string): 'output' | 'source' | undefined {
    const port = this.ports.byName(name);
    return this.mirrorTable.roleOf(name, port ? [...vlanMembers([{ index: port.index, vlan: port.vlan, up: true }]).keys()] : []);
  }

  /**
   * A worker's receiving sockets share half its frames (native/datapath/hot_loop.cc
   * adoptView); with many ports each keeps few ready, and a burst beyond them is lost
   * in the kernel. Says so, and what frames_per_worker would give each 64 again.
   */
  private warnFillShare(ports: Port[]): void {
    const { workers, datapath: { frames_per_worker: frames } } = this.config;
    const perWorker = new Array<number>(workers).fill(0);
    for (const p of ports) {
      if (!p.up || p.kind === 'internal' || p.kind === 'bond') continue;
      const sockets = p.hook === 'xdp' ? p.queues : 1;  // a tc port receives on its punt pair's one socket
      for (let q = 0; q < sockets; q++) perWorker[(p.index + q) % workers]!++;
    }
    const most = Math.max(...perWorker);
    const share = most === 0 ? 1024 : Math.max(1, Math.floor(frames / (2 * most)));
    if (share >= 64 || share === this.warnedFillShare) return;
    this.warnedFillShare = share;
    const wanted = 2 ** Math.ceil(Math.log2(most * 128));
    this.log.warn({ sockets_per_worker: most, frames_per_socket: share, frames_per_worker: frames },
      `many ports: each receiving socket keeps only ${share} frames ready (64 wanted); set datapath.frames_per_worker to ${wanted} (${wanted * 2 / 1024} MiB per worker) to give each 64`);
  }

  addPort(cfg: PortConfig): Promise<Port> {
    return this.serialize(async () => {
      if (cfg.name === this.config.bridge) throw new Error(`${cfg.name} is the internal port`);
      const port = await this.ports.add(cfg, false);
      this.applyPorts();
      this.config = { ...this.config, ports: [...this.config.ports, cfg] };
      this.publishHandover();
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
      this.publishHandover();
    });
  }

  private async dropPort(port: Port): Promise<void> {
    this.fdb.setPortUp(port.index, false);
    for (const e of this.fdb.entries({ port: port.index })) this.fdb.removeStatic(e.vlan, e.mac);
    this.handover.remove(linkFdName(port.name));
    this.handover.remove(puntFdName(port.name));
    // Out of the store before they are closed, or the store's copies keep them bound.
    const xsks = xskNamesOf(port);
    for (const name of [...xsks.device, xsks.punt]) if (name) this.handover.remove(name);
    delete this.counterBase[port.name];
    this.xskStart.delete(port.name);
    await this.ports.remove(port.index);
    // A later port of this index counts from 0 (a port whose device only came and went counts on).
    this.datapath.resetPortIndex(port.index);
    this.kernelDrops.forget(port.index);
  }

  /** A device of one of our ports disappeared or (re)appeared. */
  private async onLinkEvent(ev: LinkEvent): Promise<void> {
    const port = this.ports.byName(ev.name);
    if (!port) return;
    if (ev.kind === 'deleted' && port.up) {
      // Its MACs go first: detach waits for the punt pair's removal, and a control
      // request answered meanwhile must not see the port down with its MACs still there.
      this.fdb.setPortUp(port.index, false);
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
    this.publishHandover();
  }

  /** Reads the config file again and applies the difference; a bad file changes nothing. */
  reload(): Promise<ReloadResult> {
    return this.serialize(async () => {
      if (!this.configFile) throw new Error('no config file to reload');
      let next: SwitchConfig;
      try {
        next = loadConfig(this.configFile);
      } catch (err) {
        if (err instanceof ConfigError) this.log.error({ issues: err.shownIssues, count: err.issues.length }, 'reload refused: the config has errors; the running config stays');
        throw err;
      }
      const result = await this.applyConfig(next);
      this.publishHandover();
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
      if (this.evpn?.isTunnelPort(port.name)) continue;  // the vxlan key's, below
      if (port.kind === 'internal') {
        const cfg = next.ports.find((p) => p.name === port.name) ?? { name: port.name, type: 'internal' as const };
        if (!samePortConfig(port.cfg, cfg)) this.changePortVlan(port, cfg, changes);
        else if (!samePolicy(port.cfg, cfg)) this.changePortPolicy(port, cfg, changes);
        continue;
      }
      const cfg = wanted.get(port.name);
      if (!cfg || (cfg.type ?? port.kind) !== (port.cfg.type ?? port.kind)) {
        await this.dropPort(port);
        changes.push(`port ${port.name} removed`);
      } else if (!samePortConfig(port.cfg, cfg)) {
        this.changePortVlan(port, cfg, changes);
      } else if (!samePolicy(port.cfg, cfg)) {
        this.changePortPolicy(port, cfg, changes);
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
    await this.applyVxlan(next, changes);
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
    // Mirrors: a new output loses what was learned on it (it is never a destination again).
    const outputsBefore = this.mirrorTable.outputs();
    changes.push(...this.mirrorTable.set(next.mirrors));
    for (const name of this.mirrorTable.outputs()) {
      const port = this.ports.byName(name);
      if (!outputsBefore.has(name) && port) this.fdb.flushPort(port.index);
    }
    if (next.log.level !== prev.log.level) {
      this.log.level = next.log.level;
      changes.push(`log.level ${prev.log.level} -> ${next.log.level}`);
    }
    this.applyPorts();
    // Keys that need a restart keep their running values.
    const { bridge_mac: _nextMac, ...rest } = next;
    this.config = { ...rest, ...(prev.bridge_mac !== undefined ? { bridge_mac: prev.bridge_mac } : {}), bridge: prev.bridge, workers: prev.workers, datapath: prev.datapath, control: prev.control, metrics: prev.metrics, fdb: { ...next.fdb, capacity: prev.fdb.capacity } };
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

  /** VNIs added and removed at a reload (each with its tunnel port); the section added or removed too. */
  private async applyVxlan(next: SwitchConfig, changes: string[]): Promise<void> {
    const dropByName = async (name: string) => {
      const port = this.ports.byName(name);
      if (port) await this.dropPort(port);
    };
    if (!this.evpn && next.vxlan) {
      this.evpn = new Evpn({ config: next.vxlan, log: this.log, onRemote: (vlan, mac, vtep) => this.onRemote(vlan, mac, vtep) });
      await this.evpn.start();
      for (const p of this.evpn.tunnelPorts()) {
        await this.ports.add(p, false);
        changes.push(`vni of vlan ${p.vlan} added (${p.name})`);
      }
      this.advertiseExisting();
      await this.evpn.reconcile();
      return;
    }
    if (!this.evpn) return;
    const { added, changes: done } = await this.evpn.setConfig(next.vxlan, dropByName);
    for (const p of added) await this.ports.add(p, false);
    changes.push(...done);
    this.advertiseExisting();
    if (added.length) await this.evpn.reconcile();
    if (!next.vxlan) {
      await this.evpn.stop();
      this.evpn = undefined;
    }
  }

  /**
   * A local MAC in a VLAN with a VNI is advertised to FRR, one that went or moved onto a
   * tunnel port is withdrawn (src/switch/tunnel/evpn.ts).
   */
  private onFdbChange(vlan: number, mac: string, port: number | undefined): void {
    const evpn = this.evpn;
    if (!evpn) return;
    const name = port === undefined ? undefined : this.ports?.get(port)?.name;
    evpn.setLocal(vlan, mac, name !== undefined && !evpn.isTunnelPort(name));
  }

  /** MACs learned before a VNI's control surface existed (learning runs while ports are added). */
  private advertiseExisting(): void {
    for (const e of this.fdb.entries()) this.onFdbChange(e.vlan, e.mac, e.port);
  }

  /** zebra installed a remote MAC (behind vtep) or took it away: the FDB follows on the tunnel port. */
  private onRemote(vlan: number, mac: string, vtep: string | undefined): void {
    const name = this.evpn?.portOfVlan(vlan);
    const port = name === undefined ? undefined : this.ports.byName(name);
    if (!port) return;
    if (vtep) {
      const result = this.fdb.learn({ vlan, mac, port: port.index });
      this.learnResults[result] = (this.learnResults[result] ?? 0) + 1;
    } else {
      this.fdb.forget(vlan, mac, port.index);
    }
  }

  /** Remote MACs stay while zebra has them, traffic or not. */
  private refreshRemote(): void {
    if (!this.evpn) return;
    const cutoff = this.clock.nowMs() - this.fdb.agingMsNow / 2;
    for (const r of this.evpn.remoteEntries()) {
      const port = this.ports.byName(this.evpn.portOfVlan(r.vlan) ?? '');
      if (!port) continue;
      const e = this.fdb.tableEntry(r.vlan, r.mac);
      if (!e || e.port !== port.index || e.lastSeenMs < cutoff) this.fdb.learn({ vlan: r.vlan, mac: r.mac, port: port.index });
    }
  }

  tunnelStatus(): TunnelStatus | undefined {
    return this.evpn?.status();
  }

  /** Security, storm control and policing of a running port: in place, at once. */
  private changePortPolicy(port: Port, cfg: PortConfig, changes: string[]): void {
    const keys = (['security', 'storm_control', 'policing'] as const).filter((k) => JSON.stringify(port.cfg[k]) !== JSON.stringify(cfg[k]));
    const unlocked = keys.includes('security') && port.learned.length > 0;
    this.ports.setPolicy(port, cfg);
    if (unlocked) this.forgetLearned(port, 'its security settings changed');
    changes.push(`port ${port.name} ${keys.map((k) => `${k} ${JSON.stringify(cfg[k] ?? null)}`).join(', ')}`);
  }

  /**
   * Once a second: a port whose storm drops grew is being capped, one whose drops stopped
   * growing no longer is; each change is logged once (so at most once a second per class).
   */
  private watchStorms(): void {
    for (const p of this.ports.list()) {
      if (!p.cfg.storm_control || !p.up) {
        this.stormSeen.delete(p.name);
        continue;
      }
      const c = this.datapath.portCounters(p.index);
      const seen = this.stormSeen.get(p.name) ?? {};
      for (const reason of STORM_REASONS) {
        const now = (c.drops[reason] ?? 0) + (c.fast.policy[reason] ?? 0);
        const before = seen[reason];
        const capped = before !== undefined && now > before.drops;
        if (before !== undefined && capped !== before.capped) {
          const cls = reason.slice('storm_'.length);
          if (capped) this.log.warn({ port: p.name, class: cls, cap: p.cfg.storm_control[cls as keyof typeof p.cfg.storm_control] }, `port storm-capped: ${cls} frames over the cap are dropped (${reason})`);
          else this.log.info({ port: p.name, class: cls, dropped: now - before.since }, `port no longer storm-capped (${cls})`);
        }
        seen[reason] = { drops: now, capped, since: capped && before?.capped ? before.since : capped ? before!.drops : now };
      }
      this.stormSeen.set(p.name, seen);
    }
  }

  private changePortVlan(port: Port, cfg: PortConfig, changes: string[]): void {
    this.ports.setVlan(port, cfg);
    // Its MACs were learned in the old VLANs.
    this.fdb.flushPort(port.index);
    changes.push(`port ${port.name} vlan ${JSON.stringify(port.vlan)}`);
  }

  /** `vswitchctl port unlock NAME`: the port learns its first security.learn MACs again. */
  unlockPort(name: string): { port: string; forgot: string[] } {
    const port = this.ports.byName(name);
    if (!port) throw new Error(`no port named ${name}`);
    const forgot = port.learned;
    if (!this.ports.unlock(port)) throw new Error(`port ${name} does not learn its MACs (no security.learn)`);
    this.forgetLearned(port, 'vswitchctl port unlock', forgot);
    return { port: name, forgot };
  }

  /** After a port's learned MACs were forgotten: their FDB entries go too, and the next daemon is told. */
  private forgetLearned(port: Port, why: string, forgot: string[] = []): void {
    this.fdb.flushPort(port.index);
    this.log.info({ port: port.name, forgot, learn: port.cfg.security?.learn }, `port security unlocked (${why}): learning its first MACs again`);
    this.saveLearned();
  }

  /**
   * security.learn: a MAC reported from a learning port is admitted (the datapath allows
   * it from now on; the last place locks the port, logged once) or, once the port is
   * locked to others, refused: not learned (its frames are dropped as spoofed_mac).
   */
  private admitLearned(port: Port, mac: string): boolean {
    const result = this.ports.admitMac(port, mac);
    if (result !== 'admitted') return result === 'allowed';
    const learn = port.cfg.security!.learn!;
    if (port.learned.length >= learn) this.log.warn({ port: port.name, macs: port.learned, learn }, `port security locked: ${port.learned.length} of ${learn} MACs learned, frames from any other source MAC are dropped (spoofed_mac)`);
    else this.log.info({ port: port.name, mac, learned: port.learned.length, learn }, 'port security learned a MAC');
    this.saveLearned();
    return true;
  }

  /** The next daemon keeps what was learned even if this one stops within the second (the aging timer saves too). Not while starting: the state would lack the ports not added yet. */
  private saveLearned(): void {
    if (this.agingTimer) this.saveState();
  }

  private onLearn(events: LearnEvent[]): void {
    const outputs = this.mirrorTable.outputs();
    for (const ev of events) {
      // Reported before the port became a mirror's output: it is never learned on.
      if (outputs.size && outputs.has(this.ports.get(ev.port)?.name ?? '')) continue;
      const port = this.ports.get(ev.port);
      if (port?.cfg.security?.learn !== undefined && !this.admitLearned(port, ev.mac)) continue;
      const result = this.fdb.learn(ev);
      this.learnResults[result] = (this.learnResults[result] ?? 0) + 1;
      if (result === 'learned' || result === 'moved') {
        this.log.debug({ vlan: ev.vlan, mac: ev.mac, port: this.ports.get(ev.port)?.name, result }, 'fdb');
      }
    }
  }

  /**
   * What the daemon counts itself (the hot loop's counters and the kernel's drops it reads
   * from sockets and devices), counted on from what the daemon before a restart left. The
   * fast counters are not here: they live in a map the restart keeps.
   */
  private slowCounters(raw: Map<string, NativePortCounters>): Record<string, SlowCounters> {
    const out: Record<string, SlowCounters> = {};
    for (const p of this.ports.list()) {
      const { fast: _fast, xsk: xskAll, xskLive: _live, ...hot } = raw.get(p.name)!;
      // Sockets adopted after a restart count on: what they had counted is in the base already.
      const start = this.xskStart.get(p.name);
      const xsk = start ? Object.fromEntries(Object.entries(xskAll).map(([k, v]) => [k, Math.max(0, v - (start[k] ?? 0))])) as unknown as XskCounters : xskAll;
      // redirect_failed is a fast counter (the programs count it), added by portCounters.
      const { redirect_failed: _redirect, ...kernel } = this.kernelDrops.reasons(p.index, xsk, 0, this.portDevices(p));
      const now: SlowCounters = { ...hot, drops: { ...hot.drops, ...kernel } };
      const base = this.counterBase[p.name];
      if (!base) {
        out[p.name] = now;
        continue;
      }
      const drops: Record<string, number> = { ...base.drops };
      for (const [k, v] of Object.entries(now.drops)) drops[k] = (drops[k] ?? 0) + v;
      out[p.name] = {
        rx_packets: base.rx_packets + now.rx_packets,
        rx_bytes: base.rx_bytes + now.rx_bytes,
        tx_packets: base.tx_packets + now.tx_packets,
        tx_bytes: base.tx_bytes + now.tx_bytes,
        flood_packets: base.flood_packets + now.flood_packets,
        drops,
      };
    }
    return out;
  }

  /** The devices whose kernel drop counters count as the port's (none for a bond). */
  private portDevices(p: Port): PortDevices {
    if (p.kind === 'bond') return {};
    const tunnel = this.evpn?.devicesOf(p.name);
    return {
      port: deviceCounters(p.name),
      ...(p.punt ? { puntNear: deviceCounters(p.punt.near), puntFar: deviceCounters(p.punt.far) } : {}),
      ...(tunnel ? { tunnelAdv: deviceCounters(tunnel.adv), tunnelVxlan: deviceCounters(tunnel.vxlan) } : {}),
    };
  }

  /** The datapath's counters of every port, read once for everything computed from them. */
  private readPortCounters(): Map<string, NativePortCounters> {
    return new Map(this.ports.list().map((p) => [p.name, this.datapath.portCounters(p.index)]));
  }

  portCounters(): Record<string, PortCounters> {
    const out: Record<string, PortCounters> = {};
    const raw = this.readPortCounters();
    const slowAll = this.slowCounters(raw);
    for (const p of this.ports.list()) {
      const { fast: fastAll, xsk } = raw.get(p.name)!;
      const { redirect_failed: redirectFailed, mac_limit: fastMacLimit, policy: fastPolicy, ...fast } = fastAll;
      const slow = slowAll[p.name]!;
      const afxdp = { rx_packets: slow.rx_packets, rx_bytes: slow.rx_bytes, tx_packets: slow.tx_packets, tx_bytes: slow.tx_bytes };
      out[p.name] = {
        rx_packets: slow.rx_packets + fast.rx_packets,
        rx_bytes: slow.rx_bytes + fast.rx_bytes,
        tx_packets: slow.tx_packets + fast.tx_packets,
        tx_bytes: slow.tx_bytes + fast.tx_bytes,
        flood_packets: slow.flood_packets,
        // Lost by the kernel before the hot loop could count them, or after it sent them.
        drops: {
          ...slow.drops,
          // Refused at the MAC limit by the port's BPF program or by the hot loop (before the program knew).
          mac_limit: (slow.drops.mac_limit ?? 0) + fastMacLimit,
          // Refused by the port's policy in its BPF program, or by the hot loop.
          ...Object.fromEntries(POLICY_DROP_REASONS.map((r) => [r, (slow.drops[r] ?? 0) + (fastPolicy[r] ?? 0)])),
          redirect_failed: redirectFailed,
        },
        xsk,
        paths: { afxdp, fast },
      };
    }
    // What a scrape showed is never more than what a crash right now would hand over.
    if (this.supervisor) this.saveState(raw, slowAll);
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
    return Array.from({ length: this.config.workers }, (_, w) => {
      const now = this.datapath.workerCounters(w);
      const base = this.workerBase[w];
      if (!base) return now;
      return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v + (base[k] ?? 0)])) as unknown as WorkerCounters;
    });
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
        ...this.remoteColumn(e),
      }));
  }

  /** Entries on a tunnel port are remote: behind the VTEP zebra names (unknown: learned from traffic only). */
  private remoteColumn(e: FdbEntry): { vtep?: string } {
    const name = this.ports.get(e.port)?.name;
    if (!this.evpn || name === undefined || !this.evpn.isTunnelPort(name)) return {};
    return { vtep: this.evpn.remoteOf(e.vlan, e.mac) ?? 'unknown' };
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
    await this.evpn?.stop();
    this.datapath.close();
    // A stop hands nothing over: the store's copies go (systemd closes them on a stop anyway).
    this.handover.clear();
    if (!this.libxdpDirExisted && existsSync(LIBXDP_DIR) && readdirSync(LIBXDP_DIR).length === 0) rmdirSync(LIBXDP_DIR);
    this.log.info('vswitchd stopped');
  }
}
