// A MAC flood from one port (macof): the port's MAC limit holds, the frames beyond it are
// dropped where they arrive and counted (not sent to the control plane one by one), every
// frame the port received is in a counter, other hosts keep talking, and the port learns
// again once its entries age out.

import test from 'ava';
import { KERNEL_RX_REASONS, accessPort, eventually, kernelRxLost, settledStats, startDaemon, type Daemon } from '../helpers/daemon.js';
import { sendFlood } from '../helpers/frames.js';
import { addHosts, cleanupFor, pingUntil, sleep, startPing, staticArp, type Host } from '../helpers/netns.js';

const LIMIT = 64;
const FLOOD_FRAMES = 60_000;
const AGING_S = 3;


async function learnEvents(sw: Daemon): Promise<number> {
  const s = await sw.ctl<{ workers: { learn_events: number }[] }>('stats');
  return s.workers.reduce((n, w) => n + w.learn_events, 0);
}

test.serial('MAC flood: the limit holds, the rest is dropped and counted where it arrives, others keep pinging, learning resumes after aging', async (t) => {
  const cleanup = cleanupFor(t);
  const [f, a, b] = (await addHosts(cleanup, ['10.42.0.9/24', '10.42.0.1/24', '10.42.0.2/24'])) as [Host, Host, Host];
  await staticArp(a, b);
  await staticArp(b, a);
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    fdb: { max_per_port: LIMIT, aging: AGING_S },
    ports: [accessPort(f.port, 10), accessPort(a.port, 10), accessPort(b.port, 10)],
  }, { logLevel: 'info' });
  t.true(await pingUntil(a, b.ip), 'a and b talk before the flood');
  const eventsBefore = await learnEvents(sw);
  const rxBefore = (await sw.portStats(f.port)).rx_packets;

  const pinging = await startPing(cleanup, a, b.ip, { count: 40, interval: 0.05 });
  const sent = await sendFlood({ dev: f.dev, ns: f.ns, count: FLOOD_FRAMES });
  const pings = await pinging.done();

  const stats = await settledStats(sw, f.port);
  const fs = stats.ports[f.port]!;
  const learned = (await sw.fdb()).filter((e) => e.port === f.port).length;
  const events = (await learnEvents(sw)) - eventsBefore;
  const kernelLost = kernelRxLost(stats, f.port);
  const received = fs.rx_packets - rxBefore;
  t.log(`sent ${sent}; the port received ${received} (mac_limit ${fs.drops.mac_limit}), the kernel lost ${kernelLost} (${KERNEL_RX_REASONS.filter((r) => fs.drops[r]).map((r) => `${r} ${fs.drops[r]}`).join(', ') || 'none'}); learn events ${events}; ${learned} MACs learned on the port; ping ${pings.received}/${pings.transmitted}`);

  t.is(learned, LIMIT, 'the port holds exactly its limit');
  // Only the frames that arrived before the control plane had seen the port fill up were
  // reported (and forwarded); every later one was dropped where it arrived.
  t.true(events < sent / 20, `refused sources do not each become a learn event (${events} for ${sent} frames)`);
  t.true((fs.drops.mac_limit ?? 0) >= received - events - 10, `the rest of the flood is dropped as mac_limit (${fs.drops.mac_limit})`);
  // Every frame the flooding host sent reached a counter: the hot loop's or the kernel's.
  t.true(received + kernelLost >= sent * 0.999 && received + kernelLost <= sent + 100, `sent ${sent} = received ${received} + lost in the kernel ${kernelLost}`);
  t.is(pings.received, pings.transmitted, 'the other pair kept pinging without loss');

  // The flood's entries age out (the flood stopped): the port learns again.
  await sleep((AGING_S + 2) * 1000);
  t.true(await pingUntil(f, a.ip), 'the flooding host itself is learned and answered again');
  await eventually('the flooding host learned on its port', async () => (await sw.fdb()).some((e) => e.port === f.port && e.mac === f.mac));
});

test.serial('frames the kernel loses before the hot loop (AF_XDP rings, devices) are counted by reason: what a host sent is what the port counted', async (t) => {
  const cleanup = cleanupFor(t);
  const [f, a, b] = (await addHosts(cleanup, ['10.44.0.9/24', '10.44.0.1/24', '10.44.0.2/24'])) as [Host, Host, Host];
  // One worker with the fewest frames, every source learned and every frame flooded to two
  // ports: the hot loop falls behind a burst and the kernel drops what its rings cannot hold.
  const sw = await startDaemon(t, cleanup, {
    workers: 1,
    datapath: { frames_per_worker: 1024 },
    fdb: { max_per_port: 1_000_000, capacity: 262_144 },
    ports: [accessPort(f.port, 10), accessPort(a.port, 10), accessPort(b.port, 10)],
  }, { logLevel: 'info' });
  const before = await sw.stats();
  const sent = await sendFlood({ dev: f.dev, ns: f.ns, count: FLOOD_FRAMES });
  const stats = await settledStats(sw, f.port);
  const received = stats.ports[f.port]!.rx_packets - before.ports[f.port]!.rx_packets;
  const kernelLost = kernelRxLost(stats, f.port) - kernelRxLost(before, f.port);
  const reasons = KERNEL_RX_REASONS.filter((r) => stats.ports[f.port]!.drops[r]).map((r) => `${r} ${stats.ports[f.port]!.drops[r]}`);
  t.log(`sent ${sent}; the port received ${received}, the kernel lost ${kernelLost} (${reasons.join(', ') || 'none'})`);
  t.true(kernelLost > 0, 'the kernel lost frames, and they are counted');
  t.true(received + kernelLost >= sent * 0.999 && received + kernelLost <= sent + 100, `sent ${sent} = received ${received} + lost in the kernel ${kernelLost}`);
});
