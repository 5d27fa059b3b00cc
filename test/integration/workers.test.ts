// Two datapath workers: traffic between ports owned by different workers flows both ways,
// handed from one worker to the other. The AF_XDP path is pinned (fast_path: off): with the
// fast path on, known unicast never reaches a worker, so there would be nothing to hand off.

import test from 'ava';
import { accessPort, startDaemon, type Stats } from '../helpers/daemon.js';
import { addHosts, cleanupFor, iperf3, ping, pingUntil, type Host } from '../helpers/netns.js';

test.serial('with two workers, ports on different workers exchange traffic both ways', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await addHosts(cleanup, ['10.4.0.1/24', '10.4.0.2/24', '10.4.0.3/24']);
  const sw = await startDaemon(t, cleanup, { workers: 2, datapath: { fast_path: 'off' }, ports: hosts.map((h) => accessPort(h.port, 10)) });

  // port.list says which workers own each port's queues.
  const owners = new Map((await sw.ports()).map((p) => [p.name, [...p.workers].sort()]));
  t.log('port owners', Object.fromEntries(owners));
  const key = (h: Host) => JSON.stringify(owners.get(h.port));
  const pairs = hosts.flatMap((x, i) => hosts.slice(i + 1).map((y) => [x, y] as const));
  const split = pairs.find(([x, y]) => key(x) !== key(y));
  t.truthy(split, 'the two workers own different ports');
  t.deepEqual([...new Set(hosts.flatMap((h) => owners.get(h.port) ?? []))].sort(), [0, 1], 'both workers own ports');
  if (!split) return;
  const [a, b] = split;

  const handoffs = async () => (await sw.ctl<Stats & { workers: { handoffs: number }[] }>('stats')).workers.map((w) => w.handoffs);
  const before = await handoffs();
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  t.is(await ping(a, b.ip, { count: 10, interval: 0.05 }), 10, 'a -> b: every ping answered');
  t.is(await ping(b, a.ip, { count: 10, interval: 0.05 }), 10, 'b -> a: every ping answered');

  const forward = await iperf3(a, b, { seconds: 4, parallel: 2 });
  const reverse = await iperf3(a, b, { seconds: 4, parallel: 2, reverse: true });
  t.log(`iperf3 a->b ${forward.gbps.toFixed(2)} Gbit/s, b->a ${reverse.gbps.toFixed(2)} Gbit/s`);
  t.true(forward.gbps > 0 && forward.seconds >= 3.5, 'TCP a -> b completes');
  t.true(reverse.gbps > 0 && reverse.seconds >= 3.5, 'TCP b -> a completes');
  const after = await handoffs();
  t.log('hand-offs per worker', before, '->', after);
  t.true(after.every((n, w) => n > (before[w] ?? 0)), 'each worker handed frames to the other (both directions crossed workers)');
});
