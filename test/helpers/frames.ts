// TypeScript wrappers around frames.py: raw frames in, captured frames out, a fake VM on a tap.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addNamespace, Background, macOf, run, type Cleanup, type Host } from './netns.js';

/** The repository root: the nearest directory above this file with a package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

// frames.py stays in test/helpers (tsc does not copy it to dist/).
const FRAMES_PY = join(repoRoot(), 'test', 'helpers', 'frames.py');

export interface Frame {
  dst: string;
  src: string;
  vlan: number | null;
  pcp: number | null;
  ethertype: number;
  len: number;
  arp?: { op: number; sha: string; spa: string; tha: string; tpa: string };
  ip?: { src: string; dst: string; proto: number };
  /** TCP/UDP ports (unfragmented IPv4 only). */
  l4?: { sport: number; dport: number };
  /** vm only: what the fake VM answered with. */
  replied?: 'arp' | 'icmp';
}

function python(ns: string | undefined, args: string[]): string[] {
  return ['python3', FRAMES_PY, ...args, ...(ns ? ['--ns', ns] : [])];
}

function parseFrames(stdout: string): Frame[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Frame)
    .filter((f) => f.dst !== undefined);
}

export interface SendOptions {
  dev: string;
  ns?: string;
  dst?: string;
  src?: string;
  vlan?: number;
  pcp?: number;
  /** e.g. 0x0800 (the default). */
  ethertype?: number;
  count?: number;
  payloadLen?: number;
  /** Seconds between frames. */
  interval?: number;
  /** Send these bytes (hex) as they are instead of building a frame. */
  raw?: string;
}

export async function sendFrames(o: SendOptions): Promise<void> {
  const args = ['send', '--dev', o.dev];
  if (o.raw !== undefined) args.push('--raw', o.raw);
  if (o.dst) args.push('--dst', o.dst);
  if (o.src) args.push('--src', o.src);
  if (o.vlan !== undefined) args.push('--vlan', `${o.vlan}`);
  if (o.pcp !== undefined) args.push('--pcp', `${o.pcp}`);
  if (o.ethertype !== undefined) args.push('--ethertype', `0x${o.ethertype.toString(16)}`);
  if (o.count !== undefined) args.push('--count', `${o.count}`);
  if (o.payloadLen !== undefined) args.push('--payload-len', `${o.payloadLen}`);
  if (o.interval !== undefined) args.push('--interval', `${o.interval}`);
  await run(python(o.ns, args));
}

/** A running capture; frames() waits for it to end and returns what it saw. */
export interface Capture {
  frames(): Promise<Frame[]>;
  stop(): Promise<Frame[]>;
}

/**
 * Capture received frames on a device for `seconds` (or until `count` frames).
 * Resolves once the socket is open, so frames sent afterwards are seen.
 */
export async function startCapture(
  cleanup: Cleanup,
  o: { dev: string; ns?: string; seconds: number; count?: number },
): Promise<Capture> {
  const args = ['capture', '--dev', o.dev, '--seconds', `${o.seconds}`];
  if (o.count !== undefined) args.push('--count', `${o.count}`);
  const proc = new Background(python(o.ns, args));
  cleanup.add(() => proc.stop('SIGKILL'));
  await proc.waitFor('ready');
  return {
    frames: async () => {
      await proc.exited;
      return parseFrames(proc.stdout);
    },
    stop: async () => {
      await proc.stop('SIGTERM');
      return parseFrames(proc.stdout);
    },
  };
}

/**
 * A host with a kernel stack behind a tap port (the tap must exist): a relay joins the
 * port's tap to a second tap in a new namespace, with the address cidr. For jumbo frames
 * and TCP through a tap port without a QEMU guest (test/integration/guest-vm.test.ts has that).
 */
export async function addTapHost(cleanup: Cleanup, tap: string, cidr: string, mtu = 1500, mac?: string): Promise<Host> {
  const ns = await addNamespace(cleanup);
  const dev = `${ns}i`;
  const relay = new Background(python(undefined, ['relay', '--tap', tap, '--inner', dev]));
  cleanup.add(() => relay.stop('SIGKILL'));
  await relay.waitFor('ready');
  await run(['ip', 'link', 'set', dev, 'netns', ns]);
  await run(['ip', 'link', 'set', dev, 'mtu', `${mtu}`], { ns });
  if (mac) await run(['ip', 'link', 'set', dev, 'address', mac], { ns });
  await run(['ip', 'addr', 'add', cidr, 'dev', dev], { ns });
  await run(['ip', 'link', 'set', dev, 'up'], { ns });
  return { ns, dev, port: tap, mac: await macOf(dev, ns), ip: cidr.split('/')[0]! };
}

export interface VmOptions {
  tap: string;
  mac: string;
  ip: string;
  seconds: number;
  /** Send this many frames to `dst` right after attaching. */
  sendCount?: number;
  dst?: string;
}

/**
 * A stand-in VM attached to an existing tap: it answers ARP and ICMP echo for its IP,
 * and reports every frame it received. Resolves once it is attached to the tap.
 */
export async function startVm(cleanup: Cleanup, o: VmOptions): Promise<Capture> {
  const args = ['vm', '--tap', o.tap, '--mac', o.mac, '--ip', o.ip, '--seconds', `${o.seconds}`];
  if (o.sendCount) args.push('--send-count', `${o.sendCount}`, '--dst', o.dst ?? 'ff:ff:ff:ff:ff:ff');
  const proc = new Background(python(undefined, args));
  cleanup.add(() => proc.stop('SIGKILL'));
  await proc.waitFor('ready');
  return {
    frames: async () => {
      await proc.exited;
      return parseFrames(proc.stdout);
    },
    stop: async () => {
      await proc.stop('SIGTERM');
      return parseFrames(proc.stdout);
    },
  };
}

/** A MAC flood (frames.py flood): `count` frames, each from a random unicast source; how many went out. */
export async function sendFlood(o: { dev: string; ns?: string; count: number; dst?: string }): Promise<number> {
  const args = ['flood', '--dev', o.dev, '--count', `${o.count}`, ...(o.dst ? ['--dst', o.dst] : [])];
  const res = await run(python(o.ns, args), { timeoutMs: 120_000 });
  return (JSON.parse(res.stdout.trim().split('\n').pop()!) as { sent: number }).sent;
}

/**
 * A storm of malformed and hostile frames (frames.py storm); what went out, by kind, and
 * how many were 802.1Q frames shorter than 20 bytes (short_8021q: see frames.py).
 */
export async function sendStorm(o: { dev: string; ns?: string; count: number; seed?: number }): Promise<{ sent: number; kinds: Record<string, number>; short_8021q: number }> {
  const args = ['storm', '--dev', o.dev, '--count', `${o.count}`, ...(o.seed !== undefined ? ['--seed', `${o.seed}`] : [])];
  const res = await run(python(o.ns, args), { timeoutMs: 120_000 });
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as { sent: number; kinds: Record<string, number>; short_8021q: number };
}

// ---- frames built here, sent with sendFrames({ raw }) ----

function macBuf(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((b) => parseInt(b, 16)));
}

function ipBuf(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function ipChecksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += h.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** An Ethernet frame (hex), padded to 60 bytes. */
export function ethFrame(dst: string, src: string, ethertype: number, payload: Buffer): string {
  const et = Buffer.alloc(2);
  et.writeUInt16BE(ethertype);
  const f = Buffer.concat([macBuf(dst), macBuf(src), et, payload]);
  return (f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f).toString('hex');
}

/** An IPv4 UDP packet (checksummed header, UDP checksum 0). */
export function ipv4Udp(src: string, dst: string, sport: number, dport: number, payload: Buffer = Buffer.alloc(18)): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + 8 + payload.length, 2);
  h[8] = 64;
  h[9] = 17;
  ipBuf(src).copy(h, 12);
  ipBuf(dst).copy(h, 16);
  h.writeUInt16BE(ipChecksum(h), 10);
  return Buffer.concat([h, udp, payload]);
}

/** An ARP packet (Ethernet/IPv4). op 1: request (a gratuitous one has spa == tpa). */
export function arpPacket(op: number, sha: string, spa: string, tha: string, tpa: string): Buffer {
  const head = Buffer.from([0, 1, 8, 0, 6, 4, 0, op]);
  return Buffer.concat([head, macBuf(sha), ipBuf(spa), macBuf(tha), ipBuf(tpa)]);
}

/** A DHCP DISCOVER from chaddr: 0.0.0.0:68 -> 255.255.255.255:67. */
export function dhcpDiscover(chaddr: string): string {
  const bootp = Buffer.alloc(240 + 4);
  bootp[0] = 1; // BOOTREQUEST
  bootp[1] = 1;
  bootp[2] = 6;
  bootp.writeUInt32BE(0x5ec0ffee, 4);
  macBuf(chaddr).copy(bootp, 28);
  bootp.writeUInt32BE(0x63825363, 236); // magic cookie
  Buffer.from([53, 1, 1, 255]).copy(bootp, 240); // DHCP DISCOVER, end
  return ethFrame('ff:ff:ff:ff:ff:ff', chaddr, 0x0800, ipv4Udp('0.0.0.0', '255.255.255.255', 68, 67, bootp));
}
