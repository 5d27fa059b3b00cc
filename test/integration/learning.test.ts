// MAC learning: known unicast goes to one port only, entries age out, MAC moves are followed.
//
// Hosts get permanent ARP entries for each other, so after set-up the only frames on the
// wire are the ones a test sends (IPv6 is off in every namespace).

import test from 'ava';
import { accessPort, eventually, startDaemon, type Daemon, type FdbRow } from '../helpers/daemon.js';
import { sendFrames, startCapture } from '../helpers/frames.js';
import { addHost, addHosts, cleanupFor, ping, pingUntil, run, sleep, staticArp, type Host } from '../helpers/netns.js';

const AGING_S = 3;

const entry = (fdb: FdbRow[], h: Host) => fdb.find((e) => e.mac === h.mac && e.vlan === 10);

async function txPackets(sw: Daemon, port: string): Promise<number> {
  return (await sw.portStats(port)).tx_packets;
}

async function learned(sw: Daemon, ...hosts: Host[]): Promise<boolean> {
  const fdb = await sw.fdb();
  return hosts.every((h) => entry(fdb, h)?.port === h.port);
}

test.serial('known unicast reaches only its port; entries age out and unknown unicast floods again', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await addHosts(cleanup, ['10.3.0.1/24', '10.3.0.2/24', '10.3.0.3/24']);
  const [a, b, c] = hosts as [Host, Host, Host];
  for (const h of hosts) for (const o of hosts) if (h !== o) await staticArp(h, o);
  const sw = await startDaemon(t, cleanup, { fdb: { aging: AGING_S }, ports: hosts.map((h) => accessPort(h.port, 10)) });

  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await eventually('a and b learned on their ports', () => learned(sw, a, b));
  const fdb = await sw.fdb();
  t.like(entry(fdb, a), { port: a.port, static: false }, 'fdb.show lists a on its port');
  t.like(entry(fdb, b), { port: b.port, static: false }, 'fdb.show lists b on its port');

  const cBefore = await txPackets(sw, c.port);
  const bBefore = await txPackets(sw, b.port);
  t.is(await ping(a, b.ip, { count: 100, interval: 0.01 }), 100, '100 pings a -> b answered');
  await sleep(300);
  t.true((await txPackets(sw, b.port)) - bBefore >= 100, "b's port sent the pings");
  t.is((await txPackets(sw, c.port)) - cBefore, 0, "c's port sent nothing: known unicast is not flooded");

  // No traffic for longer than the aging time: both entries go.
  await eventually(
    'a and b aged out of fdb.show',
    async () => {
      const now = await sw.fdb();
      return !entry(now, a) && !entry(now, b);
    },
    (AGING_S * 4 + 5) * 1000,
  );

  // Unicast a -> b is unknown again, so it floods: c sees it.
  const cap = await startCapture(cleanup, { dev: c.dev, ns: c.ns, seconds: 2 });
  const cAged = await txPackets(sw, c.port);
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: b.mac, ethertype: 0x88b5, count: 3 });
  const flooded = (await cap.frames()).filter((f) => f.src === a.mac && f.dst === b.mac);
  t.is(flooded.length, 3, 'c received the unicast frames a sent to b');
  await eventually("c's tx counter to rise", async () => (await txPackets(sw, c.port)) - cAged >= 3);
  t.pass("c's tx counter rose");
});

test.serial('a MAC that moves to another port is followed', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b] = (await addHosts(cleanup, ['10.3.0.1/24', '10.3.0.2/24'])) as [Host, Host];
  // d will take over b's MAC and IP, as a migrated VM would; until then it has no address.
  const d = await addHost(cleanup, { mac: b.mac });
  await staticArp(a, b);
  await staticArp(b, a);
  const sw = await startDaemon(t, cleanup, { ports: [a, b, d].map((h) => accessPort(h.port, 10)) });

  t.true(await pingUntil(a, b.ip), 'a reaches b');
  await eventually('b learned on its port', () => learned(sw, a, b));

  // The move: b falls silent, d takes its address and announces the MAC the way a
  // hypervisor does after a migration (a broadcast RARP).
  await run(['ip', 'addr', 'flush', 'dev', b.dev], { ns: b.ns });
  await run(['ip', 'addr', 'add', `${b.ip}/24`, 'dev', d.dev], { ns: d.ns });
  await run(['ip', 'neigh', 'replace', a.ip, 'lladdr', a.mac, 'nud', 'permanent', 'dev', d.dev], { ns: d.ns });
  await sendFrames({ dev: d.dev, ns: d.ns, src: b.mac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: 0x8035 });
  await eventually("b's MAC moved to d's port", async () => entry(await sw.fdb(), b)?.port === d.port);
  t.is(entry(await sw.fdb(), b)?.port, d.port, "fdb.show lists b's MAC on d's port");

  const bBefore = await txPackets(sw, b.port);
  const dBefore = await txPackets(sw, d.port);
  t.is(await ping(a, b.ip, { count: 5 }), 5, 'pings to the moved address are answered (by d)');
  await sleep(300);
  t.true((await txPackets(sw, d.port)) - dBefore >= 5, 'the pings went out of d\'s port');
  t.is((await txPackets(sw, b.port)) - bBefore, 0, "nothing went to b's old port");
});

test.serial('frames from the all-zero source MAC are dropped and counted like a multicast source, never learned or flooded', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b] = (await addHosts(cleanup, ['10.3.2.1/24', '10.3.2.2/24'])) as [Host, Host];
  const sw = await startDaemon(t, cleanup, { ports: [a, b].map((h) => accessPort(h.port, 10)) });
  const dropsBefore = (await sw.portStats(a.port)).drops?.['multicast_source'] ?? 0;
  const capB = await startCapture(cleanup, { dev: b.dev, ns: b.ns, seconds: 2 });
  await sendFrames({ dev: a.dev, ns: a.ns, src: '00:00:00:00:00:00', dst: 'ff:ff:ff:ff:ff:ff', ethertype: 0x88b5, count: 5 });
  await eventually('five drops counted on a', async () => ((await sw.portStats(a.port)).drops?.['multicast_source'] ?? 0) - dropsBefore >= 5);
  t.is(((await sw.portStats(a.port)).drops?.['multicast_source'] ?? 0) - dropsBefore, 5, 'drops{reason="multicast_source"} +5 on a');
  t.false((await sw.fdb()).some((e) => e.mac === '00:00:00:00:00:00'), 'the all-zero MAC is not in the FDB');
  t.is((await capB.frames()).filter((f) => f.ethertype === 0x88b5).length, 0, 'none was flooded to b');
});
