// What vswitchd asks of the host's devices, through the usual tools (ip, tc,
// ethtool, sysctl). Each change made is reported so the daemon can log it.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../project-root.js';

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
}

export async function linkInfo(name: string): Promise<LinkInfo | undefined> {
  if (!existsSync(`/sys/class/net/${name}`)) return undefined;
  const [link] = JSON.parse(await sh('ip', ['-d', '-j', 'link', 'show', 'dev', name])) as IpLink[];
  if (!link) return undefined;
  const queues = readdirSync(`/sys/class/net/${name}/queues`).filter((q) => q.startsWith('rx-')).length;
  return {
    ifindex: link.ifindex,
    kind: link.linkinfo?.info_kind ?? '',
    up: link.flags?.includes('UP') ?? false,
    qdisc: link.qdisc ?? '',
    rxQueues: Math.max(1, queues),
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

/**
 * Prepares a port device for XDP and AF_XDP, returning what it changed:
 * noqueue qdisc (frames go straight to the driver), no IPv6 autoconf on the
 * switch side (the host stack must not talk on a switch port), the device up,
 * and tx checksum offload off on a veth's peer: a frame whose checksum was
 * left to "hardware" would leave the switch with a wrong checksum.
 */
export async function prepareDevice(
  name: string,
  info: LinkInfo,
  fastPath = false,
): Promise<{ changes: string[]; warnings: string[]; peerTakesRedirect: boolean; peerPass?: PeerPass }> {
  const changes: string[] = [];
  const warnings: string[] = [];
  let peerTakesRedirect = false;
  let peerPass: PeerPass | undefined;
  if (info.qdisc !== 'noqueue') {
    await sh('tc', ['qdisc', 'replace', 'dev', name, 'root', 'noqueue']);
    changes.push('qdisc noqueue');
  }
  // Written directly: one process spawn less per port (ports come and go all day).
  const ipv6 = `/proc/sys/net/ipv6/conf/${name}/disable_ipv6`;
  if (existsSync(ipv6) && readFileSync(ipv6, 'utf8').trim() !== '1') {
    writeFileSync(ipv6, '1');
    changes.push('ipv6 disabled on the switch side');
  }
  if (!info.up) {
    await sh('ip', ['link', 'set', 'dev', name, 'up']);
    changes.push('link up');
  }
  if (info.kind === 'veth' && info.peerIfindex !== undefined) {
    const ns = info.peerNetnsId !== undefined ? await namespaceOfNsid(info.peerNetnsId) : undefined;
    const peer = info.peerNetnsId !== undefined && !ns ? undefined : await ifnameByIndex(info.peerIfindex, ns);
    if (peer) {
      const prefix = ns ? ['ip', 'netns', 'exec', ns] : [];
      const where = `peer ${peer}${ns ? ` (netns ${ns})` : ''}`;
      const [cmd, ...rest] = [...prefix, 'ethtool', '-K', peer, 'tx', 'off'];
      await sh(cmd!, rest).then(
        () => changes.push(`tx checksum offload off on ${where}`),
        (err: Error) => warnings.push(`could not turn tx checksum offload off on peer ${peer}: ${err.message}`),
      );
      if (fastPath) {
        // A frame redirected into a veth is dropped unless the peer runs NAPI; an
        // XDP program on the peer turns it on (see bpf/peer_pass.bpf.c).
        const links = JSON.parse(await sh('ip', [...(ns ? ['-n', ns] : []), '-d', '-j', 'link', 'show', 'dev', peer])) as { xdp?: { prog?: { name?: string } } }[];
        const xdp = links[0]?.xdp;
        if (xdp) {
          peerTakesRedirect = true;  // the peer has an XDP program: NAPI is on
          // Ours, left by a run that was killed: take it off with the port this time.
          if (xdp.prog?.name?.startsWith('vswitchd_peer')) peerPass = { peer, ...(ns ? { ns } : {}) };
        } else {
          const [xcmd, ...xrest] = [...prefix, 'ip', 'link', 'set', 'dev', peer, 'xdpdrv', 'obj', peerPassObject, 'sec', 'xdp'];
          await sh(xcmd!, xrest).then(
            () => {
              peerTakesRedirect = true;
              peerPass = { peer, ...(ns ? { ns } : {}) };
              changes.push(`XDP pass program on ${where} (fast path towards it)`);
            },
            (err: Error) => warnings.push(`could not attach XDP to peer ${peer}; no fast path towards it: ${err.message}`),
          );
        }
      }
    } else {
      warnings.push('veth peer is in an unnamed namespace: run `ethtool -K <peer> tx off` there, or TCP checksums break');
    }
  }
  return { changes, warnings, peerTakesRedirect, ...(peerPass ? { peerPass } : {}) };
}

/** An XDP pass program vswitchd put on a veth peer, to take off with the port. */
export interface PeerPass {
  peer: string;
  ns?: string;
}

const peerPassObject = path.join(projectRoot, 'bpf', 'peer_pass.bpf.o');

export async function removePeerPass(p: PeerPass): Promise<void> {
  await sh('ip', [...(p.ns ? ['-n', p.ns] : []), 'link', 'set', 'dev', p.peer, 'xdpdrv', 'off']).catch(() => undefined);
}

export async function setLinkUp(name: string): Promise<void> {
  await sh('ip', ['link', 'set', 'dev', name, 'up']);
}

export async function deleteLink(name: string): Promise<void> {
  await sh('ip', ['link', 'del', 'dev', name]);
}

/** libxdp keeps state in bpffs; inside `ip netns exec` it is not mounted. */
export async function ensureBpffs(): Promise<boolean> {
  const mounts = await sh('cat', ['/proc/mounts']);
  if (mounts.split('\n').some((l) => l.split(' ')[1] === '/sys/fs/bpf')) return false;
  await sh('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  return true;
}
