// Start vswitchd for a test, talk to its control socket, stop it.
//
//   const sw = await startDaemon(t, cleanup, { workers: 1, ports: [{ name: a.port, vlan: 10 }] });
//   const stats = await sw.ctl<Stats>('stats');
//   await sw.stop();   // SIGTERM; the Cleanup kills it anyway when the test ends

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { repoRoot } from './frames.js';
import { sleep, uniqueName, type Cleanup } from './netns.js';
import type { BondLegStatus } from '../../src/switch/bond/policy.js';
import type { BondReport } from '../../src/switch/bond/manager.js';

export type VlanSpec = { mode: 'access'; vlan: number } | { mode: 'trunk'; trunks: number[]; nativeVlan?: number };

export interface PortInfo {
  name: string;
  index: number;
  kind: string;
  up: boolean;
  queues: number;
  xdp_mode: string;
  /** The device's MTU (not for bonds). */
  mtu?: number;
  /** The datapath workers that own the port's queues. */
  workers: number[];
  vlan: VlanSpec;
}

export interface PortStats {
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  drops: Record<string, number>;
}

export interface Stats {
  ports: Record<string, PortStats>;
}

/** A row of `fdb show`, as the control socket answers it. */
export type { FdbRow } from '../../src/switch/operate/switch-api.js';
import type { FdbRow } from '../../src/switch/operate/switch-api.js';

export interface Reply {
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Pick a free TCP port on 127.0.0.1 (for metrics.listen). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** One request on the control socket: a JSON line out, a JSON line back. */
export function request(socketPath: string, req: object, timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer to ${JSON.stringify(req)} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as Reply);
      } catch (err) {
        reject(new Error(`bad reply ${buf.slice(0, nl)}: ${err}`));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface DaemonOptions {
  logLevel?: string;
  /** Milliseconds to wait for the control socket to answer `version` (default 20 s). */
  readyTimeoutMs?: number;
  /** Run the daemon inside this network namespace (`ip netns exec`; it mounts bpffs there itself). */
  netns?: string;
}

export class Daemon {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly dir: string,
    readonly configPath: string,
    readonly socketPath: string,
    readonly config: Record<string, unknown>,
    logLevel: string,
    readonly netns?: string,
  ) {
    const bin = join(repoRoot(), 'bin', 'vswitchd.js');
    const argv = [process.execPath, bin, '--config', configPath, '--log-level', logLevel];
    // ip netns exec execs the program: the pid is the daemon's, signals reach it.
    const full = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
    this.proc = spawn(full[0]!, full.slice(1), {
      cwd: repoRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.proc.on('close', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  logs(): string {
    return `--- vswitchd stdout ---\n${this.stdout}\n--- vswitchd stderr ---\n${this.stderr}`;
  }

  /** Send a control command (`{"cmd", "args"}`); returns `result`, throws on `{ok: false}`. */
  async ctl<T = unknown>(cmd: string, args?: object): Promise<T> {
    const reply = await request(this.socketPath, args ? { cmd, args } : { cmd });
    if (!reply.ok) throw new Error(`${cmd}: ${reply.error}`);
    return reply.result as T;
  }

  async stats(): Promise<Stats> {
    return this.ctl<Stats>('stats');
  }

  async portStats(name: string): Promise<PortStats> {
    const s = (await this.stats()).ports[name];
    if (!s) throw new Error(`no stats for port ${name}`);
    return s;
  }

  async fdb(): Promise<FdbRow[]> {
    return this.ctl<FdbRow[]>('fdb.show');
  }

  async ports(): Promise<PortInfo[]> {
    return this.ctl<PortInfo[]>('port.list');
  }

  /** Wait until the control socket answers `version`; throws with the daemon's output if not. */
  async waitReady(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < end) {
      if (!this.running) {
        const { code, signal } = await this.exited;
        throw new Error(`vswitchd exited (code ${code}, signal ${signal}) before it was ready\n${this.logs()}`);
      }
      try {
        await this.ctl('version');
        return;
      } catch (err) {
        last = err;
      }
      await sleep(100);
    }
    throw new Error(`vswitchd not ready after ${timeoutMs} ms (last: ${last})\n${this.logs()}`);
  }

  /** SIGTERM (or another signal) and wait for exit; SIGKILL after 10 s. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/** Default parts of every test config: a unique bridge name, socket in the temp dir, free metrics port. */
async function withDefaults(dir: string, config: Record<string, unknown>): Promise<Record<string, unknown>> {
  const control = { socket: join(dir, 'vswitchd.sock'), ...(config.control as object | undefined) };
  const metrics = { listen: `127.0.0.1:${await freePort()}`, ...(config.metrics as object | undefined) };
  // VSWITCHD_TEST_FAST_PATH (off | auto | tc | xdp) picks datapath.fast_path for the whole suite; scripts/test.sh runs off, auto and xdp.
  const datapath = { fast_path: process.env.VSWITCHD_TEST_FAST_PATH ?? 'off', ...(config.datapath as object | undefined) };
  return { bridge: `${uniqueName()}b`, ...config, datapath, control, metrics };
}

/**
 * Write the config as YAML into a temp directory, start vswitchd on it and wait until it
 * answers on its control socket. The daemon is killed when the test ends, and its
 * output is printed if the test failed.
 */
export async function startDaemon(
  t: ExecutionContext,
  cleanup: Cleanup,
  config: Record<string, unknown>,
  opts: DaemonOptions = {},
): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-test-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const full = await withDefaults(dir, config);
  const configPath = join(dir, 'switch.yaml');
  writeFileSync(configPath, stringify(full));
  return launch(t, cleanup, new Daemon(dir, configPath, (full.control as { socket: string }).socket, full, opts.logLevel ?? 'debug', opts.netns), opts);
}

/** Start vswitchd again on the same config file as an earlier (stopped) daemon. */
export function restartDaemon(t: ExecutionContext, cleanup: Cleanup, prev: Daemon, opts: DaemonOptions = {}): Promise<Daemon> {
  const d = new Daemon(prev.dir, prev.configPath, prev.socketPath, prev.config, opts.logLevel ?? 'debug');
  return launch(t, cleanup, d, opts);
}

async function launch(t: ExecutionContext, cleanup: Cleanup, d: Daemon, opts: DaemonOptions): Promise<Daemon> {
  cleanup.add(() => d.stop('SIGTERM')); // SIGKILL after 10 s
  t.teardown(async () => {
    if (t.passed) return;
    let state = '';
    if (d.running) {
      for (const cmd of ['port.list', 'stats', 'fdb.show']) {
        const reply = await request(d.socketPath, { cmd }).catch((err: Error) => err.message);
        state += `--- ${cmd} ---\n${JSON.stringify(reply)}\n`;
      }
    }
    console.error(`=== ${t.title}: vswitchd on ${d.configPath}\n${stringify(d.config)}${state}${d.logs()}`);
  });
  await d.waitReady(opts.readyTimeoutMs ?? 20_000);
  return d;
}

/** Run one of the project's bin/ programs to completion and collect what it printed. */
function runBin(bin: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', bin), ...args], {
      cwd: repoRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run `vswitchd` to completion with arbitrary arguments (for --check and bad configs). */
export function runVswitchd(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runBin('vswitchd.js', args, timeoutMs);
}

/** Poll fn until it returns true (or throw with `what` after timeoutMs). */
export async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await fn();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(200);
  }
}

/** Config entry for an access port. */
export function accessPort(name: string, vlan: number, type: 'veth' | 'tap' | 'internal' = 'veth'): Record<string, unknown> {
  return { name, type, vlan };
}

/** Config entry for a trunk port. */
export function trunkPort(name: string, trunks: number[], nativeVlan?: number): Record<string, unknown> {
  return { name, type: 'veth', trunks, ...(nativeVlan === undefined ? {} : { native_vlan: nativeVlan }) };
}

/** A drop counter of a port (0 when the reason was never counted). */
export function dropsOf(stats: Stats, port: string, reason: string): number {
  return stats.ports[port]?.drops?.[reason] ?? 0;
}

/** What a command-line run of vswitchctl left: exit status, stdout, stderr. */
export interface CtlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `vswitchctl --socket SOCKET ARGS...` to completion (as an operator would). */
export function vswitchctl(socketPath: string, args: string[], timeoutMs = 20_000): Promise<CtlRun> {
  return runBin('vswitchctl.js', ['--socket', socketPath, ...args], timeoutMs);
}

/** `vswitchctl --json ARGS...`, which must exit 0; returns the parsed result. */
export async function vswitchctlJson<T = unknown>(socketPath: string, args: string[]): Promise<T> {
  const res = await vswitchctl(socketPath, ['--json', ...args]);
  if (res.code !== 0) throw new Error(`vswitchctl --json ${args.join(' ')}: exit ${res.code}: ${res.stderr}`);
  return JSON.parse(res.stdout) as T;
}

/** Rows of an aligned vswitchctl table: header words and cells split on runs of 2+ spaces. */
export function parseTable(text: string): { header: string[]; rows: string[][] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const split = (l: string) => l.trim().split(/ {2,}/);
  return { header: split(lines[0] ?? ''), rows: lines.slice(1).map(split) };
}

/** One sample of a Prometheus text exposition. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The `host:port` the daemon's /metrics listens on (from its config). */
export function metricsListen(d: Daemon): string {
  return (d.config.metrics as { listen: string }).listen;
}

/** GET http://LISTEN/metrics and parse the samples. */
export async function scrapeMetrics(listen: string): Promise<{ text: string; samples: MetricSample[] }> {
  const res = await fetch(`http://${listen}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: HTTP ${res.status}`);
  const text = await res.text();
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { text, samples };
}

/** The value of the sample of `name` whose labels include `labels` (undefined when none). */
export function metricValue(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

/** One bond of `bond show --json`, and one of its legs: the daemon's own types. */
export type BondRow = BondReport;
export type BondLegRow = BondLegStatus;

/** `bond.show NAME` over the control socket (fast enough to poll). */
export async function bondStatus(d: Daemon, name: string): Promise<BondRow> {
  const rows = await d.ctl<BondRow[]>('bond.show', { name });
  if (rows.length !== 1) throw new Error(`bond.show ${name}: ${rows.length} bonds`);
  return rows[0]!;
}

/** A leg of a bond row, by name (throws when absent). */
export function legOf(bond: BondRow, leg: string): BondLegRow {
  const l = bond.legs.find((x) => x.name === leg);
  if (!l) throw new Error(`bond ${bond.name} has no leg ${leg}: ${bond.legs.map((x) => x.name).join(', ')}`);
  return l;
}

/**
 * The drop reasons of frames a port's device received that the kernel lost before the
 * hot loop saw them (src/switch/ports/kernel-drops.ts), and the sum of them for a port.
 */
export const KERNEL_RX_REASONS = ['xsk_rx_ring_full', 'xsk_fill_ring_empty', 'xsk_rx_dropped', 'xsk_rx_invalid', 'kernel_rx_dropped', 'punt_dropped', 'redirect_failed'];
export function kernelRxLost(stats: Stats, port: string): number {
  return KERNEL_RX_REASONS.reduce((n, r) => n + dropsOf(stats, port, r), 0);
}

/** Stats once the port's rx counter stopped moving (frames still in rings and sockets). */
export async function settledStats(d: Daemon, port: string): Promise<Stats> {
  let stats = await d.stats();
  for (let last = -1, i = 0; i < 25; i++) {
    const rx = stats.ports[port]?.rx_packets ?? 0;
    if (rx === last) break;
    last = rx;
    await sleep(200);
    stats = await d.stats();
  }
  return stats;
}
