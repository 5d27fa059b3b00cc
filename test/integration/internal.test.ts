// The internal port: the daemon's bridge-named tap gives the host stack (root namespace) a
// leg on the switch, in the internal port's VLAN.
//
// The root namespace gets a random 169.254.N.0/24 link-local address on that tap only; every
// other address in the subnet lives in a namespace created here.

import { randomInt } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { accessPort, startDaemon } from '../helpers/daemon.js';
import { addHost, cleanupFor, linkExists, macOf, noIpv6, ping, pingUntil, run, uniqueName } from '../helpers/netns.js';
import { bridgeMac } from '../../src/switch/l2/mac.js';

async function hostStackPings(t: ExecutionContext, bridgeVlan: number, listBridge: boolean): Promise<void> {
  const cleanup = cleanupFor(t);
  const net = `169.254.${randomInt(100, 250)}`;
  const bridge = `${uniqueName()}b`;
  cleanup.add(() => run(['ip', 'link', 'del', bridge], { check: false })); // in case the daemon leaves it
  const inVlan = await addHost(cleanup, { cidr: `${net}.2/24` });
  const outside = await addHost(cleanup, { cidr: `${net}.3/24` });
  const otherVlan = bridgeVlan === 10 ? 20 : 10;

  const ports = [accessPort(inVlan.port, bridgeVlan), accessPort(outside.port, otherVlan)];
  if (listBridge) ports.push(accessPort(bridge, bridgeVlan, 'internal'));
  await startDaemon(t, cleanup, { bridge, ports });
  t.true(await linkExists(bridge), 'the internal port exists under the bridge name');

  noIpv6(bridge);
  await run(['ip', 'addr', 'add', `${net}.1/24`, 'dev', bridge]);
  await run(['ip', 'link', 'set', bridge, 'up']);

  t.true(await pingUntil({}, inVlan.ip), `the host stack reaches a host in VLAN ${bridgeVlan}`);
  t.is(await ping({}, inVlan.ip, { count: 5 }), 5, 'every ping answered');
  t.true(await pingUntil(inVlan, `${net}.1`), 'and the host reaches the host stack');
  t.is(await ping({}, outside.ip, { count: 2 }), 0, `no reach into VLAN ${otherVlan}`);
}

test.serial('the host stack pings a host in the VLAN of the listed internal port', async (t) => {
  await hostStackPings(t, 10, true);
});

test.serial('an unlisted internal port is an access port of VLAN 1', async (t) => {
  await hostStackPings(t, 1, false);
});

// Issue 12: a new random MAC at every start left every neighbour's ARP entry for the host
// pointing at a dead MAC after a restart.
test.serial('the internal port keeps its MAC across restarts; bridge_mac sets it', async (t) => {
  const cleanup = cleanupFor(t);
  const bridge = `${uniqueName()}b`;
  cleanup.add(() => run(['ip', 'link', 'del', bridge], { check: false }));
  const macs: string[] = [];
  for (let i = 0; i < 2; i++) {
    const sw = await startDaemon(t, cleanup, { bridge });
    macs.push(await macOf(bridge));
    await sw.stop();
    t.false(await linkExists(bridge), 'the internal port goes with the daemon');
  }
  t.is(macs[0], macs[1], 'two starts give the same MAC');
  t.is(macs[0], bridgeMac(bridge), 'derived from the bridge name and /etc/machine-id');
  t.is(parseInt(macs[0]!.slice(0, 2), 16) & 3, 2, 'locally administered unicast');
  const sw = await startDaemon(t, cleanup, { bridge, bridge_mac: '02:5A:00:12:34:56' });
  t.is(await macOf(bridge), '02:5a:00:12:34:56', 'bridge_mac is honoured');
  await sw.stop();
});
