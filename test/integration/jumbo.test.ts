// Jumbo frames (MTU 9000) between containers whose veths keep their default offloads.
// The tc hook leaves a veth's MTU range alone (an XDP program caps it at 3506), and
// the fast path carries 9000-byte frames and TCP at MTU 9000. The slow path (the punt
// pair, 1500 bytes) cannot carry them yet: a jumbo frame that needs it is dropped by the
// kernel and counted as punt_dropped on its port.
import test, { type ExecutionContext } from 'ava';
import { accessPort, eventually, startDaemon, dropsOf, type Stats } from '../helpers/daemon.js';
import { addHosts, cleanupFor, iperf3, pingUntil, run, type Host } from '../helpers/netns.js';

const mode = process.env.VSWITCHD_TEST_FAST_PATH ?? 'off';
// The XDP hook caps a veth's MTU (drivers/net/veth.c); fast_path off has no fast path for them.
const fastJumbo = mode === 'auto' || mode === 'tc' ? test.serial : test.serial.skip;

async function jumboHosts(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [a, b] = (await addHosts(cleanup, ['10.8.0.1/24', '10.8.0.2/24'])) as [Host, Host];
  const sw = await startDaemon(t, cleanup, { ports: [a, b].map((h) => accessPort(h.port, 10)) });
  for (const h of [a, b]) {
    await run(['ip', 'link', 'set', h.port, 'mtu', '9000']);
    await run(['ip', 'link', 'set', h.dev, 'mtu', '9000'], { ns: h.ns });
  }
  return { cleanup, sw, a, b };
}

fastJumbo('MTU 9000: 8972-byte pings unfragmented and TCP through the fast path, no checksum errors', async (t) => {
  const { a, b } = await jumboHosts(t);
  t.true(await pingUntil(a, b.ip), 'a reaches b (small frames learn both MACs)');
  const big = await run(['ping', '-n', '-q', '-c', '5', '-i', '0.1', '-W', '1', '-s', '8972', '-M', 'do', b.ip], { ns: a.ns, check: false });
  t.regex(big.stdout, /5 received/, `ping -s 8972 -M do: ${big.stdout}`);
  const tcp = await iperf3(a, b, { seconds: 3 });
  t.log(`iperf3 at MTU 9000: ${tcp.gbps.toFixed(2)} Gbit/s`);
  t.true(tcp.gbps > 0 && tcp.seconds >= 2.5, 'TCP at MTU 9000 completes');
  const nstat = await run(['nstat', '-asz', 'TcpInCsumErrors'], { ns: b.ns });
  t.regex(nstat.stdout, /TcpInCsumErrors\s+0\b/, 'no checksum errors at the receiver');
});

(mode === 'xdp' ? test.serial.skip : test.serial)('a jumbo frame that needs the slow path is dropped and counted as punt_dropped', async (t) => {
  const { sw, a, b } = await jumboHosts(t);
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await sw.ctl('fdb.flush');  // b unknown again (a's ARP entry stays): the next frames to it take the slow path
  const before = dropsOf(await sw.ctl<Stats>('stats'), a.port, 'punt_dropped');
  const big = await run(['ping', '-n', '-q', '-c', '3', '-i', '0.1', '-W', '1', '-s', '8972', '-M', 'do', b.ip], { ns: a.ns, check: false });
  t.regex(big.stdout, /\b0 received/, 'the jumbo pings to an unknown MAC are lost');
  await eventually('the loss shows as punt_dropped on a', async () => dropsOf(await sw.ctl<Stats>('stats'), a.port, 'punt_dropped') - before >= 3);
  t.pass();
});
