// An 802.3ad (LACP) bond against a real, independent partner: Open vSwitch's
// userspace datapath (datapath_type=netdev), started by the test in a namespace
// of its own, with a balance-tcp bond of two veth legs and lacp=active, fast.
//
//   host A ── vswitchd (bond: lacp, fast, access VLAN 10) ══ 2 veth pairs ══ OVS bond0 ── host B
//
// What a user would look at is asserted on both sides: `ovs-appctl lacp/show`
// and `vswitchctl bond show`.

import { readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { bondStatus, eventually, legOf, metricValue, metricsListen, scrapeMetrics, startDaemon, vswitchctl, vswitchctlJson, type BondRow, type Daemon } from '../helpers/daemon.js';
import { sendFrames, startCapture } from '../helpers/frames.js';
import { ovsLog, startOvs, type LacpShow, type Ovs } from '../helpers/ovs.js';
import {
  addHost,
  addNamespace,
  addLegPairs,
  cleanupFor,
  iperf3,
  ping,
  pingUntil,
  randomMac,
  run,
  setLink,
  sleep,
  startPing,
  uniqueName,
  type Cleanup,
  type Host,
} from '../helpers/netns.js';

const OVS_BOND = 'bond0';
const OVS_KEY = 7;

interface Rig {
  cleanup: Cleanup;
  sw: Daemon;
  ovs: Ovs;
  ns: string;
  a: Host;
  b: Host;
  bond: string;
  /** vswitchd's legs, in member order. */
  legs: string[];
  /** Their peers inside the OVS namespace (legs[i] faces far[i]). */
  far: string[];
  /** OVS's LACP system id for bond0. */
  ovsSysId: string;
  /** vswitchd's LACP system id (its internal port's MAC). */
  swSysId: string;
}

/**
 * The topology above. With `stray`, vswitchd's bond gets a third leg whose peer is
 * a single-interface LACP port on a second OVS bridge with another system id. With
 * `spare`, OVS's bond0 gets a third member that leads nowhere (a veth inside OVS's
 * namespace), so that removing one of the other two leaves bond0 a bond: OVS
 * announces a port of a one-member bond as Individual, with another system
 * priority, which would change the partner of the remaining leg too (as would
 * OVS's default aggregation key, a member's port id: the rig pins it).
 */
async function rig(t: ExecutionContext, opts: { stray?: string; spare?: boolean } = {}): Promise<Rig> {
  const cleanup = cleanupFor(t);
  const ns = await addNamespace(cleanup);
  const n = opts.stray ? 3 : 2;
  const { legs, far } = await addLegPairs(cleanup, ns, n);
  const [a, b] = await Promise.all([addHost(cleanup, { cidr: '10.61.0.1/24' }), addHost(cleanup, { cidr: '10.61.0.2/24' })]);
  // Open vSwitch's userspace datapath (the partner) leaves partial checksums unfilled (it
  // reads its ports through AF_PACKET without offload metadata), so TCP across it needs
  // full checksums from both hosts: its limit, not vswitchd's (which carries them as they are).
  for (const h of [a!, b!]) await run(['ethtool', '-K', h.dev, 'tx', 'off'], { ns: h.ns });
  // Host B hangs off OVS: move its switch end into OVS's namespace.
  await run(['ip', 'link', 'set', b!.port, 'netns', ns]);
  await setLink(b!.port, true, ns);

  const ovs = await startOvs(cleanup, ns);
  t.teardown(() => {
    if (!t.passed) console.error(`=== ${t.title}: ovs-vswitchd log (${ovs.dir})\n${ovsLog(ovs)}`);
  });
  const ovsSysId = randomMac();
  await ovs.vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev');
  const spare = `${ns}s0`;
  if (opts.spare) {
    await run(['ip', 'link', 'add', spare, 'type', 'veth', 'peer', 'name', `${ns}s1`], { ns });
    await setLink(spare, true, ns);
    await setLink(`${ns}s1`, true, ns);
  }
  await ovs.vsctl(
    'add-bond', 'br0', OVS_BOND, far[0]!, far[1]!, ...(opts.spare ? [spare] : []), 'lacp=active', 'bond_mode=balance-tcp',
    '--', 'set', 'port', OVS_BOND, 'other_config:lacp-time=fast', `other_config:lacp-system-id=${ovsSysId}`,
  );
  // Pin the aggregation key: by default OVS takes a member's port id, and changes it when that member leaves.
  const members = [far[0]!, far[1]!, ...(opts.spare ? [spare] : [])];
  await ovs.vsctl(...members.flatMap((m) => ['--', 'set', 'interface', m, `other_config:lacp-aggregation-key=${OVS_KEY}`]));
  await ovs.vsctl('add-port', 'br0', b!.port);
  if (opts.stray) {
    await ovs.vsctl('add-br', 'br1', '--', 'set', 'bridge', 'br1', 'datapath_type=netdev');
    await ovs.vsctl(
      'add-port', 'br1', far[2]!,
      '--', 'set', 'port', far[2]!, 'lacp=active', 'other_config:lacp-time=fast', `other_config:lacp-system-id=${opts.stray}`,
    );
  }

  const bond = `${uniqueName()}bd`;
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [{ name: a!.port, vlan: 10 }],
    bonds: [{ name: bond, members: legs, mode: 'lacp', vlan: 10, lacp: { mode: 'active', rate: 'fast', fallback: 'none' } }],
  });
  const swSysId = readFileSync(`/sys/class/net/${(sw.config as { bridge: string }).bridge}/address`, 'utf8').trim();
  return { cleanup, sw, ovs, ns, a: a!, b: b!, bond, legs, far, ovsSysId, swSysId };
}

/** OVS sees member `dev` negotiated with vswitchd: current, attached, partner collecting and distributing. */
function ovsMemberInSync(show: LacpShow, dev: string, swSysId: string): boolean {
  const m = show.members[dev];
  return (
    m !== undefined &&
    m.status === 'current attached' &&
    m.partnerSysId === swSysId &&
    ['synchronized', 'collecting', 'distributing'].every((w) => m.partnerState.includes(w) && m.actorState.includes(w))
  );
}

/** vswitchd sees the leg usable and in sync with OVS's bond. */
function swLegInSync(bond: BondRow, leg: string, ovsSysId: string): boolean {
  const l = legOf(bond, leg);
  return l.usable && l.lacp?.collectingDistributing === true && l.lacp.inSync && l.lacp.partnerSystem === ovsSysId;
}

async function negotiated(r: Rig, legs = [0, 1]): Promise<void> {
  await eventually(
    'both sides to report every leg in sync',
    async () => {
      const show = await r.ovs.lacpShow(OVS_BOND);
      const bond = await bondStatus(r.sw, r.bond);
      return (
        show.status.includes('negotiated') &&
        legs.every((i) => ovsMemberInSync(show, r.far[i]!, r.swSysId) && swLegInSync(bond, r.legs[i]!, r.ovsSysId))
      );
    },
    20_000,
  );
}

test.serial('LACP with Open vSwitch: both sides report both legs in sync; hosts ping and run iperf3 across', async (t) => {
  const r = await rig(t);
  await negotiated(r);

  // Open vSwitch's view.
  const show = await r.ovs.lacpShow(OVS_BOND);
  t.regex(show.status, /negotiated/, 'ovs-appctl lacp/show: status negotiated');
  for (const dev of r.far.slice(0, 2)) {
    const m = show.members[dev]!;
    t.is(m.status, 'current attached', `ovs: member ${dev} current attached`);
    t.is(m.partnerSysId, r.swSysId, `ovs: ${dev}'s partner is vswitchd's system id`);
    for (const w of ['activity', 'timeout', 'aggregation', 'synchronized', 'collecting', 'distributing']) {
      t.true(m.partnerState.includes(w), `ovs: ${dev}'s partner state has ${w} (${m.partnerState.join(' ')})`);
    }
  }
  const ovsBond = await r.ovs.bondShow(OVS_BOND);
  t.is(ovsBond.lacpStatus, 'negotiated', 'ovs-appctl bond/show: lacp_status negotiated');
  t.true(r.far.every((dev) => ovsBond.members[dev]?.enabled), 'ovs-appctl bond/show: both members enabled');

  // vswitchd's view, as `vswitchctl bond show NAME --json` prints it.
  const [bond] = await vswitchctlJson<BondRow[]>(r.sw.socketPath, ['bond', 'show', r.bond]);
  t.is(bond!.mode, 'lacp');
  const ovsKey = show.members[r.far[0]!]!.actorKey;
  t.is(ovsKey, OVS_KEY);
  for (const leg of r.legs) {
    const l = legOf(bond!, leg);
    t.true(l.usable, `${leg} usable`);
    t.true(l.carrier, `${leg} carrier up`);
    t.true(l.lacp!.collectingDistributing, `${leg} collecting and distributing`);
    t.true(l.lacp!.inSync, `${leg} in sync`);
    t.is(l.lacp!.partnerSystem, r.ovsSysId, `${leg}'s partner system is OVS's sys_id`);
    t.is(l.lacp!.partnerKey, ovsKey, `${leg}'s partner key is OVS's aggregation key`);
    t.regex(l.lacp!.partnerStateText, /synchronized collecting distributing/);
    t.true(l.lacp!.rx > 0 && l.lacp!.tx > 0, `${leg} LACPDUs both ways (rx ${l.lacp!.rx}, tx ${l.lacp!.tx})`);
    t.is(l.lacp!.rxErrors, 0);
  }
  t.is(bond!.legs.reduce((sum, l) => sum + l.buckets, 0), 256, 'every hash bucket has a leg');
  t.true(bond!.legs.every((l) => l.buckets > 0), 'both legs have buckets');

  // The table an operator reads.
  const text = await vswitchctl(r.sw.socketPath, ['bond', 'show', r.bond]);
  t.is(text.code, 0);
  for (const leg of r.legs) {
    const line = text.stdout.split('\n').find((l) => l.startsWith(leg + ' '));
    t.truthy(line, `the table has a row for ${leg}`);
    t.regex(line ?? '', new RegExp(`synchronized collecting distributing\\s+${r.ovsSysId}`), `${leg}: partner in sync, OVS's system id`);
  }

  // Traffic across.
  t.true(await pingUntil(r.a, r.b.ip, 10_000), 'host A reaches host B across both switches');
  t.is(await ping(r.a, r.b.ip, { count: 10, interval: 0.05 }), 10, 'no ping lost');
  t.is(await ping(r.b, r.a.ip, { count: 10, interval: 0.05 }), 10, 'no ping lost the other way');
  const fwd = await iperf3(r.a, r.b, { seconds: 5, parallel: 4 });
  const rev = await iperf3(r.a, r.b, { seconds: 5, parallel: 4, reverse: true });
  t.log(`iperf3 -P 4 across the LACP bond: A->B ${fwd.gbps.toFixed(2)} Gbit/s (${fwd.retransmits} retransmits), B->A ${rev.gbps.toFixed(2)} Gbit/s (${rev.retransmits} retransmits)`);
  t.true(fwd.gbps > 0.01 && rev.gbps > 0.01, 'iperf3 ran both ways');
  const stats = await r.sw.stats();
  const drops = [r.a.port, ...r.legs].map((p) => `${p} ${JSON.stringify(Object.fromEntries(Object.entries(stats.ports[p]!.drops).filter(([, n]) => n > 0)))}`);
  t.log(`vswitchd drops after iperf3: ${drops.join(', ')}; tx per leg: ${JSON.stringify((await bondStatus(r.sw, r.bond)).legTx)}`);
});

/** Takes one leg down (on vswitchd's side or OVS's) under a 10 ms ping and brings it back. */
async function legDown(t: ExecutionContext, side: 'vswitchd' | 'ovs'): Promise<void> {
  const r = await rig(t);
  await negotiated(r);
  t.true(await pingUntil(r.a, r.b.ip, 10_000));

  const [down, other] = side === 'vswitchd' ? [0, 1] : [1, 0];
  const pinger = await startPing(r.cleanup, r.a, r.b.ip, { count: 500, interval: 0.01 });
  await sleep(1500);
  if (side === 'vswitchd') await setLink(r.legs[down]!, false);
  else await setLink(r.far[down]!, false, r.ns);
  const counted = await pinger.done();
  t.log(`${side} side ${side === 'vswitchd' ? r.legs[down] : r.far[down]} down under ping -i 0.01: ${counted.transmitted - counted.received} of ${counted.transmitted} lost`);

  const bond = await bondStatus(r.sw, r.bond);
  t.false(legOf(bond, r.legs[down]!).carrier, 'bond show: the leg has no carrier');
  t.false(legOf(bond, r.legs[down]!).usable, 'bond show: the leg is not usable');
  t.is(legOf(bond, r.legs[down]!).buckets, 0, 'bond show: no bucket on it');
  t.true(legOf(bond, r.legs[other]!).usable, 'bond show: the other leg is still usable');
  t.is(legOf(bond, r.legs[other]!).buckets, 256, '... and carries every bucket');
  const ovsBond = await r.ovs.bondShow(OVS_BOND);
  t.false(ovsBond.members[r.far[down]!]?.enabled, 'ovs: the member is disabled');
  t.true(ovsBond.members[r.far[other]!]?.enabled, 'ovs: the other member is still enabled');
  t.true(counted.received >= counted.transmitted - 20, `traffic kept flowing (${counted.received}/${counted.transmitted})`);
  t.is(await ping(r.a, r.b.ip, { count: 20, interval: 0.02 }), 20, 'on one leg, no ping is lost');
  t.is(await ping(r.b, r.a.ip, { count: 20, interval: 0.02 }), 20, '... either way');

  // Back up: the leg negotiates again and rejoins.
  if (side === 'vswitchd') await setLink(r.legs[down]!, true);
  else await setLink(r.far[down]!, true, r.ns);
  await negotiated(r);
  t.true((await bondStatus(r.sw, r.bond)).legs.every((l) => l.buckets > 0), 'the returning leg gets buckets again');
  t.is(await ping(r.a, r.b.ip, { count: 20, interval: 0.02 }), 20, 'both legs again: no ping lost');
}

test.serial('a leg taken down on the vswitchd side: traffic stays on the other leg; the leg rejoins when it comes back', async (t) => {
  await legDown(t, 'vswitchd');
});

test.serial('a leg taken down on the Open vSwitch side: traffic stays on the other leg; the leg rejoins when it comes back', async (t) => {
  await legDown(t, 'ovs');
});

test.serial('a partner that falls silent: the legs leave 3 s after its last LACPDU, and rejoin when it speaks again', async (t) => {
  const r = await rig(t);
  await negotiated(r);
  t.true(await pingUntil(r.a, r.b.ip, 10_000));

  // Freeze OVS right after an LACPDU reached leg 0, so that its 3 s run from a known moment.
  const rx0 = legOf(await bondStatus(r.sw, r.bond), r.legs[0]!).lacp!.rx;
  let t0 = 0;
  for (const end = Date.now() + 5000; Date.now() < end; ) {
    if (legOf(await bondStatus(r.sw, r.bond), r.legs[0]!).lacp!.rx > rx0) {
      r.ovs.signalVswitchd('SIGSTOP');
      t0 = Date.now();
      break;
    }
    await sleep(10);
  }
  t.not(t0, 0, 'an LACPDU arrived within 5 s (fast rate)');

  const leftAt: Record<string, number> = {};
  while (Object.keys(leftAt).length < 2 && Date.now() - t0 < 8000) {
    const bond = await bondStatus(r.sw, r.bond);
    for (const leg of r.legs) if (!legOf(bond, leg).usable && leftAt[leg] === undefined) leftAt[leg] = Date.now() - t0;
    await sleep(25);
  }
  t.log(`partner silent (ovs-vswitchd SIGSTOP right after an LACPDU on ${r.legs[0]}): legs left after ${r.legs.map((l) => `${l} ${leftAt[l] ?? 'never'} ms`).join(', ')}`);
  t.true(leftAt[r.legs[0]!] !== undefined && leftAt[r.legs[0]!]! >= 2500 && leftAt[r.legs[0]!]! <= 4500,
    `${r.legs[0]} left 3 s after the last LACPDU (${leftAt[r.legs[0]!]} ms)`);
  // Leg 1's last LACPDU may have come up to 1 s before leg 0's.
  t.true(leftAt[r.legs[1]!] !== undefined && leftAt[r.legs[1]!]! >= 1500 && leftAt[r.legs[1]!]! <= 4500,
    `${r.legs[1]} left within the timeout too (${leftAt[r.legs[1]!]} ms)`);

  let bond = await bondStatus(r.sw, r.bond);
  for (const l of bond.legs) {
    t.true(l.carrier, `${l.name} still has carrier: only LACP took it out`);
    t.false(l.lacp!.collectingDistributing, `${l.name} no longer collecting/distributing`);
    t.false(l.lacp!.inSync, `${l.name} not in sync`);
    t.is(l.buckets, 0, `${l.name} has no bucket`);
  }
  // Three more seconds of silence: the partner is forgotten (DEFAULTED).
  await eventually('both legs defaulted', async () => (await bondStatus(r.sw, r.bond)).legs.every((l) => /defaulted/.test(l.lacp!.actorStateText)), 6000);
  bond = await bondStatus(r.sw, r.bond);
  t.true(bond.legs.every((l) => l.lacp!.partnerSystem === undefined), 'bond show: no partner system any more');

  // The partner speaks again: both legs negotiate and traffic flows.
  r.ovs.signalVswitchd('SIGCONT');
  await negotiated(r);
  t.true(await pingUntil(r.a, r.b.ip, 10_000), 'traffic flows again once the partner is back');
});

test.serial('a leg whose partner falls silent leaves on its own; the other leg keeps the traffic', async (t) => {
  const r = await rig(t, { spare: true });
  await negotiated(r);
  t.true(await pingUntil(r.a, r.b.ip, 10_000));

  // Take far[0] out of OVS's bond: the device stays up (carrier on), but nothing speaks LACP on it.
  const uuid = (await r.ovs.vsctl('get', 'interface', r.far[0]!, '_uuid')).trim();
  const t0 = Date.now();
  await r.ovs.vsctl('remove', 'port', OVS_BOND, 'interfaces', uuid);
  await eventually(`${r.legs[0]} to leave`, async () => !legOf(await bondStatus(r.sw, r.bond), r.legs[0]!).usable, 8000);
  const took = Date.now() - t0;
  t.log(`${r.legs[0]}: partner port removed, leg left after ${took} ms`);
  t.true(took >= 1500, `not before the timeout (${took} ms)`); // the last LACPDU may predate the removal by up to 1 s

  const bond = await bondStatus(r.sw, r.bond);
  t.true(legOf(bond, r.legs[0]!).carrier, 'the silent leg still has carrier');
  t.false(legOf(bond, r.legs[0]!).lacp!.collectingDistributing);
  t.true(legOf(bond, r.legs[1]!).usable, 'the other leg stays usable');
  t.is(legOf(bond, r.legs[1]!).buckets, 256);
  t.is(await ping(r.a, r.b.ip, { count: 20, interval: 0.02 }), 20, 'traffic flows on the other leg');
});

test.serial('a leg facing a different partner system is not aggregated', async (t) => {
  const stray = randomMac();
  const r = await rig(t, { stray });
  await negotiated(r, [0, 1]);
  // The stray leg hears its partner but stays out of the aggregate.
  await eventually(`${r.legs[2]} to hear the other system`, async () => legOf(await bondStatus(r.sw, r.bond), r.legs[2]!).lacp?.partnerSystem === stray, 10_000);
  await sleep(3000); // longer than the 2 s aggregation wait: it would have attached by now

  const bond = await bondStatus(r.sw, r.bond);
  const s = legOf(bond, r.legs[2]!);
  t.is(s.lacp!.partnerSystem, stray, 'bond show: the third leg names the other system');
  t.false(s.lacp!.selected, '... is not selected');
  t.false(s.usable, '... is not usable');
  t.false(s.lacp!.collectingDistributing, '... is not collecting/distributing');
  t.notRegex(s.lacp!.actorStateText, /synchronized/, '... and tells its partner it is out of sync');
  t.is(s.buckets, 0, '... and gets no bucket');
  for (const i of [0, 1]) t.true(swLegInSync(bond, r.legs[i]!, r.ovsSysId), `${r.legs[i]} stays aggregated with OVS's bond0`);

  const other = (await r.ovs.lacpShow(r.far[2]!)).members[r.far[2]!]!;
  t.is(other.partnerSysId, r.swSysId, 'ovs: the stray port hears vswitchd');
  t.false(other.partnerState.includes('synchronized'), `ovs: ... which is not in sync with it (${other.partnerState.join(' ')})`);
  t.is(await ping(r.a, r.b.ip, { count: 20, interval: 0.02 }), 20, 'traffic flows over the two aggregated legs');
});

// The Marker responder (802.1AX 6.5.4.2): a partner's Marker PDU on a leg gets a
// Marker Response on that leg. No partner here (a passive LACP bond on plain
// veths), so the only slow-protocols frame the leg can send is the response.
test.serial('a Marker PDU on an LACP leg is answered with a Marker Response on that leg', async (t) => {
  const cleanup = cleanupFor(t);
  const ns = await addNamespace(cleanup);
  const { legs, far } = await addLegPairs(cleanup, ns, 2);
  const bond = `${uniqueName()}bd`;
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    bonds: [{ name: bond, members: legs, mode: 'lacp', vlan: 10, lacp: { mode: 'passive', rate: 'fast', fallback: 'none' } }],
  });
  const legMac = readFileSync(`/sys/class/net/${legs[1]}/address`, 'utf8').trim();
  const cap = await startCapture(cleanup, { dev: far[1]!, ns, seconds: 3 });
  // Marker Information from 02:aa:bb:cc:dd:ee: requester port 7, system 02:11:22:33:44:55, transaction 0xdeadbeef.
  const marker = '0180c2000002' + '02aabbccddee' + '8809' + '0201' + '0110' + '0007' + '021122334455' + 'deadbeef' + '0000' + '0000' + '00'.repeat(90);
  await sendFrames({ dev: far[1]!, ns, raw: marker });
  await eventually('the marker to be answered', async () => legOf(await bondStatus(sw, bond), legs[1]!).lacp?.markers === 1, 5000);
  const slow = (await cap.frames()).filter((f) => f.ethertype === 0x8809);
  t.is(slow.length, 1, `one slow-protocols frame left ${legs[1]}: the response`);
  t.like(slow[0], { dst: '01:80:c2:00:00:02', src: legMac, len: 124 }, 'to the slow-protocols address, from the leg');
  const row = legOf(await bondStatus(sw, bond), legs[1]!);
  t.like(row.lacp, { markers: 1, rx: 0, rxErrors: 0 }, 'bond show: one marker answered, no LACPDU counted');
  t.is(legOf(await bondStatus(sw, bond), legs[0]!).lacp?.markers, 0, 'the other leg answered none');
  const table = await vswitchctl(sw.socketPath, ['bond', 'show', bond]);
  t.regex(table.stdout, /MARKERS/, 'the bond show table has a markers column');
  const { samples } = await scrapeMetrics(metricsListen(sw));
  t.is(metricValue(samples, 'vswitchd_lacp_markers_total', { bond, leg: legs[1]! }), 1, '/metrics: one marker answered on the leg');
  t.is(metricValue(samples, 'vswitchd_lacp_pdus_rx_total', { bond, leg: legs[1]! }), 0, '/metrics: no LACPDU received');
});
