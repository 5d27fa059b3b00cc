// active-backup bonds: failover on carrier loss, gratuitous RARPs on the new leg,
// frames on the backup leg dropped and counted, the primary taking over again.
//
//   host A ── vswitchd (bond: active-backup, access VLAN 10) ══ 2 veth pairs ══ Linux bridge ── host U
//                                                                 (namespace "upstream")
//
// The Linux bridge is the upstream switch: it floods, learns, and forgets the
// MACs of a port that loses carrier, as a physical switch would.

import { writeFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { bondStatus, dropsOf, eventually, legOf, metricValue, metricsListen, scrapeMetrics, startDaemon, vswitchctl, vswitchctlJson, type BondRow, type Daemon, type FdbRow, type PortInfo } from '../helpers/daemon.js';
import { sendFrames, startCapture } from '../helpers/frames.js';
import {
  addHost,
  addNamespace,
  addLegPairs,
  cleanupFor,
  ping,
  pingUntil,
  run,
  setLink,
  sleep,
  startPing,
  uniqueName,
  type Cleanup,
  type Host,
} from '../helpers/netns.js';

const ETH_P_RARP = 0x8035;
const ET_PROBE = 0x88b5;

interface Rig {
  cleanup: Cleanup;
  sw: Daemon;
  /** The upstream namespace (bridge, leg peers). */
  up: string;
  a: Host;
  u: Host;
  bond: string;
  legs: string[];
  /** legs[i]'s peer, a port of the upstream bridge. */
  far: string[];
}

async function rig(t: ExecutionContext, bondOpts: (legs: string[]) => Record<string, unknown> = () => ({})): Promise<Rig> {
  const cleanup = cleanupFor(t);
  const up = await addNamespace(cleanup);
  const { legs, far } = await addLegPairs(cleanup, up, 2);
  const br = `${up}br`;
  await run(['ip', 'link', 'add', br, 'type', 'bridge'], { ns: up });
  for (const f of far) await run(['ip', 'link', 'set', f, 'master', br], { ns: up });
  const [a, u] = await Promise.all([addHost(cleanup, { cidr: '10.62.0.1/24' }), addHost(cleanup, { cidr: '10.62.0.2/24' })]);
  await run(['ip', 'link', 'set', u!.port, 'netns', up]);
  await run(['ip', 'link', 'set', u!.port, 'master', br, 'up'], { ns: up });
  await setLink(br, true, up);

  const bond = `${uniqueName()}bd`;
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [{ name: a!.port, vlan: 10 }],
    bonds: [{ name: bond, members: legs, mode: 'active-backup', vlan: 10, ...bondOpts(legs) }],
  });
  await eventually('both legs usable', async () => (await bondStatus(sw, bond)).legs.every((l) => l.usable));
  return { cleanup, sw, up, a: a!, u: u!, bond, legs, far };
}

test.serial('failover on carrier loss loses fewer than 10 pings at 10 ms, and the new leg announces the hosts with RARPs', async (t) => {
  const r = await rig(t);
  t.true(await pingUntil(r.a, r.u.ip, 10_000), 'host A reaches the upstream host');
  let bond = await bondStatus(r.sw, r.bond);
  const active = bond.activeLeg!;
  t.true(r.legs.includes(active), `one leg is active (${active})`);
  t.is(bond.failovers, 0);
  const i = r.legs.indexOf(active);
  const next = r.legs[1 - i]!;

  const pinger = await startPing(r.cleanup, r.a, r.u.ip, { count: 400, interval: 0.01 });
  await sleep(1000);
  const rarps = await startCapture(r.cleanup, { dev: r.far[1 - i]!, ns: r.up, seconds: 3 });
  // Carrier away: the peer of the active leg goes down.
  await setLink(r.far[i]!, false, r.up);
  const counted = await pinger.done();
  const lost = counted.transmitted - counted.received;
  t.log(`failover under ping -i 0.01: ${lost} of ${counted.transmitted} lost`);
  t.true(lost < 10, `fewer than 10 pings lost (${lost} of ${counted.transmitted})`);

  // What an operator sees.
  const [shown] = await vswitchctlJson<BondRow[]>(r.sw.socketPath, ['bond', 'show', r.bond]);
  t.is(shown!.activeLeg, next, 'bond show: the other leg is active now');
  t.is(shown!.failovers, 1, 'bond show: one failover');
  t.like(shown!.lastFailover, { from: active, to: next });
  t.false(legOf(shown!, active).carrier, 'bond show: the old leg has no carrier');
  t.false(legOf(shown!, active).usable);
  t.true(legOf(shown!, next).active);
  // ... and what Prometheus sees.
  const { samples } = await scrapeMetrics(metricsListen(r.sw));
  t.is(metricValue(samples, 'vswitchd_bond_failovers_total', { bond: r.bond }), 1, '/metrics: one failover');
  t.is(metricValue(samples, 'vswitchd_bond_leg_active', { bond: r.bond, leg: next }), 1, '/metrics: the new leg is active');
  t.is(metricValue(samples, 'vswitchd_bond_leg_active', { bond: r.bond, leg: active }), 0);
  t.is(metricValue(samples, 'vswitchd_bond_leg_usable', { bond: r.bond, leg: active }), 0, '/metrics: the old leg is not usable');
  t.is(metricValue(samples, 'vswitchd_bond_leg_buckets', { bond: r.bond, leg: next }), 256, '/metrics: every bucket on the new leg');

  // The gratuitous frames on the new leg.
  const seen = (await rarps.frames()).filter((f) => f.ethertype === ETH_P_RARP);
  const fromA = seen.filter((f) => f.src === r.a.mac);
  t.true(fromA.length >= 1, `a RARP announcing host A's MAC left on the new leg (${seen.length} RARPs seen)`);
  t.true(fromA.every((f) => f.dst === 'ff:ff:ff:ff:ff:ff' && f.vlan === null), '... broadcast and untagged (the bond is an access port)');
  t.false(seen.some((f) => f.src === r.u.mac), 'no RARP for the upstream host, learned on the bond itself');

  t.is(await ping(r.a, r.u.ip, { count: 20, interval: 0.02 }), 20, 'traffic flows on the new leg');
  t.is(await ping(r.u, r.a.ip, { count: 20, interval: 0.02 }), 20, '... both ways');

  // The old leg comes back: without a primary the active leg stays where it is (no flapping).
  await setLink(r.far[i]!, true, r.up);
  await eventually('the old leg to be usable again', async () => legOf(await bondStatus(r.sw, r.bond), active).usable);
  await sleep(500);
  bond = await bondStatus(r.sw, r.bond);
  t.is(bond.activeLeg, next, 'the active leg stays when the old one returns');
  t.is(bond.failovers, 1);
});

test.serial('frames arriving on the backup leg are dropped and counted on that leg', async (t) => {
  const r = await rig(t);
  t.true(await pingUntil(r.a, r.u.ip, 10_000));
  const bond = await bondStatus(r.sw, r.bond);
  const i = r.legs.indexOf(bond.activeLeg!);
  const [activeFar, backupFar, backupLeg] = [r.far[i]!, r.far[1 - i]!, r.legs[1 - i]!];

  const before = dropsOf(await r.sw.stats(), backupLeg, 'bond_inactive_leg');
  const cap = await startCapture(r.cleanup, { dev: r.a.dev, ns: r.a.ns, seconds: 3 });
  // Unicast to host A, straight into each leg from the upstream side: 5 through the backup leg, 3 through the active one.
  await sendFrames({ dev: backupFar, ns: r.up, src: r.u.mac, dst: r.a.mac, ethertype: ET_PROBE, count: 5, payloadLen: 46 });
  await sendFrames({ dev: activeFar, ns: r.up, src: r.u.mac, dst: r.a.mac, ethertype: ET_PROBE, count: 3, payloadLen: 100 });
  await eventually('the drops to be counted', async () => dropsOf(await r.sw.stats(), backupLeg, 'bond_inactive_leg') - before >= 5);
  const atA = (await cap.frames()).filter((f) => f.ethertype === ET_PROBE);

  t.is(atA.filter((f) => f.len === 60).length, 0, 'no frame of the backup leg reached host A');
  t.is(atA.filter((f) => f.len === 114).length, 3, 'the frames of the active leg did');
  const after = dropsOf(await r.sw.stats(), backupLeg, 'bond_inactive_leg');
  t.true(after - before >= 5, `stats: bond_inactive_leg on ${backupLeg} rose by ${after - before}`);
});

test.serial('with a primary, the primary is active again once its carrier returns', async (t) => {
  const r = await rig(t, (legs) => ({ primary: legs[1] }));
  const [primary, other] = [r.legs[1]!, r.legs[0]!];
  t.true(await pingUntil(r.a, r.u.ip, 10_000));
  const start = await bondStatus(r.sw, r.bond);
  t.is(start.activeLeg, primary, 'the primary is active from the start');

  // The primary goes down on vswitchd's side (admin down).
  await setLink(primary, false);
  await eventually('the other leg to take over', async () => (await bondStatus(r.sw, r.bond)).activeLeg === other);
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'traffic flows on the other leg');

  await setLink(primary, true);
  await eventually('the primary to be active again', async () => (await bondStatus(r.sw, r.bond)).activeLeg === primary);
  const bond = await bondStatus(r.sw, r.bond);
  t.is(bond.failovers - start.failovers, 2, 'two failovers: away from the primary and back');
  t.like(bond.lastFailover, { from: other, to: primary });
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'traffic flows on the primary again');
  t.is(await ping(r.a, r.u.ip, { count: 20, interval: 0.02 }), 20);
});

// BondManager.add() reports the primary's carrier first, so a bond starts on its
// primary: no failover, no warning, no announcement on a bond that has not failed over.
test.serial('a bond whose primary is up at start starts on it, with no failover', async (t) => {
  const r = await rig(t, (legs) => ({ primary: legs[1] }));
  const bond = await bondStatus(r.sw, r.bond);
  t.is(bond.activeLeg, r.legs[1], 'the primary is active');
  t.is(bond.failovers, 0, 'bond show: no failover');
  t.is(bond.lastFailover, undefined, 'bond show: no last failover');
  t.false(r.sw.stdout.includes('"bond failover"'), 'no failover in the log');
});

// Reload: bonds change without a restart.
test.serial('reload changes a bond: VLAN in place, mode by rebuilding it, removal frees its legs, and it can come back', async (t) => {
  const r = await rig(t);
  t.true(await pingUntil(r.a, r.u.ip, 10_000));
  const start = await bondStatus(r.sw, r.bond);
  const bondCfg = { name: r.bond, members: r.legs, mode: 'active-backup', vlan: 10 };
  const pinned = { vlan: 10, mac: '02:5a:00:00:00:01', port: r.bond };
  const reload = async (ports: Record<string, unknown>[], bonds: Record<string, unknown>[], statics: Record<string, unknown>[] = []) => {
    const fdb = { ...(r.sw.config.fdb as object | undefined), static: statics };
    writeFileSync(r.sw.configPath, stringify({ ...r.sw.config, ports, bonds, fdb }));
    const res = await vswitchctl(r.sw.socketPath, ['reload']);
    t.is(res.code, 0, `reload exits 0: ${res.stderr}`);
    return res.stdout.trim().split('\n');
  };
  const portNames = async () => (await vswitchctlJson<PortInfo[]>(r.sw.socketPath, ['port', 'list'])).map((p) => p.name);

  // 1. Both A and the bond move to VLAN 20: the bond keeps its legs and active leg.
  let out = await reload([{ name: r.a.port, vlan: 20 }], [{ ...bondCfg, vlan: 20 }]);
  t.true(out.some((l) => l.startsWith(`changed: port ${r.bond} vlan`)), `the bond's VLAN changed in place:\n${out.join('\n')}`);
  t.false(out.some((l) => l.includes('not applied until restart')), 'nothing waits for a restart');
  let bond = await bondStatus(r.sw, r.bond);
  t.is(bond.activeLeg, start.activeLeg, 'same active leg: the bond was not rebuilt');
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'A reaches U in VLAN 20');

  // 2. Only the bond goes back to VLAN 10 (with a static entry on it): A (VLAN 20) no longer reaches U.
  out = await reload([{ name: r.a.port, vlan: 20 }], [bondCfg], [pinned]);
  t.true(out.some((l) => l.startsWith(`changed: port ${r.bond} vlan`)));
  t.is(await ping(r.a, r.u.ip, { count: 3, interval: 0.1 }), 0, 'A and the bond are in different VLANs now');

  // 3. Another mode: the bond is rebuilt, and keeps its static entry.
  out = await reload([{ name: r.a.port, vlan: 10 }], [{ ...bondCfg, mode: 'balance-tcp' }], [pinned]);
  t.true(out.includes(`changed: bond ${r.bond} rebuilt`), `mode change rebuilds the bond:\n${out.join('\n')}`);
  const fdb = await vswitchctlJson<FdbRow[]>(r.sw.socketPath, ['fdb', 'show']);
  t.like(fdb.find((e) => e.mac === pinned.mac), { port: r.bond, static: true }, 'the static entry on the rebuilt bond is there');
  await eventually('both legs usable after the rebuild', async () => (await bondStatus(r.sw, r.bond)).legs.every((l) => l.usable));
  bond = await bondStatus(r.sw, r.bond);
  t.is(bond.mode, 'balance-tcp', 'bond show: the new mode');
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'A reaches U across the rebuilt bond');

  // 4. The bond goes; its first leg becomes a plain port.
  out = await reload([{ name: r.a.port, vlan: 10 }, { name: r.legs[0]!, vlan: 10 }], []);
  t.true(out.includes(`changed: bond ${r.bond} removed`), `bond removal reported:\n${out.join('\n')}`);
  t.true(out.includes(`changed: port ${r.legs[0]} added`), 'the former leg is added as a port');
  const names = await portNames();
  t.false(names.includes(r.bond), 'port list: no bond');
  t.true(names.includes(r.legs[0]!), 'port list: the former leg is a port');
  t.false(names.includes(r.legs[1]!), 'port list: the other leg is gone');
  t.deepEqual(await vswitchctlJson<BondRow[]>(r.sw.socketPath, ['bond', 'show']), [], 'bond show: no bonds');
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'A reaches U through the plain port');

  // 5. The bond comes back over both legs.
  out = await reload([{ name: r.a.port, vlan: 10 }], [bondCfg]);
  t.true(out.includes(`changed: bond ${r.bond} added`), `bond re-added:\n${out.join('\n')}`);
  await eventually('both legs usable again', async () => (await bondStatus(r.sw, r.bond)).legs.every((l) => l.usable));
  t.true(await pingUntil(r.a, r.u.ip, 5000), 'A reaches U across the bond again');
  t.is(await ping(r.a, r.u.ip, { count: 20, interval: 0.02 }), 20);
});
