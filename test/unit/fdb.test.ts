import test from 'ava';

import { FdbManager } from '../../src/switch/l2/fdb.js';
import { bytesToMac, isMulticastMac, macToBytes, parseMac } from '../../src/switch/l2/mac.js';
import { FDB_FLAG_STATIC } from '../../src/switch/types.js';
import { FakeClock, FakeFdbTable } from './fake-fdb-table.js';

const AGING_MS = 300_000;
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';

function setup(opts: { capacity?: number; maxPerPort?: number; upPorts?: number[] } = {}) {
  const clock = new FakeClock();
  const table = new FakeFdbTable(clock, opts.capacity ?? 1024);
  const fdb = new FdbManager({ table, clock, agingMs: AGING_MS, maxPerPort: opts.maxPerPort ?? 100 });
  for (const port of opts.upPorts ?? [1, 2, 3]) fdb.setPortUp(port, true);
  return { clock, table, fdb };
}

function macN(n: number): string {
  return `06:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
}

// --- MAC helpers ---

test('parseMac accepts upper/lower case and : or - separators, returns canonical form', (t) => {
  t.is(parseMac('02:00:5E:AB:cd:EF'), '02:00:5e:ab:cd:ef');
  t.is(parseMac('02-00-5E-AB-CD-EF'), '02:00:5e:ab:cd:ef');
});

test('parseMac rejects malformed input with a message naming the input', (t) => {
  for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:00:00', '02:00-00:00:00:00', 'zz:00:00:00:00:00', '2:0:0:0:0:0']) {
    const err = t.throws(() => parseMac(bad));
    t.true(err?.message.includes(JSON.stringify(bad)), bad);
  }
});

test('isMulticastMac looks at the I/G bit of the first octet', (t) => {
  t.true(isMulticastMac('ff:ff:ff:ff:ff:ff'));
  t.true(isMulticastMac('01:00:5e:00:00:01'));
  t.true(isMulticastMac('33:33:00:00:00:01'));
  t.false(isMulticastMac('02:00:00:00:00:01'));
  t.false(isMulticastMac('00:1b:21:aa:bb:cc'));
});

test('macToBytes and bytesToMac round-trip, bytesToMac reads at an offset', (t) => {
  const bytes = macToBytes('02:AB:00:ff:10:01');
  t.deepEqual([...bytes], [0x02, 0xab, 0x00, 0xff, 0x10, 0x01]);
  t.is(bytesToMac(bytes), '02:ab:00:ff:10:01');
  const frame = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a]);
  t.is(bytesToMac(frame, 6), A);
  t.throws(() => bytesToMac(frame, 7), { message: /need 6 bytes/ });
});

// --- learning ---

test('learn a new MAC, then refresh it on the same port', (t) => {
  const { fdb, clock } = setup();
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
  clock.advance(5000);
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'refreshed');
  t.deepEqual(fdb.entries(), [{ vlan: 10, mac: A, port: 1, flags: 0, lastSeenMs: clock.nowMs() }]);
  t.is(fdb.stats.learned, 1);
  t.is(fdb.countByPort(1), 1);
});

test('the same MAC in two VLANs is two independent entries', (t) => {
  const { fdb } = setup();
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
  t.is(fdb.learn({ vlan: 20, mac: A, port: 2 }), 'learned');
  t.deepEqual(
    fdb.entries().map((e) => [e.vlan, e.port]),
    [
      [10, 1],
      [20, 2],
    ],
  );
  t.is(fdb.stats.moved, 0);
});

test('a MAC seen on another port in the same VLAN moves there', (t) => {
  const { fdb } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'moved');
  t.deepEqual(fdb.entries().map((e) => e.port), [2]);
  t.is(fdb.countByPort(1), 0);
  t.is(fdb.countByPort(2), 1);
  t.is(fdb.stats.moved, 1);
  t.is(fdb.stats.learned, 1);
});

test('the all-zero source MAC is never learned, nor pinned (it is no station; the bridge refuses it too)', (t) => {
  const { fdb } = setup();
  t.is(fdb.learn({ vlan: 10, mac: '00:00:00:00:00:00', port: 1 }), 'rejected-multicast');
  t.is(fdb.size, 0);
  t.is(fdb.stats.rejected.multicast, 1);
  t.throws(() => fdb.addStatic(10, '00:00:00:00:00:00', 1), { message: /all-zero/ });
});

test('multicast and broadcast source MACs are never learned', (t) => {
  const { fdb } = setup();
  t.is(fdb.learn({ vlan: 10, mac: 'ff:ff:ff:ff:ff:ff', port: 1 }), 'rejected-multicast');
  t.is(fdb.learn({ vlan: 10, mac: '01:00:5e:00:00:01', port: 1 }), 'rejected-multicast');
  t.deepEqual(fdb.entries(), []);
  t.is(fdb.stats.rejected.multicast, 2);
  t.is(fdb.stats.learned, 0);
});

test('learning is refused on ports not marked up', (t) => {
  const { fdb } = setup({ upPorts: [] });
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'rejected-port-down');
  fdb.setPortUp(1, true);
  t.true(fdb.isPortUp(1));
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
  t.is(fdb.stats.rejected['port-down'], 1);
});

// --- per-port limit and table capacity ---

test('per-port limit counts dynamic entries and rejects new MACs beyond it', (t) => {
  const { fdb } = setup({ maxPerPort: 2 });
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
  t.is(fdb.learn({ vlan: 10, mac: B, port: 1 }), 'learned');
  t.is(fdb.learn({ vlan: 10, mac: C, port: 1 }), 'rejected-port-limit');
  // Refreshing an existing MAC at the limit is fine, and other ports are unaffected.
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'refreshed');
  t.is(fdb.learn({ vlan: 10, mac: C, port: 2 }), 'learned');
  t.is(fdb.countByPort(1), 2);
  t.is(fdb.stats.rejected['port-limit'], 1);
});

test('statics do not count toward the per-port limit', (t) => {
  const { fdb } = setup({ maxPerPort: 1 });
  t.true(fdb.addStatic(10, B, 1));
  t.true(fdb.addStatic(10, C, 1));
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
  t.is(fdb.countByPort(1), 1);
  t.is(fdb.entries({ port: 1 }).length, 3);
});

test('a move onto a port at its limit is rejected and the entry stays where it was', (t) => {
  const { fdb } = setup({ maxPerPort: 1 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 2 });
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'rejected-port-limit');
  t.deepEqual(fdb.entries().map((e) => [e.mac, e.port]), [
    [A, 1],
    [B, 2],
  ]);
  t.is(fdb.stats.moved, 0);
});

test('a port whose entries moved away can learn again', (t) => {
  const { fdb } = setup({ maxPerPort: 1 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'moved');
  t.is(fdb.learn({ vlan: 10, mac: B, port: 1 }), 'learned');
});

test('setMaxPerPort applies to the next learn and evicts nothing', (t) => {
  const { fdb } = setup({ maxPerPort: 3 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 1 });
  fdb.setMaxPerPort(1);
  t.is(fdb.learn({ vlan: 10, mac: C, port: 1 }), 'rejected-port-limit');
  t.is(fdb.countByPort(1), 2);
  fdb.setMaxPerPort(5);
  t.is(fdb.learn({ vlan: 10, mac: C, port: 1 }), 'learned');
});

test('a full table rejects new MACs but still refreshes and moves existing ones', (t) => {
  const { fdb } = setup({ capacity: 2 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 1 });
  t.is(fdb.learn({ vlan: 10, mac: C, port: 1 }), 'rejected-table-full');
  t.is(fdb.countByPort(1), 2, 'a rejected learn is not counted');
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'refreshed');
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'moved');
  t.is(fdb.size, 2);
  t.is(fdb.stats.rejected['table-full'], 1);
});

test('a MAC flood from one port is capped by the per-port limit and leaves room for others', (t) => {
  const { fdb } = setup({ capacity: 1000, maxPerPort: 100 });
  let learned = 0;
  for (let i = 0; i < 5000; i++) if (fdb.learn({ vlan: 10, mac: macN(i), port: 1 }) === 'learned') learned++;
  t.is(learned, 100);
  t.is(fdb.size, 100);
  t.is(fdb.stats.rejected['port-limit'], 4900);
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'learned');
});

// --- statics ---

test('statics never move: learning the MAC elsewhere is rejected', (t) => {
  const { fdb } = setup();
  t.true(fdb.addStatic(10, A, 1));
  t.is(fdb.learn({ vlan: 10, mac: A, port: 2 }), 'rejected-static');
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'refreshed');
  t.deepEqual(fdb.entries(), [{ vlan: 10, mac: A, port: 1, flags: FDB_FLAG_STATIC, lastSeenMs: fdb.entries()[0]!.lastSeenMs }]);
  t.is(fdb.stats.rejected.static, 1);
  t.is(fdb.countByPort(2), 0);
});

test('statics never age, even when never seen', (t) => {
  const { fdb, clock } = setup();
  fdb.addStatic(10, A, 1);
  clock.advance(AGING_MS * 10);
  t.is(fdb.age(), 0);
  t.is(fdb.entries().length, 1);
});

test('a static overrides a dynamic entry for the same key and frees its slot', (t) => {
  const { fdb } = setup({ maxPerPort: 1 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  t.true(fdb.addStatic(10, A, 2));
  t.deepEqual(fdb.entries().map((e) => [e.port, e.flags]), [[2, FDB_FLAG_STATIC]]);
  t.is(fdb.countByPort(1), 0);
  t.is(fdb.learn({ vlan: 10, mac: B, port: 1 }), 'learned');
});

test('addStatic normalises the MAC, refuses multicast, and reports a full table', (t) => {
  const { fdb } = setup({ capacity: 1 });
  t.true(fdb.addStatic(10, '02-00-00-00-00-0A', 1));
  t.is(fdb.entries()[0]!.mac, A);
  t.throws(() => fdb.addStatic(10, 'ff:ff:ff:ff:ff:ff', 1), { message: /multicast/ });
  t.throws(() => fdb.addStatic(10, 'not-a-mac', 1), { message: /invalid MAC/ });
  t.false(fdb.addStatic(10, B, 1));
  t.true(fdb.addStatic(10, A, 3), 'replacing an existing static needs no new slot');
});

test('removeStatic removes only static entries', (t) => {
  const { fdb } = setup();
  fdb.addStatic(10, A, 1);
  fdb.learn({ vlan: 10, mac: B, port: 1 });
  t.false(fdb.removeStatic(10, B));
  t.false(fdb.removeStatic(20, A));
  t.true(fdb.removeStatic(10, '02:00:00:00:00:0A'));
  t.false(fdb.removeStatic(10, A));
  t.deepEqual(fdb.entries().map((e) => e.mac), [B]);
});

// --- aging ---

test('a MAC the hot loop keeps seeing does not age; one that goes quiet does', (t) => {
  const { fdb, table, clock } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 2 });
  for (let second = 0; second < 400; second++) {
    clock.advance(1000);
    table.touch(10, A); // the hot loop refreshes A every second, B is silent
    fdb.age();
  }
  t.deepEqual(fdb.entries().map((e) => e.mac), [A]);
  t.is(fdb.stats.aged, 1);
  t.is(fdb.countByPort(2), 0);
});

test('an entry ages only once it is older than agingMs', (t) => {
  const { fdb, clock } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  clock.advance(AGING_MS);
  t.is(fdb.age(), 0);
  clock.advance(1);
  t.is(fdb.age(), 1);
  t.deepEqual(fdb.entries(), []);
});

test('a refresh by learn() restarts the aging timer', (t) => {
  const { fdb, clock } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  clock.advance(AGING_MS - 1000);
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  clock.advance(AGING_MS - 1000);
  t.is(fdb.age(), 0);
  clock.advance(2000);
  t.is(fdb.age(), 1);
});

test('setAging takes effect at the next age()', (t) => {
  const { fdb, clock } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  clock.advance(10_000);
  t.is(fdb.age(), 0);
  fdb.setAging(5_000);
  t.is(fdb.age(), 1);
  t.is(fdb.stats.aged, 1);
});

// --- flushing and port state ---

test('a port going down flushes its dynamic entries, keeps statics, and refuses learning until up', (t) => {
  const { fdb } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 20, mac: B, port: 1 });
  fdb.learn({ vlan: 10, mac: C, port: 2 });
  fdb.addStatic(30, A, 1);
  t.is(fdb.setPortUp(1, false), 2);
  t.false(fdb.isPortUp(1));
  t.deepEqual(fdb.entries().map((e) => [e.vlan, e.mac, e.port]), [
    [10, C, 2],
    [30, A, 1],
  ]);
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'rejected-port-down');
  t.is(fdb.stats.flushed, 2);
  fdb.setPortUp(1, true);
  t.is(fdb.learn({ vlan: 10, mac: A, port: 1 }), 'learned');
});

test('flushPort removes only that port\'s dynamic entries', (t) => {
  const { fdb } = setup();
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 2 });
  fdb.addStatic(10, C, 1);
  t.is(fdb.flushPort(1), 1);
  t.deepEqual(fdb.entries().map((e) => e.mac), [B, C]);
  t.is(fdb.countByPort(1), 0);
  t.true(fdb.isPortUp(1), 'flushing does not take the port down');
});

test('flush filters by port, by vlan, by both, or takes every dynamic entry', (t) => {
  const { fdb } = setup();
  const fill = () => {
    fdb.learn({ vlan: 10, mac: A, port: 1 });
    fdb.learn({ vlan: 20, mac: A, port: 2 });
    fdb.learn({ vlan: 10, mac: B, port: 2 });
    fdb.learn({ vlan: 20, mac: B, port: 1 });
  };
  fdb.addStatic(10, C, 1);
  fill();
  t.is(fdb.flush({ vlan: 10 }), 2);
  t.deepEqual(fdb.entries().map((e) => [e.vlan, e.mac]), [
    [10, C],
    [20, A],
    [20, B],
  ]);
  fill();
  t.is(fdb.flush({ vlan: 20, port: 1 }), 1);
  t.deepEqual(fdb.entries({ vlan: 20 }).map((e) => e.mac), [A]);
  fill();
  t.is(fdb.flush({ port: 2 }), 2);
  t.deepEqual(fdb.entries({ port: 2 }), []);
  t.is(fdb.flush(), 2);
  t.deepEqual(fdb.entries().map((e) => e.mac), [C]);
  t.is(fdb.stats.flushed, 7);
  t.is(fdb.countByPort(1), 0);
  t.is(fdb.countByPort(2), 0);
});

// --- listing and bookkeeping ---

test('entries() is sorted by vlan then mac and honours filters', (t) => {
  const { fdb } = setup();
  fdb.learn({ vlan: 20, mac: B, port: 1 });
  fdb.learn({ vlan: 10, mac: C, port: 2 });
  fdb.learn({ vlan: 20, mac: A, port: 2 });
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  t.deepEqual(fdb.entries().map((e) => `${e.vlan}/${e.mac}`), [`10/${A}`, `10/${C}`, `20/${A}`, `20/${B}`]);
  t.deepEqual(fdb.entries({ port: 2 }).map((e) => `${e.vlan}/${e.mac}`), [`10/${C}`, `20/${A}`]);
  t.deepEqual(fdb.entries({ vlan: 10, port: 1 }).map((e) => e.mac), [A]);
});

test('counts of a table that already holds entries are picked up at construction', (t) => {
  const clock = new FakeClock();
  const table = new FakeFdbTable(clock);
  table.put(10, A, 1, 0);
  table.put(10, B, 1, FDB_FLAG_STATIC);
  const fdb = new FdbManager({ table, clock, agingMs: AGING_MS, maxPerPort: 2 });
  fdb.setPortUp(1, true);
  t.is(fdb.countByPort(1), 1);
  t.is(fdb.learn({ vlan: 10, mac: C, port: 1 }), 'learned');
  t.is(fdb.learn({ vlan: 20, mac: C, port: 1 }), 'rejected-port-limit');
});

test('stats.rejected has every reason from the start, for stable metric labels', (t) => {
  const { fdb } = setup();
  t.deepEqual(fdb.stats.rejected, { multicast: 0, static: 0, 'port-limit': 0, 'table-full': 0, 'port-down': 0 });
});

// --- telling the datapath a port is at its limit ---

test('onPortFull: told once when a port reaches its limit, once when aging, a flush or a higher limit takes it below', (t) => {
  const clock = new FakeClock();
  const table = new FakeFdbTable(clock, 1024);
  const told: [number, boolean][] = [];
  const fdb = new FdbManager({ table, clock, agingMs: 10_000, maxPerPort: 2, onPortFull: (port, full) => told.push([port, full]) });
  fdb.setPortUp(1, true);
  fdb.setPortUp(2, true);
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  t.deepEqual(told, [], 'below the limit: nothing');
  fdb.learn({ vlan: 10, mac: B, port: 1 });
  t.deepEqual(told, [[1, true]], 'the second MAC fills port 1');
  t.true(fdb.isPortFull(1));
  fdb.learn({ vlan: 10, mac: C, port: 1 });
  t.deepEqual(told, [[1, true]], 'a refused MAC changes nothing');
  clock.advance(11_000);
  fdb.age();
  t.deepEqual(told, [[1, true], [1, false]], 'aging takes it below the limit');
  fdb.learn({ vlan: 10, mac: A, port: 1 });
  fdb.learn({ vlan: 10, mac: B, port: 1 });
  fdb.setMaxPerPort(3);
  t.deepEqual(told.slice(2), [[1, true], [1, false]], 'full again, then a higher limit');
  fdb.learn({ vlan: 10, mac: C, port: 1 });
  fdb.setPortUp(1, false);
  t.deepEqual(told.slice(4), [[1, true], [1, false]], 'a port going down forgets its MACs and is not full');
  // A MAC moving off a full port frees a place there.
  fdb.setPortUp(1, true);
  for (const mac of [A, B, C]) fdb.learn({ vlan: 10, mac, port: 1 });
  fdb.learn({ vlan: 10, mac: A, port: 2 });
  t.deepEqual(told.slice(6), [[1, true], [1, false]]);
});
