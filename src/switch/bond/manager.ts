// Bonds at run time: one BondPolicy (src/switch/bond/policy.ts) per configured bond,
// fed with carrier from netlink and LACPDUs punted by the hot loop, and its
// decisions (bucket -> leg table, which legs may receive) written to the
// datapath. On failover it sends a gratuitous RARP for every MAC learned on
// other ports, so the upstream switch relearns them on the new leg (as OVS does).
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { BondPolicy, type BondStatus } from './policy.js';
import type { BondConfig } from '../config/config.js';
import type { FdbManager } from '../l2/fdb.js';
import { egressTagged, portCarriesVlan } from '../l2/vlan-rules.js';
import { macToBytes } from '../l2/mac.js';
import type { NativeDatapath } from '../datapath/native.js';
import type { Port, PortTable } from '../ports/ports.js';
import type { Clock, Mac } from '../types.js';

const HASH_CODE = { none: 0, l2: 1, l3l4: 2 } as const;

export function readCarrier(dev: string): boolean {
  try {
    return readFileSync(`/sys/class/net/${dev}/carrier`, 'utf8').trim() === '1';
  } catch {
    return false;  // admin down (EINVAL) or gone
  }
}

function readMac(dev: string): Mac | undefined {
  try {
    return readFileSync(`/sys/class/net/${dev}/address`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A RARP request announcing `mac` (what QEMU and OVS send after a move), tagged when `vlan` is given. */
export function gratuitousRarp(mac: Mac, vlan?: number): Buffer {
  const m = macToBytes(mac);
  const rarp = Buffer.alloc(28);
  rarp.writeUInt16BE(1, 0);       // hardware: Ethernet
  rarp.writeUInt16BE(0x0800, 2);  // protocol: IPv4
  rarp[4] = 6;
  rarp[5] = 4;
  rarp.writeUInt16BE(3, 6);       // reverse request
  rarp.set(m, 8);
  rarp.set(m, 18);
  const tag = vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff]);
  const frame = Buffer.concat([Buffer.alloc(6, 0xff), Buffer.from(m), tag, Buffer.from([0x80, 0x35]), rarp]);
  return frame.length >= 60 ? frame : Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
}

/** A bond as `bond show` reports it: the policy's status, its port index and per-leg tx frames. */
export type BondReport = BondStatus & { index: number; legTx: Record<string, number> };

interface BondState {
  cfg: BondConfig;
  port: Port;
  policy: BondPolicy;
  failoversSeen: number;
}

export interface BondManagerOptions {
  datapath: NativeDatapath;
  ports: PortTable;
  fdb: FdbManager;
  clock: Clock;
  log: Logger;
  /** The system id LACP announces: the internal port's MAC. */
  systemMac: Mac;
  /** Publishes the datapath view after a change. */
  commit: () => void;
}

export class BondManager {
  private readonly bonds = new Map<string, BondState>();
  private readonly legToBond = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  /** LACPDUs or slow-protocol frames that arrived on a port that is no LACP leg. */
  strayControlFrames = 0;

  constructor(private readonly opts: BondManagerOptions) {}

  /** Creates the bond's logical port and its legs' ports; legs carry traffic once the policy says so. */
  async add(cfg: BondConfig): Promise<void> {
    const { ports, clock, log } = this.opts;
    const port = ports.addBond(cfg);
    const key = port.index + 1;
    const state: BondState = {
      cfg,
      port,
      failoversSeen: 0,
      policy: new BondPolicy({
        name: cfg.name,
        mode: cfg.mode,
        members: cfg.members,
        ...(cfg.primary !== undefined ? { primary: cfg.primary } : {}),
        updelayMs: cfg.updelay,
        downdelayMs: cfg.downdelay,
        hash: cfg.hash,
        ...(cfg.lacp
          ? { lacp: { ...cfg.lacp, systemMac: this.opts.systemMac, key, firstPortNumber: port.index * 16 + 1, legMacs: Object.fromEntries(cfg.members.map((m) => [m, readMac(m) ?? this.opts.systemMac])) } }
          : {}),
        clock,
        send: (leg, frame) => this.sendOnLeg(leg, frame),
        onChange: () => this.apply(cfg.name),
      }),
    };
    this.bonds.set(cfg.name, state);
    for (const member of cfg.members) {
      this.legToBond.set(member, cfg.name);
      await ports.add({ name: member }, false, cfg.name);
    }
    // The primary's carrier first: a bond starts on its primary, not on the first
    // member that happened to report, and that is no failover.
    const initialOrder = cfg.primary ? [cfg.primary, ...cfg.members.filter((m) => m !== cfg.primary)] : cfg.members;
    for (const member of initialOrder) state.policy.setCarrier(member, ports.byName(member)?.up === true && readCarrier(member));
    log.info({ bond: cfg.name, mode: cfg.mode, members: cfg.members, index: port.index }, 'bond added');
    this.apply(cfg.name);
  }

  /**
   * Takes a bond away: its legs first, then its logical port. `dropPort` removes a
   * port and what the FDB holds for it (the daemon's). LACP partners see the legs
   * go silent and time them out.
   */
  async remove(name: string, dropPort: (port: Port) => Promise<void>): Promise<void> {
    const b = this.bonds.get(name);
    if (!b) return;
    this.bonds.delete(name);
    for (const member of b.cfg.members) {
      this.legToBond.delete(member);
      const leg = this.opts.ports.byName(member);
      if (leg) await dropPort(leg);
    }
    await dropPort(b.port);
    this.opts.log.info({ bond: name }, 'bond removed');
  }

  /** The bond's configuration as running (undefined: no such bond). */
  configOf(name: string): BondConfig | undefined {
    return this.bonds.get(name)?.cfg;
  }

  /** A change of VLAN keys only: applied in place, the legs and LACP state stay. */
  setVlanConfig(cfg: BondConfig): void {
    const b = this.bonds.get(cfg.name);
    if (b) b.cfg = cfg;
  }

  start(): void {
    this.timer = setInterval(() => {
      for (const b of this.bonds.values()) b.policy.tick();
    }, 100);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  isLeg(name: string): boolean {
    return this.legToBond.has(name);
  }

  bondOf(leg: string): string | undefined {
    return this.legToBond.get(leg);
  }

  /** Carrier news from netlink for a port name (ignored unless it is a leg). */
  onCarrier(leg: string, carrier: boolean): void {
    const bond = this.legToBond.get(leg);
    if (bond) this.bonds.get(bond)!.policy.setCarrier(leg, carrier && this.opts.ports.byName(leg)?.up === true);
  }

  /** A control frame the hot loop punted from a port. */
  onPunt(portIndex: number, frame: Buffer): void {
    const leg = this.opts.ports.get(portIndex)?.name;
    const bond = leg === undefined ? undefined : this.legToBond.get(leg);
    if (!bond) {
      this.strayControlFrames++;
      return;
    }
    this.bonds.get(bond)!.policy.receiveLacpdu(leg!, frame);
  }

  private sendOnLeg(leg: string, frame: Buffer): void {
    const port = this.opts.ports.byName(leg);
    if (!port?.up) return;
    try {
      this.opts.datapath.sendFrame(port.index, frame);
    } catch (err) {
      this.opts.log.warn({ leg, err: (err as Error).message }, 'could not send on bond leg');
    }
  }

  /** Writes every bond's table and legs into the datapath's staged view (the caller commits). */
  writeAll(): void {
    for (const b of this.bonds.values()) this.write(b);
  }

  private write(b: BondState): void {
    const { datapath, ports } = this.opts;
    const legIndex = b.cfg.members.map((m) => ports.byName(m)?.index ?? -1);
    const buckets = Int16Array.from(b.policy.buckets(), (member) => (member < 0 ? -1 : legIndex[member] ?? -1));
    const hash = b.cfg.mode === 'active-backup' ? HASH_CODE.none : HASH_CODE[b.cfg.hash];
    datapath.setBondBuckets(b.port.index, hash, buckets);
    for (const [i, m] of b.cfg.members.entries()) if (legIndex[i]! >= 0) datapath.setLeg(legIndex[i]!, b.port.index, b.policy.rxAllowed(m));
  }

  /** The policy changed its mind: publish it, and announce MACs after a failover. */
  private apply(name: string): void {
    const b = this.bonds.get(name);
    if (!b) return;
    this.write(b);
    this.opts.commit();
    if (b.policy.failovers !== b.failoversSeen) {
      b.failoversSeen = b.policy.failovers;
      const to = b.policy.lastFailover?.to;
      this.opts.log.warn({ bond: name, from: b.policy.lastFailover?.from, to }, 'bond failover');
      if (to) this.announce(b, to);
    }
  }

  /** Gratuitous RARPs on the new leg for every MAC learned elsewhere, in the bond's VLANs. */
  private announce(b: BondState, leg: string): void {
    let sent = 0;
    for (const e of this.opts.fdb.entries()) {
      if (e.port === b.port.index || !portCarriesVlan(b.port.vlan, e.vlan)) continue;
      this.sendOnLeg(leg, gratuitousRarp(e.mac, egressTagged(b.port.vlan, e.vlan) ? e.vlan : undefined));
      sent++;
    }
    this.opts.log.info({ bond: b.cfg.name, leg, macs: sent }, 'announced MACs on the new active leg');
  }

  status(name?: string): BondReport[] {
    return [...this.bonds.values()]
      .filter((b) => name === undefined || b.cfg.name === name)
      .map((b) => ({
        ...b.policy.status(),
        index: b.port.index,
        legTx: Object.fromEntries(b.cfg.members.map((m) => {
          const p = this.opts.ports.byName(m);
          const c = p ? this.opts.datapath.portCounters(p.index) : undefined;
          return [m, c ? c.tx_packets + c.fast.tx_packets : 0];
        })),
      }));
  }

  names(): string[] {
    return [...this.bonds.keys()];
  }
}
