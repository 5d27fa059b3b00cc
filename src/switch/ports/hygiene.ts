// What vswitchd asks of the host's devices, through the usual tools (ip, tc,
// ethtool, sysctl). Each change made is reported so the daemon can log it.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fnv1a32 } from '../bond/flow-hash.js';
import { projectRoot } from '../project-root.js';
import type { DeviceCounters } from './kernel-drops.js';

const run = promisify(execFile);

export async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { timeout: 10_000 });
  return stdout;
}

export interface LinkInfo {
  ifindex: number;
  /** Kernel link kind: "veth", "tun", or "" for a physical NIC. */
  kind: string;
  up: boolean;
  /** Root qdisc name, e.g. "noqueue". */
  qdisc: string;
  rxQueues: number;
  /** The device's MTU. */
  mtu: number;
  /** veth: the peer's ifindex and, when it lives in another namespace, its netns id. */
  peerIfindex?: number;
  peerNetnsId?: number;
}

interface IpLink {
  ifindex: number;
  flags?: string[];
  qdisc?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  num_rx_queues?: number;
  mtu?: number;
}

export async function linkInfo(name: string): Promise<LinkInfo | undefined> {
  if (!existsSync(`/sys/class/net/${name}`)) return undefined;
  const [link] = JSON.parse(await sh('ip', ['-d', '-j', 'link', 'show', 'dev', name])) as IpLink[];
  return link ? toLinkInfo(name, link) : undefined;
}

/** linkInfo() of several devices from one `ip` run (a start with many ports: ~30 ms per run saved). */
export async function linkInfos(names: string[]): Promise<Map<string, LinkInfo>> {
  const wanted = new Set(names);
  const out = new Map<string, LinkInfo>();
  for (const link of JSON.parse(await sh('ip', ['-d', '-j', 'link', 'show'])) as (IpLink & { ifname: string })[]) {
    if (!wanted.has(link.ifname)) continue;
    try {
      out.set(link.ifname, toLinkInfo(link.ifname, link));
    } catch {
      // gone meanwhile: attach() asks again
    }
  }
  return out;
}

function toLinkInfo(name: string, link: IpLink): LinkInfo {
  const queues = readdirSync(`/sys/class/net/${name}/queues`).filter((q) => q.startsWith('rx-')).length;
  return {
    ifindex: link.ifindex,
    kind: link.linkinfo?.info_kind ?? '',
    up: link.flags?.includes('UP') ?? false,
    qdisc: link.qdisc ?? '',
    rxQueues: Math.max(1, queues),
    mtu: link.mtu ?? 1500,
    ...(link.link_index !== undefined ? { peerIfindex: link.link_index } : {}),
    ...(link.link_netnsid !== undefined ? { peerNetnsId: link.link_netnsid } : {}),
  };
}

/** Named network namespace that has netns id `nsid` as seen from here. */
async function namespaceOfNsid(nsid: number): Promise<string | undefined> {
  const out = await sh('ip', ['-j', 'netns', 'list-id']).catch(() => '[]');
  const ids = JSON.parse(out || '[]') as { nsid: number; name?: string }[];
  return ids.find((e) => e.nsid === nsid)?.name;
}

async function ifnameByIndex(ifindex: number, ns?: string): Promise<string | undefined> {
  const args = ns ? ['-n', ns, '-j', 'link', 'show'] : ['-j', 'link', 'show'];
  const links = JSON.parse(await sh('ip', args)) as { ifindex: number; ifname: string }[];
  return links.find((l) => l.ifindex === ifindex)?.ifname;
}

/** What vswitchd changed on a device it does not own (a veth peer), to put back when the port goes. */
export interface PeerChanges {
  peer: string;
  ns?: string;
  /** We turned its tx checksum offload off (it was on). */
  txOff?: boolean;
  /** We attached the XDP pass program (bpf/peer_pass.bpf.c). */
  xdpPass?: boolean;
}

/**
 * Prepares a port device, returning what it changed: noqueue qdisc (frames go
 * straight to the driver), no IPv6 on the switch side (the host stack must not
 * talk on a switch port), the device up. Nothing on the other side of a veth,
 * except with the XDP hook (`datapath.fast_path: xdp`), which needs two
 * changes there: tx checksum offload off (an XDP redirect or the AF_XDP copy
 * would leave a partial checksum unfilled) and, for the fast path towards the
 * port, an XDP pass program (NAPI, without which XDP_REDIRECT into the veth is
 * dropped). Those are returned as `peer`, to be put back by restorePeer().
 */
export async function prepareDevice(
  name: string,
  info: LinkInfo,
  hook: 'xdp' | 'tc',
  fastPath = false,
): Promise<{ changes: string[]; warnings: string[]; peerTakesRedirect: boolean; peer?: PeerChanges }> {
  const changes: string[] = [];
  const warnings: string[] = [];
  let peerTakesRedirect = false;
  if (info.qdisc !== 'noqueue') {
    await sh('tc', ['qdisc', 'replace', 'dev', name, 'root', 'noqueue']);
    changes.push('qdisc noqueue');
  }
  if (disableIpv6(name)) changes.push('ipv6 disabled on the switch side');
  if (!info.up) {
    await sh('ip', ['link', 'set', 'dev', name, 'up']);
    changes.push('link up');
  }
  if (hook !== 'xdp' || info.kind !== 'veth' || info.peerIfindex === undefined) return { changes, warnings, peerTakesRedirect };
  const ns = info.peerNetnsId !== undefined ? await namespaceOfNsid(info.peerNetnsId) : undefined;
  const peerName = info.peerNetnsId !== undefined && !ns ? undefined : await ifnameByIndex(info.peerIfindex, ns);
  if (!peerName) {
    warnings.push('veth peer is in an unnamed namespace: run `ethtool -K <peer> tx off` there, or TCP checksums break (or use datapath.fast_path: auto, which needs nothing of the peer)');
    return { changes, warnings, peerTakesRedirect };
  }
  const peer: PeerChanges = { peer: peerName, ...(ns ? { ns } : {}) };
  const prefix = ns ? ['ip', 'netns', 'exec', ns] : [];
  const where = `peer ${peerName}${ns ? ` (netns ${ns})` : ''}`;
  const [ecmd, ...eargs] = [...prefix, 'ethtool', '-k', peerName];
  const txOn = /^tx-checksumming: on/m.test(await sh(ecmd!, eargs).catch(() => ''));
  if (txOn) {
    const [cmd, ...rest] = [...prefix, 'ethtool', '-K', peerName, 'tx', 'off'];
    await sh(cmd!, rest).then(
      () => {
        peer.txOff = true;
        changes.push(`tx checksum offload off on ${where} (put back when the port goes)`);
      },
      (err: Error) => warnings.push(`could not turn tx checksum offload off on peer ${peerName}: ${err.message}`),
    );
  }
  if (fastPath) {
    // A frame redirected into a veth is dropped unless the peer runs NAPI; an
    // XDP program on the peer turns it on (see bpf/peer_pass.bpf.c).
    const links = JSON.parse(await sh('ip', [...(ns ? ['-n', ns] : []), '-d', '-j', 'link', 'show', 'dev', peerName])) as { xdp?: { prog?: { name?: string } } }[];
    const xdp = links[0]?.xdp;
    if (xdp) {
      peerTakesRedirect = true;  // the peer has an XDP program: NAPI is on
      // Ours, left by a run that was killed: take it off with the port this time.
      if (xdp.prog?.name?.startsWith('vswitchd_peer')) peer.xdpPass = true;
    } else {
      const [xcmd, ...xrest] = [...prefix, 'ip', 'link', 'set', 'dev', peerName, 'xdpdrv', 'obj', peerPassObject, 'sec', 'xdp.frags'];
      await sh(xcmd!, xrest).then(
        () => {
          peerTakesRedirect = true;
          peer.xdpPass = true;
          changes.push(`XDP pass program on ${where} (fast path towards it; removed when the port goes)`);
        },
        (err: Error) => warnings.push(`could not attach XDP to peer ${peerName}; no fast path towards it: ${err.message}`),
      );
    }
  }
  return { changes, warnings, peerTakesRedirect, ...(peer.txOff || peer.xdpPass ? { peer } : {}) };
}

/** Puts back what prepareDevice changed on a veth peer; returns what it did, for the log. */
export async function restorePeer(p: PeerChanges): Promise<string[]> {
  const done: string[] = [];
  const where = `peer ${p.peer}${p.ns ? ` (netns ${p.ns})` : ''}`;
  if (p.xdpPass) {
    await sh('ip', [...(p.ns ? ['-n', p.ns] : []), 'link', 'set', 'dev', p.peer, 'xdpdrv', 'off']).then(
      () => done.push(`XDP pass program removed from ${where}`),
      () => undefined,  // the peer is gone with its namespace
    );
  }
  if (p.txOff) {
    const [cmd, ...rest] = [...(p.ns ? ['ip', 'netns', 'exec', p.ns] : []), 'ethtool', '-K', p.peer, 'tx', 'on'];
    await sh(cmd!, rest).then(
      () => done.push(`tx checksum offload back on on ${where}`),
      () => undefined,
    );
  }
  return done;
}

/** Writes /proc directly (one process spawn less per port); true when it changed. */
function disableIpv6(dev: string): boolean {
  const ipv6 = `/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`;
  if (!existsSync(ipv6) || readFileSync(ipv6, 'utf8').trim() === '1') return false;
  writeFileSync(ipv6, '1');
  return true;
}

/**
 * The punt pair of a port (tc hook): two veth ends owned by vswitchd in its own
 * namespace. The tc program redirects the port's slow-path frames into `near`;
 * the kernel finishes their offloads on that transmit (tx checksum and tx VLAN
 * offload are off on `near`: it segments GSO frames, fills in checksums and puts
 * the tag in the frame), and `far`'s XDP program hands them to the hot loop.
 * Names: "vp" + a hash of the bridge name + the port index, so two daemons differ.
 */
export function puntNames(bridge: string, index: number): { near: string; far: string; prefix: string } {
  const h = fnv1a32(Buffer.from(bridge));
  const prefix = `vp${(h & 0xffffff).toString(16).padStart(6, '0')}`;
  return { near: `${prefix}n${index}`, far: `${prefix}f${index}`, prefix };
}

/**
 * The largest port MTU the datapath carries (VSW_MAX_MTU in bpf/include/vswitchd_shared.h;
 * test/vectors/shared.json pins both). Larger frames are dropped as too_big.
 */
export const MAX_MTU = 9000;

/**
 * The MTU of a punt pair: the largest a port may have. A pair carries only
 * frames its port received, which that port's own MTU already bounds; the
 * larger MTU costs nothing (the near end segments GSO frames by their MSS).
 */
export const PUNT_MTU = MAX_MTU;

export async function createPuntPair(near: string, far: string): Promise<void> {
  if (existsSync(`/sys/class/net/${near}`)) await deleteLink(near).catch(() => undefined);  // left by a killed run
  await sh('ip', ['link', 'add', near, 'numtxqueues', '1', 'numrxqueues', '1', 'mtu', String(PUNT_MTU), 'type', 'veth',
    'peer', 'name', far, 'numtxqueues', '1', 'numrxqueues', '1', 'mtu', String(PUNT_MTU)]);
  try {
    await sh('ethtool', ['-K', near, 'tx', 'off', 'txvlan', 'off']);
    for (const dev of [near, far]) disableIpv6(dev);
    await sh('ip', ['link', 'set', 'dev', far, 'up']);
    await sh('ip', ['link', 'set', 'dev', near, 'up']);
  } catch (err) {
    await deleteLink(near).catch(() => undefined);
    throw err;
  }
}

/** Both ends of a punt pair are there (a restart keeps them). */
export function puntPairExists(near: string, far: string): boolean {
  return existsSync(`/sys/class/net/${near}`) && existsSync(`/sys/class/net/${far}`);
}

/**
 * A device's kernel drop counters (rx_dropped, tx_dropped) and its ifindex (a device of the
 * same name created again is another device); undefined when there is no such device.
 */
export function deviceCounters(name: string): DeviceCounters | undefined {
  const read = (f: string) => Number(readFileSync(`/sys/class/net/${name}/${f}`, 'utf8').trim()) || 0;
  try {
    return { ifindex: read('ifindex'), rxDropped: read('statistics/rx_dropped'), txDropped: read('statistics/tx_dropped') };
  } catch {
    return undefined;
  }
}

/** Punt pairs a killed run of this bridge left behind (devices named with its prefix). */
export function stalePuntDevices(prefix: string): string[] {
  return readdirSync('/sys/class/net').filter((d) => d.startsWith(prefix) && /n\d+$/.test(d.slice(prefix.length)));
}

const peerPassObject = path.join(projectRoot, 'bpf', 'peer_pass.bpf.o');

export async function setLinkUp(name: string): Promise<void> {
  await sh('ip', ['link', 'set', 'dev', name, 'up']);
}

export async function setLinkAddress(name: string, mac: string): Promise<void> {
  // An adopted internal tap already has it (and is up): leave it alone.
  const current = readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim();
  if (current.toLowerCase() === mac.toLowerCase()) return;
  await sh('ip', ['link', 'set', 'dev', name, 'address', mac]);
}

export async function deleteLink(name: string): Promise<void> {
  await sh('ip', ['link', 'del', 'dev', name]);
}

/** libxdp keeps state in bpffs; inside `ip netns exec` it is not mounted. */
export async function ensureBpffs(): Promise<boolean> {
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === '/sys/fs/bpf')) return false;
  await sh('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  return true;
}
