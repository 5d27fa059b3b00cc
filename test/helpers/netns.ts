// Network namespaces, veth pairs and traffic tools for the root-only integration tests.
//
// A Host is one network namespace with one veth pair: the host end (`dev`) lives in
// the namespace with an address, the switch end (`port`) stays in the root namespace
// for the switch to take. Everything created is registered with a Cleanup, which a
// test runs in t.teardown, so nothing is left behind when a test fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import type { ExecutionContext } from 'ava';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  ns?: string;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Throw when the command exits non-zero (default true). */
  check?: boolean;
}

/** `ip netns exec NS` prefix for argv, or argv itself without a namespace. */
export function inNs(ns: string | undefined, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

/** Run a command to completion, capturing stdout and stderr. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNs(opts.ns, argv);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code, signal, stdout, stderr };
      if ((opts.check ?? true) && code !== 0) {
        const why = signal === 'SIGKILL' ? `killed after ${timeoutMs} ms` : `exit ${code}`;
        reject(new Error(`${full.join(' ')}: ${why}\n${stderr}${stdout}`));
      } else {
        resolve(result);
      }
    });
  });
}

/** A background process whose output is collected; stop() kills it and waits. */
export class Background {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(argv: string[], ns?: string) {
    const full = inNs(ns, argv);
    this.child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => resolve(code));
      this.child.on('error', () => resolve(null));
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolve once stderr or stdout contains text (rejects if the process exits first). */
  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.stderr.includes(text) && !this.stdout.includes(text)) {
      if (!this.running) throw new Error(`process exited before "${text}":\n${this.stderr}${this.stdout}`);
      if (Date.now() > end) throw new Error(`no "${text}" after ${timeoutMs} ms:\n${this.stderr}${this.stdout}`);
      await this.output(20);
    }
  }

  /** Until more output comes (or ms pass): a waiter sees the text when it arrives, not up to a poll later (the restart gap is timed so). */
  private output(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.child.stdout!.off('data', done);
        this.child.stderr!.off('data', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      // Registered after the constructor's collectors: this.stdout already holds the chunk.
      this.child.stdout!.on('data', done);
      this.child.stderr!.on('data', done);
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exited;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Random hex suffix for names: "vt" + 5 hex + one letter fits easily in IFNAMSIZ (15). */
export function uniqueName(prefix = 'vt'): string {
  return prefix + randomBytes(3).toString('hex').slice(0, 5);
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Undo steps run in reverse order; a failing step is reported and the rest still run. */
export class Cleanup {
  private steps: Array<() => unknown> = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step();
      } catch (err) {
        console.error('cleanup step failed:', err);
      }
    }
  }
}

/** A Cleanup that runs when the test ends, pass or fail. */
export function cleanupFor(t: ExecutionContext): Cleanup {
  const cleanup = new Cleanup();
  t.teardown(() => cleanup.run());
  return cleanup;
}

export interface Host {
  /** Network namespace name. */
  ns: string;
  /** The veth end inside the namespace. */
  dev: string;
  /** The veth end left in the root namespace: the switch port. */
  port: string;
  mac: string;
  /** IPv4 address without prefix length ('' when none). */
  ip: string;
}

export interface HostOptions {
  /** Address with prefix length, e.g. "10.0.0.1/24". */
  cidr?: string;
  mac?: string;
  /** uniqueName() prefix of the namespace and devices (a test file's own, default "vt"). */
  prefix?: string;
}

/** Disable IPv6 on a device so that no router solicitations or MLD reports muddy the counters. */
export function noIpv6(dev: string): void {
  writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
}

/**
 * A namespace with a veth pair: host end inside (address, up, IPv6 off, its default
 * offloads: partial checksums and TSO, as a container has them), switch end up in the
 * root namespace.
 */
export async function addHost(cleanup: Cleanup, opts: HostOptions = {}): Promise<Host> {
  const ns = uniqueName(opts.prefix);
  const port = `${ns}p`;
  const dev = `${ns}h`;
  await run(['ip', 'netns', 'add', ns]);
  cleanup.add(() => run(['ip', 'netns', 'del', ns], { check: false }));
  await run(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns });
  await run(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', ns]);
  cleanup.add(() => run(['ip', 'link', 'del', port], { check: false }));
  noIpv6(port);
  await run(['ip', 'link', 'set', port, 'up']);
  if (opts.mac) await run(['ip', 'link', 'set', dev, 'address', opts.mac], { ns });
  await run(['ip', 'link', 'set', 'lo', 'up'], { ns });
  if (opts.cidr) await run(['ip', 'addr', 'add', opts.cidr, 'dev', dev], { ns });
  await run(['ip', 'link', 'set', dev, 'up'], { ns });
  return { ns, dev, port, mac: await macOf(dev, ns), ip: opts.cidr?.split('/')[0] ?? '' };
}

/** Several hosts at once: addHosts(cleanup, ['10.0.0.1/24', '10.0.0.2/24']). */
export function addHosts(cleanup: Cleanup, cidrs: string[]): Promise<Host[]> {
  return Promise.all(cidrs.map((cidr) => addHost(cleanup, { cidr })));
}

export async function macOf(dev: string, ns?: string): Promise<string> {
  const { stdout } = await run(['ip', '-j', 'link', 'show', 'dev', dev], { ns });
  return (JSON.parse(stdout) as Array<{ address: string }>)[0]!.address;
}

export async function linkExists(dev: string, ns?: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', dev], { ns, check: false })).code === 0;
}

/** Names of all links in a namespace (the root one by default). */
export async function linkNames(ns?: string): Promise<string[]> {
  const { stdout } = await run(['ip', '-j', 'link', 'show'], { ns });
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

/** True when a device has an XDP program attached (`ip -d link show` mentions xdp). */
export async function hasXdp(dev: string): Promise<boolean> {
  const { stdout } = await run(['ip', '-d', 'link', 'show', 'dev', dev]);
  return /\bxdp/.test(stdout);
}

export function netnsNames(): string[] {
  try {
    return readdirSync('/run/netns').sort();
  } catch {
    return [];
  }
}

/** Every file (not directory) under a path: for "nothing left pinned under /sys/fs/bpf". */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(`${d}/${e.name}`);
      else out.push(`${d}/${e.name}`);
    }
  };
  walk(dir);
  return out.sort();
}

export interface PingOptions {
  count?: number;
  /** Seconds between pings (default 0.2). */
  interval?: number;
  /** Seconds to wait for each reply (default 1). */
  wait?: number;
  /** ICMP payload bytes (default ping's 56). */
  size?: number;
}

/** Where a command runs: a Host, or `{}` for the root namespace. */
export type Place = { ns?: string };

/** ping from a host (or `{}`: the root namespace); returns how many replies came back. */
export async function ping(from: Place, ip: string, opts: PingOptions = {}): Promise<number> {
  const count = opts.count ?? 3;
  const interval = opts.interval ?? 0.2;
  const wait = opts.wait ?? 1;
  const argv = ['ping', '-n', '-q', '-c', `${count}`, '-i', `${interval}`, '-W', `${wait}`, ...(opts.size !== undefined ? ['-s', `${opts.size}`] : []), ip];
  const res = await run(argv, { ns: from.ns, check: false, timeoutMs: (count * interval + wait + 10) * 1000 });
  const m = /(\d+) (?:packets )?received/.exec(res.stdout);
  return m ? Number(m[1]) : 0;
}

/** Ping once a second until a reply comes back; false when none did within timeoutMs. */
export async function pingUntil(from: Place, ip: string, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await ping(from, ip, { count: 1, wait: 1 })) > 0) return true;
  }
  return false;
}

/** A permanent ARP entry on `host` for `other`, so that no ARP traffic is needed between them. */
export async function staticArp(host: Host, other: Host): Promise<void> {
  await run(['ip', 'neigh', 'replace', other.ip, 'lladdr', other.mac, 'nud', 'permanent', 'dev', host.dev], { ns: host.ns });
}

/** arping (Habets) out of a host's device; returns how many replies came back. */
export async function arping(from: Host, ip: string, count = 3): Promise<number> {
  const argv = ['arping', '-i', from.dev, '-c', `${count}`, '-W', '0.2', '-w', `${count + 2}`, ip];
  const res = await run(argv, { ns: from.ns, check: false, timeoutMs: (count + 10) * 1000 });
  const m = /(\d+) packets received/.exec(res.stdout);
  return m ? Number(m[1]) : 0;
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
  seconds: number;
}

/**
 * iperf3 TCP from client to server for `seconds` (reverse: server sends).
 * Rejects if the run does not complete.
 */
export async function iperf3(
  client: Host,
  server: Host,
  opts: { seconds?: number; reverse?: boolean; parallel?: number; port?: number } = {},
): Promise<IperfResult> {
  const seconds = opts.seconds ?? 5;
  const port = `${opts.port ?? 5201}`;
  const srv = new Background(['iperf3', '-s', '-1', '--forceflush', '-B', server.ip, '-p', port], server.ns);
  try {
    await srv.waitFor('Server listening');
    const argv = ['iperf3', '-c', server.ip, '-p', port, '-t', `${seconds}`, '-J', '-P', `${opts.parallel ?? 1}`];
    if (opts.reverse) argv.push('-R');
    const res = await run(argv, { ns: client.ns, timeoutMs: (seconds + 30) * 1000, check: false });
    let report: {
      error?: string;
      end?: { sum_received?: { bits_per_second: number; seconds: number }; sum_sent?: { retransmits?: number } };
    };
    try {
      report = JSON.parse(res.stdout);
    } catch {
      throw new Error(`iperf3 gave no JSON (exit ${res.code}): ${res.stderr}${res.stdout}`);
    }
    if (report.error || !report.end?.sum_received) throw new Error(`iperf3 failed: ${report.error ?? res.stdout}`);
    return {
      gbps: report.end.sum_received.bits_per_second / 1e9,
      retransmits: report.end.sum_sent?.retransmits ?? 0,
      seconds: report.end.sum_received.seconds,
    };
  } finally {
    await srv.stop('SIGKILL');
  }
}

/** A bare network namespace (lo up, IPv6 off), deleted by the Cleanup. */
export async function addNamespace(cleanup: Cleanup, name = uniqueName()): Promise<string> {
  await run(['ip', 'netns', 'add', name]);
  cleanup.add(() => run(['ip', 'netns', 'del', name], { check: false }));
  await run(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns: name });
  await run(['ip', 'link', 'set', 'lo', 'up'], { ns: name });
  return name;
}

/**
 * A veth pair from the root namespace into `ns`: `local` (a switch port or bond leg,
 * IPv6 off) and `peer` inside `ns`, both up.
 */
export async function addVethPair(cleanup: Cleanup, local: string, peer: string, ns: string): Promise<void> {
  await run(['ip', 'link', 'add', local, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
  cleanup.add(() => run(['ip', 'link', 'del', local], { check: false }));
  noIpv6(local);
  await run(['ip', 'link', 'set', local, 'up']);
  await run(['ip', 'link', 'set', peer, 'up'], { ns });
}

/**
 * n veth pairs for bond legs: `<ns>l<i>` in this namespace (the switch takes them),
 * `<ns>r<i>` their far ends in `ns`.
 */
export async function addLegPairs(cleanup: Cleanup, ns: string, n: number): Promise<{ legs: string[]; far: string[] }> {
  const legs = Array.from({ length: n }, (_, i) => `${ns}l${i}`);
  const far = Array.from({ length: n }, (_, i) => `${ns}r${i}`);
  for (let i = 0; i < n; i++) await addVethPair(cleanup, legs[i]!, far[i]!, ns);
  return { legs, far };
}

/** `ip link set DEV up|down` (in `ns` when given). */
export async function setLink(dev: string, up: boolean, ns?: string): Promise<void> {
  await run(['ip', 'link', 'set', dev, up ? 'up' : 'down'], { ns });
}

/** What a finished background ping counted. */
export interface PingCount {
  transmitted: number;
  received: number;
}

/**
 * A continuous ping started in the background (e.g. every 10 ms while a leg fails);
 * done() waits for it to finish (count * interval seconds) and returns the counts.
 */
export async function startPing(
  cleanup: Cleanup,
  from: Place,
  ip: string,
  opts: { count: number; interval: number },
): Promise<{ done(): Promise<PingCount> }> {
  const proc = new Background(['ping', '-n', '-q', '-c', `${opts.count}`, '-i', `${opts.interval}`, '-W', '1', ip], from.ns);
  cleanup.add(() => proc.stop('SIGKILL'));
  return {
    done: async () => {
      await proc.exited;
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(proc.stdout);
      if (!m) throw new Error(`ping gave no summary:\n${proc.stderr}${proc.stdout}`);
      return { transmitted: Number(m[1]), received: Number(m[2]) };
    },
  };
}
