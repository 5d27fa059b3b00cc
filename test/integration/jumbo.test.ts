// Jumbo frames (MTU 9000) through veth and tap ports whose hosts keep their default
// offloads, on both paths: the fast path (tc, or XDP with a frags program) and the
// slow path (the punt pair at MTU 9000 into multi-buffer AF_XDP, the hot loop carrying
// a frame as several UMEM chunks). Each test runs the slow path on purpose too: with
// fast_path off every frame takes it; otherwise an FDB flush sends the next frames
// there (unknown unicast floods). And the egress MTU: a frame larger than the egress
// port's MTU is dropped and counted (mtu_exceeded), never truncated.
import { randomInt } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { accessPort, dropsOf, eventually, startDaemon, type Daemon, type PortInfo, type Stats } from '../helpers/daemon.js';
import { addTapHost, startCapture } from '../helpers/frames.js';
import { addHost, cleanupFor, iperf3, noIpv6, pingUntil, run, uniqueName, type Cleanup, type Host } from '../helpers/netns.js';

const mode = process.env.VSWITCHD_TEST_FAST_PATH ?? 'off';

async function setMtu(h: Host, mtu: number): Promise<void> {
  await run(['ip', 'link', 'set', h.port, 'mtu', `${mtu}`]);
  await run(['ip', 'link', 'set', h.dev, 'mtu', `${mtu}`], { ns: h.ns });
}

async function vethHost(cleanup: Cleanup, cidr: string): Promise<Host> {
  return addHost(cleanup, { cidr });
}

/** Two hosts at MTU 9000 on one VLAN: a veth host and a veth or tap host. */
async function jumboPair(t: ExecutionContext, second: 'veth' | 'tap') {
  const cleanup = cleanupFor(t);
  const a = await vethHost(cleanup, '10.8.0.1/24');
  const tap = `${uniqueName()}t`;
  cleanup.add(() => run(['ip', 'link', 'del', tap], { check: false }));
  const b0 = second === 'veth' ? await vethHost(cleanup, '10.8.0.2/24') : undefined;
  const sw = await startDaemon(t, cleanup, { ports: [accessPort(a.port, 10), b0 ? accessPort(b0.port, 10) : accessPort(tap, 10, 'tap')] });
  const b = b0 ?? (await addTapHost(cleanup, tap, '10.8.0.2/24', 9000));
  await setMtu(a, 9000);
  if (b0) await setMtu(b0, 9000);
  else await run(['ip', 'link', 'set', tap, 'mtu', '9000']);
  await eventually('the switch sees MTU 9000 on both ports', async () => {
    const ports = await sw.ctl<PortInfo[]>('port.list');
    return [a.port, b.port].every((p) => ports.find((x) => x.name === p)?.mtu === 9000);
  });
  return { sw, a, b };
}

async function bigPings(from: Host, to: Host, count = 5): Promise<string> {
  const r = await run(['ping', '-n', '-q', '-c', `${count}`, '-i', '0.1', '-W', '1', '-s', '8972', '-M', 'do', to.ip], { ns: from.ns, check: false });
  return r.stdout;
}

async function csumErrors(h: Host): Promise<number> {
  const r = await run(['nstat', '-asz', 'TcpInCsumErrors'], { ns: h.ns });
  return Number(/TcpInCsumErrors\s+(\d+)/.exec(r.stdout)?.[1] ?? 'NaN');
}

function jumboDrops(stats: Stats, port: string): number {
  return ['too_big', 'punt_dropped', 'no_buffer', 'tx_full'].reduce((n, r) => n + dropsOf(stats, port, r), 0);
}

async function jumboThrough(t: ExecutionContext, sw: Daemon, a: Host, b: Host): Promise<void> {
  t.true(await pingUntil(a, b.ip), 'a reaches b (small frames learn both MACs)');
  t.regex(await bigPings(a, b), /5 received/, 'ping -s 8972 -M do a -> b');
  // iperf3 both ways: a as the sender, then b.
  const ab = await iperf3(a, b, { seconds: 2 });
  const ba = await iperf3(a, b, { seconds: 2, reverse: true });
  t.log(`iperf3 at MTU 9000 (${mode}): ${ab.gbps.toFixed(2)} Gbit/s a->b, ${ba.gbps.toFixed(2)} b->a`);
  t.true(ab.gbps > 0 && ab.seconds >= 1.5 && ba.gbps > 0 && ba.seconds >= 1.5, 'TCP at MTU 9000 completes both ways');
  // The slow path on purpose: b unknown again, so the next frames to it flood through the hot loop.
  await sw.ctl('fdb.flush');
  t.regex(await bigPings(a, b, 3), /3 received/, 'ping -s 8972 -M do after an FDB flush (the slow path)');
  // The largest frame one UMEM chunk holds (1792 bytes) and the smallest that takes two.
  for (const size of [1750, 1751]) {
    await sw.ctl('fdb.flush');
    t.regex((await run(['ping', '-n', '-q', '-c', '2', '-i', '0.1', '-W', '1', '-s', `${size}`, '-M', 'do', b.ip], { ns: a.ns, check: false })).stdout, /2 received/, `ping -s ${size} after a flush`);
  }
  // (The root namespace's counter also counts whatever else runs on the machine.)
  for (const h of [a, b].filter((x) => x.ns)) t.is(await csumErrors(h), 0, `no TCP checksum errors at ${h.dev}`);
  const stats = await sw.ctl<Stats>('stats');
  const paths = (stats.ports[a.port] as unknown as { paths: { fast: { rx_packets: number }; afxdp: { rx_packets: number } } }).paths;
  t.log(`frames from a: ${paths.fast.rx_packets} fast path, ${paths.afxdp.rx_packets} slow path`);
  t.is(jumboDrops(stats, a.port) + jumboDrops(stats, b.port), 0, 'no jumbo frame dropped (too_big, punt_dropped, no_buffer, tx_full)');
}

// The XDP hook on a veth needs its frags program and the peer's frags pass program for
// MTU 9000; fast_path off, auto and tc take the tc hook.
test.serial('MTU 9000 between two veth hosts: 8972-byte pings unfragmented and TCP, fast and slow path', async (t) => {
  const { sw, a, b } = await jumboPair(t, 'veth');
  await jumboThrough(t, sw, a, b);
});

test.serial('MTU 9000 between a veth host and a host behind a tap port: pings and TCP, fast and slow path', async (t) => {
  const { sw, a, b } = await jumboPair(t, 'tap');
  await jumboThrough(t, sw, a, b);
});

test.serial('MTU 9000 between a veth host and the host stack on the internal port: pings and TCP', async (t) => {
  const cleanup = cleanupFor(t);
  const net = `169.254.${randomInt(100, 250)}`;
  const bridge = `${uniqueName()}b`;
  cleanup.add(() => run(['ip', 'link', 'del', bridge], { check: false }));  // in case the daemon leaves it
  const a = await vethHost(cleanup, `${net}.2/24`);
  const sw = await startDaemon(t, cleanup, { bridge, ports: [accessPort(a.port, 10), accessPort(bridge, 10, 'internal')] });
  noIpv6(bridge);
  await run(['ip', 'link', 'set', bridge, 'mtu', '9000']);
  await run(['ip', 'addr', 'add', `${net}.1/24`, 'dev', bridge]);
  await run(['ip', 'link', 'set', bridge, 'up']);
  await setMtu(a, 9000);
  await eventually('the switch sees MTU 9000 on both ports', async () =>
    (await sw.ctl<PortInfo[]>('port.list')).filter((p) => p.mtu === 9000).length === 2);
  const stack: Host = { ns: '', dev: bridge, port: bridge, mac: '', ip: `${net}.1` };
  await jumboThrough(t, sw, a, stack);
});

test.serial('a frame larger than the egress port MTU is dropped and counted as mtu_exceeded, never truncated', async (t) => {
  const cleanup = cleanupFor(t);
  const big = await vethHost(cleanup, '10.8.1.1/24');
  const small = await vethHost(cleanup, '10.8.1.2/24');
  const sw = await startDaemon(t, cleanup, { ports: [accessPort(big.port, 10), accessPort(small.port, 10)] });
  await setMtu(big, 9000);  // small stays at 1500
  await eventually('the switch sees MTU 9000 on the big port', async () =>
    (await sw.ctl<PortInfo[]>('port.list')).find((p) => p.name === big.port)?.mtu === 9000);
  t.is((await sw.ctl<PortInfo[]>('port.list')).find((p) => p.name === small.port)?.mtu, 1500, 'port list shows the small port at 1500');
  t.true(await pingUntil(big, small.ip), 'small frames pass');
  const before = dropsOf(await sw.ctl<Stats>('stats'), small.port, 'mtu_exceeded');
  // A 3000-byte ICMP echo (DF) towards the 1500-byte port, both while small is known
  // (the fast path's check) and after a flush (the flood through the hot loop).
  const capture = await startCapture(cleanup, { ns: small.ns, dev: small.dev, seconds: 6 });
  const ping = (n: number) => run(['ping', '-n', '-q', '-c', `${n}`, '-i', '0.2', '-W', '1', '-s', '3000', '-M', 'do', small.ip], { ns: big.ns, check: false });
  t.regex((await ping(3)).stdout, /\b0 received/, 'no answer to a frame small cannot take');
  await sw.ctl('fdb.flush');
  t.regex((await ping(3)).stdout, /\b0 received/, 'nor after a flush');
  await eventually('the drops show as mtu_exceeded on the small port', async () =>
    dropsOf(await sw.ctl<Stats>('stats'), small.port, 'mtu_exceeded') - before >= 6);
  t.true(await pingUntil(big, small.ip), 'small frames still pass');
  // big sends small nothing longer than 98 bytes but these pings: a longer frame from it
  // would be a ping cut short (or one the MTU should have stopped).
  const frames = await capture.frames();
  t.true(frames.some((f) => f.src === big.mac), 'the capture saw big\'s small frames');
  t.false(frames.some((f) => f.src === big.mac && f.len > 1000), 'no part of a big frame reached the small host');
});
