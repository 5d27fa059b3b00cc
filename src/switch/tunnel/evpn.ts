// VXLAN tunnels with a BGP EVPN control plane run by FRR (issue 15).
//
// Per configured VNI vswitchd owns four kernel objects (created at start or reload,
// removed at stop or when the VNI goes from the config):
//   vsw-br<vni>  a Linux bridge (this kernel has no VLAN-aware bridge: one bridge per VNI)
//   vsw-vx<vni>  a VXLAN device, `id <vni> local <vtep> dstport <port> nolearning`, in it
//   vsw-tb<vni>  one end of a veth pair, in the bridge: FRR's "advertise" port
//   vsw-tn<vni>  the other end: a vswitchd access port in the VNI's VLAN (the tunnel port)
// zebra reads the bridge as FRR's control surface and writes to it:
//   switch -> FRR: a MAC vswitchd learns in the VLAN on any other port is written as a
//     static (not permanent: zebra ignores those) entry on vsw-tb<vni>, and removed when it
//     ages, moves or is flushed; zebra advertises it (type-2 route).
//   FRR -> switch: zebra installs remote MACs as `extern_learn` entries on vsw-vx<vni> (the
//     bridge's entry, and the device's own with `dst <vtep>`), and the VNI's flood list as
//     all-zero MACs with `dst`. vswitchd reads them (`bridge monitor fdb`, reconciled with a
//     full `bridge fdb show` at start) and puts remote MACs into its FDB on the tunnel port.
// The kernel does the dataplane of the tunnel: a frame vswitchd sends to vsw-tn<vni> (known
// unicast from the fast path, floods from the hot loop) reaches the bridge, which sends it to
// the VXLAN device for a remote MAC or floods it there (head-end replication to the flood
// list); the VXLAN device encapsulates, routes and segments (GSO). Decapsulated frames come
// the other way into vswitchd's tunnel port and are learned there.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { PortConfig, VxlanConfig } from '../config/config.js';
import { sh as hostSh } from '../ports/hygiene.js';

export interface TunnelNames {
  bridge: string;
  vxlan: string;
  /** vswitchd's port (the tunnel port). */
  port: string;
  /** The bridge's end of the pair: zebra reads local MACs from it. */
  adv: string;
}

export function tunnelNames(vni: number): TunnelNames {
  return { bridge: `vsw-br${vni}`, vxlan: `vsw-vx${vni}`, port: `vsw-tn${vni}`, adv: `vsw-tb${vni}` };
}

const ZERO_MAC = '00:00:00:00:00:00';

/** One line of `bridge fdb show` / `bridge monitor fdb`, the parts used here. */
export interface FdbLine {
  deleted: boolean;
  mac: string;
  dev?: string;
  master?: string;
  dst?: string;
  self: boolean;
  externLearn: boolean;
  permanent: boolean;
}

const VALUE_KEYS = new Set(['dev', 'vlan', 'dst', 'master', 'port', 'vni', 'via', 'src_vni', 'nhid']);

export function parseFdbLine(line: string): FdbLine | undefined {
  const words = line.trim().split(/\s+/);
  let i = 0;
  const deleted = words[0] === 'Deleted';
  if (deleted) i++;
  const mac = words[i++]?.toLowerCase();
  if (!mac || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) return undefined;
  const out: FdbLine = { deleted, mac, self: false, externLearn: false, permanent: false };
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (VALUE_KEYS.has(w)) {
      const v = words[++i];
      if (w === 'dev' || w === 'master' || w === 'dst') out[w] = v;
    } else if (w === 'self') out.self = true;
    else if (w === 'extern_learn') out.externLearn = true;
    else if (w === 'permanent') out.permanent = true;
  }
  return out;
}

/** What zebra has put into one VNI's bridge. */
class VniState {
  /** The bridge's entries: MAC -> the bridge port it is on. */
  readonly bridgePort = new Map<string, string>();
  /** The VXLAN device's own entries: MAC -> remote VTEP. */
  readonly dst = new Map<string, string>();
  /** The flood list (type-3 routes): remote VTEPs. */
  readonly flood = new Set<string>();
  /** The MACs told as remote, with their VTEP. */
  readonly remote = new Map<string, string>();

  constructor(readonly vni: number, readonly vlan: number, readonly names: TunnelNames) {}

  /** Where zebra says the MAC is: its VTEP when the bridge sends it to the VXLAN device. */
  remoteOf(mac: string): string | undefined {
    return this.bridgePort.get(mac) === this.names.vxlan ? this.dst.get(mac) : undefined;
  }
}

export interface VniStatus {
  vni: number;
  vlan: number;
  port: string;
  vxlan: string;
  flood_list: string[];
  remote_macs: number;
  /** The VXLAN device's counters: tx = encapsulated towards VTEPs, rx = decapsulated; drops and errors are frames it lost (no VTEP for a MAC, no route to the VTEP). */
  counters: VxlanCounters;
}

export interface VxlanCounters {
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  rx_dropped: number;
  tx_dropped: number;
  rx_errors: number;
  tx_errors: number;
}

function vxlanCounters(dev: string): VxlanCounters {
  const read = (f: string) => {
    try {
      return Number(readFileSync(`/sys/class/net/${dev}/statistics/${f}`, 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  };
  return {
    rx_packets: read('rx_packets'), rx_bytes: read('rx_bytes'), tx_packets: read('tx_packets'), tx_bytes: read('tx_bytes'),
    rx_dropped: read('rx_dropped'), tx_dropped: read('tx_dropped'), rx_errors: read('rx_errors'), tx_errors: read('tx_errors'),
  };
}

export interface TunnelStatus {
  local: string;
  port: number;
  vnis: VniStatus[];
  vteps: { vtep: string; remote_macs: number; flood_vnis: number[] }[];
  events: Evpn['counters'];
}

export type ShellRun = (cmd: string, args: string[]) => Promise<string>;

export interface EvpnOptions {
  config: VxlanConfig;
  log: Logger;
  /** A remote MAC appeared or moved (vtep), or went (undefined). */
  onRemote: (vlan: number, mac: string, vtep: string | undefined) => void;
  sh?: ShellRun;
  /** Starts the long-running `bridge` processes (monitor, batch); tests inject fakes. */
  spawn?: (cmd: string, args: string[]) => ChildProcessWithoutNullStreams;
}

export class Evpn {
  private config: VxlanConfig;
  private readonly vnis = new Map<number, VniState>();
  private readonly sh: ShellRun;
  private readonly spawn: (cmd: string, args: string[]) => ChildProcessWithoutNullStreams;
  private monitor?: ChildProcessWithoutNullStreams;
  private batch?: ChildProcessWithoutNullStreams;
  private stopping = false;
  /** Local MACs written on the advertise ports: `${vni}/${mac}`. */
  private readonly advertised = new Set<string>();
  readonly counters = { advertised: 0, withdrawn: 0, remote_added: 0, remote_removed: 0, monitor_restarts: 0 };

  constructor(private readonly opts: EvpnOptions) {
    this.config = opts.config;
    this.sh = opts.sh ?? hostSh;
    this.spawn = opts.spawn ?? ((cmd, args) => spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  get local(): string {
    return this.config.local;
  }

  /** The tunnel ports the switch adds, one per VNI (access ports in the VNI's VLAN). */
  tunnelPorts(): PortConfig[] {
    return [...this.vnis.values()].map((v) => ({ name: v.names.port, type: 'veth' as const, vlan: v.vlan }));
  }

  /** The kernel devices behind a tunnel port. */
  devicesOf(port: string): TunnelNames | undefined {
    for (const v of this.vnis.values()) if (v.names.port === port) return v.names;
    return undefined;
  }

  isTunnelPort(name: string): boolean {
    return [...this.vnis.values()].some((v) => v.names.port === name);
  }

  /** The tunnel port's name for a VLAN that has a VNI. */
  portOfVlan(vlan: number): string | undefined {
    for (const v of this.vnis.values()) if (v.vlan === vlan) return v.names.port;
    return undefined;
  }

  private vniOfVlan(vlan: number): VniState | undefined {
    for (const v of this.vnis.values()) if (v.vlan === vlan) return v;
    return undefined;
  }

  remoteOf(vlan: number, mac: string): string | undefined {
    return this.vniOfVlan(vlan)?.remote.get(mac);
  }

  /** Every remote MAC: the switch keeps them in its FDB while zebra has them. */
  remoteEntries(): { vlan: number; mac: string; vtep: string }[] {
    return [...this.vnis.values()].flatMap((v) => [...v.remote].map(([mac, vtep]) => ({ vlan: v.vlan, mac, vtep })));
  }

  /** Creates (or takes over) the VNIs' devices and starts the writer and the monitor; then the switch adds the tunnel ports, re-advertises its MACs and calls reconcile(). */
  async start(): Promise<void> {
    for (const v of this.config.vnis) await this.addVni(v.vni, v.vlan);
    this.startBatch();
    this.startMonitor();
  }

  /**
   * The full dump: what zebra installed before (or while the monitor was away), and static
   * entries on the advertise ports that are not the switch's any more (a run before this
   * one advertised them) are deleted.
   */
  async reconcile(): Promise<void> {
    await this.dump();
    let stale = 0;
    for (const v of this.vnis.values())
      for (const [mac, dev] of v.bridgePort)
        if (dev === v.names.adv && !this.advertised.has(`${v.vni}/${mac}`)) {
          this.batch?.stdin.write(`fdb del ${mac} dev ${v.names.adv} master\n`);
          stale++;
        }
    if (stale) this.opts.log.info({ stale }, 'vxlan: removed local MACs an earlier run advertised');
  }

  /** Reload: VNIs added and removed; a new local address or port rebuilds every VNI. Returns what changed. */
  async setConfig(next: VxlanConfig | undefined, dropPort: (name: string) => Promise<void>): Promise<{ added: PortConfig[]; changes: string[] }> {
    const changes: string[] = [];
    const prev = this.config;
    const rebuild = !next || next.local !== prev.local || next.port !== prev.port;
    const wanted = new Map((rebuild ? [] : next.vnis).map((v) => [v.vni, v.vlan]));
    for (const v of [...this.vnis.values()]) {
      if (wanted.get(v.vni) === v.vlan) continue;
      await dropPort(v.names.port);
      await this.removeVni(v.vni);
      changes.push(`vni ${v.vni} (vlan ${v.vlan}) removed`);
    }
    if (next) this.config = next;
    const added: PortConfig[] = [];
    for (const v of next?.vnis ?? []) {
      if (this.vnis.has(v.vni)) continue;
      await this.addVni(v.vni, v.vlan);
      added.push({ name: tunnelNames(v.vni).port, type: 'veth', vlan: v.vlan });
      changes.push(`vni ${v.vni} (vlan ${v.vlan}) added`);
    }
    return { added, changes };
  }

  private async addVni(vni: number, vlan: number): Promise<void> {
    const n = tunnelNames(vni);
    const { local, port } = this.config;
    // After a restart that kept the datapath (or a crash) the devices are there: taken over
    // as they are when they match, so zebra sees no flap and the tunnel port keeps its link.
    if (await this.matches(vni, n)) {
      this.vnis.set(vni, new VniState(vni, vlan, n));
      this.opts.log.info({ vni, vlan, devices: n }, 'vxlan: VNI taken over (its devices were there)');
      return;
    }
    // Left by an earlier run, not as configured now: ours by name.
    for (const dev of [n.port, n.vxlan, n.bridge]) await this.sh('ip', ['link', 'del', dev]).catch(() => undefined);
    await this.sh('ip', ['link', 'add', n.bridge, 'type', 'bridge']);
    await this.sh('ip', ['link', 'add', n.vxlan, 'type', 'vxlan', 'id', String(vni), 'local', local, 'dstport', String(port), 'nolearning']);
    await this.sh('ip', ['link', 'add', n.port, 'type', 'veth', 'peer', 'name', n.adv]);
    for (const dev of [n.bridge, n.vxlan, n.adv, n.port]) await this.sh('sysctl', ['-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]).catch(() => undefined);
    for (const dev of [n.vxlan, n.adv]) {
      await this.sh('ip', ['link', 'set', dev, 'master', n.bridge]);
      // Only zebra (remote MACs) and vswitchd (local ones) write this bridge's FDB.
      await this.sh('bridge', ['link', 'set', 'dev', dev, 'learning', 'off']);
    }
    for (const dev of [n.bridge, n.vxlan, n.adv, n.port]) await this.sh('ip', ['link', 'set', dev, 'up']);
    this.vnis.set(vni, new VniState(vni, vlan, n));
    this.opts.log.info({ vni, vlan, local, port, devices: n }, 'vxlan: VNI up');
  }

  /** Whether the VNI's four devices exist, the VXLAN device with this VNI, address and port, in its bridge. */
  private async matches(vni: number, n: TunnelNames): Promise<boolean> {
    try {
      const links = JSON.parse(await this.sh('ip', ['-d', '-j', 'link', 'show', 'dev', n.vxlan])) as { master?: string; linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number } } }[];
      const vx = links[0];
      const d = vx?.linkinfo?.info_data;
      if (vx?.linkinfo?.info_kind !== 'vxlan' || d?.id !== vni || d.local !== this.config.local || d.port !== this.config.port || vx.master !== n.bridge) return false;
      for (const dev of [n.port, n.adv]) await this.sh('ip', ['link', 'show', 'dev', dev]);
      return true;
    } catch {
      return false;
    }
  }

  private async removeVni(vni: number): Promise<void> {
    const v = this.vnis.get(vni);
    if (!v) return;
    this.vnis.delete(vni);
    for (const mac of v.remote.keys()) this.opts.onRemote(v.vlan, mac, undefined);
    for (const key of [...this.advertised]) if (key.startsWith(`${vni}/`)) this.advertised.delete(key);
    for (const dev of [v.names.port, v.names.vxlan, v.names.bridge]) await this.sh('ip', ['link', 'del', dev]).catch(() => undefined);
    this.opts.log.info({ vni, vlan: v.vlan }, 'vxlan: VNI removed');
  }

  /** A local MAC in a VLAN with a VNI (advertise) or no longer local (withdraw). */
  setLocal(vlan: number, mac: string, local: boolean): void {
    const v = this.vniOfVlan(vlan);
    if (!v || !this.batch) return;
    const key = `${v.vni}/${mac}`;
    if (local === this.advertised.has(key)) return;
    if (local) {
      this.advertised.add(key);
      this.counters.advertised++;
      this.batch.stdin.write(`fdb replace ${mac} dev ${v.names.adv} master static\n`);
    } else {
      this.advertised.delete(key);
      this.counters.withdrawn++;
      this.batch.stdin.write(`fdb del ${mac} dev ${v.names.adv} master\n`);
    }
  }

  /** One `bridge -batch -` process takes the writes: no process per MAC. */
  private startBatch(): void {
    const child = this.spawn('bridge', ['-force', '-batch', '-']);
    this.batch = child;
    child.stdin.on('error', () => undefined);  // it ended: the exit handler starts another
    // A delete of an entry zebra has replaced by a remote one fails: nothing to do.
    child.stderr.on('data', (d: Buffer) => this.opts.log.debug({ err: d.toString().trim() }, 'vxlan: bridge fdb write'));
    child.stdout.resume();
    child.on('exit', () => {
      if (this.batch === child) this.batch = undefined;
      if (!this.stopping) {
        this.opts.log.warn('vxlan: the bridge batch process ended; restarting it');
        this.startBatch();
      }
    });
  }

  private startMonitor(): void {
    const child = this.spawn('bridge', ['monitor', 'fdb']);
    this.monitor = child;
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    child.stderr.on('data', (d: Buffer) => this.opts.log.warn({ err: d.toString().trim() }, 'vxlan: bridge monitor'));
    child.on('exit', () => {
      if (this.monitor === child) this.monitor = undefined;
      if (this.stopping) return;
      this.counters.monitor_restarts++;
      this.opts.log.warn('vxlan: bridge monitor ended; restarting it and reading the FDB again');
      setTimeout(() => {
        if (this.stopping) return;
        this.startMonitor();
        void this.dump();
      }, 1000);
    });
  }

  /** The full dump: entries the monitor missed (start, a monitor restart) and ones gone meanwhile. */
  async dump(): Promise<void> {
    let text: string;
    try {
      text = await this.sh('bridge', ['fdb', 'show']);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'vxlan: bridge fdb show failed');
      return;
    }
    const seen = new Map<number, { bridge: Map<string, string>; dst: Map<string, string>; flood: Set<string> }>();
    for (const v of this.vnis.values()) seen.set(v.vni, { bridge: new Map(), dst: new Map(), flood: new Set() });
    for (const line of text.split('\n')) {
      const e = parseFdbLine(line);
      if (!e) continue;
      for (const v of this.vnis.values()) {
        const s = seen.get(v.vni)!;
        if (e.master === v.names.bridge && !e.permanent && e.dev) s.bridge.set(e.mac, e.dev);
        if (e.dev === v.names.vxlan && e.self && e.dst) {
          if (e.mac === ZERO_MAC) s.flood.add(e.dst);
          else s.dst.set(e.mac, e.dst);
        }
      }
    }
    for (const v of this.vnis.values()) {
      const s = seen.get(v.vni)!;
      const macs = new Set([...v.bridgePort.keys(), ...v.dst.keys(), ...s.bridge.keys(), ...s.dst.keys()]);
      v.bridgePort.clear();
      v.dst.clear();
      v.flood.clear();
      for (const [k, x] of s.bridge) v.bridgePort.set(k, x);
      for (const [k, x] of s.dst) v.dst.set(k, x);
      for (const x of s.flood) v.flood.add(x);
      for (const mac of macs) this.update(v, mac);
      for (const mac of [...v.remote.keys()]) this.update(v, mac);
    }
  }

  private onLine(line: string): void {
    const e = parseFdbLine(line);
    if (!e) return;
    for (const v of this.vnis.values()) {
      let touched = false;
      if (e.master === v.names.bridge && !e.permanent && e.dev) {
        if (!e.deleted) v.bridgePort.set(e.mac, e.dev);
        else if (v.bridgePort.get(e.mac) === e.dev) v.bridgePort.delete(e.mac);
        touched = true;
      }
      if (e.dev === v.names.vxlan && e.self && e.dst) {
        if (e.mac === ZERO_MAC) {
          if (e.deleted) v.flood.delete(e.dst);
          else v.flood.add(e.dst);
          if (!e.deleted) this.opts.log.info({ vni: v.vni, vtep: e.dst, flood_list: [...v.flood] }, 'vxlan: flood list');
        } else {
          if (!e.deleted) v.dst.set(e.mac, e.dst);
          else if (v.dst.get(e.mac) === e.dst) v.dst.delete(e.mac);
          touched = true;
        }
      }
      if (touched) this.update(v, e.mac);
    }
  }

  private update(v: VniState, mac: string): void {
    const now = v.remoteOf(mac);
    const before = v.remote.get(mac);
    if (now === before) return;
    if (now) {
      v.remote.set(mac, now);
      this.counters.remote_added++;
      // zebra replaced our advertised entry: the MAC is behind another VTEP now.
      this.advertised.delete(`${v.vni}/${mac}`);
    } else {
      v.remote.delete(mac);
      this.counters.remote_removed++;
    }
    this.opts.log.debug({ vni: v.vni, mac, vtep: now ?? null }, 'vxlan: remote MAC');
    this.opts.onRemote(v.vlan, mac, now);
  }

  status(): TunnelStatus {
    const vnis = [...this.vnis.values()].sort((a, b) => a.vni - b.vni);
    const vteps = new Map<string, { vtep: string; remote_macs: number; flood_vnis: number[] }>();
    const at = (vtep: string) => vteps.get(vtep) ?? vteps.set(vtep, { vtep, remote_macs: 0, flood_vnis: [] }).get(vtep)!;
    for (const v of vnis) {
      for (const vtep of v.flood) at(vtep).flood_vnis.push(v.vni);
      for (const vtep of v.remote.values()) at(vtep).remote_macs++;
    }
    return {
      local: this.config.local,
      port: this.config.port,
      vnis: vnis.map((v) => ({ vni: v.vni, vlan: v.vlan, port: v.names.port, vxlan: v.names.vxlan, flood_list: [...v.flood].sort(), remote_macs: v.remote.size, counters: vxlanCounters(v.names.vxlan) })),
      vteps: [...vteps.values()].sort((a, b) => (a.vtep < b.vtep ? -1 : 1)),
      events: { ...this.counters },
    };
  }

  /** A restart that keeps the datapath: the processes go, the devices and entries stay for the next daemon. */
  detach(): void {
    this.stopping = true;
    this.monitor?.kill();
    this.batch?.stdin.end();
  }

  /** Takes the kernel objects down (after the switch removed the tunnel ports). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.monitor?.kill();
    this.batch?.stdin.end();
    for (const vni of [...this.vnis.keys()]) {
      const v = this.vnis.get(vni)!;
      this.vnis.delete(vni);
      for (const dev of [v.names.port, v.names.vxlan, v.names.bridge]) await this.sh('ip', ['link', 'del', dev]).catch(() => undefined);
    }
  }
}
