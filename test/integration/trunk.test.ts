// Trunk ports: tags pop toward access ports, push toward trunks (PCP kept), and frames a
// trunk must not accept are dropped and counted.
//
// The kernel here has no 802.1Q module, so tagged traffic comes from frames.py (raw sockets).

import test, { type ExecutionContext } from 'ava';
import { accessPort, dropsOf, eventually, startDaemon, trunkPort } from '../helpers/daemon.js';
import { sendFrames, startCapture, type Frame } from '../helpers/frames.js';
import { addHost, cleanupFor, sleep, type Host } from '../helpers/netns.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
// Local experimental ethertypes mark the frames of each step.
const ET_10 = 0x88b5;
const ET_20 = 0x88b6;
const ET_BAD = 0x88b7;

// trunk and trunk2: trunks [10, 20], no native VLAN; a10 and a20: access ports.
async function topology(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [trunk, trunk2, a10, a20] = await Promise.all([1, 2, 3, 4].map(() => addHost(cleanup)));
  const sw = await startDaemon(t, cleanup, {
    ports: [
      trunkPort(trunk!.port, [10, 20]),
      trunkPort(trunk2!.port, [10, 20]),
      accessPort(a10!.port, 10),
      accessPort(a20!.port, 20),
    ],
  });
  return { cleanup, sw, trunk: trunk!, trunk2: trunk2!, a10: a10!, a20: a20! };
}

const only = (frames: Frame[], ethertype: number) => frames.filter((f) => f.ethertype === ethertype);

test.serial('tagged frames from a trunk reach their VLAN untagged, and other trunks tagged with PCP kept', async (t) => {
  const { cleanup, trunk, trunk2, a10, a20 } = await topology(t);
  const capture = (h: Host) => startCapture(cleanup, { dev: h.dev, ns: h.ns, seconds: 3 });
  const c10 = await capture(a10);
  const c20 = await capture(a20);
  const ct2 = await capture(trunk2);
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: a10.mac, vlan: 10, pcp: 5, ethertype: ET_10, count: 3 });
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: a20.mac, vlan: 20, pcp: 3, ethertype: ET_20, count: 3 });
  const at10 = await c10.frames();
  const at20 = await c20.frames();
  const atT2 = await ct2.frames();

  t.is(only(at10, ET_10).length, 3, 'VLAN 10 frames reach the VLAN 10 access host');
  t.true(only(at10, ET_10).every((f) => f.vlan === null && f.src === trunk.mac), '... untagged');
  t.is(only(at10, ET_20).length, 0, 'no VLAN 20 frame reaches the VLAN 10 host');

  t.is(only(at20, ET_20).length, 3, 'VLAN 20 frames reach the VLAN 20 access host');
  t.true(only(at20, ET_20).every((f) => f.vlan === null), '... untagged');
  t.is(only(at20, ET_10).length, 0, 'no VLAN 10 frame reaches the VLAN 20 host');

  // The destinations are unknown, so both floods also reach the other trunk, tagged.
  t.deepEqual(
    only(atT2, ET_10).map((f) => [f.vlan, f.pcp]),
    [[10, 5], [10, 5], [10, 5]],
    'the other trunk gets VLAN 10 frames tagged 10 with PCP 5',
  );
  t.deepEqual(
    only(atT2, ET_20).map((f) => [f.vlan, f.pcp]),
    [[20, 3], [20, 3], [20, 3]],
    'the other trunk gets VLAN 20 frames tagged 20 with PCP 3',
  );
});

test.serial("an access host's frames leave the trunk tagged with its VLAN", async (t) => {
  const { cleanup, trunk, a10, a20 } = await topology(t);
  // The trunk host announces itself in both VLANs, so the replies are known unicast.
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: BROADCAST, vlan: 10, ethertype: ET_10 });
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: BROADCAST, vlan: 20, ethertype: ET_20 });
  await sleep(500);

  const cap = await startCapture(cleanup, { dev: trunk.dev, ns: trunk.ns, seconds: 3 });
  await sendFrames({ dev: a10.dev, ns: a10.ns, src: a10.mac, dst: trunk.mac, ethertype: ET_10, count: 3 });
  await sendFrames({ dev: a20.dev, ns: a20.ns, src: a20.mac, dst: trunk.mac, ethertype: ET_20, count: 3 });
  const seen = await cap.frames();

  t.deepEqual(
    only(seen, ET_10).map((f) => [f.src, f.vlan, f.pcp]),
    [[a10.mac, 10, 0], [a10.mac, 10, 0], [a10.mac, 10, 0]],
    'frames from the VLAN 10 access port arrive tagged 10',
  );
  t.deepEqual(
    only(seen, ET_20).map((f) => [f.src, f.vlan, f.pcp]),
    [[a20.mac, 20, 0], [a20.mac, 20, 0], [a20.mac, 20, 0]],
    'frames from the VLAN 20 access port arrive tagged 20',
  );
});

async function expectDropped(
  t: ExecutionContext,
  send: { vlan?: number },
  reason: string,
): Promise<void> {
  const { cleanup, sw, trunk, trunk2, a10, a20 } = await topology(t);
  const before = dropsOf(await sw.stats(), trunk.port, reason);
  const caps = await Promise.all(
    [a10, a20, trunk2].map((h) => startCapture(cleanup, { dev: h.dev, ns: h.ns, seconds: 3 })),
  );
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: BROADCAST, ethertype: ET_BAD, count: 5, ...send });

  await eventually(`${reason} drops on ${trunk.port} to grow by 5`, async () => {
    return dropsOf(await sw.stats(), trunk.port, reason) - before >= 5;
  });
  t.is(dropsOf(await sw.stats(), trunk.port, reason) - before, 5, `stats counts each frame under ${reason}`);
  for (const cap of caps) t.is(only(await cap.frames(), ET_BAD).length, 0, 'no other port received the frames');
}

test.serial('untagged frames on a trunk without native VLAN are dropped and counted', async (t) => {
  await expectDropped(t, {}, 'untagged_no_native');
});

test.serial('frames tagged with a VLAN outside the trunk list are dropped and counted', async (t) => {
  await expectDropped(t, { vlan: 30 }, 'vlan_not_allowed');
});
