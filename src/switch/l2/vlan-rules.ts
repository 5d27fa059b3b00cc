// VLAN rules of the switch. These functions are the reference semantics that
// the C++ hot loop implements; when the two disagree, this file is right.
//
// Port modes
//   access {vlan}                 untagged port in exactly one VLAN.
//   trunk  {trunks, nativeVlan?}  tagged port carrying the listed VLANs, plus
//                                 nativeVlan (if set) untagged.
//
// Ingress: which VLAN does an arriving frame belong to? (null = drop)
//   access: untagged, or priority-tagged (VID 0: 802.1p only, no VLAN) -> vlan;
//           any other tag -> drop (a VM must not pick its own VLAN).
//   trunk:  VID in trunks, or VID == nativeVlan -> VID;
//           untagged or VID 0 -> nativeVlan, or drop when there is none;
//           anything else (unlisted VID, reserved 4095) -> drop.
//
// Egress: a frame in VLAN v leaves a port only if the port carries v, and
//   access: untagged (tag popped);
//   trunk:  tagged with v, except untagged when v == nativeVlan.
//   PCP is kept when the tag is pushed back.
//
// Flooding (broadcast, unknown unicast, multicast): a frame never crosses
// VLANs; it goes to members(v) minus the ingress port, where members(v) are
// the up ports that carry v. A bond is one port here, so a frame is never
// flooded back into the bond it came in on.

import type { VlanMode } from '../types.js';

export interface FloodPort {
  index: number;
  vlan: VlanMode;
  up: boolean;
}

const MIN_VID = 1;
const MAX_VID = 4094; // 0 means "priority tag only", 4095 is reserved

function isUsableVid(vid: number): boolean {
  return Number.isInteger(vid) && vid >= MIN_VID && vid <= MAX_VID;
}

export function portCarriesVlan(mode: VlanMode, vlan: number): boolean {
  if (mode.mode === 'access') return mode.vlan === vlan;
  return mode.nativeVlan === vlan || mode.trunks.includes(vlan);
}

/** Whether a frame of this VLAN leaves the port with an 802.1Q tag (meaningful only if the port carries it). */
export function egressTagged(mode: VlanMode, vlan: number): boolean {
  if (mode.mode === 'access') return false;
  return vlan !== mode.nativeVlan;
}

/** The VLAN an arriving frame belongs to, from its tag (null = untagged); null result = drop. */
export function ingressVlan(mode: VlanMode, tagVid: number | null): number | null {
  const untagged = tagVid === null || tagVid === 0;
  if (mode.mode === 'access') return untagged ? mode.vlan : null;
  if (untagged) return mode.nativeVlan ?? null;
  if (!isUsableVid(tagVid)) return null;
  return portCarriesVlan(mode, tagVid) ? tagVid : null;
}

/** For each VLAN id (ascending), the sorted indices of the up ports that carry it. */
export function vlanMembers(ports: FloodPort[]): Map<number, number[]> {
  const members = new Map<number, Set<number>>();
  const add = (vlan: number, index: number): void => {
    let set = members.get(vlan);
    if (!set) members.set(vlan, (set = new Set()));
    set.add(index);
  };
  for (const port of ports) {
    if (!port.up) continue;
    if (port.vlan.mode === 'access') {
      add(port.vlan.vlan, port.index);
    } else {
      for (const vlan of port.vlan.trunks) add(vlan, port.index);
      if (port.vlan.nativeVlan !== undefined) add(port.vlan.nativeVlan, port.index);
    }
  }
  const sorted = new Map<number, number[]>();
  for (const vlan of [...members.keys()].sort((a, b) => a - b)) {
    sorted.set(vlan, [...members.get(vlan)!].sort((a, b) => a - b));
  }
  return sorted;
}

/** Ports a BUM frame of this VLAN is flooded to: the VLAN's members except the ingress port. */
export function floodTargets(members: Map<number, number[]>, vlan: number, ingressPort: number): number[] {
  return (members.get(vlan) ?? []).filter((index) => index !== ingressPort);
}

/**
 * The VLAN mode from a port's (or bond's) config fields. Neither vlan nor
 * trunks = access VLAN 1, like a fresh switch. Conflicting fields throw; the
 * config validator reports them with file positions first, this is the backstop.
 */
export function vlanMode(port: { vlan?: number; trunks?: number[]; native_vlan?: number }): VlanMode {
  if (port.trunks !== undefined) {
    if (port.vlan !== undefined) {
      throw new Error('a port is either access (vlan) or trunk (trunks), not both');
    }
    const trunks = [...new Set(port.trunks)].sort((a, b) => a - b);
    return port.native_vlan === undefined
      ? { mode: 'trunk', trunks }
      : { mode: 'trunk', trunks, nativeVlan: port.native_vlan };
  }
  if (port.native_vlan !== undefined) {
    throw new Error('native_vlan applies to trunk ports only (set trunks, or use vlan for an access port)');
  }
  return { mode: 'access', vlan: port.vlan ?? 1 };
}
