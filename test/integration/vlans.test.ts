// Access VLANs: hosts in one VLAN talk, hosts in different VLANs cannot, even on one IP subnet.

import test, { type ExecutionContext } from 'ava';
import { accessPort, startDaemon } from '../helpers/daemon.js';
import { startCapture } from '../helpers/frames.js';
import { addHosts, cleanupFor, iperf3, ping, pingUntil, type Host } from '../helpers/netns.js';

// All four hosts share one IP subnet: only the switch keeps VLAN 10 and VLAN 20 apart.
async function fourHosts(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const hosts = await addHosts(cleanup, ['10.1.0.1/24', '10.1.0.2/24', '10.1.0.3/24', '10.1.0.4/24']);
  const [a1, a2, b1, b2] = hosts as [Host, Host, Host, Host];
  const sw = await startDaemon(t, cleanup, {
    ports: [accessPort(a1.port, 10), accessPort(a2.port, 10), accessPort(b1.port, 20), accessPort(b2.port, 20)],
  });
  return { cleanup, sw, a1, a2, b1, b2 };
}

test.serial('hosts in the same access VLAN ping each other and carry TCP', async (t) => {
  const { a1, a2, b1, b2 } = await fourHosts(t);

  t.true(await pingUntil(a1, a2.ip), 'VLAN 10: a1 reaches a2');
  t.is(await ping(a1, a2.ip, { count: 5 }), 5, 'VLAN 10: every ping answered');
  t.true(await pingUntil(b2, b1.ip), 'VLAN 20: b2 reaches b1');
  t.is(await ping(b2, b1.ip, { count: 5 }), 5, 'VLAN 20: every ping answered');

  const tcp = await iperf3(a1, a2, { seconds: 5 });
  t.log(`iperf3 VLAN 10: ${tcp.gbps.toFixed(2)} Gbit/s, ${tcp.retransmits} retransmits`);
  t.true(tcp.gbps > 0, 'TCP moves data');
  t.true(tcp.seconds >= 4.5, 'the iperf3 run completed');
});

test.serial('hosts in different VLANs cannot reach each other', async (t) => {
  const { cleanup, a1, a2, b1 } = await fourHosts(t);
  t.true(await pingUntil(a1, a2.ip), 'the switch forwards within VLAN 10');

  // a1 (VLAN 10) asks for b1's address (VLAN 20): its ARP requests flood VLAN 10 (a2
  // sees them) and must not reach b1.
  const far = await startCapture(cleanup, { dev: b1.dev, ns: b1.ns, seconds: 6 });
  const near = await startCapture(cleanup, { dev: a2.dev, ns: a2.ns, seconds: 6 });
  t.is(await ping(a1, b1.ip, { count: 3, wait: 1 }), 0, 'no ping across VLANs');
  const asks = (f: { src: string; arp?: { op: number; tpa: string } }) =>
    f.src === a1.mac && f.arp?.op === 1 && f.arp.tpa === b1.ip;
  t.true((await near.frames()).some(asks), "a2, in a1's VLAN, saw a1's ARP requests for b1");
  const leaked = (await far.frames()).filter((f) => f.src === a1.mac);
  t.deepEqual(leaked, [], "b1 saw none of a1's frames (ARP requests included)");
});
