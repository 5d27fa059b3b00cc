// The native FDB table in its BPF_F_MMAPABLE map (needs root for the map).
import test from 'ava';
import { bpfObjectPath, loadNative } from '../../src/switch/datapath/native.js';

const native = loadNative();
// The UMEM's anchor socket needs a device of its own: a tap that lives as long as this process.
const anchor = `vtfdb${process.pid % 100000}`;
const anchorFd = native.openTap(anchor, false);
const dp = new native.Datapath({ workers: 1, framesPerWorker: 1024, fdbCapacity: 1024, bpfObject: bpfObjectPath, anchorDevice: anchor });
test.after.always(() => {
  dp.close();
  native.closeFd(anchorFd);
});

function mac(i: number): string {
  const hex = i.toString(16).padStart(8, '0');
  return `02:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}`;
}

test.serial('put, get, overwrite and delete by <vlan, mac>', (t) => {
  dp.fdbClear();
  t.true(dp.fdbPut(10, '02:00:00:00:00:01', 3, 0));
  t.true(dp.fdbPut(20, '02:00:00:00:00:01', 4, 1));
  t.is(dp.fdbGet(10, '02:00:00:00:00:01')?.port, 3);
  t.is(dp.fdbGet(20, '02:00:00:00:00:01')?.port, 4);
  t.is(dp.fdbGet(20, '02:00:00:00:00:01')?.flags, 1);
  t.true(dp.fdbPut(10, '02:00:00:00:00:01', 5, 0));
  t.is(dp.fdbGet(10, '02:00:00:00:00:01')?.port, 5);
  t.is(dp.fdbInfo().size, 2);
  t.true(dp.fdbDelete(10, '02:00:00:00:00:01'));
  t.false(dp.fdbDelete(10, '02:00:00:00:00:01'));
  t.is(dp.fdbGet(10, '02:00:00:00:00:01'), undefined);
  t.is(dp.fdbGet(20, '02:00:00:00:00:01')?.port, 4);
});

test.serial('put stamps lastSeen on the monotonic clock', (t) => {
  dp.fdbClear();
  const before = native.monotonicMs();
  dp.fdbPut(1, '02:00:00:00:00:09', 1, 0);
  const seen = dp.fdbGet(1, '02:00:00:00:00:09')!.lastSeenMs;
  t.true(seen >= before && seen <= native.monotonicMs());
});

test.serial('fills to 3/4 of its capacity, refuses more, and survives churn', (t) => {
  dp.fdbClear();
  const limit = (1024 * 3) / 4;
  for (let i = 0; i < limit; i++) t.true(dp.fdbPut(1 + (i % 7), mac(i), i % 200, 0), `entry ${i}`);
  t.false(dp.fdbPut(1, mac(99_999), 1, 0));
  t.is(dp.fdbInfo().size, limit);
  // Delete and re-add many times: tombstones must not make entries unreachable.
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < limit; i += 2) t.true(dp.fdbDelete(1 + (i % 7), mac(i)));
    for (let i = 0; i < limit; i += 2) t.true(dp.fdbPut(1 + (i % 7), mac(i), (i + round) % 200, 0));
  }
  for (let i = 0; i < limit; i++) t.is(dp.fdbGet(1 + (i % 7), mac(i))?.port, i % 2 === 0 ? (i + 4) % 200 : i % 200);
  t.is(dp.fdbEntries().length, limit);
  t.is(dp.fdbClear(), limit);
  t.is(dp.fdbInfo().size, 0);
});

test.serial('rejects bad arguments with a clear error', (t) => {
  t.throws(() => dp.fdbPut(0, '02:00:00:00:00:01', 1, 0), { message: /vlan must be in 1\.\.4094/ });
  t.throws(() => dp.fdbPut(1, 'not-a-mac', 1, 0), { message: /mac must be a string/ });
});

test.serial('expired() lists only dynamic entries last seen before the cutoff', (t) => {
  dp.fdbClear();
  dp.fdbPut(1, '02:00:00:00:01:01', 1, 0);
  dp.fdbPut(1, '02:00:00:00:01:02', 1, 1);  // static
  const seen = dp.fdbGet(1, '02:00:00:00:01:01')!.lastSeenMs;
  t.deepEqual(dp.fdbExpired(seen), [], 'nothing last seen before the time it was written');
  t.deepEqual(
    dp.fdbExpired(seen + 1).map((e) => e.mac),
    ['02:00:00:00:01:01'],
    'the dynamic entry only; the static never expires',
  );
});
