// MirrorTable (src/switch/daemon/mirrors.ts): slots, what the datapath is told, and
// counters that follow a mirror's name across reloads.
import test from 'ava';
import type { MirrorConfig } from '../../src/switch/config/config.js';
import type { MirrorCounters } from '../../src/switch/datapath/native.js';
import { MirrorTable } from '../../src/switch/daemon/mirrors.js';

const index: Record<string, number> = { a: 1, b: 2, m: 3, n: 4 };
const ports = { indexOf: (name: string) => index[name] };

function fakeCounters() {
  const slots: MirrorCounters[] = Array.from({ length: 32 }, () => ({ frames: 0, bytes: 0, lost: {} }));
  return { slots, read: (slot: number) => structuredClone(slots[slot]!) };
}

const mirror = (name: string, output: string, select: MirrorConfig['select']): MirrorConfig => ({ name, select, output });

test('directions become ingress/egress port lists; VLAN-only mirrors select every port', (t) => {
  const c = fakeCounters();
  const table = new MirrorTable(c.read);
  t.deepEqual(table.set([
    mirror('both', 'm', { ports: ['a', 'b'], direction: 'both' }),
    mirror('in', 'n', { ports: ['a'], direction: 'ingress', vlans: [10] }),
  ]), ['mirror both added', 'mirror in added']);
  t.deepEqual(table.native(ports), [
    { out: 3, ingress: [1, 2], egress: [1, 2], vlans: [], anyPort: false },
    { out: 4, ingress: [1], egress: [], vlans: [10], anyPort: false },
  ]);
  table.set([mirror('v', 'm', { direction: 'egress', vlans: [20] })]);
  t.deepEqual(table.native(ports), [{ out: 3, ingress: [], egress: [], vlans: [20], anyPort: true }]);
  t.deepEqual([...table.outputs()], ['m']);
});

test('a port that is down or gone is left out; an output that is gone leaves the slot free', (t) => {
  const table = new MirrorTable(fakeCounters().read);
  table.set([mirror('x', 'gone', { ports: ['a'], direction: 'both' }), mirror('y', 'm', { ports: ['a', 'gone'], direction: 'egress' })]);
  t.deepEqual(table.native(ports), [
    { ingress: [], egress: [], vlans: [], anyPort: false },
    { out: 3, ingress: [], egress: [1], vlans: [], anyPort: false },
  ]);
  t.false(table.rows(ports)[0]!.output_up);
});

test('a changed mirror keeps its slot and counters; a new one in a freed slot counts from 0', (t) => {
  const c = fakeCounters();
  const table = new MirrorTable(c.read);
  table.set([mirror('s0', 'm', { ports: ['a'], direction: 'both' }), mirror('s1', 'n', { ports: ['b'], direction: 'both' })]);
  c.slots[0] = { frames: 10, bytes: 1000, lost: { tx_full: 2 } };
  c.slots[1] = { frames: 5, bytes: 500, lost: {} };
  t.deepEqual(table.set([mirror('s1', 'n', { ports: ['b'], direction: 'ingress' })]), ['mirror s0 removed', 'mirror s1 changed']);
  t.like(table.rows(ports)[0], { name: 's1', frames: 5, bytes: 500 });
  table.set([mirror('s1', 'n', { ports: ['b'], direction: 'ingress' }), mirror('s2', 'm', { ports: ['a'], direction: 'both' })]);
  // s2 takes the freed slot 0: what s0 counted there is not its own.
  t.deepEqual(table.rows(ports).map((r) => [r.name, r.frames, r.lost]), [['s2', 0, {}], ['s1', 5, {}]]);
  c.slots[0] = { frames: 13, bytes: 1300, lost: { tx_full: 3 } };
  t.like(table.rows(ports).find((r) => r.name === 's2'), { frames: 3, bytes: 300, lost: { tx_full: 1 } });
});

test('counters carried over a restart are added', (t) => {
  const c = fakeCounters();
  const table = new MirrorTable(c.read);
  table.set([mirror('s0', 'm', { ports: ['a'], direction: 'both' })]);
  table.carryOver({ s0: { frames: 100, bytes: 9000, lost: { no_buffer: 1 } } });
  c.slots[0] = { frames: 1, bytes: 60, lost: {} };
  t.like(table.rows(ports)[0], { frames: 101, bytes: 9060, lost: { no_buffer: 1 } });
});
