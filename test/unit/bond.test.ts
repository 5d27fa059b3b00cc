// Bond policy in virtual time: active-backup, balance-tcp buckets, the flow
// hash reference, and LACP bonds wired leg to leg.

import test from 'ava';

import { BOND_BUCKETS, BondPolicy, rebalance, type BondLacpOptions, type BondPolicyOptions } from '../../src/switch/bond/policy.js';
import { bucketOf, flowHashInput, fnv1a32, hashFlow, type BondHash } from '../../src/switch/bond/flow-hash.js';
import {
  AGGREGATE_WAIT_MS,
  LACP_STATE_ACTIVITY,
  LACP_STATE_COLLECTING,
  LACP_STATE_DISTRIBUTING,
  LACP_STATE_SYNCHRONIZATION,
  encodeLacpdu,
} from '../../src/switch/bond/lacp.js';
import { VirtualClock } from '../helpers/virtual-clock.js';

const TICK_MS = 100;
const WIRE_MS = 1;

// ---------------------------------------------------------------------------
// Harness: bonds on one virtual clock, ticking every 100 ms, with legs
// plugged into each other ("A/a0" <-> "B/b0").

type BondOpts = Partial<Omit<BondPolicyOptions, 'lacp' | 'clock' | 'send' | 'onChange'>> & {
  lacp?: Partial<BondLacpOptions>;
};

class BondNet {
  readonly clock = new VirtualClock();
  readonly bonds = new Map<string, BondPolicy>();
  /** onChange calls per bond. */
  readonly changes = new Map<string, number>();
  private readonly peer = new Map<string, string>();
  private readonly muted = new Set<string>();

  constructor() {
    this.clock.setInterval(() => {
      for (const b of this.bonds.values()) b.tick();
    }, TICK_MS);
  }

  add(name: string, opts: BondOpts = {}): BondPolicy {
    const mode = opts.mode ?? 'lacp';
    const members = opts.members ?? [`${name.toLowerCase()}0`, `${name.toLowerCase()}1`];
    const lacp: BondLacpOptions | undefined =
      mode === 'lacp'
        ? {
            mode: 'active',
            rate: 'fast',
            system_priority: 65535,
            fallback: 'none',
            systemMac: `02:00:00:00:${(this.bonds.size + 1).toString(16).padStart(2, '0')}:00`,
            key: 1,
            ...opts.lacp,
          }
        : undefined;
    const bond = new BondPolicy({
      name,
      mode,
      members,
      updelayMs: 0,
      downdelayMs: 0,
      ...opts,
      lacp,
      clock: this.clock,
      send: (leg, frame) => this.deliver(`${name}/${leg}`, frame),
      onChange: () => this.changes.set(name, (this.changes.get(name) ?? 0) + 1),
    });
    this.bonds.set(name, bond);
    return bond;
  }

  /** Connect two legs and bring their carrier up. */
  plug(a: string, b: string): void {
    this.peer.set(a, b);
    this.peer.set(b, a);
    this.carrier(a, true);
    this.carrier(b, true);
  }

  /** Disconnect a leg from its peer; both lose carrier. */
  unplug(a: string): void {
    const b = this.peer.get(a);
    this.peer.delete(a);
    this.carrier(a, false);
    if (b !== undefined) {
      this.peer.delete(b);
      this.carrier(b, false);
    }
  }

  carrier(endpoint: string, up: boolean): void {
    const [bond, leg] = endpoint.split('/') as [string, string];
    this.bonds.get(bond)!.setCarrier(leg, up);
  }

  /** Everything a bond sends from now on is lost. */
  mute(bond: string): void {
    this.muted.add(bond);
  }

  until(pred: () => boolean, maxMs: number): number {
    return this.clock.until(pred, maxMs);
  }

  private deliver(from: string, frame: Buffer): void {
    const to = this.peer.get(from);
    if (to === undefined || this.muted.has(from.split('/')[0]!)) return;
    this.clock.setTimeout(() => {
      if (this.peer.get(from) !== to) return;
      const [bond, leg] = to.split('/') as [string, string];
      this.bonds.get(bond)!.receiveLacpdu(leg, frame);
    }, WIRE_MS);
  }
}

function usableLegs(bond: BondPolicy): string[] {
  return bond.members.filter((m) => bond.isUsable(m));
}

function countBuckets(buckets: Int16Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const b of buckets) counts.set(b, (counts.get(b) ?? 0) + 1);
  return counts;
}

// ---------------------------------------------------------------------------
// Frames.

function ipv4(a: string): number[] {
  return a.split('.').map(Number);
}

/** An untagged IPv4 TCP or UDP frame. */
function flowFrame(src: string, dst: string, sport: number, dport: number, proto = 6): Uint8Array {
  const l4 = proto === 6 ? new Array(20).fill(0) : new Array(8).fill(0);
  l4[0] = sport >> 8;
  l4[1] = sport & 0xff;
  l4[2] = dport >> 8;
  l4[3] = dport & 0xff;
  const ip = [0x45, 0, 0, 20 + l4.length, 0, 1, 0, 0, 64, proto, 0, 0, ...ipv4(src), ...ipv4(dst)];
  return Uint8Array.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, ...ip, ...l4]);
}

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, 'hex'));
}

// ---------------------------------------------------------------------------
// The flow hash.

test('fnv1a32 is FNV-1a 32-bit', (t) => {
  const text = (s: string) => Uint8Array.from(Buffer.from(s));
  t.is(fnv1a32(text('')), 0x811c9dc5);
  t.is(fnv1a32(text('a')), 0xe40c292c);
  t.is(fnv1a32(text('foobar')), 0xbf9cf968);
  t.is(bucketOf(0x12345678), 0x12 ^ 0x34 ^ 0x56 ^ 0x78);
});

// Computed by an independent implementation of the definition in bond.ts
// (Python); the C++ hot loop must give the same input bytes and buckets.
const VECTORS: { name: string; hash: BondHash; frame: string; input: string; fnv: number; bucket: number }[] = [
  { name: 'IPv4 TCP 10.0.0.1:12345 -> 10.0.0.2:80', hash: 'l3l4', frame: '02000000000202000000000108004500002800010000400600000a0000010a0000023039005000000000000000005002ffff00000000', input: '0a0000010a00000230390050', fnv: 0x5eef79f3, bucket: 59 },
  { name: 'the same in an 802.1Q tag (VLAN 10)', hash: 'l3l4', frame: '0200000000020200000000018100000a08004500002800010000400600000a0000010a0000023039005000000000000000005002ffff00000000', input: '0a0000010a00000230390050', fnv: 0x5eef79f3, bucket: 59 },
  { name: 'IPv4 TCP reverse direction 10.0.0.2:80 -> 10.0.0.1:12345', hash: 'l3l4', frame: '02000000000202000000000108004500002800010000400600000a0000020a0000010050303900000000000000005002ffff00000000', input: '0a0000020a00000100503039', fnv: 0x08b0bdc7, bucket: 194 },
  { name: 'IPv4 UDP 192.168.1.10:5000 -> 192.168.1.20:53', hash: 'l3l4', frame: '0200000000020200000000010800450000240001000040110000c0a8010ac0a8011413880035001000000000000000000000', input: 'c0a8010ac0a8011413880035', fnv: 0xfd445e3b, bucket: 220 },
  { name: 'IPv4 UDP first fragment (MF): addresses only', hash: 'l3l4', frame: '0200000000020200000000010800450000240001200040110000c0a8010ac0a8011413880035001000000000000000000000', input: 'c0a8010ac0a80114', fnv: 0x74d536df, bucket: 72 },
  { name: 'IPv4 TCP with 4 bytes of options (IHL 6)', hash: 'l3l4', frame: '02000000000202000000000108004600002c00010000400600000a0102030a040506010101009c4001bb00000000000000005002ffff00000000', input: '0a0102030a0405069c4001bb', fnv: 0xa9c5dcaa, bucket: 26 },
  { name: 'IPv4 ICMP: addresses only', hash: 'l3l4', frame: '02000000000202000000000108004500001c00010000400100000a0000010a0000020800000000010001', input: '0a0000010a000002', fnv: 0x17fe6360, bucket: 234 },
  { name: 'IPv6 TCP [2001:db8::1]:443 -> [2001:db8::2]:50000', hash: 'l3l4', frame: '02000000000202000000000186dd600000000014064020010db800000000000000000000000120010db800000000000000000000000201bbc35000000000000000005002ffff00000000', input: '20010db800000000000000000000000120010db800000000000000000000000201bbc350', fnv: 0xb095240f, bucket: 14 },
  { name: 'IPv6 UDP in an 802.1Q tag (VLAN 20)', hash: 'l3l4', frame: '0200000000020200000000018100001486dd6000000000101140fe800000000000000000000000000001ff0200000000000000000000000000fb14e914e9001000000000000000000000', input: 'fe800000000000000000000000000001ff0200000000000000000000000000fb14e914e9', fnv: 0x7f863dc4, bucket: 0 },
  { name: 'IPv6 hop-by-hop header first: addresses only', hash: 'l3l4', frame: '02000000000202000000000186dd60000000001c004020010db800000000000000000000000120010db8000000000000000000000002060000000000000001bbc35000000000000000005002ffff00000000', input: '20010db800000000000000000000000120010db8000000000000000000000002', fnv: 0xe0af4c2c, bucket: 47 },
  { name: 'ARP: L2', hash: 'l3l4', frame: '020000000002020000000001080600010800060400010200000000010a0000010000000000000a000002', input: '0200000000020200000000010806', fnv: 0x727930de, bucket: 229 },
  { name: 'IPv4 truncated to 10 bytes of header: L2', hash: 'l3l4', frame: '020000000002020000000001080045000028000100004006', input: '0200000000020200000000010800', fnv: 0x74793404, bucket: 61 },
  { name: 'runt of 10 bytes: empty input', hash: 'l3l4', frame: '02000000000202000000', input: '', fnv: 0x811c9dc5, bucket: 197 },
  { name: 'hash l2 on the IPv4 TCP frame', hash: 'l2', frame: '02000000000202000000000108004500002800010000400600000a0000010a0000023039005000000000000000005002ffff00000000', input: '0200000000020200000000010800', fnv: 0x74793404, bucket: 61 },
  { name: 'hash l2 on the tagged frame: inner ethertype', hash: 'l2', frame: '0200000000020200000000018100000a08004500002800010000400600000a0000010a0000023039005000000000000000005002ffff00000000', input: '0200000000020200000000010800', fnv: 0x74793404, bucket: 61 },
];

test('flow hash test vectors', (t) => {
  for (const v of VECTORS) {
    const frame = hex(v.frame);
    t.is(Buffer.from(flowHashInput(frame, v.hash)).toString('hex'), v.input, `${v.name}: input bytes`);
    t.is(fnv1a32(flowHashInput(frame, v.hash)), v.fnv, `${v.name}: fnv`);
    t.is(hashFlow(frame, v.hash), v.bucket, `${v.name}: bucket`);
  }
});

test('flow hash: one VLAN tag is skipped, ports of fragments are ignored, l2 ignores IP', (t) => {
  const f = flowFrame('10.0.0.1', '10.0.0.2', 1000, 2000);
  const tagged = Uint8Array.from([...f.subarray(0, 12), 0x81, 0x00, 0x00, 0x64, ...f.subarray(12)]);
  t.is(hashFlow(tagged), hashFlow(f));

  // A non-first fragment: the "ports" are payload bytes and must not count.
  const frag1 = flowFrame('10.0.0.1', '10.0.0.2', 1000, 2000, 17);
  const frag2 = flowFrame('10.0.0.1', '10.0.0.2', 3000, 4000, 17);
  for (const fr of [frag1, frag2]) fr[14 + 6] = 0x00, fr[14 + 7] = 0xb9; // offset 185 * 8
  t.deepEqual(flowHashInput(frag1), flowHashInput(frag2));
  t.is(flowHashInput(frag1).length, 8);

  // l2: every flow between the same two MACs is one flow.
  t.is(hashFlow(flowFrame('10.0.0.1', '10.0.0.2', 1, 2), 'l2'), hashFlow(flowFrame('10.9.9.9', '10.8.8.8', 3, 4), 'l2'));
  t.is(flowHashInput(f, 'l2').length, 14);
  // A BondPolicy uses its configured hash.
  const clock = new VirtualClock();
  const mk = (hash: BondHash) =>
    new BondPolicy({ name: 'b', mode: 'balance-tcp', members: ['x', 'y'], updelayMs: 0, downdelayMs: 0, hash, clock, send: () => {}, onChange: () => {} });
  t.is(mk('l2').hashFlow(f), hashFlow(f, 'l2'));
  t.is(mk('l3l4').hashFlow(f), hashFlow(f, 'l3l4'));
});

// ---------------------------------------------------------------------------
// active-backup.

function activeBackup(opts: BondOpts = {}) {
  const net = new BondNet();
  const bond = net.add('ab', { mode: 'active-backup', members: ['eth0', 'eth1'], ...opts });
  const changes = () => net.changes.get('ab') ?? 0;
  return { net, bond, changes };
}

test('active-backup: the first leg up is active; all buckets on it; only it receives', (t) => {
  const { bond, changes } = activeBackup();
  t.is(bond.activeLeg, undefined);
  t.true(bond.buckets().every((b) => b === -1));
  bond.setCarrier('eth1', true);
  bond.setCarrier('eth0', true);
  t.is(bond.activeLeg, 'eth1', 'eth1 came up first and stays');
  t.true(bond.buckets().every((b) => b === 1));
  t.true(bond.rxAllowed('eth1'));
  t.false(bond.rxAllowed('eth0'), 'frames on the backup leg are dropped');
  t.is(bond.failovers, 0, 'the first activation is not a failover');
  t.is(bond.lastFailover, undefined);
  t.true(changes() >= 1);
  t.is(bond.txLeg(flowFrame('10.0.0.1', '10.0.0.2', 1, 2)), 'eth1');
});

test('active-backup: failover on carrier loss, and no flap back when the old leg returns', (t) => {
  const { net, bond, changes } = activeBackup();
  bond.setCarrier('eth0', true);
  bond.setCarrier('eth1', true);
  t.is(bond.activeLeg, 'eth0');
  const before = changes();
  net.clock.advance(500);
  bond.setCarrier('eth0', false);
  t.is(bond.activeLeg, 'eth1');
  t.is(bond.failovers, 1);
  t.deepEqual(bond.lastFailover, { from: 'eth0', to: 'eth1', atMs: net.clock.nowMs() });
  t.true(changes() > before, 'onChange told the caller');
  t.true(bond.buckets().every((b) => b === 1));
  bond.setCarrier('eth0', true);
  t.is(bond.activeLeg, 'eth1', 'no flapping back without a primary');
  t.is(bond.failovers, 1);
  const s = bond.status();
  t.is(s.activeLeg, 'eth1');
  t.deepEqual(
    s.legs.map((l) => [l.name, l.carrier, l.usable, l.active, l.buckets]),
    [
      ['eth0', true, true, false, 0],
      ['eth1', true, true, true, 256],
    ],
  );
});

test('active-backup: the primary is preferred and taken back when it returns', (t) => {
  const { bond } = activeBackup({ primary: 'eth1' });
  bond.setCarrier('eth0', true);
  t.is(bond.activeLeg, 'eth0');
  bond.setCarrier('eth1', true);
  t.is(bond.activeLeg, 'eth1');
  t.deepEqual(bond.lastFailover?.to, 'eth1');
  bond.setCarrier('eth1', false);
  t.is(bond.activeLeg, 'eth0');
  bond.setCarrier('eth1', true);
  t.is(bond.activeLeg, 'eth1');
  t.is(bond.failovers, 3);
  t.deepEqual([bond.lastFailover?.from, bond.lastFailover?.to], ['eth0', 'eth1']);
});

test('active-backup: updelay and downdelay', (t) => {
  const { net, bond } = activeBackup({ updelayMs: 500, downdelayMs: 200 });
  bond.setCarrier('eth0', true);
  bond.setCarrier('eth1', true);
  t.is(bond.activeLeg, undefined, 'not usable before updelay');
  net.clock.advance(400);
  t.is(bond.activeLeg, undefined);
  t.false(bond.status().legs[0]!.usable);
  t.true(bond.status().legs[0]!.carrier);
  net.clock.advance(200);
  t.is(bond.activeLeg, 'eth0', 'usable once updelay has run');

  bond.setCarrier('eth0', false);
  net.clock.advance(150);
  t.is(bond.activeLeg, 'eth0', 'still active within downdelay');
  net.clock.advance(100);
  t.is(bond.activeLeg, 'eth1', 'failed over after downdelay');
  t.is(bond.failovers, 1);

  // A bounce shorter than downdelay is not seen at all.
  const changes = net.changes.get('ab');
  bond.setCarrier('eth1', false);
  net.clock.advance(100);
  bond.setCarrier('eth1', true);
  net.clock.advance(1_000);
  t.is(bond.activeLeg, 'eth1');
  t.is(bond.failovers, 1);
  t.is(net.changes.get('ab'), changes, 'no change reported');

  // Nor is a carrier blip shorter than updelay.
  bond.setCarrier('eth0', true);
  net.clock.advance(300);
  bond.setCarrier('eth0', false);
  net.clock.advance(1_000);
  t.false(bond.isUsable('eth0'));
});

test('active-backup: all legs down, then one back: the bond goes dark and recovers', (t) => {
  const { bond } = activeBackup();
  bond.setCarrier('eth0', true);
  bond.setCarrier('eth0', false);
  t.is(bond.activeLeg, undefined);
  t.true(bond.buckets().every((b) => b === -1));
  t.is(bond.txLeg(flowFrame('10.0.0.1', '10.0.0.2', 1, 2)), undefined);
  bond.setCarrier('eth1', true);
  t.is(bond.activeLeg, 'eth1');
  t.is(bond.failovers, 1);
  t.deepEqual([bond.lastFailover?.from, bond.lastFailover?.to], [undefined, 'eth1']);
});

// ---------------------------------------------------------------------------
// balance-tcp.

function balance(members: string[]) {
  const net = new BondNet();
  const bond = net.add('bt', { mode: 'balance-tcp', members });
  return { net, bond };
}

test('balance-tcp: 64 flows spread over 2 legs, neither below 25%, each flow on one leg', (t) => {
  const { bond } = balance(['eth0', 'eth1']);
  bond.setCarrier('eth0', true);
  bond.setCarrier('eth1', true);
  const perLeg = new Map<string, number>();
  for (let i = 0; i < 64; i++) {
    const frame = flowFrame('10.0.0.1', '10.0.0.2', 40000 + i, 5201);
    const leg = bond.txLeg(frame)!;
    t.truthy(leg);
    for (let k = 0; k < 5; k++) t.is(bond.txLeg(frame), leg, 'a flow stays on its leg');
    perLeg.set(leg, (perLeg.get(leg) ?? 0) + 1);
  }
  t.log(Object.fromEntries(perLeg));
  t.true((perLeg.get('eth0') ?? 0) >= 16 && (perLeg.get('eth1') ?? 0) >= 16);
  t.is(bond.activeLeg, undefined);
  t.true(bond.rxAllowed('eth0') && bond.rxAllowed('eth1'));
});

test('balance-tcp: buckets spread evenly; a leg that goes takes only its buckets; one that returns takes back its share', (t) => {
  const { bond } = balance(['eth0', 'eth1', 'eth2']);
  for (const m of ['eth0', 'eth1', 'eth2']) bond.setCarrier(m, true);
  const three = bond.buckets();
  t.is(three.length, BOND_BUCKETS);
  t.deepEqual([...countBuckets(three).entries()].sort(), [[0, 86], [1, 85], [2, 85]]);

  bond.setCarrier('eth1', false);
  const two = bond.buckets();
  for (let b = 0; b < BOND_BUCKETS; b++) {
    if (three[b] !== 1) t.is(two[b], three[b], `bucket ${b} moved though its leg stayed`);
    else t.not(two[b], 1);
  }
  t.deepEqual([...countBuckets(two).entries()].sort(), [[0, 128], [2, 128]]);
  t.false(bond.rxAllowed('eth1'));

  bond.setCarrier('eth1', true);
  const back = bond.buckets();
  let moved = 0;
  for (let b = 0; b < BOND_BUCKETS; b++) {
    if (back[b] !== two[b]) {
      moved++;
      t.is(back[b], 1, 'buckets only move to the returning leg');
    }
  }
  t.is(moved, 85, 'exactly its share moved');
  const counts = [...countBuckets(back).values()].sort();
  t.deepEqual(counts, [85, 85, 86]);

  for (const m of ['eth0', 'eth1', 'eth2']) bond.setCarrier(m, false);
  t.true(bond.buckets().every((b) => b === -1));
});

test('rebalance keeps its promises over random changes', (t) => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const map = new Int16Array(BOND_BUCKETS).fill(-1);
  let up = new Set<number>();
  for (let step = 0; step < 500; step++) {
    const leg = rand(6);
    const before = map.slice();
    const wasUp = new Set(up);
    if (up.has(leg)) up.delete(leg);
    else up.add(leg);
    up = new Set([...up].sort());
    rebalance(map, [...up]);
    const counts = countBuckets(map);
    if (up.size === 0) {
      t.true(map.every((b) => b === -1));
      continue;
    }
    const values = [...up].map((l) => counts.get(l) ?? 0);
    if (Math.max(...values) - Math.min(...values) > 1) t.fail(`step ${step}: uneven ${values}`);
    if (counts.has(-1)) t.fail(`step ${step}: unassigned buckets`);
    if (wasUp.has(leg) && wasUp.size > 1 && wasUp.size <= 16) {
      // A leg went: nothing else moved.
      for (let b = 0; b < BOND_BUCKETS; b++) if (before[b] !== leg && before[b] !== map[b]) t.fail(`step ${step}: bucket ${b} moved`);
    } else if (!wasUp.has(leg) && wasUp.size > 0) {
      // A leg came: only moves onto it, exactly its share.
      let moved = 0;
      for (let b = 0; b < BOND_BUCKETS; b++) {
        if (before[b] !== map[b]) {
          moved++;
          if (map[b] !== leg) t.fail(`step ${step}: bucket ${b} moved to ${map[b]}, not the new leg ${leg}`);
        }
      }
      if (moved !== counts.get(leg)) t.fail(`step ${step}: moved ${moved}, new leg holds ${counts.get(leg)}`);
    }
  }
  t.pass();
});

// ---------------------------------------------------------------------------
// LACP bonds.

function lacpPair(a: BondOpts = {}, b: BondOpts = {}) {
  const net = new BondNet();
  const A = net.add('A', a);
  const B = net.add('B', b);
  net.plug('A/a0', 'B/b0');
  net.plug('A/a1', 'B/b1');
  return { net, A, B };
}

const allUsable = (...bonds: BondPolicy[]) => () => bonds.every((b) => b.members.every((m) => b.isUsable(m)));

test('lacp: two bonds negotiate; both legs collecting/distributing and carrying buckets', (t) => {
  const { net, A, B } = lacpPair();
  t.deepEqual(usableLegs(A), [], 'nothing before LACP agrees');
  t.true(A.buckets().every((b) => b === -1));
  const took = net.until(allUsable(A, B), 10_000);
  t.true(took >= AGGREGATE_WAIT_MS && took <= AGGREGATE_WAIT_MS + TICK_MS + 10, `took ${took} ms`);
  t.deepEqual([...countBuckets(A.buckets()).entries()].sort(), [[0, 128], [1, 128]]);
  t.is(A.activeLeg, undefined);
  t.false(A.fallback);

  net.clock.advance(50); // the partner's last PDU (with its collecting bits) on the wire
  const s = A.status();
  t.is(s.mode, 'lacp');
  for (const leg of s.legs) {
    const l = leg.lacp!;
    t.truthy(l);
    t.true(l.collectingDistributing && l.inSync && l.selected);
    const cd = LACP_STATE_SYNCHRONIZATION | LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING;
    t.is(l.actorState & cd, cd);
    t.is(l.partnerState & cd, cd);
    t.is(l.partnerSystem, '02:00:00:00:02:00');
    t.is(l.partnerSystemPriority, 65535);
    t.is(l.partnerKey, 1);
    t.true(l.tx > 0 && l.rx > 0);
    t.is(l.rxErrors, 0);
    t.regex(l.actorStateText, /synchronized collecting distributing/);
  }
  t.deepEqual(
    s.legs.map((l) => l.lacp!.partnerPort),
    [1, 2],
  );
});

test('lacp: a leg that loses carrier leaves; only its buckets move', (t) => {
  const { net, A, B } = lacpPair();
  net.until(allUsable(A, B), 10_000);
  const before = A.buckets();
  net.unplug('A/a1');
  t.deepEqual(usableLegs(A), ['a0']);
  t.deepEqual(usableLegs(B), ['b0']);
  const after = A.buckets();
  for (let b = 0; b < BOND_BUCKETS; b++) t.is(after[b], 0, `bucket ${b}`);
  t.is(before.filter((x) => x === 0).length, 128);
  net.plug('A/a1', 'B/b1');
  net.until(allUsable(A, B), 10_000);
  t.deepEqual([...countBuckets(A.buckets()).entries()].sort(), [[0, 128], [1, 128]]);
});

test('lacp: a partner that falls silent takes the legs out after 3 s (fast), 90 s (slow)', (t) => {
  for (const [rate, timeoutMs] of [
    ['fast', 3_000],
    ['slow', 90_000],
  ] as const) {
    const { net, A, B } = lacpPair({ lacp: { rate } }, { lacp: { rate } });
    net.until(allUsable(A, B), 10_000);
    net.clock.advance(100_000);
    net.mute('B');
    // B sent last at most one period ago; A times out 3 periods after that.
    const period = timeoutMs / 3;
    net.clock.advance(timeoutMs - period - 2 * TICK_MS);
    t.deepEqual(usableLegs(A), ['a0', 'a1'], `${rate}: still up`);
    const took = net.until(() => usableLegs(A).length === 0, period + 3 * TICK_MS + 10);
    t.true(took > 0);
    t.true(A.buckets().every((b) => b === -1), `${rate}: no fallback, nothing usable`);
    t.is(A.status().legs[0]!.lacp!.partnerSystem, '02:00:00:00:02:00', 'expired, partner still known');
    net.clock.advance(3_000 + TICK_MS);
    t.is(A.status().legs[0]!.lacp!.partnerSystem, undefined, 'defaulted');
  }
});

test('lacp: mismatched keys: a leg whose partner key differs is not aggregated', (t) => {
  const net = new BondNet();
  const A = net.add('A', { members: ['a0', 'a1'] });
  // One partner system with two single-leg bonds of different keys.
  const B1 = net.add('B1', { members: ['b0'], lacp: { systemMac: '02:00:00:00:0b:00', key: 1 } });
  const B2 = net.add('B2', { members: ['b1'], lacp: { systemMac: '02:00:00:00:0b:00', key: 2, firstPortNumber: 2 } });
  net.plug('A/a0', 'B1/b0');
  net.plug('A/a1', 'B2/b1');
  net.clock.advance(10_000);
  t.deepEqual(usableLegs(A), ['a0']);
  const [l0, l1] = A.status().legs.map((l) => l.lacp!);
  t.is(l0!.partnerKey, 1);
  t.is(l1!.partnerKey, 2);
  t.true(l0!.selected);
  t.false(l1!.selected);
  t.false(l1!.collectingDistributing);
  t.is(l1!.actorState & LACP_STATE_SYNCHRONIZATION, 0);
  t.true(A.buckets().every((b) => b === 0));
  t.deepEqual(usableLegs(B1), ['b0'], 'B1 sees a0 in sync');
  t.deepEqual(usableLegs(B2), [], 'B2 sees a1 out of sync');
});

test('lacp: a leg whose partner changes leaves the LAG; the other leg stays', (t) => {
  const { net, A, B } = lacpPair();
  const C = net.add('C', { members: ['c0'] });
  net.until(allUsable(A, B), 10_000);
  const changes = net.changes.get('A')!;
  // a1's cable moves from B to another system C, without a carrier drop.
  net.unplug('A/a1');
  net.plug('A/a1', 'C/c0');
  net.clock.advance(10_000);
  t.deepEqual(usableLegs(A), ['a0'], 'a tie keeps the current partner');
  t.true(net.changes.get('A')! > changes);
  const a1 = A.status().legs[1]!.lacp!;
  t.is(a1.partnerSystem, '02:00:00:00:03:00');
  t.false(a1.selected);
  t.deepEqual(usableLegs(C), []);
  t.true(A.buckets().every((b) => b === 0));
});

test('lacp: the partner behind most legs wins', (t) => {
  const net = new BondNet();
  const A = net.add('A', { members: ['a0', 'a1', 'a2'] });
  const B = net.add('B', { members: ['b0', 'b1'] });
  const C = net.add('C', { members: ['c0'] });
  net.plug('A/a0', 'C/c0');
  net.plug('A/a1', 'B/b0');
  net.plug('A/a2', 'B/b1');
  net.clock.advance(10_000);
  t.deepEqual(usableLegs(A), ['a1', 'a2']);
  t.deepEqual(usableLegs(B), ['b0', 'b1']);
  t.deepEqual(usableLegs(C), []);
});

test('lacp: partner ports that say they are Individual are not aggregated together', (t) => {
  const net = new BondNet();
  const A = net.add('A');
  net.carrier('A/a0', true);
  net.carrier('A/a1', true);
  // A hand-made partner: same system and key on both legs, Aggregation bit clear.
  const pdu = (leg: number) =>
    encodeLacpdu(
      {
        actor: { systemPriority: 1, systemMac: '02:00:00:00:0e:00', key: 7, portPriority: 1, portNumber: leg + 1, state: LACP_STATE_ACTIVITY },
        partner: { systemPriority: 0, systemMac: '00:00:00:00:00:00', key: 0, portPriority: 0, portNumber: 0, state: 0 },
        collectorMaxDelay: 0,
      },
      '02:00:00:00:0e:01',
    );
  for (let i = 0; i < 50; i++) {
    A.receiveLacpdu('a0', pdu(0));
    A.receiveLacpdu('a1', pdu(1));
    net.clock.advance(100);
  }
  t.deepEqual(
    A.status().legs.map((l) => [l.lacp!.partnerKey, l.lacp!.selected]),
    [
      [7, true],
      [7, false],
    ],
  );
});

test('lacp fallback active-backup: no partner means active-backup over carrier; a partner brings LACP back', (t) => {
  const net = new BondNet();
  const A = net.add('A', { lacp: { fallback: 'active-backup' } });
  net.carrier('A/a0', true);
  net.carrier('A/a1', true);
  t.true(A.fallback);
  t.is(A.activeLeg, 'a0');
  t.true(A.buckets().every((b) => b === 0));
  t.true(A.rxAllowed('a0'));
  t.false(A.rxAllowed('a1'));
  net.clock.advance(10_000);
  t.true(A.fallback, 'still no partner');
  net.carrier('A/a0', false);
  t.is(A.activeLeg, 'a1');
  t.is(A.failovers, 1);
  t.deepEqual([A.lastFailover?.from, A.lastFailover?.to], ['a0', 'a1']);
  t.true(A.status().legs[1]!.lacp!.tx > 0, 'an active port keeps probing while in fallback');

  // A partner appears on both legs.
  const B = net.add('B');
  net.plug('A/a0', 'B/b0');
  net.plug('A/a1', 'B/b1');
  net.until(allUsable(A, B), 40_000);
  t.false(A.fallback);
  t.is(A.activeLeg, undefined);
  t.deepEqual([...countBuckets(A.buckets()).entries()].sort(), [[0, 128], [1, 128]]);
  t.true(A.rxAllowed('a0') && A.rxAllowed('a1'));

  // The partner falls silent: out after 3 s (expired), fallback once defaulted 3 s later.
  net.mute('B');
  net.clock.advance(7_000);
  t.true(A.fallback);
  t.is(A.activeLeg, 'a0');
  t.true(A.buckets().every((b) => b === 0));
});

test('lacp fallback none: no partner means no usable leg', (t) => {
  const net = new BondNet();
  const A = net.add('A');
  net.carrier('A/a0', true);
  net.carrier('A/a1', true);
  net.clock.advance(10_000);
  t.false(A.fallback);
  t.deepEqual(usableLegs(A), []);
  t.true(A.buckets().every((b) => b === -1));
  t.false(A.rxAllowed('a0'));
});

test('lacp: a passive bond facing an active one comes up; two passive ones never do', (t) => {
  const { net, A, B } = lacpPair({ lacp: { mode: 'passive' } }, {});
  net.until(allUsable(A, B), 10_000);
  t.pass();
  const pp = lacpPair({ lacp: { mode: 'passive' } }, { lacp: { mode: 'passive' } });
  pp.net.clock.advance(120_000);
  t.deepEqual(usableLegs(pp.A), []);
  t.is(pp.A.status().legs[0]!.lacp!.tx, 0);
});

test('lacp: malformed LACPDUs are counted per leg', (t) => {
  const { net, A, B } = lacpPair();
  net.until(allUsable(A, B), 10_000);
  A.receiveLacpdu('a1', new Uint8Array(20));
  t.is(A.status().legs[1]!.lacp!.rxErrors, 1);
  t.is(A.status().legs[0]!.lacp!.rxErrors, 0);
  t.deepEqual(usableLegs(A), ['a0', 'a1']);
});

// ---------------------------------------------------------------------------
// Misuse.

test('constructor and inputs refuse what makes no sense', (t) => {
  const clock = new VirtualClock();
  const base = { name: 'b', updelayMs: 0, downdelayMs: 0, clock, send: () => {}, onChange: () => {} };
  t.throws(() => new BondPolicy({ ...base, mode: 'active-backup', members: [] }), { message: /no members/ });
  t.throws(() => new BondPolicy({ ...base, mode: 'active-backup', members: ['x', 'x'] }), { message: /duplicate/ });
  t.throws(() => new BondPolicy({ ...base, mode: 'active-backup', members: ['x'], primary: 'y' }), { message: /primary y/ });
  t.throws(() => new BondPolicy({ ...base, mode: 'lacp', members: ['x'] }), { message: /lacp options/ });
  const bond = new BondPolicy({ ...base, mode: 'active-backup', members: ['x', 'y'] });
  t.throws(() => bond.setCarrier('z', true), { message: /z is not a member/ });
  bond.receiveLacpdu('x', new Uint8Array(124)); // not an LACP bond: ignored
  t.is(bond.status().legs[0]!.lacp, undefined);
});
