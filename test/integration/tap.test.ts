// VM tap ports: the daemon creates the tap; a stand-in VM on it is reachable from a veth host.

import test from 'ava';
import { accessPort, startDaemon } from '../helpers/daemon.js';
import { startVm } from '../helpers/frames.js';
import { addHost, cleanupFor, linkExists, ping, pingUntil, randomMac, run, uniqueName } from '../helpers/netns.js';

test.serial('a veth host pings a VM on a tap port the daemon created', async (t) => {
  const cleanup = cleanupFor(t);
  const tap = `${uniqueName()}t`;
  cleanup.add(() => run(['ip', 'link', 'del', tap], { check: false })); // in case the daemon leaves it
  const host = await addHost(cleanup, { cidr: '10.2.0.1/24' });
  const other = await addHost(cleanup, { cidr: '10.2.0.2/24' });
  t.false(await linkExists(tap), 'the tap does not exist before the daemon starts');

  await startDaemon(t, cleanup, {
    ports: [accessPort(tap, 10, 'tap'), accessPort(host.port, 10), accessPort(other.port, 20)],
  });
  t.true(await linkExists(tap), 'the daemon created the tap');

  const vmIp = '10.2.0.100';
  const vm = await startVm(cleanup, { tap, mac: randomMac(), ip: vmIp, seconds: 15 });
  t.true(await pingUntil(host, vmIp), 'the host reaches the VM through the switch');
  t.is(await ping(host, vmIp, { count: 5 }), 5, 'every ping answered');
  t.is(await ping(other, vmIp, { count: 2 }), 0, 'a host in another VLAN does not reach the VM');

  const frames = await vm.stop();
  t.true(frames.some((f) => f.replied === 'arp' && f.src === host.mac), 'the VM answered ARP from the host');
  t.true(frames.filter((f) => f.replied === 'icmp').length >= 5, 'the VM answered the pings');
  t.false(frames.some((f) => f.src === other.mac), 'the VM saw nothing from the other VLAN');
});
