// Shared shapes of the control plane. Modules depend on these interfaces, not on
// each other's classes, so that unit tests can inject fakes (clock, datapath).

/** A MAC address as lowercase "aa:bb:cc:dd:ee:ff". */
export type Mac = string;

/** Monotonic time source: milliseconds on the native hot loop's clock (CLOCK_MONOTONIC). */
export interface Clock {
  nowMs(): number;
}

/** bond: a logical port whose frames leave and arrive on its legs (veth or NIC ports). */
export type PortKind = 'veth' | 'tap' | 'internal' | 'bond';

/** How a port treats VLAN tags. */
export type VlanMode =
  | { mode: 'access'; vlan: number }
  | { mode: 'trunk'; trunks: number[]; nativeVlan?: number };

/**
 * Port indices 0..MAX_PORTS-1: the internal port, every port, bond and bond leg take one.
 * VSW_MAX_PORTS of bpf/include/vswitchd_shared.h (the addon's maxPorts); test/vectors/shared.json pins both.
 */
export const MAX_PORTS = 4096;

/** FDB entry flags, shared with native/ and BPF as VSW_FDB_STATIC (bpf/include/vswitchd_shared.h). */
export const FDB_FLAG_STATIC = 1;

export interface FdbEntry {
  vlan: number;
  mac: Mac;
  /** Port index (the datapath's number for the port). */
  port: number;
  flags: number;
  /** Last time the hot loop saw this MAC as a source, in ms on Clock (0 = never). */
  lastSeenMs: number;
}

/**
 * The shared FDB table (a BPF_F_MMAPABLE array map the hot loops read through mmap).
 * The control plane is its only writer; the native addon implements it.
 */
export interface FdbTable {
  /** Insert or overwrite; false when the table is full. Sets lastSeen to now. */
  put(vlan: number, mac: Mac, port: number, flags: number): boolean;
  /** True when an entry was removed. */
  delete(vlan: number, mac: Mac): boolean;
  get(vlan: number, mac: Mac): FdbEntry | undefined;
  entries(): FdbEntry[];
  /**
   * Dynamic (non-static) entries last seen before cutoffMs. Aging asks for these
   * once a second, so it must not cost a JavaScript object per entry of a large table.
   */
  expired(cutoffMs: number): FdbEntry[];
  /** Remove every entry; returns how many went. */
  clear(): number;
  readonly size: number;
  readonly capacity: number;
}

/** A source MAC the hot loop saw that is not in the FDB on the port it arrived on. */
export interface LearnEvent {
  vlan: number;
  mac: Mac;
  port: number;
}
