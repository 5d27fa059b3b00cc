import { FDB_FLAG_STATIC } from '../../src/switch/types.js';
// Test doubles for the FDB: a Map-backed FdbTable with the native table's
// contract (fixed capacity, put() stamps lastSeen), and a clock tests move by hand.

import type { Clock, FdbEntry, FdbTable, Mac } from '../../src/switch/types.js';

export class FakeClock implements Clock {
  constructor(private ms = 1_000_000) {}
  nowMs(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export class FakeFdbTable implements FdbTable {
  private readonly map = new Map<string, FdbEntry>();

  constructor(
    private readonly clock: Clock,
    readonly capacity = 1024,
  ) {}

  put(vlan: number, mac: Mac, port: number, flags: number): boolean {
    const k = key(vlan, mac);
    // Overwriting an existing key needs no new slot, so it works when full.
    if (!this.map.has(k) && this.map.size >= this.capacity) return false;
    this.map.set(k, { vlan, mac, port, flags, lastSeenMs: this.clock.nowMs() });
    return true;
  }

  delete(vlan: number, mac: Mac): boolean {
    return this.map.delete(key(vlan, mac));
  }

  get(vlan: number, mac: Mac): FdbEntry | undefined {
    const entry = this.map.get(key(vlan, mac));
    return entry && { ...entry };
  }

  entries(): FdbEntry[] {
    return [...this.map.values()].map((entry) => ({ ...entry }));
  }

  expired(cutoffMs: number): FdbEntry[] {
    return this.entries().filter((e) => (e.flags & FDB_FLAG_STATIC) === 0 && e.lastSeenMs < cutoffMs);
  }

  clear(): number {
    const n = this.map.size;
    this.map.clear();
    return n;
  }

  get size(): number {
    return this.map.size;
  }

  /** What the hot loop does when it sees the MAC as a source again. */
  touch(vlan: number, mac: Mac): void {
    const entry = this.map.get(key(vlan, mac));
    if (!entry) throw new Error(`touch: no entry ${vlan}/${mac}`);
    entry.lastSeenMs = this.clock.nowMs();
  }
}

function key(vlan: number, mac: Mac): string {
  return `${vlan}/${mac}`;
}
