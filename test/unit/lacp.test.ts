// The LACP port machines in virtual time: two (or three) LacpPorts wired to
// each other through their send callbacks, a 1 ms wire, ticks every 100 ms.

import test from 'ava';

import {
  AGGREGATE_WAIT_MS,
  LACP_STATE_ACTIVITY,
  LACP_STATE_AGGREGATION,
  LACP_STATE_COLLECTING,
  LACP_STATE_DEFAULTED,
  LACP_STATE_DISTRIBUTING,
  LACP_STATE_EXPIRED,
  LACP_STATE_SYNCHRONIZATION,
  LACP_STATE_TIMEOUT,
  LacpPort,
  SLOW_PERIODIC_MS,
  decodeLacpdu,
} from '../../src/switch/bond/lacp.js';
import { bytesToMac } from '../../src/switch/l2/mac.js';
import { VirtualClock } from '../helpers/virtual-clock.js';

const WIRE_MS = 1;
const TICK_MS = 100;

/** Ports by name, point-to-point links between them, and a log of what was sent when. */
class Net {
  readonly clock = new VirtualClock();
  readonly ports = new Map<string, LacpPort>();
  readonly txLog: { from: string; atMs: number }[] = [];
  /** Last time each port received a frame. */
  readonly lastRx = new Map<string, number>();
  private readonly peer = new Map<string, string>();
  private readonly muted = new Set<string>();
  /** onChange calls per port. */
  readonly changes = new Map<string, number>();

  constructor() {
    this.clock.setInterval(() => {
      for (const p of this.ports.values()) p.tick();
    }, TICK_MS);
  }

  /**
   * A port whose selection is the trivial one of a single-port LAG: selected
   * while it has a partner (the bond does the real Selection Logic).
   */
  add(
    name: string,
    opts: { mode?: 'active' | 'passive'; rate?: 'fast' | 'slow'; mac?: string; key?: number; portNumber?: number } = {},
  ): LacpPort {
    const port: LacpPort = new LacpPort({
      actor: {
        systemPriority: 0x8000,
        systemMac: opts.mac ?? `02:00:00:00:00:${(this.ports.size + 1).toString(16).padStart(2, '0')}`,
        key: opts.key ?? 1,
        portPriority: 255,
        portNumber: opts.portNumber ?? 1,
      },
      mode: opts.mode ?? 'active',
      rate: opts.rate ?? 'fast',
      clock: this.clock,
      send: (frame) => this.deliver(name, frame),
      onChange: () => {
        this.changes.set(name, (this.changes.get(name) ?? 0) + 1);
        port.setSelected(port.partner !== undefined);
      },
    });
    this.ports.set(name, port);
    return port;
  }

  link(a: string, b: string): void {
    this.peer.set(a, b);
    this.peer.set(b, a);
  }

  unlink(a: string): void {
    const b = this.peer.get(a);
    this.peer.delete(a);
    if (b !== undefined) this.peer.delete(b);
  }

  /** Frames the port sends from now on are lost (the partner "falls silent"). */
  mute(name: string): void {
    this.muted.add(name);
  }

  txCount(from: string, sinceMs = 0, untilMs = Infinity): number {
    return this.txLog.filter((e) => e.from === from && e.atMs >= sinceMs && e.atMs < untilMs).length;
  }

  /** Advance until pred() holds (checked every ms); returns the time it took, or throws after maxMs. */
  until(pred: () => boolean, maxMs: number): number {
    return this.clock.until(pred, maxMs);
  }

  private deliver(from: string, frame: Buffer): void {
    this.txLog.push({ from, atMs: this.clock.nowMs() });
    const to = this.peer.get(from);
    if (to === undefined || this.muted.has(from)) return;
    this.clock.setTimeout(() => {
      if (this.peer.get(from) !== to) return; // unplugged while in flight
      this.lastRx.set(to, this.clock.nowMs());
      this.ports.get(to)!.receive(frame);
    }, WIRE_MS);
  }
}

function pair(a: Parameters<Net['add']>[1] = {}, b: Parameters<Net['add']>[1] = {}) {
  const net = new Net();
  const pa = net.add('a', a);
  const pb = net.add('b', b);
  net.link('a', 'b');
  pa.setEnabled(true);
  pb.setEnabled(true);
  return { net, a: pa, b: pb };
}

const bothUp = (x: LacpPort, y: LacpPort) => () => x.collectingDistributing && y.collectingDistributing;

// --- negotiation ------------------------------------------------------------

for (const rate of ['fast', 'slow'] as const) {
  test(`two active ${rate} ports negotiate to collecting/distributing after Aggregate_Wait_Time`, (t) => {
    const { net, a, b } = pair({ rate }, { rate });
    const took = net.until(bothUp(a, b), 10_000);
    // Selected on the first PDU (t = 1 ms), WAITING for 2 s, ATTACHED, then one
    // more exchange of PDUs to see each other in sync. Both rates alike: the
    // state changes go out at once (NTT), not at the periodic rate.
    t.true(took >= AGGREGATE_WAIT_MS, `took ${took} ms`);
    t.true(took <= AGGREGATE_WAIT_MS + TICK_MS + 10, `took ${took} ms`);
    const timeout = rate === 'fast' ? LACP_STATE_TIMEOUT : 0;
    const up =
      LACP_STATE_ACTIVITY | timeout | LACP_STATE_AGGREGATION | LACP_STATE_SYNCHRONIZATION | LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING;
    net.clock.advance(50);
    t.is(a.actorState, up);
    t.is(b.actorState, up);
    t.true(a.inSync && b.inSync);
    t.is(a.receiveState, 'current');
    // Each side's partner is the other's actor, state bits included.
    t.deepEqual(a.partner, b.actorInfo);
    t.deepEqual(b.partner, a.actorInfo);
    t.is(a.counters.rxErrors, 0);
  });
}

test('not collecting before the wait: the mux goes DETACHED, WAITING, ATTACHED, COLLECTING_DISTRIBUTING', (t) => {
  const { net, a, b } = pair();
  const seen: string[] = [a.muxMachineState];
  for (let i = 0; i < 3000; i++) {
    net.clock.advance(1);
    if (seen[seen.length - 1] !== a.muxMachineState) seen.push(a.muxMachineState);
  }
  t.deepEqual(seen, ['detached', 'waiting', 'attached', 'collecting-distributing']);
  t.true(b.collectingDistributing);
});

test('periodic transmission: every 1 s for a fast partner, every 30 s for a slow one', (t) => {
  for (const rate of ['fast', 'slow'] as const) {
    const { net, a, b } = pair({ rate }, { rate });
    net.until(bothUp(a, b), 10_000);
    net.clock.advance(5_000);
    const from = net.clock.nowMs();
    net.clock.advance(300_000);
    const expected = rate === 'fast' ? 300 : 10;
    for (const name of ['a', 'b']) {
      const n = net.txCount(name, from);
      t.true(Math.abs(n - expected) <= 1, `${rate}: ${name} sent ${n} in 300 s, expected ~${expected}`);
    }
    t.true(a.collectingDistributing && b.collectingDistributing, `${rate}: still up`);
  }
});

test("the periodic rate follows the partner's timeout bit, not our own", (t) => {
  // a asks for fast (its Timeout bit), so b sends every second; b asks for slow, so a sends every 30 s.
  const { net, a, b } = pair({ rate: 'fast' }, { rate: 'slow' });
  net.until(bothUp(a, b), 10_000);
  net.clock.advance(5_000);
  const from = net.clock.nowMs();
  net.clock.advance(120_000);
  t.true(Math.abs(net.txCount('b', from) - 120) <= 1, `b sent ${net.txCount('b', from)}`);
  t.true(Math.abs(net.txCount('a', from) - 4) <= 1, `a sent ${net.txCount('a', from)}`);
  t.true(a.collectingDistributing && b.collectingDistributing);
});

test('never more than 3 LACPDUs in any second', (t) => {
  const { net, a, b } = pair();
  net.until(bothUp(a, b), 10_000);
  net.clock.advance(10_000);
  for (const name of ['a', 'b']) {
    const times = net.txLog.filter((e) => e.from === name).map((e) => e.atMs);
    for (let i = 3; i < times.length; i++) t.true(times[i]! - times[i - 3]! >= 1000, `${name}: 4 PDUs within ${times[i]! - times[i - 3]!} ms`);
  }
});

// --- activity ---------------------------------------------------------------

test('passive-passive never comes up and never transmits', (t) => {
  const { net, a, b } = pair({ mode: 'passive' }, { mode: 'passive' });
  net.clock.advance(300_000);
  t.is(a.counters.tx + b.counters.tx, 0);
  t.false(a.collectingDistributing || b.collectingDistributing);
  t.is(a.partner, undefined);
  t.is(a.receiveState, 'defaulted');
});

test('active-passive comes up; the passive side answers the active one', (t) => {
  const { net, a, b } = pair({ mode: 'active' }, { mode: 'passive' });
  const took = net.until(bothUp(a, b), 10_000);
  t.true(took <= AGGREGATE_WAIT_MS + TICK_MS + 10, `took ${took} ms`);
  t.true(b.counters.tx > 0);
  t.is(b.actorState & LACP_STATE_ACTIVITY, 0);
  t.is(a.partner!.state & LACP_STATE_ACTIVITY, 0);
});

test('a passive port waits for an active partner that comes later', (t) => {
  const net = new Net();
  const a = net.add('a', { mode: 'passive' });
  const b = net.add('b', { mode: 'active' });
  net.link('a', 'b');
  a.setEnabled(true);
  net.clock.advance(60_000);
  t.is(a.counters.tx, 0);
  b.setEnabled(true);
  t.true(net.until(bothUp(a, b), 10_000) <= AGGREGATE_WAIT_MS + TICK_MS + 10);
});

// --- timeouts and partner changes --------------------------------------------

for (const [rate, timeoutMs] of [
  ['fast', 3_000],
  ['slow', 90_000],
] as const) {
  test(`a ${rate} partner that falls silent is out after ${timeoutMs / 1000} s, defaulted 3 s later`, (t) => {
    const { net, a, b } = pair({ rate }, { rate });
    net.until(bothUp(a, b), 10_000);
    net.clock.advance(65_000);
    net.mute('b');
    const lastRx = net.lastRx.get('a')!;
    net.clock.advance(lastRx + timeoutMs - 100 - net.clock.nowMs());
    t.true(a.collectingDistributing, 'still up just before the timeout');
    net.clock.advance(100 + TICK_MS);
    t.false(a.collectingDistributing, 'out after the timeout');
    t.is(a.receiveState, 'expired');
    t.is(a.actorState & LACP_STATE_EXPIRED, LACP_STATE_EXPIRED);
    t.false(a.inSync);
    t.truthy(a.partner, 'an expired partner is still known');
    // EXPIRED asks for fast PDUs (Short_Timeout_Time), then gives up.
    net.clock.advance(3_000);
    t.is(a.receiveState, 'defaulted');
    t.is(a.partner, undefined);
    t.is(a.actorState & (LACP_STATE_DEFAULTED | LACP_STATE_EXPIRED | LACP_STATE_SYNCHRONIZATION), LACP_STATE_DEFAULTED);
    t.false(b.collectingDistributing, 'b hears a leave the LAG');
  });
}

test('a silent partner that speaks again is taken back', (t) => {
  const net = new Net();
  const a = net.add('a');
  const b = net.add('b');
  net.link('a', 'b');
  a.setEnabled(true);
  b.setEnabled(true);
  net.until(bothUp(a, b), 10_000);
  net.unlink('a');
  net.clock.advance(10_000);
  t.false(a.collectingDistributing || b.collectingDistributing);
  t.is(a.receiveState, 'defaulted');
  // DEFAULTED assumes the administrative partner (long timeout), so an active
  // port probes every 30 s (Slow_Periodic_Time); the first PDU either way
  // brings both sides back within one more Aggregate_Wait_Time.
  net.link('a', 'b');
  const took = net.until(bothUp(a, b), 60_000);
  t.true(took <= SLOW_PERIODIC_MS + AGGREGATE_WAIT_MS + 2 * TICK_MS, `took ${took} ms`);
});

test('partner change: the port leaves the LAG at once and rejoins with the new partner', (t) => {
  const net = new Net();
  const a = net.add('a', { mac: '02:00:00:00:00:0a' });
  const b = net.add('b', { mac: '02:00:00:00:00:0b' });
  const c = net.add('c', { mac: '02:00:00:00:00:0c', portNumber: 9 });
  net.link('a', 'b');
  for (const p of [a, b, c]) p.setEnabled(true);
  net.until(bothUp(a, b), 10_000);
  t.is(a.partner!.systemMac, '02:00:00:00:00:0b');

  // The cable moves from b to c: the first PDU from c names another partner.
  net.unlink('a');
  net.link('a', 'c');
  net.until(() => a.partner?.systemMac === '02:00:00:00:00:0c', 2_000);
  t.false(a.collectingDistributing, 'detached on the partner change');
  t.is(a.actorState & LACP_STATE_SYNCHRONIZATION, 0);
  const took = net.until(bothUp(a, c), 10_000);
  t.true(took >= AGGREGATE_WAIT_MS - 10 && took <= AGGREGATE_WAIT_MS + TICK_MS + 10, `took ${took} ms`);
  t.is(a.partner!.portNumber, 9);
});

test("a partner that does not see us as we are is not in sync, so we don't distribute", (t) => {
  // c records a's PDUs, then answers with a partner field that names another key.
  const net = new Net();
  const a = net.add('a');
  a.setEnabled(true);
  a.setSelected(true);
  const sent: Buffer[] = [];
  const impostor = new LacpPort({
    actor: { systemPriority: 1, systemMac: '02:00:00:00:00:99', key: 5, portPriority: 1, portNumber: 1 },
    mode: 'active',
    rate: 'fast',
    clock: net.clock,
    send: (f) => sent.push(f),
  });
  impostor.setEnabled(true);
  impostor.setSelected(true);
  net.clock.setInterval(() => impostor.tick(), TICK_MS);
  net.clock.advance(3_000);
  // Rewrite the partner key of the impostor's PDU: the PDU is in sync but about someone else.
  const pdu = Buffer.from(sent[sent.length - 1]!);
  pdu.writeUInt16BE(1234, 36 + 10);
  t.is(decodeLacpdu(pdu).partner.key, 1234);
  t.is(decodeLacpdu(pdu).actor.state & LACP_STATE_SYNCHRONIZATION, LACP_STATE_SYNCHRONIZATION);
  for (let i = 0; i < 50; i++) {
    a.receive(pdu);
    net.clock.advance(100);
  }
  t.is(a.partner!.systemMac, '02:00:00:00:00:99');
  t.is(a.partner!.state & LACP_STATE_SYNCHRONIZATION, 0);
  t.false(a.collectingDistributing);
});

// --- port state and errors ---------------------------------------------------

test('disabling the port (carrier down) defaults the partner and detaches; enabling renegotiates', (t) => {
  const { net, a, b } = pair();
  net.until(bothUp(a, b), 10_000);
  a.setEnabled(false);
  t.false(a.collectingDistributing);
  t.is(a.partner, undefined);
  t.is(a.receiveState, 'port-disabled');
  t.is(a.muxMachineState, 'detached');
  t.is(a.actorState & LACP_STATE_SYNCHRONIZATION, 0);
  const tx = a.counters.tx;
  net.clock.advance(60_000);
  t.is(a.counters.tx, tx, 'a disabled port sends nothing');
  t.false(b.collectingDistributing, 'b timed a out');
  a.setEnabled(true);
  t.true(net.until(bothUp(a, b), 10_000) <= AGGREGATE_WAIT_MS + TICK_MS + 10);
});

test('malformed frames are counted as rx errors and change nothing', (t) => {
  const { net, a, b } = pair();
  net.until(bothUp(a, b), 10_000);
  const before = a.actorState;
  a.receive(new Uint8Array(30));
  a.receive(Buffer.alloc(124));
  t.is(a.counters.rxErrors, 2);
  t.is(a.actorState, before);
  t.true(a.collectingDistributing);
  t.true(a.counters.rx >= 2);
});

test('a port number out of range is refused', (t) => {
  const clock = new VirtualClock();
  t.throws(
    () =>
      new LacpPort({
        actor: { systemPriority: 1, systemMac: '02:00:00:00:00:01', key: 1, portPriority: 1, portNumber: 0 },
        mode: 'active',
        rate: 'fast',
        clock,
        send: () => {},
      }),
    { message: /port number 0/ },
  );
});

test('onChange fires on state changes only, not on every PDU', (t) => {
  const { net, a, b } = pair();
  net.until(bothUp(a, b), 10_000);
  net.clock.advance(1_000);
  const changes = net.changes.get('a')!;
  const rx = a.counters.rx;
  net.clock.advance(20_000);
  t.true(a.counters.rx - rx >= 19, 'PDUs kept coming');
  t.is(net.changes.get('a'), changes, 'but nothing changed');
  net.mute('b');
  net.clock.advance(4_000);
  t.true(net.changes.get('a')! > changes, 'expiry is a change');
});

// --- Marker responder (802.1AX 6.5.4.2) ---------------------------------------

/** A Marker PDU as a partner's Marker Generator sends it: TLV type 1 (Information) or 2 (Response). */
function markerPdu(tlvType: number, tlvLength = 16): Buffer {
  const f = Buffer.alloc(124);
  Buffer.from([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]).copy(f, 0);
  f.writeUInt16BE(0x8809, 12);
  f[14] = 2;  // Marker subtype
  f[15] = 1;  // version
  f[16] = tlvType;
  f[17] = tlvLength;
  f.writeUInt16BE(7, 18);  // Requester_Port
  Buffer.from([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]).copy(f, 20);  // Requester_System
  f.writeUInt32BE(0xdeadbeef, 26);  // Requester_Transaction_ID
  return f;
}

test('a Marker PDU is answered at once with a Marker Response echoing the requester, from the leg MAC', (t) => {
  const sent: Buffer[] = [];
  const clock = new VirtualClock();
  const port = new LacpPort({
    actor: { systemPriority: 0x8000, systemMac: '02:00:00:00:00:01', key: 1, portPriority: 255, portNumber: 1 },
    mode: 'passive',  // passive and partnerless: it sends no LACPDUs of its own
    rate: 'slow',
    clock,
    send: (f) => sent.push(f),
    srcMac: '02:00:00:00:00:99',
  });
  port.setEnabled(true);
  const lacpduCount = sent.length;
  const state = port.actorState;

  port.receive(markerPdu(1));
  t.is(sent.length, lacpduCount + 1, 'one frame sent');
  const reply = sent[sent.length - 1]!;
  t.is(reply.length, 124);
  t.is(bytesToMac(reply, 0), '01:80:c2:00:00:02', 'to the slow-protocols address');
  t.is(bytesToMac(reply, 6), '02:00:00:00:00:99', 'from the leg');
  t.is(reply.readUInt16BE(12), 0x8809);
  t.deepEqual([reply[14], reply[15], reply[16], reply[17]], [2, 1, 2, 16], 'Marker subtype, version 1, Marker Response TLV of 16 bytes');
  t.deepEqual(reply.subarray(18, 32), markerPdu(1).subarray(18, 32), 'requester port, system and transaction id echoed');
  t.deepEqual([reply[32], reply[33]], [0, 0], 'terminator');
  t.like(port.counters, { markers: 1, rx: 0, rxErrors: 0 });
  t.is(port.actorState, state, 'LACP state untouched');

  // A Marker Response is for the requester (we never are one): ignored.
  port.receive(markerPdu(2));
  // A Marker PDU with a bad TLV: an error, no answer.
  port.receive(markerPdu(1, 20));
  t.is(sent.length, lacpduCount + 1, 'neither is answered');
  t.like(port.counters, { markers: 1, rxErrors: 1 });
});
