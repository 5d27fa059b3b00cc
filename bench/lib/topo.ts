// The benchmark topology, the sink and the generators.
//
//   ns vbg: vbg0 (10.77.0.1) ── veth ── vbgp ┐
//                                            ├─ switch under test (root ns)
//   ns vbk: vbk0 (10.77.0.2) ── veth ── vbkp ┘    + idle ports vbiNp ── vbiN (ns vbi)
//
// The generator sends UDP to the benchmark port from vbg0 to vbk0's MAC; the sink's XDP
// program on vbk0 counts and drops those frames and passes everything else.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanup, Proc, nowNs, ok, percentile, pidsByComm, run, sleep } from './sys.js';

export const NS_GEN = 'vbg';
export const NS_SINK = 'vbk';
export const NS_IDLE = 'vbi';
export const GEN_DEV = 'vbg0';
export const SINK_DEV = 'vbk0';
export const GEN_PORT = 'vbgp';
export const SINK_PORT = 'vbkp';
export const GEN_IP = '10.77.0.1';
export const SINK_IP = '10.77.0.2';
export const GEN_MAC = '02:76:62:00:00:01';
export const SINK_MAC = '02:76:62:00:00:02';
/** UDP destination port of the benchmark frames; must match VB_PORT in bpf/vb_sink.bpf.c. */
export const BENCH_UDP_PORT = 47474;

export function idlePort(i: number): string {
  return `vbi${i}p`;
}

/** Every name the benchmark may create in the root namespace (for stale clean-up). */
export function rootLinkNames(maxIdle = 16): string[] {
  const names = [GEN_PORT, SINK_PORT];
  for (let i = 0; i < maxIdle; i++) names.push(idlePort(i));
  return names;
}

export interface Topology {
  /** The switch ports, generator and sink first. */
  ports: string[];
  cleanup: Cleanup;
}

async function nsSetup(ns: string): Promise<void> {
  await run(['ip', 'netns', 'add', ns]);
  await run(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns });
  await run(['ip', 'link', 'set', 'lo', 'up'], { ns });
}

async function vethPair(port: string, dev: string, ns: string, opts: { mac?: string; cidr?: string; defaultOffloads?: boolean } = {}): Promise<void> {
  await run(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', ns]);
  writeFileSync(`/proc/sys/net/ipv6/conf/${port}/disable_ipv6`, '1');
  if (opts.mac) await run(['ip', 'link', 'set', dev, 'address', opts.mac], { ns });
  if (opts.cidr) await run(['ip', 'addr', 'add', opts.cidr, 'dev', dev], { ns });
  await run(['ip', 'link', 'set', dev, 'up'], { ns });
  // The 64-byte bench's iperf3 row goes through switches (OVS afxdp, vswitchd's XDP hook)
  // whose paths leave partial checksums unfilled: tx checksum offload off on the sending end.
  // The TCP bench (bench/tcp.ts) keeps the hosts' defaults, as containers have them.
  if (!opts.defaultOffloads) await run(['ethtool', '-K', dev, 'tx', 'off'], { ns });
  await run(['ip', 'link', 'set', port, 'up']);
}

/** Remove whatever a crashed earlier run left behind (only the benchmark's own names). */
export async function removeStale(): Promise<void> {
  for (const ns of [NS_GEN, NS_SINK, NS_IDLE]) {
    if (existsSync(`/run/netns/${ns}`)) await run(['ip', 'netns', 'del', ns], { check: false });
  }
  for (const l of rootLinkNames()) {
    if (existsSync(`/sys/class/net/${l}`)) await run(['ip', 'link', 'del', l], { check: false });
  }
}

/** Build the namespaces and veth pairs: 2 active ports + (totalPorts - 2) idle ones. */
export async function buildTopology(totalPorts: number, opts: { defaultOffloads?: boolean } = {}): Promise<Topology> {
  const cleanup = new Cleanup();
  const ports = [GEN_PORT, SINK_PORT];
  try {
    for (const ns of [NS_GEN, NS_SINK, NS_IDLE]) {
      await nsSetup(ns);
      cleanup.add(`netns ${ns}`, () => run(['ip', 'netns', 'del', ns], { check: false }));
    }
    cleanup.add('root links', async () => {
      for (const l of ports) if (existsSync(`/sys/class/net/${l}`)) await run(['ip', 'link', 'del', l], { check: false });
    });
    await vethPair(GEN_PORT, GEN_DEV, NS_GEN, { mac: GEN_MAC, cidr: `${GEN_IP}/24`, ...opts });
    await vethPair(SINK_PORT, SINK_DEV, NS_SINK, { mac: SINK_MAC, cidr: `${SINK_IP}/24`, ...opts });
    for (let i = 0; i < totalPorts - 2; i++) {
      await vethPair(idlePort(i), `vbi${i}`, NS_IDLE);
      ports.push(idlePort(i));
    }
  } catch (err) {
    await cleanup.run();
    throw err;
  }
  return { ports, cleanup };
}

// ---- frames ----

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

/**
 * An Ethernet/IPv4/UDP frame of `size` bytes on the wire counting the 4-byte FCS, which
 * software never sees: 64 → 60 bytes in memory, 1518 → 1514.
 */
export function benchFrame(size: number): Buffer {
  const len = Math.max(60, size - 4);
  const b = Buffer.alloc(len);
  Buffer.from(macBytes(SINK_MAC)).copy(b, 0);
  Buffer.from(macBytes(GEN_MAC)).copy(b, 6);
  b.writeUInt16BE(0x0800, 12);
  const ip = 14;
  const ipLen = len - 14;
  b.writeUInt8(0x45, ip);
  b.writeUInt16BE(ipLen, ip + 2);
  b.writeUInt8(64, ip + 8);
  b.writeUInt8(17, ip + 9);
  Buffer.from(GEN_IP.split('.').map(Number)).copy(b, ip + 12);
  Buffer.from(SINK_IP.split('.').map(Number)).copy(b, ip + 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  b.writeUInt16BE(~sum & 0xffff, ip + 10);
  const udp = ip + 20;
  b.writeUInt16BE(40000, udp);
  b.writeUInt16BE(BENCH_UDP_PORT, udp + 2);
  b.writeUInt16BE(ipLen - 20, udp + 4); // checksum 0: none
  return b;
}

// ---- sink ----

export class Sink {
  private constructor(readonly proc: Proc) {}

  static async start(buildDir: string): Promise<Sink> {
    const proc = new Proc([join(buildDir, 'vbsink'), '--dev', SINK_DEV, '--obj', join(buildDir, 'vb_sink.bpf.o')], { ns: NS_SINK, stdin: true });
    const first = await proc.line(10_000).catch((err: Error) => {
      throw new Error(`vbsink: ${err.message}`);
    });
    if (!first.startsWith('ready')) throw new Error(`vbsink: ${first} ${proc.stderr}`);
    return new Sink(proc);
  }

  /** Frames counted (and dropped) so far, and when. */
  async count(): Promise<{ packets: number; bytes: number; t: bigint }> {
    const l = await this.proc.ask('c\n');
    const [p, b] = l.split(' ').map(Number);
    return { packets: p ?? 0, bytes: b ?? 0, t: nowNs() };
  }

  async stop(): Promise<void> {
    this.proc.child.stdin?.end();
    await this.proc.stop('SIGTERM', 3000);
  }
}

// ---- counters on the generator's veth ----

/** ethtool -S of a device, summed over queues: "rx_queue_0_xdp_drops" → "rx_xdp_drops". */
export async function ethtoolStats(dev: string, ns?: string): Promise<Record<string, number>> {
  const res = await run(['ethtool', '-S', dev], { ns, check: false, timeoutMs: 5000 });
  const out: Record<string, number> = {};
  for (const line of res.stdout.split('\n')) {
    const m = /^\s+([\w]+):\s+(\d+)$/.exec(line);
    if (!m || m[1] === 'peer_ifindex') continue;
    const key = m[1]!.replace(/^(rx|tx)_queue_\d+_/, '$1_');
    out[key] = (out[key] ?? 0) + Number(m[2]);
  }
  return out;
}

async function linkStats(dev: string, ns?: string): Promise<Record<string, number>> {
  const res = await run(['ip', '-s', '-j', 'link', 'show', 'dev', dev], { ns, timeoutMs: 5000 });
  const s = (JSON.parse(res.stdout) as Array<{ stats64: { rx: Record<string, number>; tx: Record<string, number> } }>)[0]!.stats64;
  return { tx_packets: s.tx.packets ?? 0, tx_dropped: s.tx.dropped ?? 0, rx_packets: s.rx.packets ?? 0 };
}

/**
 * Frames the generator handed to its veth so far (delivered to the switch port or
 * dropped there because the port's ring was full), read from the device's counters.
 */
export async function offeredCount(gen: 'xdp' | 'trafgen'): Promise<{ offered: number; dropped_at_veth: number; t: bigint }> {
  if (gen === 'xdp') {
    const s = await ethtoolStats(GEN_DEV, NS_GEN);
    const t = nowNs();
    const errs = s.tx_xdp_xmit_errors ?? 0;
    return { offered: (s.tx_xdp_xmit ?? 0) + errs, dropped_at_veth: errs, t };
  }
  const s = await linkStats(GEN_DEV, NS_GEN);
  const t = nowNs();
  return { offered: (s.tx_packets ?? 0) + (s.tx_dropped ?? 0), dropped_at_veth: s.tx_dropped ?? 0, t };
}

// ---- generators ----

export interface Generator {
  proc: Proc;
  stop(): Promise<void>;
}

/** flows > 1: each frame's destination MAC is the next of 02:fd:00:00:00:00 .. flows-1 (see vb_gen.bpf.c). */
export async function startXdpGen(buildDir: string, size: number, cpu: number, seconds: number, flows = 1): Promise<Generator> {
  const frame = benchFrame(size).toString('hex');
  const argv = ['taskset', '-c', `${cpu}`, join(buildDir, 'vbxdpgen'), '--dev', GEN_DEV, '--obj', join(buildDir, 'vb_gen.bpf.o'), '--frame', frame, '--seconds', `${seconds}`, '--batch', '64', '--flows', `${flows}`];
  const proc = new Proc(argv, { ns: NS_GEN, stdin: true });
  const first = await proc.line(10_000).catch((err: Error) => {
    throw new Error(`vbxdpgen: ${err.message}`);
  });
  if (first !== 'ready') throw new Error(`vbxdpgen: ${first} ${proc.stderr}`);
  return {
    proc,
    async stop() {
      proc.write('q\n');
      await proc.stop('SIGTERM', 5000);
      if (/BPF_PROG_RUN failed/.test(proc.stderr)) throw new Error(proc.stderr.trim());
    },
  };
}

export async function startTrafgen(workDir: string, size: number, cpu: number): Promise<Generator> {
  const frame = benchFrame(size);
  const cfg = join(workDir, `trafgen-${size}.cfg`);
  writeFileSync(cfg, `{ ${[...frame].map((x) => `0x${x.toString(16).padStart(2, '0')}`).join(', ')} }\n`);
  // -P 1: one sender process; -Q: leave IRQ affinity alone. trafgen forks its sender, so
  // it runs in its own process group and is stopped with SIGINT to the group.
  const proc = new Proc(['taskset', '-c', `${cpu}`, 'trafgen', '-o', GEN_DEV, '-i', cfg, '-P', '1', '-Q', '-C'], { ns: NS_GEN, group: true });
  await sleep(200);
  if (!proc.running) throw new Error(`trafgen exited: ${proc.stderr.trim()}`);
  return {
    proc,
    async stop() {
      await proc.stop('SIGINT', 5000);
      if (/EAGAIN|failed/i.test(proc.stderr)) throw new Error(`trafgen: ${proc.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    },
  };
}

// ---- NAPI placement ----

/** Make the switch-side veths' NAPI threaded; returns what happened per device. */
export async function setThreaded(devs: string[], on: boolean): Promise<string[]> {
  const notes: string[] = [];
  for (const d of devs) {
    try {
      writeFileSync(`/sys/class/net/${d}/threaded`, on ? '1' : '0');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // veth has NAPI only with an XDP program or GRO on: without, its receive work is the backlog's.
      notes.push(e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP' ? `${d}: no NAPI to thread (no XDP/GRO there)` : `${d}: threaded NAPI: ${e.message}`);
    }
  }
  return notes;
}

/** Pin the NAPI kthreads of these devices ("napi/DEV-ID") to one CPU; returns how many. */
export async function pinNapi(devs: string[], cpu: number): Promise<number> {
  let n = 0;
  for (const d of devs) {
    for (const { pid } of pidsByComm(new RegExp(`^napi/${d}-\\d+$`))) {
      if (await ok(['taskset', '-p', '-c', `${cpu}`, `${pid}`])) n++;
    }
  }
  return n;
}

// ---- traffic probes ----

export interface PingResult {
  sent: number;
  received: number;
  p50_ms: number;
  p99_ms: number;
}

export async function pingRtt(count: number, intervalS: number, cpu?: number): Promise<PingResult> {
  const argv = ['ping', '-n', '-c', `${count}`, '-i', `${intervalS}`, '-W', '1', SINK_IP];
  const res = await run(cpu === undefined ? argv : ['taskset', '-c', `${cpu}`, ...argv], { ns: NS_GEN, check: false, timeoutMs: (count * intervalS + 15) * 1000 });
  const rtts = [...res.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return { sent: count, received: rtts.length, p50_ms: percentile(rtts, 50), p99_ms: percentile(rtts, 99) };
}

export async function pingOk(count = 3): Promise<boolean> {
  const res = await run(['ping', '-n', '-q', '-c', `${count}`, '-i', '0.2', '-W', '1', SINK_IP], { ns: NS_GEN, check: false, timeoutMs: 15_000 });
  return /\b[1-9]\d* (packets )?received/.test(res.stdout);
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
}

export async function iperf3(seconds: number, cpu?: number, parallel = 1): Promise<IperfResult> {
  const pin = (argv: string[]) => (cpu === undefined ? argv : ['taskset', '-c', `${cpu}`, ...argv]);
  const srv = new Proc(pin(['iperf3', '-s', '-1', '--forceflush', '-B', SINK_IP, '-p', '5201']), { ns: NS_SINK });
  try {
    const end = Date.now() + 5000;
    while (!srv.stdout.includes('Server listening')) {
      if (!srv.running || Date.now() > end) throw new Error(`iperf3 server did not start: ${srv.stderr}`);
      await sleep(20);
    }
    const res = await run(pin(['iperf3', '-c', SINK_IP, '-p', '5201', '-t', `${seconds}`, '-P', `${parallel}`, '-J']), { ns: NS_GEN, check: false, timeoutMs: (seconds + 20) * 1000 });
    let report: { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } };
    try {
      report = JSON.parse(res.stdout);
    } catch {
      throw new Error(`iperf3 gave no JSON: ${res.stderr.trim()}`);
    }
    if (report.error || !report.end?.sum_received) throw new Error(`iperf3: ${report.error ?? 'no result'}`);
    return { gbps: report.end.sum_received.bits_per_second / 1e9, retransmits: report.end.sum_sent?.retransmits ?? 0 };
  } finally {
    await srv.stop('SIGKILL');
  }
}
