// balance-tcp bonds (hash l3l4): each flow leaves on one leg, flows spread over
// the legs, and when a leg goes only its flows move.
//
//   host A ── vswitchd (bond: balance-tcp, access VLAN 10) ══ 2 or 3 veth pairs ══ namespace "upstream"
//
// The upstream namespace only captures what arrives on each leg's far end (no
// bridge: a switch that does not aggregate the legs would loop the bond's
// floods back into it). The upstream "host" is a MAC that vswitchd learns on
// the bond from one frame; host A reaches its IP through a static ARP entry.

import test, { type ExecutionContext } from 'ava';
import { bondStatus, eventually, legOf, startDaemon, type Daemon } from '../helpers/daemon.js';
import { sendFrames, startCapture, type Frame } from '../helpers/frames.js';
import { addHost, addLegPairs, addNamespace, cleanupFor, randomMac, run, setLink, uniqueName, type Cleanup, type Host } from '../helpers/netns.js';

const FLOWS = 64;
const BASE_PORT = 20000;
const SRC_PORT = 40000;
const UP_IP = '10.63.0.2';
const ET_PROBE = 0x88b5;

interface Rig {
  cleanup: Cleanup;
  sw: Daemon;
  up: string;
  a: Host;
  upMac: string;
  bond: string;
  legs: string[];
  far: string[];
}

async function rig(t: ExecutionContext, legCount: number): Promise<Rig> {
  const cleanup = cleanupFor(t);
  const up = await addNamespace(cleanup);
  const { legs, far } = await addLegPairs(cleanup, up, legCount);
  const a = await addHost(cleanup, { cidr: '10.63.0.1/24' });
  const upMac = randomMac();
  await run(['ip', 'neigh', 'replace', UP_IP, 'lladdr', upMac, 'nud', 'permanent', 'dev', a.dev], { ns: a.ns });

  const bond = `${uniqueName()}bd`;
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [{ name: a.port, vlan: 10 }],
    bonds: [{ name: bond, members: legs, mode: 'balance-tcp', hash: 'l3l4', vlan: 10 }],
  });
  await eventually('every leg usable', async () => (await bondStatus(sw, bond)).legs.every((l) => l.usable));
  // The upstream host speaks once, so that vswitchd knows it behind the bond.
  await sendFrames({ dev: far[0]!, ns: up, src: upMac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: ET_PROBE });
  await eventually('the upstream MAC learned on the bond', async () => (await sw.fdb()).some((e) => e.mac === upMac && e.port === bond));
  return { cleanup, sw, up, a, upMac, bond, legs, far };
}

/**
 * Sends `rounds` UDP datagrams of each of the 64 flows (A:40000 -> UP_IP:20000+i) from
 * host A, captures every usable leg's far end, and returns the legs each flow was seen on.
 */
async function flowsOnLegs(r: Rig, rounds = 3): Promise<{ legsOf: Map<number, Set<string>>; frames: number }> {
  const watched = [];
  for (let i = 0; i < r.legs.length; i++) {
    if (!legOf(await bondStatus(r.sw, r.bond), r.legs[i]!).carrier) continue;
    watched.push({ leg: r.legs[i]!, cap: await startCapture(r.cleanup, { dev: r.far[i]!, ns: r.up, seconds: 3 }) });
  }
  const script = [
    'import socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("${r.a.ip}", ${SRC_PORT}))`,
    `for _ in range(${rounds}):`,
    `    for i in range(${FLOWS}):`,
    `        s.sendto(b"x" * 32, ("${UP_IP}", ${BASE_PORT} + i))`,
    '        time.sleep(0.002)',
  ].join('\n');
  await run(['python3', '-c', script], { ns: r.a.ns });
  const legsOf = new Map<number, Set<string>>();
  let frames = 0;
  const ours = (f: Frame) => f.ip?.dst === UP_IP && f.ip.proto === 17 && f.l4 !== undefined && f.l4.sport === SRC_PORT;
  for (const { leg, cap } of watched) {
    for (const f of (await cap.frames()).filter(ours)) {
      frames++;
      const flow = f.l4!.dport - BASE_PORT;
      if (!legsOf.has(flow)) legsOf.set(flow, new Set());
      legsOf.get(flow)!.add(leg);
    }
  }
  return { legsOf, frames };
}

/** flow -> its one leg; fails the test for a flow missing or seen on two legs. */
function placement(t: ExecutionContext, seen: Map<number, Set<string>>): Map<number, string> {
  const out = new Map<number, string>();
  for (let flow = 0; flow < FLOWS; flow++) {
    const legs = [...(seen.get(flow) ?? [])];
    if (legs.length !== 1) t.fail(`flow ${flow} (udp dport ${BASE_PORT + flow}) seen on ${legs.length} legs: ${legs.join(', ')}`);
    else out.set(flow, legs[0]!);
  }
  return out;
}

function countPerLeg(place: Map<number, string>, legs: string[]): Record<string, number> {
  const counts = Object.fromEntries(legs.map((l) => [l, 0]));
  for (const leg of place.values()) counts[leg]!++;
  return counts;
}

test.serial('64 UDP flows spread over both legs, each flow on exactly one leg; a leg going down moves only its flows', async (t) => {
  const r = await rig(t, 2);
  const first = await flowsOnLegs(r);
  t.is(first.frames, FLOWS * 3, 'every datagram left the bond exactly once');
  const before = placement(t, first.legsOf);
  t.is(before.size, FLOWS, 'each of the 64 flows on exactly one leg');
  const counts = countPerLeg(before, r.legs);
  t.log(`flows per leg: ${JSON.stringify(counts)}`);
  for (const leg of r.legs) t.true(counts[leg]! >= FLOWS / 4, `${leg} carries at least 25% of the flows (${counts[leg]})`);

  // The same flows, sent again, stay where they were.
  const again = placement(t, (await flowsOnLegs(r)).legsOf);
  t.deepEqual([...again], [...before], 'a second round takes the same legs');

  // leg 0 loses carrier: its flows go to leg 1, leg 1's flows stay.
  await setLink(r.far[0]!, false, r.up);
  await eventually(`${r.legs[0]} out of the bond`, async () => !legOf(await bondStatus(r.sw, r.bond), r.legs[0]!).usable);
  const after = placement(t, (await flowsOnLegs(r)).legsOf);
  t.is(after.size, FLOWS, 'every flow still gets through');
  t.true([...after.values()].every((leg) => leg === r.legs[1]), `all flows on ${r.legs[1]}`);
  const bond = await bondStatus(r.sw, r.bond);
  t.is(legOf(bond, r.legs[1]!).buckets, 256, 'bond show: every bucket on the remaining leg');
});

test.serial('with three legs, a leg that goes moves only its own flows, and one that returns takes flows from the others only', async (t) => {
  const r = await rig(t, 3);
  const before = placement(t, (await flowsOnLegs(r)).legsOf);
  const counts = countPerLeg(before, r.legs);
  t.log(`flows per leg: ${JSON.stringify(counts)}`);
  for (const leg of r.legs) t.true(counts[leg]! > 0, `${leg} carries flows (${counts[leg]})`);

  const [gone] = [r.legs[1]!];
  await setLink(r.far[1]!, false, r.up);
  await eventually(`${gone} out of the bond`, async () => !legOf(await bondStatus(r.sw, r.bond), gone).usable);
  const during = placement(t, (await flowsOnLegs(r)).legsOf);
  t.is(during.size, FLOWS, 'every flow still gets through');
  let moved = 0;
  for (const [flow, leg] of before) {
    if (leg === gone) {
      t.not(during.get(flow), gone, `flow ${flow} left ${gone}`);
      moved++;
    } else {
      t.is(during.get(flow), leg, `flow ${flow} stayed on ${leg}`);
    }
  }
  const spread = countPerLeg(new Map([...during].filter(([flow]) => before.get(flow) === gone)), [r.legs[0]!, r.legs[2]!]);
  t.log(`${moved} flows of ${gone} moved: ${JSON.stringify(spread)}`);

  // The leg returns: flows move only onto it, none between the others.
  await setLink(r.far[1]!, true, r.up);
  await eventually(`${gone} back in the bond`, async () => legOf(await bondStatus(r.sw, r.bond), gone).usable);
  const back = placement(t, (await flowsOnLegs(r)).legsOf);
  t.is(back.size, FLOWS);
  let returned = 0;
  for (const [flow, leg] of during) {
    if (back.get(flow) !== leg) {
      t.is(back.get(flow), gone, `flow ${flow} moved from ${leg} only to the returning leg`);
      returned++;
    }
  }
  t.log(`${returned} flows moved onto ${gone} when it returned`);
  t.true(returned > 0, 'the returning leg gets flows again');
});

test.serial('a flood leaves the bond once, on one leg, and a frame from the bond is not flooded back into it', async (t) => {
  const r = await rig(t, 2);
  const caps = await Promise.all(r.far.map((dev) => startCapture(r.cleanup, { dev, ns: r.up, seconds: 3 })));
  const capA = await startCapture(r.cleanup, { dev: r.a.dev, ns: r.a.ns, seconds: 3 });
  // 10 broadcasts from host A, and 5 from the upstream side into leg 0.
  await sendFrames({ dev: r.a.dev, ns: r.a.ns, src: r.a.mac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: ET_PROBE, count: 10, payloadLen: 46 });
  await sendFrames({ dev: r.far[0]!, ns: r.up, src: r.upMac, dst: 'ff:ff:ff:ff:ff:ff', ethertype: ET_PROBE, count: 5, payloadLen: 100 });
  const onLegs = await Promise.all(caps.map(async (c) => (await c.frames()).filter((f) => f.ethertype === ET_PROBE)));
  const fromA = onLegs.map((fs) => fs.filter((f) => f.src === r.a.mac).length);
  t.is(fromA[0]! + fromA[1]!, 10, `each broadcast left the bond once (per leg: ${fromA.join(', ')})`);
  t.is(onLegs.flat().filter((f) => f.src === r.upMac).length, 0, 'no frame that came in on the bond went back out of it');
  t.is((await capA.frames()).filter((f) => f.ethertype === ET_PROBE && f.src === r.upMac).length, 5, 'they reached host A');
});
