// Bond leg selection policy: which legs of a bond may carry traffic, which
// leg each flow leaves on, and LACP for the bond's legs. Plain TypeScript
// with an injected clock and an injected transmit, so it runs in virtual time.
//
// Interface (what the control plane and the datapath use):
//
//   const bond = new BondPolicy({ name, mode, members, primary?, updelayMs, downdelayMs,
//                                 hash?, lacp?, clock, send, onChange })
//   bond.setCarrier(leg, up)         carrier from netlink (updelay/downdelay applied here)
//   bond.receiveLacpdu(leg, frame)   an LACPDU (dst 01:80:c2:00:00:02, type 0x8809) punted from a leg
//   bond.tick()                      every ~100 ms: delays, LACP timers
//
//   After onChange() the caller re-reads:
//     bond.buckets()      Int16Array(256): hash bucket -> member index (-1 = drop). This is
//                         THE transmit table for every mode: in active-backup (and LACP
//                         fallback) every bucket holds the active leg, so the hot loop only
//                         ever does legs[buckets[hashFlow(frame)]].
//     bond.rxAllowed(leg) whether frames received on the leg are accepted (active-backup:
//                         only the active leg, OVS drops the rest; LACP: only
//                         collecting legs). LACPDUs are always punted, whatever this says.
//     bond.activeLeg, bond.failovers, bond.lastFailover
//                         when `failovers` went up, send gratuitous learning frames
//                         (RARP/ARP for the MACs learned on other ports) on lastFailover.to.
//     bond.status()       for `vswitchctl bond show` and metrics.
//   `send(leg, frame)` transmits an LACPDU on one leg; it is called synchronously
//   from setCarrier/receiveLacpdu/tick. onChange() is called after the state
//   settles, at most once per call into the bond, only when something visible
//   changed (usable legs, buckets, active leg, LACP state bits or partner).
//
// The flow hash (which leg a frame takes) is in ./flow-hash.ts.

import type { LacpConfig } from '../config/config.js';
import { formatLacpState, LACP_STATE_AGGREGATION, LacpPort, type LacpPortInfo } from './lacp.js';
import type { Clock, Mac } from '../types.js';
import { hashFlow, type BondHash } from './flow-hash.js';

export type { BondHash } from './flow-hash.js';

export type BondMode = 'active-backup' | 'balance-tcp' | 'lacp';

/** Number of hash buckets; the hot loop's table has exactly this many entries. */
export const BOND_BUCKETS = 256;

/** The bond's LACP settings: the config block plus what the daemon derives. */
export interface BondLacpOptions extends LacpConfig {
  /** Actor system id: the MAC identifying this switch (or this bond) to the partner. */
  systemMac: Mac;
  /** Actor key: the same on every leg of this bond, different between bonds of one system. */
  key: number;
  /** Actor port priority of every leg; default 255. */
  portPriority?: number;
  /** Actor port number of the first member; the rest follow in member order. Default 1. Port numbers must be unique within the system id. */
  firstPortNumber?: number;
  /** Source MAC of the LACPDUs sent on each leg (its own address); default systemMac. */
  legMacs?: Record<string, Mac>;
}

export interface BondPolicyOptions {
  name: string;
  mode: BondMode;
  members: string[];
  primary?: string;
  updelayMs: number;
  downdelayMs: number;
  /** balance-tcp / lacp flow hash; default l3l4. */
  hash?: BondHash;
  /** Required when mode is lacp. */
  lacp?: BondLacpOptions;
  clock: Clock;
  send: (leg: string, frame: Buffer) => void;
  onChange: () => void;
}

export interface Failover {
  /** The active leg before (undefined when no leg was usable). */
  from: string | undefined;
  to: string;
  atMs: number;
}

export interface BondLegLacpStatus {
  actorState: number;
  partnerState: number;
  /** Partner system MAC, undefined while no partner is heard. */
  partnerSystem: Mac | undefined;
  partnerSystemPriority: number | undefined;
  partnerKey: number | undefined;
  partnerPort: number | undefined;
  /** The state bits in words, e.g. "activity timeout aggregation synchronized collecting distributing". */
  actorStateText: string;
  partnerStateText: string;
  selected: boolean;
  collectingDistributing: boolean;
  inSync: boolean;
  rx: number;
  tx: number;
  rxErrors: number;
  /** Marker PDUs answered. */
  markers: number;
}

export interface BondLegStatus {
  name: string;
  /** Raw carrier as last reported. */
  carrier: boolean;
  /** Carrier after updelay/downdelay. */
  carrierUp: boolean;
  usable: boolean;
  active: boolean;
  /** Hash buckets that leave on this leg. */
  buckets: number;
  lacp?: BondLegLacpStatus;
}

export interface BondStatus {
  name: string;
  mode: BondMode;
  hash: BondHash;
  activeLeg: string | undefined;
  /** LACP bond running as active-backup because no partner speaks (fallback: active-backup). */
  fallback: boolean;
  legs: BondLegStatus[];
  failovers: number;
  lastFailover: Failover | undefined;
}

interface Leg {
  name: string;
  index: number;
  /** Carrier as netlink last said. */
  carrier: boolean;
  /** Carrier after the delays: what the policy acts on. */
  carrierUp: boolean;
  /** When carrierUp follows carrier, if a delay is running. */
  pendingUntil: number | undefined;
  usable: boolean;
  lacp: LacpPort | undefined;
}

const DEFAULT_PORT_PRIORITY = 255;

export class BondPolicy {
  readonly name: string;
  readonly mode: BondMode;
  readonly hash: BondHash;
  readonly members: readonly string[];

  private readonly primary: string | undefined;
  private readonly updelayMs: number;
  private readonly downdelayMs: number;
  private readonly fallbackEnabled: boolean;
  private readonly clock: Clock;
  private readonly onChange: () => void;
  private readonly legs: Leg[];
  private readonly byName = new Map<string, Leg>();

  private active: string | undefined;
  private everActive = false;
  private inFallback = false;
  private failoverCount = 0;
  private failover: Failover | undefined;
  /** Buckets spread over the usable legs (balance-tcp, lacp), kept between changes so few move. */
  private readonly balanced = new Int16Array(BOND_BUCKETS).fill(-1);
  /** The table the hot loop gets. */
  private readonly table = new Int16Array(BOND_BUCKETS).fill(-1);
  /** LACP partner (system priority, system MAC, key) the aggregator chose. */
  private chosenPartner: string | undefined;

  private evaluating = false;
  private reevaluate = false;
  private lastSignature: string;

  constructor(opts: BondPolicyOptions) {
    if (opts.members.length === 0) throw new Error(`bond ${opts.name}: no members`);
    if (new Set(opts.members).size !== opts.members.length) throw new Error(`bond ${opts.name}: duplicate members`);
    if (opts.primary !== undefined && !opts.members.includes(opts.primary)) {
      throw new Error(`bond ${opts.name}: primary ${opts.primary} is not a member`);
    }
    if (opts.mode === 'lacp' && opts.lacp === undefined) throw new Error(`bond ${opts.name}: mode lacp needs lacp options`);

    this.name = opts.name;
    this.mode = opts.mode;
    this.hash = opts.hash ?? 'l3l4';
    this.members = [...opts.members];
    this.primary = opts.primary;
    this.updelayMs = opts.updelayMs;
    this.downdelayMs = opts.downdelayMs;
    this.clock = opts.clock;
    this.onChange = opts.onChange;
    const lacp = opts.mode === 'lacp' ? opts.lacp : undefined;
    this.fallbackEnabled = lacp?.fallback === 'active-backup';

    this.legs = opts.members.map((name, index) => {
      const leg: Leg = { name, index, carrier: false, carrierUp: false, pendingUntil: undefined, usable: false, lacp: undefined };
      if (lacp !== undefined) {
        leg.lacp = new LacpPort({
          actor: {
            systemPriority: lacp.system_priority,
            systemMac: lacp.systemMac,
            key: lacp.key,
            portPriority: lacp.portPriority ?? DEFAULT_PORT_PRIORITY,
            portNumber: (lacp.firstPortNumber ?? 1) + index,
          },
          mode: lacp.mode,
          rate: lacp.rate,
          clock: opts.clock,
          srcMac: lacp.legMacs?.[name] ?? lacp.systemMac,
          send: (frame) => opts.send(name, frame),
          onChange: () => this.evaluate(),
        });
      }
      this.byName.set(name, leg);
      return leg;
    });
    this.lastSignature = this.signature();
  }

  // --- inputs -------------------------------------------------------------

  /**
   * Carrier (and admin state) of a leg from netlink. A leg becomes usable
   * updelayMs after its carrier comes up and stops being usable downdelayMs
   * after it goes down; a bounce shorter than the delay is not seen at all.
   */
  setCarrier(leg: string, up: boolean): void {
    const l = this.leg(leg);
    if (l.carrier === up) return;
    l.carrier = up;
    if (l.carrierUp === up) {
      l.pendingUntil = undefined; // back before the delay ran out
    } else {
      const delay = up ? this.updelayMs : this.downdelayMs;
      if (delay <= 0) this.applyCarrier(l);
      else l.pendingUntil = this.clock.nowMs() + delay;
    }
    this.evaluate();
  }

  /** An LACPDU received on a leg. Ignored (not counted) when the bond does not run LACP. */
  receiveLacpdu(leg: string, frame: Uint8Array): void {
    this.leg(leg).lacp?.receive(frame);
    // The port's onChange already re-evaluated if anything changed.
  }

  /** Advance the delays and the LACP timers; call every ~100 ms. */
  tick(): void {
    const now = this.clock.nowMs();
    for (const l of this.legs) {
      if (l.pendingUntil !== undefined && now >= l.pendingUntil) this.applyCarrier(l);
    }
    for (const l of this.legs) l.lacp?.tick();
    this.evaluate();
  }

  // --- outputs ------------------------------------------------------------

  /** The transmit table: bucket -> index into members, -1 = no leg (drop). A copy. */
  buckets(): Int16Array {
    return this.table.slice();
  }

  /** The member a frame leaves on, or undefined when no leg is usable. */
  txLeg(frame: Uint8Array): string | undefined {
    const index = this.table[this.hashFlow(frame)]!;
    return index < 0 ? undefined : this.members[index];
  }

  /** The bucket of a frame under this bond's hash setting. */
  hashFlow(frame: Uint8Array): number {
    return hashFlow(frame, this.hash);
  }

  /** Whether frames received on this leg are accepted (LACPDUs are always punted regardless). */
  rxAllowed(leg: string): boolean {
    const l = this.leg(leg);
    if (this.mode === 'active-backup' || this.inFallback) return this.active === leg;
    return l.usable;
  }

  isUsable(leg: string): boolean {
    return this.leg(leg).usable;
  }

  /** active-backup (and LACP fallback): the leg that carries traffic. Undefined in balance-tcp and LACP proper. */
  get activeLeg(): string | undefined {
    return this.active;
  }

  get failovers(): number {
    return this.failoverCount;
  }

  get lastFailover(): Failover | undefined {
    return this.failover;
  }

  get fallback(): boolean {
    return this.inFallback;
  }

  /** The LACP port of a leg (undefined unless mode is lacp), for tests and metrics. */
  lacpPort(leg: string): LacpPort | undefined {
    return this.leg(leg).lacp;
  }

  status(): BondStatus {
    const counts = new Array<number>(this.legs.length).fill(0);
    for (const index of this.table) if (index >= 0) counts[index]!++;
    return {
      name: this.name,
      mode: this.mode,
      hash: this.hash,
      activeLeg: this.active,
      fallback: this.inFallback,
      failovers: this.failoverCount,
      lastFailover: this.failover && { ...this.failover },
      legs: this.legs.map((l) => ({
        name: l.name,
        carrier: l.carrier,
        carrierUp: l.carrierUp,
        usable: l.usable,
        active: l.name === this.active,
        buckets: counts[l.index]!,
        ...(l.lacp && { lacp: lacpStatus(l.lacp) }),
      })),
    };
  }

  // --- policy -------------------------------------------------------------

  private leg(name: string): Leg {
    const l = this.byName.get(name);
    if (l === undefined) throw new Error(`bond ${this.name}: ${name} is not a member (members: ${this.members.join(', ')})`);
    return l;
  }

  private applyCarrier(l: Leg): void {
    l.pendingUntil = undefined;
    l.carrierUp = l.carrier;
    l.lacp?.setEnabled(l.carrierUp);
  }

  /**
   * Recompute everything derived from carrier and LACP state. LACP ports call
   * back in here (through onChange) while we call setSelected on them; those
   * nested calls only ask for another pass.
   */
  private evaluate(): void {
    if (this.evaluating) {
      this.reevaluate = true;
      return;
    }
    this.evaluating = true;
    try {
      let passes = 0;
      do {
        this.reevaluate = false;
        this.evaluateOnce();
      } while (this.reevaluate && ++passes < 16);
    } finally {
      this.evaluating = false;
    }
    const sig = this.signature();
    if (sig !== this.lastSignature) {
      this.lastSignature = sig;
      this.onChange();
    }
  }

  private evaluateOnce(): void {
    if (this.mode === 'lacp') this.selectLacp();
    this.inFallback = this.mode === 'lacp' && this.fallbackEnabled && this.legs.every((l) => l.lacp!.partner === undefined);

    const failoverStyle = this.mode === 'active-backup' || this.inFallback;
    for (const l of this.legs) {
      l.usable = this.mode === 'lacp' && !this.inFallback ? l.lacp!.collectingDistributing : l.carrierUp;
    }
    const usable = this.legs.filter((l) => l.usable);

    if (failoverStyle) {
      this.updateActive(usable);
      const index = this.active === undefined ? -1 : this.leg(this.active).index;
      this.table.fill(index);
    } else {
      this.updateActive([]);
      rebalance(this.balanced, usable.map((l) => l.index));
      this.table.set(this.balanced);
    }
  }

  /**
   * Selection Logic (802.1AX 6.4.14), one aggregator per bond: the legs whose
   * partner is the aggregator's chosen partner (system priority, system MAC,
   * key) are selected, the others stay out. A leg without carrier or without
   * a partner (DEFAULTED) is never selected. The chosen partner is the one
   * behind the most legs; on a tie the current choice stays (so a leg that
   * moves to another switch does not steal the LAG), else the first in member order.
   */
  private selectLacp(): void {
    const partnerOf = new Map<Leg, string>();
    const legsOf = new Map<string, number>();
    for (const l of this.legs) {
      const p = l.lacp!.partner;
      if (p === undefined || !l.carrierUp) continue;
      // A partner port that says it is Individual (Aggregation bit clear) is a LAG of its own.
      const individual = (p.state & LACP_STATE_AGGREGATION) === 0;
      const id = `${p.systemPriority}/${p.systemMac}/${p.key}` + (individual ? `/port ${p.portNumber}` : '');
      partnerOf.set(l, id);
      legsOf.set(id, (legsOf.get(id) ?? 0) + 1);
    }
    const most = Math.max(0, ...legsOf.values());
    let chosen: string | undefined;
    if (this.chosenPartner !== undefined && legsOf.get(this.chosenPartner) === most) {
      chosen = this.chosenPartner;
    } else {
      chosen = this.legs.map((l) => partnerOf.get(l)).find((id) => id !== undefined && legsOf.get(id) === most);
    }
    this.chosenPartner = chosen;
    for (const l of this.legs) l.lacp!.setSelected(chosen !== undefined && partnerOf.get(l) === chosen);
  }

  /** active-backup: the primary when usable, else the current one while usable (no flapping), else the first usable. */
  private updateActive(usable: Leg[]): void {
    const names = new Set(usable.map((l) => l.name));
    let next: string | undefined;
    if (this.primary !== undefined && names.has(this.primary)) next = this.primary;
    else if (this.active !== undefined && names.has(this.active)) next = this.active;
    else next = usable[0]?.name;
    if (next === this.active) return;
    if (next !== undefined) {
      if (this.everActive) {
        this.failoverCount++;
        this.failover = { from: this.active, to: next, atMs: this.clock.nowMs() };
      }
      this.everActive = true;
    }
    this.active = next;
  }

  /** What onChange reports changes of: everything the datapath or `bond show` would see, except counters. */
  private signature(): string {
    const legs = this.legs.map((l) => {
      const p = l.lacp;
      const partner = p?.partner;
      return [
        l.carrierUp,
        l.usable,
        p?.actorState,
        p?.isSelected,
        partner && `${partner.systemPriority}/${partner.systemMac}/${partner.key}/${partner.portNumber}/${partner.state}`,
      ].join(',');
    });
    return [this.active, this.inFallback, this.failoverCount, ...legs, this.table.join(',')].join('|');
  }
}

function lacpStatus(port: LacpPort): BondLegLacpStatus {
  const partner: LacpPortInfo | undefined = port.partner;
  const partnerState = partner?.state ?? 0;
  return {
    actorState: port.actorState,
    partnerState,
    partnerSystem: partner?.systemMac,
    partnerSystemPriority: partner?.systemPriority,
    partnerKey: partner?.key,
    partnerPort: partner?.portNumber,
    actorStateText: formatLacpState(port.actorState),
    partnerStateText: formatLacpState(partnerState),
    selected: port.isSelected,
    collectingDistributing: port.collectingDistributing,
    inSync: port.inSync,
    rx: port.counters.rx,
    tx: port.counters.tx,
    rxErrors: port.counters.rxErrors,
    markers: port.counters.markers,
  };
}

// ---------------------------------------------------------------------------
// Bucket assignment.

/**
 * Spread the buckets evenly over `usable` (member indexes), moving as few as
 * possible from `map` as it stands:
 *   1. buckets of legs no longer usable are freed (only these move when a leg goes);
 *   2. each usable leg gets a quota of floor(256/n) buckets, the 256 mod n
 *      extra ones going to the legs that already hold the most;
 *   3. legs above quota free their highest-numbered buckets (only this
 *      happens when a leg comes back: exactly its share moves, all to it);
 *   4. free buckets, in ascending order, go round-robin to legs below quota.
 * With no usable leg every bucket is -1.
 */
export function rebalance(map: Int16Array, usable: number[]): void {
  const n = usable.length;
  if (n === 0) {
    map.fill(-1);
    return;
  }
  const isUsable = new Set(usable);
  const count = new Map<number, number>(usable.map((i) => [i, 0]));
  for (let b = 0; b < map.length; b++) {
    const leg = map[b]!;
    if (!isUsable.has(leg)) map[b] = -1;
    else count.set(leg, count.get(leg)! + 1);
  }

  const base = Math.floor(map.length / n);
  const extra = map.length % n;
  const quota = new Map<number, number>();
  [...usable]
    .sort((a, b) => count.get(b)! - count.get(a)! || a - b)
    .forEach((leg, rank) => quota.set(leg, base + (rank < extra ? 1 : 0)));

  for (let b = map.length - 1; b >= 0; b--) {
    const leg = map[b]!;
    if (leg >= 0 && count.get(leg)! > quota.get(leg)!) {
      map[b] = -1;
      count.set(leg, count.get(leg)! - 1);
    }
  }

  const order = [...usable].sort((a, b) => a - b);
  let next = 0;
  for (let b = 0; b < map.length; b++) {
    if (map[b] !== -1) continue;
    // Some leg is below quota while a bucket is free: the quotas sum to map.length.
    for (;;) {
      const leg = order[next % n]!;
      next++;
      if (count.get(leg)! < quota.get(leg)!) {
        map[b] = leg;
        count.set(leg, count.get(leg)! + 1);
        break;
      }
    }
  }
}
