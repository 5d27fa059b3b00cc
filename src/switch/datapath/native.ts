// Typed access to the C++ addon (build/Release/vswitchd_native.node).
import { createRequire } from 'node:module';
import path from 'node:path';
import { projectRoot } from '../project-root.js';

export interface PathCounters {
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
}

/** XDP_STATISTICS of a port's sockets, summed over every socket it had (native/afxdp/xsk.h XskStats). */
export interface XskCounters {
  rx_dropped: number;
  rx_invalid_descs: number;
  tx_invalid_descs: number;
  rx_ring_full: number;
  rx_fill_ring_empty_descs: number;
  tx_ring_empty_descs: number;
}

/** What the native side reports: the AF_XDP path's counters, the XDP fast path's apart. */
export interface NativePortCounters extends PathCounters {
  flood_packets: number;
  drops: Record<string, number>;
  /** Drops in the port's BPF program: a redirect it could not make; a source refused at the MAC limit. */
  fast: PathCounters & { redirect_failed: number; mac_limit: number; policy: Record<string, number> };
  /** The port's AF_XDP sockets' XDP_STATISTICS, over every socket it had. */
  xsk: XskCounters;
  /** The same of the sockets it has now only (a restart hands them over: they count on). */
  xskLive: XskCounters;
}

/** A port's counters as reported to users: both paths together, and each apart. */
export interface PortCounters extends PathCounters {
  flood_packets: number;
  /** By reason: the hot loop's (native/datapath/datapath.h) and the kernel's (ports/kernel-drops.ts). */
  drops: Record<string, number>;
  /** The raw AF_XDP socket counts (their losses are in drops too). */
  xsk: XskCounters;
  /** fast: the kernel fast path (the port's tc or XDP program); afxdp: the hot loop. */
  paths: { afxdp: PathCounters; fast: PathCounters };
}

export interface WorkerCounters {
  loops: number;
  rx_batches: number;
  rx_frames: number;
  wakeups: number;
  busy_ns: number;
  total_ns: number;
  learn_events: number;
  tx_kicks: number;
  handoffs: number;
}

export interface NativeFdbRecord {
  vlan: number;
  mac: string;
  port: number;
  flags: number;
  lastSeenMs: number;
}

/** Where a port's frames enter the datapath (see native/datapath/datapath.h PortHook). */
export type PortHook = 'xdp' | 'tc' | 'tap-fd' | 'bond';

export interface NativeMirror {
  out?: number;
  ingress: number[];
  egress: number[];
  vlans: number[];
  anyPort: boolean;
}

export interface MirrorCounters {
  frames: number;
  bytes: number;
  lost: Record<string, number>;
}

export interface NativeDatapath {
  /**
   * hook tc: the tc program on the device, the slow path through the punt veth pair
   * puntNear -> puntFar (which the caller created); xdp (default): the XDP program on the device.
   */
  addPort(
    index: number,
    name: string,
    queues: number,
    xdpMode: string,
    tapFd?: number,
    hook?: PortHookOptions,
  ): { xdpMode: string; hook: PortHook; owners: number[] };
  removePort(index: number): void;
  setPortVlan(index: number, vlan: { trunk: boolean; accessVlan: number; nativeVlan: number; trunks: number[] }): void;
  setPortActive(index: number, active: boolean): void;
  /** The device's MTU: larger frames for the port are dropped as mtu_exceeded (takes effect at commit). */
  setPortMtu(index: number, mtu: number): void;
  setFloodSet(vlan: number, ports: number[]): void;
  /** The mirrors by slot (a free slot: no out), staged for the next commit; see native/datapath/datapath.h MirrorSpec. */
  setMirrors(mirrors: NativeMirror[]): void;
  /** A slot's counters since the datapath started: copies sent, their bytes, copies lost by reason. */
  mirrorCounters(slot: number): MirrorCounters;
  commit(): void;
  portCounters(index: number): NativePortCounters;
  /**
   * fastIn: frames arriving on the port may be switched in the kernel (its XDP or tc program);
   * fastOut: its device takes XDP_REDIRECT; tcOut: frames may be redirected to it from tc.
   */
  /** fastOutMultiBuffer: jumbo (multi-buffer) frames may be XDP-redirected to it too (a veth; a tap cannot take them). */
  setPortFast(index: number, fastIn: boolean, fastOut: boolean, tcOut: boolean, fastOutMultiBuffer?: boolean): void;
  workerCounters(worker: number): WorkerCounters;
  fdbPut(vlan: number, mac: string, port: number, flags: number): boolean;
  fdbDelete(vlan: number, mac: string): boolean;
  fdbGet(vlan: number, mac: string): NativeFdbRecord | undefined;
  fdbEntries(): NativeFdbRecord[];
  fdbClear(): number;
  /** Non-static entries last seen before cutoffMs. */
  fdbExpired(cutoffMs: number): NativeFdbRecord[];
  fdbInfo(): { size: number; capacity: number; mapFd: number };
  close(): void;
  /** A bond: a port index with no device; egress picks a leg from 256 buckets. */
  addBond(index: number, name: string): void;
  /** hash: 0 none (every bucket the same leg), 1 l2, 2 l3l4; buckets: leg port index or -1. */
  setBondBuckets(bond: number, hash: number, buckets: Int16Array): void;
  /** Makes port `leg` a leg of `bond` (-1: no bond); rxEnabled: frames arriving on it are taken. */
  setLeg(leg: number, bond: number, rxEnabled: boolean): void;
  sendFrame(port: number, frame: Buffer): void;
  /** The maps' fds, by handover name (src/switch/daemon/handover.ts MAP_NAMES), and the UMEM's memfd and anchor socket (`umem`, `umem.anchor`). */
  handoverFds(): Record<string, number>;
  /** A port's AF_XDP sockets, handed over across a restart: on its device by queue, and its punt socket (-1: none). */
  xskFds(index: number): { device: number[]; punt: number };
  /** Handed-over sockets that could not be adopted, with why ("name: reason"); new ones are made for them. */
  xskAdoptFailures(): string[];
  /** The link of the program on the port's device (tcx, or XDP on an xdp-hook port; -1: none): what a restart hands over. */
  hookLinkFd(index: number): number;
  /** A restart's last step: the workers let go of the sockets, which stay as they are (in the fd store) for the next daemon. Returns the frames it gave to the fill rings (they take what arrives until the next daemon runs). */
  quiesceForRestart(): number;
  /** A tc port's punt far end's XDP link (-1: none): handed over too. */
  puntLinkFd(index: number): number;
  /** Ends an adoption: the running programs' port tables follow the View again; handed-over sockets no port took are closed (their names returned). */
  releaseFastPorts(): string[];
  /** A port index a new port takes (or an adopted one the config no longer has): off the devmap, every count zeroed. No-op while a port is there. */
  resetPortIndex(index: number): void;
  /** The port holds as many learned MACs as it may: the hot loops drop frames from sources new to it (mac_limit). */
  setLearnFull(index: number, full: boolean): void;
  /** Port security, storm control and policing of a port, at once; {}: none (src/switch/ports/policy.ts nativePolicy). */
  setPortPolicy(index: number, policy: NativePortPolicy): void;
}

/** A port's policy as the datapath takes it (struct port_policy in bpf/include/vswitchd_shared.h). */
export interface NativePortPolicy {
  macs?: string[];
  /** security.learn, not locked yet: a source MAC not in macs goes to the hot loop, which reports it to be admitted (VSW_POL_LEARN). */
  learn?: boolean;
  ips?: string[];
  /** Frames/s: broadcast, multicast, unknown unicast; 0: no cap. */
  storm?: [number, number, number];
  /** Bytes/s and bytes. */
  policeRate?: number;
  policeBurst?: number;
}

export interface RunResult {
  learned: { vlan: number; mac: string; port: number }[];
  /** Frames for the control plane (LACPDUs), with the port they arrived on. */
  punted: { port: number; frame: Buffer }[];
}

/** How a device port is added (see PortHook in native/datapath/datapath.h). */
export interface PortHookOptions {
  hook?: 'tc' | 'xdp';
  puntNear?: string;
  puntFar?: string;
  peerNetns?: boolean;
  adoptLinkFd?: number;
  adoptPuntLinkFd?: number;
  keepPrograms?: boolean;
  early?: boolean;
  /** Handed-over sockets (Datapath adoptXsk names) for the device's queues, by queue, and for the punt far end. */
  adoptXsks?: string[];
  adoptPuntXsk?: string;
}

export interface NativeAddon {
  Datapath: new (opts: {
    workers: number;
    framesPerWorker: number;
    fdbCapacity: number;
    bpfObject: string;
    fastPath?: boolean;
    /** Device the UMEM's anchor socket binds to (default lo); see native/afxdp/xsk.h. */
    anchorDevice?: string;
    /** The tc program's object (default: beside bpfObject). */
    tcObject?: string;
    /** A restart: the maps the running datapath left, by handover name. */
    adopt?: Record<string, number>;
    /** A restart: the UMEM's memfd, the socket it is registered on, and the ports' sockets by handover name (see native/datapath/datapath.h). */
    adoptXsk?: { umem: number; anchor: number; sockets: Record<string, number> };
  }) => NativeDatapath;
  dropReasons: string[];
  maxPorts: number;
  workerRun(worker: number, stop: Int32Array, budgetMs: number): RunResult;
  monotonicMs(): number;
  openTap(name: string, persist: boolean): number;
  setTapPersist(name: string, persist: boolean): void;
  closeFd(fd: number): void;
  /** A close-on-exec copy of fd. */
  dupFd(fd: number): number;
  /** Sends a state line to systemd; false when not run by systemd (no NOTIFY_SOCKET). */
  sdNotify(state: string, fds?: number[]): boolean;
  memfdCreate(name: string): number;
  /** _exit(): no destructor runs (a restart leaves the datapath to the next daemon). */
  exitNow(code: number): never;
  /** Replaces the process (fds at 3.., LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID); throws on failure. */
  reexec(file: string, argv: string[], fds: number[], names: string[]): void;
  /** The id of the program running in a bpf_link (undefined: not a link). */
  linkProgId(fd: number): number | undefined;
  /** Detaches and closes a bpf_link. */
  detachLink(fd: number): void;
  /** VSW_LAYOUT_VERSION: maps are adopted only from a build with the same. */
  layoutVersion: number;
  /** The UMEM chunk size and ring sizes: handed-over sockets are adopted only from a build with the same. */
  xskLayout: string;
}

export const bpfObjectPath = path.join(projectRoot, 'bpf', 'xsk_steer.bpf.o');

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    addon = require(path.join(projectRoot, 'build', 'Release', 'vswitchd_native.node')) as NativeAddon;
  }
  return addon;
}
