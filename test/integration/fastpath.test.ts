// The fast path: known unicast is switched in the kernel (by the port's tc program, or
// its XDP program with fast_path: xdp), the rest crosses to the AF_XDP hot loop;
// learning and aging stay right although the fast path never tells the control plane
// about the frames it switches. The suite runs these with the hook of its pass
// (VSWITCHD_TEST_FAST_PATH tc or xdp; auto, the default, is tc on veths).
import test from 'ava';
import { accessPort, eventually, startDaemon, trunkPort, type Daemon } from '../helpers/daemon.js';
import { sendFrames, startCapture } from '../helpers/frames.js';
import { addHost, addHosts, cleanupFor, ping, pingUntil, sleep, staticArp, type Host } from '../helpers/netns.js';

interface PathStats {
  rx_packets: number;
  tx_packets: number;
  paths: { afxdp: { rx_packets: number; tx_packets: number }; fast: { rx_packets: number; tx_packets: number } };
}

const FAST_MODE = process.env.VSWITCHD_TEST_FAST_PATH === 'xdp' ? 'xdp' : 'auto';

async function portPaths(sw: Daemon, port: string): Promise<PathStats> {
  const stats = await sw.ctl<{ ports: Record<string, PathStats> }>('stats');
  return stats.ports[port]!;
}

test.serial('after learning, unicast takes the fast path; broadcast and unknown unicast take AF_XDP', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b, c] = (await addHosts(cleanup, ['10.7.0.1/24', '10.7.0.2/24', '10.7.0.3/24'])) as [Host, Host, Host];
  await staticArp(a, b);
  await staticArp(b, a);
  const sw = await startDaemon(t, cleanup, { datapath: { fast_path: FAST_MODE }, ports: [a, b, c].map((h) => accessPort(h.port, 10)) });
  const ports = await sw.ctl<{ name: string; fast_path?: string }[]>('port.list');
  t.is(ports.find((p) => p.name === a.port)?.fast_path, 'yes', 'port list says the veth port is fast-path capable');

  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await eventually('a and b learned', async () => {
    const fdb = await sw.fdb();
    return fdb.some((e) => e.mac === a.mac) && fdb.some((e) => e.mac === b.mac);
  });
  const before = await portPaths(sw, a.port);
  t.is(await ping(a, b.ip, { count: 50, interval: 0.01 }), 50);
  await sleep(300);
  const after = await portPaths(sw, a.port);
  t.true(after.paths.fast.rx_packets - before.paths.fast.rx_packets >= 50, 'the 50 echo requests were switched in the kernel');
  t.is(after.paths.afxdp.rx_packets - before.paths.afxdp.rx_packets, 0, 'none crossed to the AF_XDP path');
  t.true(after.rx_packets - before.rx_packets >= 50, 'the port total counts both paths');

  // Broadcast and unknown unicast cross to the hot loop, which floods them.
  const b0 = await portPaths(sw, a.port);
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: 0x88b5, count: 5 });
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: '02:99:99:99:99:99', ethertype: 0x88b5, count: 5 });
  await sleep(300);
  const b1 = await portPaths(sw, a.port);
  t.is(b1.paths.afxdp.rx_packets - b0.paths.afxdp.rx_packets, 10, 'broadcast and unknown unicast took the AF_XDP path');
  t.is(b1.paths.fast.rx_packets - b0.paths.fast.rx_packets, 0);
  const cTx = (await portPaths(sw, c.port)).paths.afxdp.tx_packets;
  t.true(cTx >= 10, 'and were flooded to c');
});

test.serial('a MAC that talks only through the fast path does not age; one that stops does', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b] = (await addHosts(cleanup, ['10.7.1.1/24', '10.7.1.2/24'])) as [Host, Host];
  await staticArp(a, b);
  await staticArp(b, a);
  const sw = await startDaemon(t, cleanup, { datapath: { fast_path: FAST_MODE }, fdb: { aging: 3 }, ports: [a, b].map((h) => accessPort(h.port, 10)) });
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await eventually('a and b learned', async () => (await sw.fdb()).length >= 2);
  const xdpBefore = (await portPaths(sw, a.port)).paths.fast.rx_packets;
  // 6 s of pings (twice the aging time), all on the fast path.
  t.is(await ping(a, b.ip, { count: 60, interval: 0.1 }), 60);
  const xdpAfter = (await portPaths(sw, a.port)).paths.fast.rx_packets;
  t.true(xdpAfter - xdpBefore >= 60, 'the pings went through the fast path');
  const fdb = await sw.fdb();
  t.truthy(fdb.find((e) => e.mac === a.mac), 'a is still learned after twice the aging time');
  t.truthy(fdb.find((e) => e.mac === b.mac), 'b is still learned');
  // Silence: both age out.
  await eventually('a and b aged out', async () => (await sw.fdb()).length === 0, 15_000);
  t.pass();
});

test.serial('a MAC that moves leaves the fast path and is relearned on its new port', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b, c] = (await addHosts(cleanup, ['10.7.2.1/24', '10.7.2.2/24', '10.7.2.3/24'])) as [Host, Host, Host];
  await staticArp(a, b);
  await staticArp(b, a);
  const sw = await startDaemon(t, cleanup, { datapath: { fast_path: FAST_MODE }, ports: [a, b, c].map((h) => accessPort(h.port, 10)) });
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await eventually('a learned on its port', async () => (await sw.fdb()).some((e) => e.mac === a.mac && e.port === a.port));
  // a's MAC now shows up on c's port.
  await sendFrames({ dev: c.dev, ns: c.ns, src: a.mac, dst: b.mac, ethertype: 0x88b5, count: 3 });
  await eventually("a's MAC moved to c's port", async () => (await sw.fdb()).some((e) => e.mac === a.mac && e.port === c.port));
  t.pass();
});

// The tag work done in XDP (bpf_xdp_adjust_head): popped towards an access port,
// pushed towards a trunk, PCP kept. Generator frames, since the kernel here has no 802.1Q.
test.serial('known unicast between a trunk and an access port: the fast path pops and pushes the tag', async (t) => {
  const cleanup = cleanupFor(t);
  const [trunk, access] = (await Promise.all([addHost(cleanup), addHost(cleanup)])) as [Host, Host];
  const sw = await startDaemon(t, cleanup, { datapath: { fast_path: FAST_MODE }, ports: [trunkPort(trunk.port, [10]), accessPort(access.port, 10)] });
  // Both hosts speak once (through the hot loop, which learns them).
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: 'ff:ff:ff:ff:ff:ff', vlan: 10, ethertype: 0x88b5 });
  await sendFrames({ dev: access.dev, ns: access.ns, src: access.mac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: 0x88b5 });
  await eventually('both hosts learned', async () => (await sw.fdb()).filter((e) => e.mac === trunk.mac || e.mac === access.mac).length === 2);

  const before = await portPaths(sw, trunk.port);
  const atAccess = await startCapture(cleanup, { dev: access.dev, ns: access.ns, seconds: 3 });
  const atTrunk = await startCapture(cleanup, { dev: trunk.dev, ns: trunk.ns, seconds: 3 });
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: access.mac, vlan: 10, pcp: 5, ethertype: 0x88b6, count: 5 });
  await sendFrames({ dev: access.dev, ns: access.ns, src: access.mac, dst: trunk.mac, ethertype: 0x88b7, count: 5 });
  const popped = (await atAccess.frames()).filter((f) => f.ethertype === 0x88b6);
  const pushed = (await atTrunk.frames()).filter((f) => f.ethertype === 0x88b7);
  const after = await portPaths(sw, trunk.port);

  t.is(after.paths.fast.rx_packets - before.paths.fast.rx_packets, 5, 'the trunk host\'s 5 frames were switched in the kernel');
  t.is(after.paths.fast.tx_packets - before.paths.fast.tx_packets, 5, '... and so were the access host\'s 5 towards the trunk');
  t.deepEqual(popped.map((f) => [f.src, f.vlan]), Array(5).fill([trunk.mac, null]), 'they reach the access host untagged');
  t.deepEqual(pushed.map((f) => [f.src, f.vlan, f.pcp]), Array(5).fill([access.mac, 10, 0]), 'the access host\'s reach the trunk tagged 10');
});
