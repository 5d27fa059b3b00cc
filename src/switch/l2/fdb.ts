// MAC learning policy. The hot loops only report source MACs they do not find
// on the port they arrived on (LearnEvent) and refresh lastSeenMs of entries
// they hit; this class decides what goes into the shared table and is its
// only writer. That is why it can keep per-port counts itself instead of
// scanning the table on every learn: under a MAC flood from an untrusted VM
// each learn must stay O(1), and the per-port limit plus the table's fixed
// capacity are what keep the flood from exhausting memory.

import { isMulticastMac, isStationMac, parseMac } from './mac.js';
import { FDB_FLAG_STATIC } from '../types.js';
import type { Clock, FdbEntry, FdbTable, LearnEvent, Mac } from '../types.js';

export type RejectReason = 'multicast' | 'static' | 'port-limit' | 'table-full' | 'port-down';

export type LearnResult = 'learned' | 'moved' | 'refreshed' | `rejected-${RejectReason}`;

export interface FdbManagerOptions {
  table: FdbTable;
  clock: Clock;
  /** Dynamic entries not seen for longer than this are removed by age(). */
  agingMs: number;
  /** Most dynamic (learned) entries one port may hold; statics do not count. */
  maxPerPort: number;
  /**
   * Told when a port reaches its limit (full) and when it falls below it again: the
   * datapath then drops frames from sources new to the port where they arrive, instead of
   * reporting each one to be refused here (a MAC flood costs the hot loop a lookup, not
   * the control plane an event per frame).
   */
  onPortFull?: (port: number, full: boolean) => void;
  /**
   * Told after an entry appeared, moved (port: where it is now) or went (port undefined):
   * the EVPN control surface advertises local MACs from it (src/switch/tunnel/evpn.ts).
   */
  onChange?: (vlan: number, mac: Mac, port: number | undefined) => void;
}

export interface FdbStats {
  learned: number;
  moved: number;
  aged: number;
  flushed: number;
  rejected: Record<RejectReason, number>;
}

export interface FdbFilter {
  vlan?: number;
  port?: number;
}

function isStatic(entry: FdbEntry): boolean {
  return (entry.flags & FDB_FLAG_STATIC) !== 0;
}

export class FdbManager {
  /** Monotonic counters, exported as metrics. */
  readonly stats: FdbStats = {
    learned: 0,
    moved: 0,
    aged: 0,
    flushed: 0,
    rejected: { multicast: 0, static: 0, 'port-limit': 0, 'table-full': 0, 'port-down': 0 },
  };

  private readonly table: FdbTable;
  private readonly clock: Clock;
  private agingMs: number;
  private maxPerPort: number;
  private readonly upPorts = new Set<number>();
  private readonly dynamicCountByPort = new Map<number, number>();
  private readonly fullPorts = new Set<number>();
  private readonly onPortFull: (port: number, full: boolean) => void;
  private readonly onChange: (vlan: number, mac: Mac, port: number | undefined) => void;

  constructor(opts: FdbManagerOptions) {
    this.onPortFull = opts.onPortFull ?? (() => undefined);
    this.onChange = opts.onChange ?? (() => undefined);
    this.table = opts.table;
    this.clock = opts.clock;
    this.agingMs = opts.agingMs;
    this.maxPerPort = opts.maxPerPort;
    // The table may already hold entries (e.g. it outlived a control-plane
    // restart); count them so the per-port limit is right from the start.
    for (const entry of this.table.entries()) {
      if (!isStatic(entry)) this.adjustCount(entry.port, +1);
    }
  }

  learn(ev: LearnEvent): LearnResult {
    const { vlan, mac, port } = ev;
    if (!isStationMac(mac)) return this.reject('multicast');  // multicast, broadcast or all-zero: no station
    if (!this.upPorts.has(port)) return this.reject('port-down');

    const existing = this.table.get(vlan, mac);
    if (existing && isStatic(existing)) {
      // Statics are the operator's word: they never move and never age.
      return existing.port === port ? 'refreshed' : this.reject('static');
    }
    if (existing && existing.port === port) {
      this.table.put(vlan, mac, port, existing.flags); // put() sets lastSeen to now
      return 'refreshed';
    }

    // New MAC, or a move onto this port: either way the port gains an entry.
    if (this.countByPort(port) >= this.maxPerPort) return this.reject('port-limit');
    if (!this.table.put(vlan, mac, port, 0)) return this.reject('table-full');
    this.adjustCount(port, +1);
    this.onChange(vlan, mac, port);
    if (existing) {
      this.adjustCount(existing.port, -1);
      this.stats.moved++;
      return 'moved';
    }
    this.stats.learned++;
    return 'learned';
  }

  /**
   * Pin a MAC to a port; replaces any dynamic or static entry for the key.
   * False when the table is full. Throws on a malformed or multicast MAC
   * (multicast destinations are always flooded, a static would never be used).
   */
  addStatic(vlan: number, mac: Mac, port: number): boolean {
    const canonical = parseMac(mac);
    if (isMulticastMac(canonical)) {
      throw new Error(`static FDB entry ${canonical}: multicast/broadcast MACs cannot be pinned to a port`);
    }
    if (!isStationMac(canonical)) throw new Error(`static FDB entry ${canonical}: the all-zero MAC cannot be pinned to a port`);
    const existing = this.table.get(vlan, canonical);
    if (!this.table.put(vlan, canonical, port, FDB_FLAG_STATIC)) return false;
    if (existing && !isStatic(existing)) this.adjustCount(existing.port, -1);
    this.onChange(vlan, canonical, port);
    return true;
  }

  /** True when a static entry was removed; dynamic entries are left alone. */
  removeStatic(vlan: number, mac: Mac): boolean {
    const canonical = parseMac(mac);
    const existing = this.table.get(vlan, canonical);
    if (!existing || !isStatic(existing)) return false;
    if (!this.table.delete(vlan, canonical)) return false;
    this.onChange(vlan, canonical, undefined);
    return true;
  }

  /** Removes the dynamic entry of <vlan, mac> if it is on this port (a remote MAC withdrawn); true if it was. */
  forget(vlan: number, mac: Mac, port: number): boolean {
    const existing = this.table.get(vlan, mac);
    if (!existing || isStatic(existing) || existing.port !== port) return false;
    return this.removeDynamic(existing);
  }

  /**
   * Remove dynamic entries not seen for more than agingMs; returns how many.
   * lastSeenMs is written by put() at learn time and refreshed by the hot loop
   * and the fast path once it is a second (VSW_LAST_SEEN_REFRESH_MS) stale, so it
   * is max(last seen, learned at) to within that second.
   */
  age(): number {
    const cutoff = this.clock.nowMs() - this.agingMs;
    let removed = 0;
    for (const entry of this.table.expired(cutoff)) if (this.removeDynamic(entry)) removed++;
    this.stats.aged += removed;
    return removed;
  }

  /** Remove the dynamic entries of one port; statics stay. */
  flushPort(port: number): number {
    return this.flush({ port });
  }

  /** Remove dynamic entries matching the filter (all of them without one); statics stay. */
  flush(opts: FdbFilter = {}): number {
    let removed = 0;
    for (const entry of this.table.entries()) {
      if (isStatic(entry) || !matches(entry, opts)) continue;
      if (this.removeDynamic(entry)) removed++;
    }
    this.stats.flushed += removed;
    return removed;
  }

  /**
   * Learning happens only on ports marked up. Going down flushes the port's
   * dynamic entries (the hosts behind it may reappear elsewhere) and returns
   * how many went.
   */
  setPortUp(port: number, up: boolean): number {
    if (up) {
      this.upPorts.add(port);
      return 0;
    }
    this.upPorts.delete(port);
    return this.flushPort(port);
  }

  isPortUp(port: number): boolean {
    return this.upPorts.has(port);
  }

  /** The aging time in force. */
  get agingMsNow(): number {
    return this.agingMs;
  }

  /** The table's entry for <vlan, mac>, if any. */
  tableEntry(vlan: number, mac: Mac): FdbEntry | undefined {
    return this.table.get(vlan, mac);
  }

  /** Takes effect at the next age(). */
  setAging(ms: number): void {
    this.agingMs = ms;
  }

  /** Lowering the limit evicts nothing; ports above it learn again once aging brings them below. */
  setMaxPerPort(n: number): void {
    this.maxPerPort = n;
    for (const port of new Set([...this.dynamicCountByPort.keys(), ...this.fullPorts])) this.updateFull(port);
  }

  /** Ports holding as many learned MACs as they may. */
  isPortFull(port: number): boolean {
    return this.fullPorts.has(port);
  }

  /** Entries (dynamic and static) sorted by vlan, then mac. */
  entries(filter: FdbFilter = {}): FdbEntry[] {
    return this.table
      .entries()
      .filter((entry) => matches(entry, filter))
      .sort((a, b) => a.vlan - b.vlan || (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0));
  }

  /** Dynamic (learned) entries on the port: the number the per-port limit applies to. */
  countByPort(port: number): number {
    return this.dynamicCountByPort.get(port) ?? 0;
  }

  /** All entries in the table, dynamic and static. */
  get size(): number {
    return this.table.size;
  }

  private reject(reason: RejectReason): LearnResult {
    this.stats.rejected[reason]++;
    return `rejected-${reason}`;
  }

  private removeDynamic(entry: FdbEntry): boolean {
    if (!this.table.delete(entry.vlan, entry.mac)) return false;
    this.adjustCount(entry.port, -1);
    this.onChange(entry.vlan, entry.mac, undefined);
    return true;
  }

  private adjustCount(port: number, delta: number): void {
    const next = this.countByPort(port) + delta;
    if (next > 0) this.dynamicCountByPort.set(port, next);
    else this.dynamicCountByPort.delete(port);
    this.updateFull(port);
  }

  private updateFull(port: number): void {
    const full = this.countByPort(port) >= this.maxPerPort;
    if (full === this.fullPorts.has(port)) return;
    if (full) this.fullPorts.add(port);
    else this.fullPorts.delete(port);
    this.onPortFull(port, full);
  }
}

function matches(entry: FdbEntry, filter: FdbFilter): boolean {
  return (
    (filter.port === undefined || entry.port === filter.port) &&
    (filter.vlan === undefined || entry.vlan === filter.vlan)
  );
}
