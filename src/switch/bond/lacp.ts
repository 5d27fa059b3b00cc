// IEEE 802.1AX Link Aggregation Control Protocol: the LACPDU codec and the
// per-port state machines, in plain TypeScript with no I/O and no timers of
// its own, so that unit tests drive it in virtual time.
//
// Clause numbers are those of IEEE 802.1AX-2014 (clause 6.4; the same
// machines are clause 5.4 of 802.1AX-2008 and 43.4 of 802.3-2005).
//
// Interface (what the bond and, through it, the datapath use):
//
//   encodeLacpdu(pdu, srcMac) -> Buffer      the whole 124-byte Ethernet frame
//   decodeLacpdu(frame) -> Lacpdu            throws Error on anything malformed
//
//   new LacpPort({ actor, mode, rate, clock, send, onChange?, srcMac? })
//     port.setEnabled(up)     port_enabled: the leg's carrier (after the bond's delays)
//     port.setSelected(sel)   Selected, decided by the bond's Selection Logic (6.4.14)
//     port.receive(frame)     an LACPDU punted from the leg (decode errors are counted, not thrown)
//     port.tick()             run the timers; call every ~100 ms. All time comes from clock.nowMs().
//     port.actorState / partner / collectingDistributing / inSync / counters
//   `send(frame)` is called synchronously from inside these methods with a full
//   Ethernet frame to put on the leg. `onChange()` is called (after the
//   machines settle) whenever the actor state, the partner, the receive state
//   or the mux state changed; it may call back into the port (setSelected),
//   and frames handed back through receive() from inside `send` are queued, so
//   wiring two ports straight to each other is safe.
//
// Simplifications, all deliberate:
//   - one Aggregator per port chosen by the bond: Selected is a boolean (no STANDBY);
//   - Ready (6.4.15) is per port: a port attaches once its own wait_while
//     timer (Aggregate_Wait_Time, 2 s) has run out;
//   - the mux uses coupled control (COLLECTING_DISTRIBUTING as one state);
//   - no Churn Detection machines; the Marker protocol (6.5) is answered
//     (a Marker Information PDU gets its Marker Response) but never started;
//   - the partner's administrative defaults (used when DEFAULTED) are all
//     zero: passive, long timeout, individual, out of sync.

import { bytesToMac, macToBytes } from '../l2/mac.js';
import type { Clock, Mac } from '../types.js';

// ---------------------------------------------------------------------------
// Constants (6.4.4) and the frame layout (6.4.2).

/** Slow_Protocols_Multicast address, the destination of every LACPDU. */
export const LACP_DST_MAC: Mac = '01:80:c2:00:00:02';
/** Slow_Protocols_Type. */
export const SLOW_PROTOCOLS_ETHERTYPE = 0x8809;
export const LACP_SUBTYPE = 1;
export const LACP_VERSION = 1;
/** The LACPDU after the Ethernet header: subtype through the 50 reserved bytes. */
export const LACPDU_LENGTH = 110;
/** Ethernet header (14) + LACPDU (110); no FCS. */
export const LACP_FRAME_LENGTH = 124;

export const FAST_PERIODIC_MS = 1_000;
export const SLOW_PERIODIC_MS = 30_000;
export const SHORT_TIMEOUT_MS = 3 * FAST_PERIODIC_MS;
export const LONG_TIMEOUT_MS = 3 * SLOW_PERIODIC_MS;
export const AGGREGATE_WAIT_MS = 2_000;
/** The Transmit machine sends at most this many LACPDUs in any Fast_Periodic_Time. */
export const MAX_TX_PER_FAST_PERIOD = 3;

// Actor_State / Partner_State bits (6.4.2.3).
export const LACP_STATE_ACTIVITY = 0x01;
/** 1 = short timeout: "send to me every second". */
export const LACP_STATE_TIMEOUT = 0x02;
export const LACP_STATE_AGGREGATION = 0x04;
export const LACP_STATE_SYNCHRONIZATION = 0x08;
export const LACP_STATE_COLLECTING = 0x10;
export const LACP_STATE_DISTRIBUTING = 0x20;
export const LACP_STATE_DEFAULTED = 0x40;
export const LACP_STATE_EXPIRED = 0x80;

const TLV_TERMINATOR = 0;
const TLV_ACTOR = 1;
const TLV_PARTNER = 2;
const TLV_COLLECTOR = 3;
const INFO_TLV_LENGTH = 20;
const COLLECTOR_TLV_LENGTH = 16;
const ETH_HEADER = 14;
// Offsets of the TLVs from the start of the frame.
const OFF_ACTOR = ETH_HEADER + 2;
const OFF_PARTNER = OFF_ACTOR + INFO_TLV_LENGTH;
const OFF_COLLECTOR = OFF_PARTNER + INFO_TLV_LENGTH;
const OFF_TERMINATOR = OFF_COLLECTOR + COLLECTOR_TLV_LENGTH;
/** Everything up to and including the terminator TLV; the 50 reserved bytes after it are not checked on receipt. */
const MIN_FRAME_LENGTH = OFF_TERMINATOR + 2;

/** "ACT TMO AGG SYN COL DIS DEF EXP"-style rendering of a state byte, for logs and `bond show`. */
export function formatLacpState(state: number): string {
  const names: [number, string][] = [
    [LACP_STATE_ACTIVITY, 'activity'],
    [LACP_STATE_TIMEOUT, 'timeout'],
    [LACP_STATE_AGGREGATION, 'aggregation'],
    [LACP_STATE_SYNCHRONIZATION, 'synchronized'],
    [LACP_STATE_COLLECTING, 'collecting'],
    [LACP_STATE_DISTRIBUTING, 'distributing'],
    [LACP_STATE_DEFAULTED, 'defaulted'],
    [LACP_STATE_EXPIRED, 'expired'],
  ];
  return names.filter(([bit]) => (state & bit) !== 0).map(([, name]) => name).join(' ');
}

// ---------------------------------------------------------------------------
// Codec.

/** The port identity an Actor or Partner Information TLV carries. */
export interface LacpPortId {
  systemPriority: number;
  systemMac: Mac;
  key: number;
  portPriority: number;
  portNumber: number;
}

/** One side's information as carried in an LACPDU: identity plus the state bits. */
export interface LacpPortInfo extends LacpPortId {
  state: number;
}

export interface Lacpdu {
  actor: LacpPortInfo;
  partner: LacpPortInfo;
  /** CollectorMaxDelay, in tens of microseconds. */
  collectorMaxDelay: number;
}

function writeInfo(buf: Buffer, off: number, type: number, info: LacpPortInfo): void {
  buf[off] = type;
  buf[off + 1] = INFO_TLV_LENGTH;
  buf.writeUInt16BE(info.systemPriority, off + 2);
  Buffer.from(macToBytes(info.systemMac)).copy(buf, off + 4);
  buf.writeUInt16BE(info.key, off + 10);
  buf.writeUInt16BE(info.portPriority, off + 12);
  buf.writeUInt16BE(info.portNumber, off + 14);
  buf[off + 16] = info.state;
  // off + 17..19: reserved, zero
}

function readInfo(frame: Uint8Array, off: number): LacpPortInfo {
  const u16 = (at: number) => (frame[off + at]! << 8) | frame[off + at + 1]!;
  return {
    systemPriority: u16(2),
    systemMac: bytesToMac(frame, off + 4),
    key: u16(10),
    portPriority: u16(12),
    portNumber: u16(14),
    state: frame[off + 16]!,
  };
}

/** The full Ethernet frame of an LACPDU (6.4.2.3): 124 bytes, reserved fields zero. */
export function encodeLacpdu(pdu: Lacpdu, srcMac: Mac): Buffer {
  const buf = Buffer.alloc(LACP_FRAME_LENGTH);
  Buffer.from(macToBytes(LACP_DST_MAC)).copy(buf, 0);
  Buffer.from(macToBytes(srcMac)).copy(buf, 6);
  buf.writeUInt16BE(SLOW_PROTOCOLS_ETHERTYPE, 12);
  buf[ETH_HEADER] = LACP_SUBTYPE;
  buf[ETH_HEADER + 1] = LACP_VERSION;
  writeInfo(buf, OFF_ACTOR, TLV_ACTOR, pdu.actor);
  writeInfo(buf, OFF_PARTNER, TLV_PARTNER, pdu.partner);
  buf[OFF_COLLECTOR] = TLV_COLLECTOR;
  buf[OFF_COLLECTOR + 1] = COLLECTOR_TLV_LENGTH;
  buf.writeUInt16BE(pdu.collectorMaxDelay, OFF_COLLECTOR + 2);
  // Terminator (type 0, length 0) and the 50 reserved bytes are already zero.
  return buf;
}

function expectTlv(frame: Uint8Array, off: number, type: number, length: number, name: string): void {
  if (frame[off] !== type || frame[off + 1] !== length) {
    throw new Error(
      `malformed LACPDU: expected the ${name} TLV (type ${type}, length ${length}) at byte ${off}, ` +
        `got type ${frame[off]}, length ${frame[off + 1]}`,
    );
  }
}

/**
 * Parse and validate an LACPDU frame (untagged Ethernet). Throws an Error
 * naming what is wrong: length, destination, ethertype, subtype, version,
 * or a TLV type/length. Reserved fields are ignored, as 6.4.2.3 requires of
 * receivers; a version above 1 is accepted and read as version 1 (6.4.2.4),
 * skipping any TLVs it adds before the terminator.
 */
export function decodeLacpdu(frame: Uint8Array): Lacpdu {
  if (frame.length < MIN_FRAME_LENGTH) {
    throw new Error(`malformed LACPDU: frame of ${frame.length} bytes is shorter than ${MIN_FRAME_LENGTH}`);
  }
  const ethertype = (frame[12]! << 8) | frame[13]!;
  if (ethertype !== SLOW_PROTOCOLS_ETHERTYPE) {
    throw new Error(`not an LACPDU: ethertype 0x${ethertype.toString(16).padStart(4, '0')}, expected 0x8809`);
  }
  const dst = bytesToMac(frame, 0);
  if (dst !== LACP_DST_MAC) throw new Error(`not an LACPDU: destination ${dst}, expected ${LACP_DST_MAC}`);
  const subtype = frame[ETH_HEADER]!;
  if (subtype !== LACP_SUBTYPE) throw new Error(`not an LACPDU: slow protocol subtype ${subtype}, expected 1`);
  const version = frame[ETH_HEADER + 1]!;
  if (version < LACP_VERSION) throw new Error(`malformed LACPDU: version ${version}, expected 1 or above`);

  expectTlv(frame, OFF_ACTOR, TLV_ACTOR, INFO_TLV_LENGTH, 'Actor Information');
  expectTlv(frame, OFF_PARTNER, TLV_PARTNER, INFO_TLV_LENGTH, 'Partner Information');
  expectTlv(frame, OFF_COLLECTOR, TLV_COLLECTOR, COLLECTOR_TLV_LENGTH, 'Collector Information');
  let off = OFF_TERMINATOR;
  if (version > LACP_VERSION) {
    // Later versions may add TLVs here; walk over them to the terminator.
    while (off + 2 <= frame.length && frame[off] !== TLV_TERMINATOR) {
      const len = frame[off + 1]!;
      if (len < 2) throw new Error(`malformed LACPDU: TLV type ${frame[off]} at byte ${off} has length ${len}`);
      off += len;
    }
    if (off + 2 > frame.length) throw new Error('malformed LACPDU: no terminator TLV');
  }
  expectTlv(frame, off, TLV_TERMINATOR, 0, 'Terminator');

  return {
    actor: readInfo(frame, OFF_ACTOR),
    partner: readInfo(frame, OFF_PARTNER),
    collectorMaxDelay: (frame[OFF_COLLECTOR + 2]! << 8) | frame[OFF_COLLECTOR + 3]!,
  };
}

// ---------------------------------------------------------------------------
// The port.

export interface LacpPortOptions {
  actor: LacpPortId;
  /** active: LACP_Activity set, transmits regardless of the partner; passive: only answers an active partner. */
  mode: 'active' | 'passive';
  /** Our LACP_Timeout: fast asks the partner to send every 1 s (we time it out after 3 s); slow every 30 s (90 s). */
  rate: 'fast' | 'slow';
  clock: Clock;
  send: (frame: Buffer) => void;
  onChange?: () => void;
  /** Source MAC of the LACPDUs we send; the leg's own address. Defaults to actor.systemMac. */
  srcMac?: Mac;
}

/** Receive machine states (6.4.12); INITIALIZE and LACP_DISABLED are not kept (always LACP-enabled). */
export type LacpRxState = 'port-disabled' | 'expired' | 'defaulted' | 'current';
/** Mux machine states, coupled control (6.4.15). */
export type LacpMuxState = 'detached' | 'waiting' | 'attached' | 'collecting-distributing';
/** Periodic Transmission machine states (6.4.13), PERIODIC_TX being a transient. */
type PeriodicState = 'no-periodic' | 'fast-periodic' | 'slow-periodic';

export interface LacpCounters {
  rx: number;
  tx: number;
  rxErrors: number;
  /** Marker PDUs answered with a Marker Response (6.5.4.2). */
  markers: number;
}

// The Marker protocol (6.5): same slow-protocols frame, subtype 2, one 16-byte TLV.
export const MARKER_SUBTYPE = 2;
const TLV_MARKER_INFO = 1;
const TLV_MARKER_RESPONSE = 2;
const MARKER_TLV_LENGTH = 16;

/**
 * The Marker Response to a Marker Information PDU (6.5.3): the requester's TLV
 * (port, system, transaction id) echoed with the Response type, from srcMac.
 * Undefined when the frame is no Marker Information PDU.
 */
export function markerResponse(frame: Uint8Array, srcMac: Mac): Buffer | undefined {
  const tlv = ETH_HEADER + 2;
  if (frame.length < tlv + MARKER_TLV_LENGTH + 2) return undefined;
  if (((frame[12]! << 8) | frame[13]!) !== SLOW_PROTOCOLS_ETHERTYPE || bytesToMac(frame, 0) !== LACP_DST_MAC) return undefined;
  if (frame[ETH_HEADER] !== MARKER_SUBTYPE || frame[tlv] !== TLV_MARKER_INFO || frame[tlv + 1] !== MARKER_TLV_LENGTH) return undefined;
  const reply = Buffer.alloc(LACP_FRAME_LENGTH);  // 14 + 110, like an LACPDU; terminator and reserved bytes zero
  Buffer.from(macToBytes(LACP_DST_MAC)).copy(reply, 0);
  Buffer.from(macToBytes(srcMac)).copy(reply, 6);
  reply.writeUInt16BE(SLOW_PROTOCOLS_ETHERTYPE, 12);
  reply[ETH_HEADER] = MARKER_SUBTYPE;
  reply[ETH_HEADER + 1] = 1;  // version
  reply[tlv] = TLV_MARKER_RESPONSE;
  reply[tlv + 1] = MARKER_TLV_LENGTH;
  reply.set(frame.subarray(tlv + 2, tlv + MARKER_TLV_LENGTH), tlv + 2);
  return reply;
}

/** Partner_Admin_*: what a DEFAULTED port assumes of its partner (6.4.7). */
const PARTNER_ADMIN: LacpPortInfo = {
  systemPriority: 0,
  systemMac: '00:00:00:00:00:00',
  key: 0,
  portPriority: 0,
  portNumber: 0,
  state: 0,
};

function sameId(a: LacpPortId, b: LacpPortId): boolean {
  return (
    a.systemPriority === b.systemPriority &&
    a.systemMac === b.systemMac &&
    a.key === b.key &&
    a.portPriority === b.portPriority &&
    a.portNumber === b.portNumber
  );
}

function setBit(state: number, bit: number, on: boolean): number {
  return on ? state | bit : state & ~bit;
}

/** Steps of the machines in one run before giving up; they settle in a handful. */
const MAX_STEPS = 32;

export class LacpPort {
  readonly counters: LacpCounters = { rx: 0, tx: 0, rxErrors: 0, markers: 0 };

  private readonly actor: LacpPortId;
  private readonly clock: Clock;
  private readonly sendFrame: (frame: Buffer) => void;
  private readonly onChange: (() => void) | undefined;
  private readonly srcMac: Mac;

  private actorOperState: number;
  private partnerOper: LacpPortInfo = { ...PARTNER_ADMIN };
  /** True from recordPDU until recordDefault: partnerOper came from the wire. */
  private partnerKnown = false;

  private enabled = false;
  private selected = false;
  private ntt = false;
  private rxState: LacpRxState = 'port-disabled';
  private muxState: LacpMuxState = 'detached';
  private periodicState: PeriodicState = 'no-periodic';
  private currentWhileUntil = 0;
  private periodicUntil = 0;
  private waitWhileUntil = 0;
  /** Times of the recent transmissions, for the rate limit. */
  private txTimes: number[] = [];

  // Re-entrancy: send() and onChange() may call back into this port.
  private running = false;
  private rerun = false;
  private readonly rxQueue: Uint8Array[] = [];
  private lastSignature = '';

  constructor(opts: LacpPortOptions) {
    this.actor = { ...opts.actor };
    this.clock = opts.clock;
    this.sendFrame = opts.send;
    this.onChange = opts.onChange;
    this.srcMac = opts.srcMac ?? opts.actor.systemMac;
    if (this.actor.portNumber < 1 || this.actor.portNumber > 0xffff) {
      throw new Error(`LACP port number ${this.actor.portNumber} out of range 1..65535`);
    }
    this.actorOperState =
      (opts.mode === 'active' ? LACP_STATE_ACTIVITY : 0) |
      (opts.rate === 'fast' ? LACP_STATE_TIMEOUT : 0) |
      LACP_STATE_AGGREGATION;
    // INITIALIZE (6.4.12): recordDefault; the Mux machine starts DETACHED with NTT.
    this.recordDefault();
    this.ntt = true;
    this.lastSignature = this.signature();
  }

  // --- inputs -------------------------------------------------------------

  /** port_enabled: the leg is up. Going down records the partner defaults and detaches. */
  setEnabled(up: boolean): void {
    if (up === this.enabled) return;
    this.enabled = up;
    this.run();
  }

  /** Selected (6.4.14) as decided by the bond: true = attach to the bond's aggregator. */
  setSelected(selected: boolean): void {
    if (selected === this.selected) return;
    this.selected = selected;
    this.run();
  }

  /** An LACPDU received on this leg. Malformed frames are counted in rxErrors and dropped. */
  receive(frame: Uint8Array): void {
    if (frame[ETH_HEADER] === MARKER_SUBTYPE && frame.length > ETH_HEADER + 2) {
      // The Marker Responder (6.5.4.2) is stateless: answer at once, on this leg.
      // A Marker Response is for a requester, which we never are: ignored.
      const reply = markerResponse(frame, this.srcMac);
      if (reply) {
        this.counters.markers++;
        this.sendFrame(reply);
      } else if (frame[ETH_HEADER + 2] !== TLV_MARKER_RESPONSE) {
        this.counters.rxErrors++;
      }
      return;
    }
    this.counters.rx++;
    this.rxQueue.push(frame);
    this.run();
  }

  /** Run the timers; call every ~100 ms (timer expiry is noticed at tick granularity). */
  tick(): void {
    this.run();
  }

  // --- outputs ------------------------------------------------------------

  get actorState(): number {
    return this.actorOperState;
  }

  /** The partner's information, undefined while nothing has been heard from it (DEFAULTED, disabled). */
  get partner(): LacpPortInfo | undefined {
    return this.partnerKnown ? { ...this.partnerOper } : undefined;
  }

  get collectingDistributing(): boolean {
    return this.muxState === 'collecting-distributing';
  }

  /** Both ends have this link in sync: our Synchronization bit and the partner's. */
  get inSync(): boolean {
    return (
      (this.actorOperState & LACP_STATE_SYNCHRONIZATION) !== 0 &&
      this.partnerKnown &&
      (this.partnerOper.state & LACP_STATE_SYNCHRONIZATION) !== 0
    );
  }

  get isSelected(): boolean {
    return this.selected;
  }

  get receiveState(): LacpRxState {
    return this.rxState;
  }

  get muxMachineState(): LacpMuxState {
    return this.muxState;
  }

  get actorInfo(): LacpPortInfo {
    return { ...this.actor, state: this.actorOperState };
  }

  // --- the machines -------------------------------------------------------

  private run(): void {
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.rerun = false;
        while (this.rxQueue.length > 0) this.handlePdu(this.rxQueue.shift()!);
        for (let i = 0; i < MAX_STEPS && this.step(); i++);
        this.transmit();
        const sig = this.signature();
        if (sig !== this.lastSignature) {
          this.lastSignature = sig;
          this.onChange?.();
        }
      } while (this.rerun || this.rxQueue.length > 0);
    } finally {
      this.running = false;
    }
  }

  /** One pass over the Receive, Periodic and Mux machines; true when any of them moved. */
  private step(): boolean {
    return this.stepReceive() || this.stepPeriodic() || this.stepMux();
  }

  // Receive machine (6.4.12). PDU arrivals are handled in handlePdu.
  private stepReceive(): boolean {
    const now = this.clock.nowMs();
    if (!this.enabled) {
      if (this.rxState === 'port-disabled') return false;
      // PORT_DISABLED. Partner sync goes at once; we also forget the partner
      // (recordDefault), so the bond stops counting this leg for its LAG.
      this.rxState = 'port-disabled';
      this.recordDefault();
      this.setActor(LACP_STATE_EXPIRED, false);
      return true;
    }
    switch (this.rxState) {
      case 'port-disabled':
        this.enterExpired();
        this.ntt = true; // a link that comes up announces itself at once, not a period later
        return true;
      case 'current':
        if (now >= this.currentWhileUntil) {
          this.enterExpired();
          return true;
        }
        return false;
      case 'expired':
        if (now >= this.currentWhileUntil) {
          // DEFAULTED: update_Default_Selected, recordDefault, Expired off.
          this.rxState = 'defaulted';
          if (this.partnerKnown) this.selected = false;
          this.recordDefault();
          this.setActor(LACP_STATE_EXPIRED, false);
          return true;
        }
        return false;
      case 'defaulted':
        return false;
    }
  }

  /** EXPIRED: the partner is out of sync and asked (by us) to send fast, for Short_Timeout_Time. */
  private enterExpired(): void {
    this.rxState = 'expired';
    this.partnerOper.state = setBit(this.partnerOper.state, LACP_STATE_SYNCHRONIZATION, false);
    this.partnerOper.state = setBit(this.partnerOper.state, LACP_STATE_TIMEOUT, true);
    this.currentWhileUntil = this.clock.nowMs() + SHORT_TIMEOUT_MS;
    this.setActor(LACP_STATE_EXPIRED, true);
  }

  /** CURRENT (6.4.12) on receipt of a valid LACPDU in any enabled state. */
  private handlePdu(frame: Uint8Array): void {
    let pdu: Lacpdu;
    try {
      pdu = decodeLacpdu(frame);
    } catch {
      this.counters.rxErrors++;
      return;
    }
    if (!this.enabled) return;
    // update_Selected: a different partner port (or one that changed its
    // Aggregation bit) means a different LAG; detach first.
    const aggregationChanged = ((pdu.actor.state ^ this.partnerOper.state) & LACP_STATE_AGGREGATION) !== 0;
    if (!this.partnerKnown || !sameId(pdu.actor, this.partnerOper) || aggregationChanged) this.selected = false;
    // update_NTT: the partner's view of us is stale; tell it.
    const stateBits = LACP_STATE_ACTIVITY | LACP_STATE_TIMEOUT | LACP_STATE_SYNCHRONIZATION | LACP_STATE_AGGREGATION;
    if (!sameId(pdu.partner, this.actor) || ((pdu.partner.state ^ this.actorOperState) & stateBits) !== 0) {
      this.ntt = true;
    }
    this.recordPdu(pdu);
    this.rxState = 'current';
    const timeout = (this.actorOperState & LACP_STATE_TIMEOUT) !== 0 ? SHORT_TIMEOUT_MS : LONG_TIMEOUT_MS;
    this.currentWhileUntil = this.clock.nowMs() + timeout;
    this.setActor(LACP_STATE_EXPIRED, false);
  }

  /** recordPDU (6.4.9): the PDU's actor becomes our partner; its sync counts only if it sees us as we are. */
  private recordPdu(pdu: Lacpdu): void {
    const seesUs =
      sameId(pdu.partner, this.actor) &&
      ((pdu.partner.state ^ this.actorOperState) & LACP_STATE_AGGREGATION) === 0;
    const actorSync = (pdu.actor.state & LACP_STATE_SYNCHRONIZATION) !== 0;
    const individual = (pdu.actor.state & LACP_STATE_AGGREGATION) === 0;
    const partnerSync = actorSync && (seesUs || individual);
    this.partnerOper = { ...pdu.actor, state: setBit(pdu.actor.state, LACP_STATE_SYNCHRONIZATION, partnerSync) };
    this.partnerKnown = true;
    this.setActor(LACP_STATE_DEFAULTED, false);
  }

  /** recordDefault (6.4.9): the partner is the administrative default; we are Defaulted. */
  private recordDefault(): void {
    this.partnerOper = { ...PARTNER_ADMIN };
    this.partnerKnown = false;
    this.setActor(LACP_STATE_DEFAULTED, true);
  }

  // Periodic Transmission machine (6.4.13): the rate follows the PARTNER's LACP_Timeout.
  private stepPeriodic(): boolean {
    const now = this.clock.nowMs();
    const actorPassive = (this.actorOperState & LACP_STATE_ACTIVITY) === 0;
    const partnerPassive = (this.partnerOper.state & LACP_STATE_ACTIVITY) === 0;
    const partnerShort = (this.partnerOper.state & LACP_STATE_TIMEOUT) !== 0;
    const want: PeriodicState = partnerShort ? 'fast-periodic' : 'slow-periodic';
    const start = (state: PeriodicState) => {
      this.periodicState = state;
      this.periodicUntil = now + (state === 'fast-periodic' ? FAST_PERIODIC_MS : SLOW_PERIODIC_MS);
    };

    if (!this.enabled || (actorPassive && partnerPassive)) {
      if (this.periodicState === 'no-periodic') return false;
      this.periodicState = 'no-periodic';
      return true;
    }
    switch (this.periodicState) {
      case 'no-periodic':
        start('fast-periodic'); // UCT to FAST_PERIODIC
        return true;
      case 'fast-periodic':
        if (!partnerShort) {
          start('slow-periodic');
          return true;
        }
        break;
      case 'slow-periodic':
        if (partnerShort) {
          // The partner now wants fast: PERIODIC_TX at once.
          this.ntt = true;
          start(want);
          return true;
        }
        break;
    }
    if (now >= this.periodicUntil) {
      this.ntt = true; // PERIODIC_TX
      start(want);
      return true;
    }
    return false;
  }

  // Mux machine, coupled control (6.4.15).
  private stepMux(): boolean {
    const now = this.clock.nowMs();
    const selected = this.selected && this.enabled;
    const partnerSync = (this.partnerOper.state & LACP_STATE_SYNCHRONIZATION) !== 0;
    switch (this.muxState) {
      case 'detached':
        if (!selected) return false;
        this.muxState = 'waiting';
        this.waitWhileUntil = now + AGGREGATE_WAIT_MS;
        return true;
      case 'waiting':
        if (!selected) {
          this.enterDetached();
          return true;
        }
        if (now >= this.waitWhileUntil) {
          this.enterAttached();
          return true;
        }
        return false;
      case 'attached':
        if (!selected) {
          this.enterDetached();
          return true;
        }
        if (partnerSync) {
          this.muxState = 'collecting-distributing';
          this.setActor(LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING, true);
          this.ntt = true;
          return true;
        }
        return false;
      case 'collecting-distributing':
        if (!selected || !partnerSync) {
          this.enterAttached();
          return true;
        }
        return false;
    }
  }

  private enterDetached(): void {
    this.muxState = 'detached';
    this.setActor(LACP_STATE_SYNCHRONIZATION | LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING, false);
    this.ntt = true;
  }

  private enterAttached(): void {
    this.muxState = 'attached';
    this.setActor(LACP_STATE_SYNCHRONIZATION, true);
    this.setActor(LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING, false);
    this.ntt = true;
  }

  // Transmit machine (6.4.16): on NTT, rate-limited, never in NO_PERIODIC.
  private transmit(): void {
    if (!this.ntt || this.periodicState === 'no-periodic' || !this.enabled) return;
    const now = this.clock.nowMs();
    this.txTimes = this.txTimes.filter((t) => t > now - FAST_PERIODIC_MS);
    if (this.txTimes.length >= MAX_TX_PER_FAST_PERIOD) return; // NTT stays set; a later tick sends it
    this.ntt = false;
    this.txTimes.push(now);
    this.counters.tx++;
    const frame = encodeLacpdu(
      {
        actor: { ...this.actor, state: this.actorOperState },
        partner: { ...this.partnerOper },
        collectorMaxDelay: 0,
      },
      this.srcMac,
    );
    this.sendFrame(frame); // last: the callee may re-enter this port
  }

  private setActor(bits: number, on: boolean): void {
    this.actorOperState = setBit(this.actorOperState, bits, on);
  }

  /** What onChange reports changes of. */
  private signature(): string {
    const p = this.partnerOper;
    return [
      this.actorOperState,
      this.rxState,
      this.muxState,
      this.selected,
      this.partnerKnown,
      p.systemPriority,
      p.systemMac,
      p.key,
      p.portPriority,
      p.portNumber,
      p.state,
    ].join('|');
  }
}
