import test from 'ava';

import {
  egressTagged,
  floodTargets,
  ingressVlan,
  portCarriesVlan,
  vlanMembers,
  vlanMode,
  type FloodPort,
} from '../../src/switch/l2/vlan-rules.js';
import type { VlanMode } from '../../src/switch/types.js';

const access10: VlanMode = { mode: 'access', vlan: 10 };
const trunk: VlanMode = { mode: 'trunk', trunks: [10, 20] };
const trunkNative1: VlanMode = { mode: 'trunk', trunks: [10, 20], nativeVlan: 1 };

// --- membership ---

test('vlanMembers: access ports in their VLAN, trunks in every listed VLAN and their native VLAN', (t) => {
  const ports: FloodPort[] = [
    { index: 4, vlan: trunkNative1, up: true },
    { index: 1, vlan: access10, up: true },
    { index: 2, vlan: { mode: 'access', vlan: 20 }, up: true },
    { index: 3, vlan: trunk, up: true },
  ];
  t.deepEqual(
    [...vlanMembers(ports)],
    [
      [1, [4]],
      [10, [1, 3, 4]],
      [20, [2, 3, 4]],
    ],
  );
});

test('vlanMembers excludes down ports', (t) => {
  const ports: FloodPort[] = [
    { index: 1, vlan: access10, up: true },
    { index: 2, vlan: access10, up: false },
    { index: 3, vlan: { mode: 'access', vlan: 30 }, up: false },
  ];
  t.deepEqual([...vlanMembers(ports)], [[10, [1]]]);
});

test('vlanMembers lists a trunk once when its native VLAN is also in trunks', (t) => {
  const ports: FloodPort[] = [{ index: 7, vlan: { mode: 'trunk', trunks: [10], nativeVlan: 10 }, up: true }];
  t.deepEqual([...vlanMembers(ports)], [[10, [7]]]);
});

test('vlanMembers of no ports is empty', (t) => {
  t.is(vlanMembers([]).size, 0);
});

test('flood set is the VLAN members minus the ingress port, never other VLANs', (t) => {
  const members = vlanMembers([
    { index: 1, vlan: access10, up: true },
    { index: 2, vlan: access10, up: true },
    { index: 3, vlan: { mode: 'access', vlan: 20 }, up: true },
    { index: 4, vlan: trunk, up: true },
  ]);
  t.deepEqual(floodTargets(members, 10, 1), [2, 4]);
  t.deepEqual(floodTargets(members, 20, 4), [3]);
  t.deepEqual(floodTargets(members, 99, 1), []);
});

test('portCarriesVlan for access, trunk and native VLAN', (t) => {
  t.true(portCarriesVlan(access10, 10));
  t.false(portCarriesVlan(access10, 20));
  t.true(portCarriesVlan(trunk, 20));
  t.false(portCarriesVlan(trunk, 1));
  t.true(portCarriesVlan(trunkNative1, 1));
  t.false(portCarriesVlan(trunkNative1, 30));
});

// --- egress ---

test('egressTagged: access never tags, trunk tags all but its native VLAN', (t) => {
  t.false(egressTagged(access10, 10));
  t.true(egressTagged(trunk, 10));
  t.true(egressTagged(trunkNative1, 20));
  t.false(egressTagged(trunkNative1, 1));
});

// --- ingress ---

test('ingressVlan on an access port: untagged and VID 0 priority tags join its VLAN, other tags drop', (t) => {
  t.is(ingressVlan(access10, null), 10);
  t.is(ingressVlan(access10, 0), 10);
  t.is(ingressVlan(access10, 20), null);
  t.is(ingressVlan(access10, 10), null, 'a VM may not tag, not even with its own VLAN');
});

test('ingressVlan on a trunk with a native VLAN', (t) => {
  t.is(ingressVlan(trunkNative1, 10), 10);
  t.is(ingressVlan(trunkNative1, 20), 20);
  t.is(ingressVlan(trunkNative1, 1), 1, 'a tagged frame of the native VLAN is accepted');
  t.is(ingressVlan(trunkNative1, null), 1);
  t.is(ingressVlan(trunkNative1, 0), 1, 'priority-tagged frames belong to the native VLAN');
  t.is(ingressVlan(trunkNative1, 30), null);
  t.is(ingressVlan(trunkNative1, 4095), null);
});

test('ingressVlan on a trunk without a native VLAN drops untagged and priority-tagged frames', (t) => {
  t.is(ingressVlan(trunk, 10), 10);
  t.is(ingressVlan(trunk, null), null);
  t.is(ingressVlan(trunk, 0), null);
  t.is(ingressVlan(trunk, 30), null);
});

test('ingressVlan ignores a reserved VID even if a bad config lists it', (t) => {
  const odd: VlanMode = { mode: 'trunk', trunks: [4095] };
  t.is(ingressVlan(odd, 4095), null);
});

// --- config mapping ---

test('vlanMode: neither vlan nor trunks is access VLAN 1', (t) => {
  t.deepEqual(vlanMode({}), { mode: 'access', vlan: 1 });
});

test('vlanMode: vlan gives an access port', (t) => {
  t.deepEqual(vlanMode({ vlan: 10 }), { mode: 'access', vlan: 10 });
});

test('vlanMode: trunks give a trunk port, with native VLAN when set, trunks sorted and unique', (t) => {
  t.deepEqual(vlanMode({ trunks: [20, 10, 20] }), { mode: 'trunk', trunks: [10, 20] });
  t.deepEqual(vlanMode({ trunks: [10, 20], native_vlan: 1 }), { mode: 'trunk', trunks: [10, 20], nativeVlan: 1 });
});

test('vlanMode: conflicting fields throw', (t) => {
  t.throws(() => vlanMode({ vlan: 10, trunks: [20] }), { message: /not both/ });
  t.throws(() => vlanMode({ vlan: 10, native_vlan: 1 }), { message: /native_vlan/ });
  t.throws(() => vlanMode({ native_vlan: 1 }), { message: /native_vlan/ });
});
