// Restarts that keep the datapath (issue 13). The kernel side of the datapath
// (the tc programs' bpf_links, the maps with the FDB, port table and fast-path
// counters, the internal port's tap) is held by file descriptors. The daemon
// keeps copies of them in systemd's file descriptor store (FDSTORE=1 over
// $NOTIFY_SOCKET), so they outlive the process: a restart or a crash leaves
// them attached and alive, and systemd hands them to the next start as
// LISTEN_FDS/LISTEN_FDNAMES. A re-exec in place (`vswitchctl restart`) hands
// them over the same way. A stop removes everything itself and empties the
// store (FDSTOREREMOVE=1); systemd also closes the store on a stop, which
// detaches the links by itself. Why this and not pins in bpffs: docs/ARCHITECTURE.md.
import { createHash } from 'node:crypto';
import { fstatSync, ftruncateSync, readFileSync, readSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import type { NativeAddon } from '../datapath/native.js';
import type { PeerChanges } from '../ports/hygiene.js';
import type { AttachedAs, LearnedMacs } from '../ports/ports.js';
import type { VlanMode } from '../types.js';

/** The maps, by the names they are handed over with (the addon's handoverFds()). */
export const MAP_NAMES = ['fdb', 'ports', 'tx', 'fstats', 'config', 'tc_ports', 'policy', 'buckets'] as const;
export type MapName = (typeof MAP_NAMES)[number];

const STATE = 'state';
export const tapFdName = (bridge: string) => `tap.${bridge}`;
export const linkFdName = (port: string) => `link.${port}`;
/** A tc port's punt far end's XDP link. */
export const puntFdName = (port: string) => `punt.${port}`;
/** Handed-over names that are program links (detached, not only closed, when not taken). */
export const isLinkFdName = (name: string) => name.startsWith('link.') || name.startsWith('punt.');
/**
 * The AF_XDP side (the slow path): the UMEM's memfd and the socket it is registered on
 * (the addon's handoverFds() has them), each port's socket per device queue and its punt
 * far end's. Kept, the frames wait in the rings across a restart instead of being dropped.
 */
export const UMEM_NAMES = ['umem', 'umem.anchor'] as const;
export const xskFdName = (port: string, queue: number) => `xsk.${queue}.${port}`;
export const puntXskFdName = (port: string) => `xskp.${port}`;
/** A port's socket names, for the queues and hook it had. */
export function xskNamesOf(p: { name: string; queues?: number; hook?: string }): { device: string[]; punt: string } {
  return { device: Array.from({ length: p.queues ?? 0 }, (_, q) => xskFdName(p.name, q)), punt: p.hook === 'tc' ? puntXskFdName(p.name) : '' };
}
export const isXskFdName = (name: string) => (UMEM_NAMES as readonly string[]).includes(name) || /^xsk\.\d+\./.test(name) || name.startsWith('xskp.');

/**
 * What identifies the programs a build loads: a hash of its BPF objects. Equal across a
 * restart, the running programs are what this build would load (with the same port
 * index, which adoption keeps), so they stay in their links and nothing is loaded.
 */
export function programBuild(objects: string[]): string {
  const hash = createHash('sha256');
  for (const file of objects) hash.update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

/** A port as the daemon that ran it left it. */
export interface HandedPort {
  name: string;
  index: number;
  hook?: string;
  peerChanges?: PeerChanges;
  /** What the early start needs (src/switch/daemon/early.ts); absent: the port is added by the daemon only. */
  kind?: string;
  up?: boolean;
  bond?: string;
  queues?: number;
  mtu?: number;
  vlan?: VlanMode;
  punt?: { near: string; far: string };
  attached?: AttachedAs;
  /** Its live sockets' XDP_STATISTICS as counted in `counters`: adopted, they count on from these. */
  xskLive?: Record<string, number>;
}

/** The datapath's settings, so that the early start can build it before the config is read. */
export interface HandedDatapath {
  workers: number;
  framesPerWorker: number;
  fastPath: boolean;
  /** datapath.fast_path as configured (it decides each port's hook). */
  fastPathMode: string;
  xdpMode: string;
}

export interface SlowCounters {
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  flood_packets: number;
  drops: Record<string, number>;
}

/** What the fds alone do not say, in a memfd in the store beside them. */
export interface HandoverState {
  /** VSW_LAYOUT_VERSION of the build that made the maps. */
  layout: number;
  /** The addon's xskLayout (chunk and ring sizes) of the build that made the sockets: they are adopted only when equal. */
  xsk?: string;
  /** programBuild() of the programs running in the links (absent: an older build's). */
  programs?: string;
  bridge: string;
  fdbCapacity: number;
  datapath?: HandedDatapath;
  ports: HandedPort[];
  /** The hot loop's counters (they live in process memory): the next daemon counts on from them. */
  counters: Record<string, SlowCounters>;
  /** Each worker's counters (loops, frames, ...), counted on from when the worker count is the same. */
  workers?: Record<string, number>[];
  /** FdbManager's event counters (learn, move, age, flush). */
  fdbStats?: Record<string, unknown>;
  /** Each mirror's counters (the hot loop's), by name. */
  mirrors?: Record<string, { frames: number; bytes: number; lost: Record<string, number> }>;
  /** security.learn: the MACs each port learned and is locked to, with the settings they were learned under. */
  learned?: Record<string, LearnedMacs>;
  savedAtMs: number;
}

/** The fds this start was given by systemd's fd store or by a re-exec, by name. */
export function inheritedFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): Map<string, number> {
  const fds = new Map<string, number>();
  const ours = Number(env.LISTEN_PID) === pid;
  const count = Number(env.LISTEN_FDS) || 0;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  // Children (ip, ethtool) must not take them for theirs.
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (!ours) return fds;
  for (let i = 0; i < count; i++) fds.set(names[i] ?? `unknown${i}`, 3 + i);
  return fds;
}

export class Handover {
  /** What is in the store now (what a re-exec hands over), by name. */
  private readonly stored = new Map<string, number>();
  private stateFd = -1;
  readonly underSystemd: boolean;

  constructor(
    private readonly native: NativeAddon,
    /** What this start was given; taken out as the daemon adopts it. */
    readonly inherited: Map<string, number>,
    private readonly log: Logger,
  ) {
    this.underSystemd = Boolean(process.env.NOTIFY_SOCKET);
  }

  private state?: HandoverState;

  /** The state the previous daemon left, if it left one (read once: the early start and the Switch both ask). */
  readState(): HandoverState | undefined {
    const fd = this.inherited.get(STATE);
    if (fd === undefined) return this.state;
    this.inherited.delete(STATE);
    this.stateFd = fd;  // written on from here
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(size);
      readSync(fd, buf, 0, size, 0);
      this.state = JSON.parse(buf.toString()) as HandoverState;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'the handed-over state is unreadable: starting afresh');
    }
    return this.state;
  }

  /** Takes an inherited fd (undefined when there is none). */
  take(name: string): number | undefined {
    const fd = this.inherited.get(name);
    this.inherited.delete(name);
    return fd;
  }

  /** Keeps a copy of fd in the store (and for a re-exec). */
  store(name: string, fd: number): void {
    if (fd < 0 || this.stored.get(name) === fd) return;
    this.stored.set(name, fd);
    if (this.underSystemd) this.native.sdNotify(`FDSTORE=1\nFDNAME=${name}`, [fd]);
  }

  remove(name: string): void {
    if (!this.stored.delete(name)) return;
    if (this.underSystemd) this.native.sdNotify(`FDSTOREREMOVE=1\nFDNAME=${name}`);
  }

  /** Drops every fd of that name from the store, ours or not (what an earlier daemon left). */
  forget(name: string): void {
    this.stored.delete(name);
    if (this.underSystemd) this.native.sdNotify(`FDSTOREREMOVE=1\nFDNAME=${name}`);
  }

  /** Keeps exactly `wanted` among the stored names `member` picks (a port's sockets come and go with it). */
  sync(member: (name: string) => boolean, wanted: Map<string, number>): void {
    for (const name of [...this.stored.keys()]) if (member(name) && !wanted.has(name)) this.remove(name);
    for (const [name, fd] of wanted) this.store(name, fd);
  }

  /**
   * The handed-over sockets and UMEM are not adopted: closed, and out of the store, so
   * that they are released (a new socket cannot bind a queue the old one still holds).
   */
  dropXsks(also?: Map<string, number>): string[] {
    const names = [...this.inherited.keys()].filter(isXskFdName);
    for (const name of names) {
      this.native.closeFd(this.inherited.get(name)!);
      this.inherited.delete(name);
      also?.delete(name);
      this.forget(name);
    }
    return names;
  }

  /** A stop: nothing is handed over. */
  clear(): void {
    for (const name of [...this.stored.keys()]) this.remove(name);
  }

  writeState(state: HandoverState): void {
    if (this.stateFd < 0) this.stateFd = this.native.memfdCreate('vswitchd-state');
    const buf = Buffer.from(JSON.stringify(state));
    ftruncateSync(this.stateFd, 0);
    writeSync(this.stateFd, buf, 0, buf.length, 0);
    if (!this.stored.has(STATE)) this.store(STATE, this.stateFd);
  }

  /** Replaces this process with a new start of `argv`, handing everything over. */
  reexec(argv: string[]): never {
    const names = [...this.stored.keys()];
    this.native.reexec(argv[0]!, argv, names.map((n) => this.stored.get(n)!), names);
    throw new Error('re-exec returned');
  }
}
