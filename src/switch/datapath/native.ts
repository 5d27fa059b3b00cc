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

/** What the native side reports: the AF_XDP path's counters, the XDP fast path's apart. */
export interface NativePortCounters extends PathCounters {
  flood_packets: number;
  drops: Record<string, number>;
  fast: PathCounters;
}

/** A port's counters as reported to users: both paths together, and each apart. */
export interface PortCounters extends PathCounters {
  flood_packets: number;
  drops: Record<string, number>;
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
    hook?: { hook: 'tc' | 'xdp'; puntNear?: string; puntFar?: string; peerNetns?: boolean },
  ): { xdpMode: string; hook: PortHook; owners: number[] };
  removePort(index: number): void;
  setPortVlan(index: number, vlan: { trunk: boolean; accessVlan: number; nativeVlan: number; trunks: number[] }): void;
  setPortActive(index: number, active: boolean): void;
  /** The device's MTU: larger frames for the port are dropped as mtu_exceeded (takes effect at commit). */
  setPortMtu(index: number, mtu: number): void;
  setFloodSet(vlan: number, ports: number[]): void;
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
}

export interface RunResult {
  learned: { vlan: number; mac: string; port: number }[];
  /** Frames for the control plane (LACPDUs), with the port they arrived on. */
  punted: { port: number; frame: Buffer }[];
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
  }) => NativeDatapath;
  dropReasons: string[];
  maxPorts: number;
  workerRun(worker: number, stop: Int32Array, budgetMs: number): RunResult;
  monotonicMs(): number;
  openTap(name: string, persist: boolean): number;
  setTapPersist(name: string, persist: boolean): void;
  closeFd(fd: number): void;
  /** Sends a state line to systemd; false when not run by systemd (no NOTIFY_SOCKET). */
  sdNotify(state: string): boolean;
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
