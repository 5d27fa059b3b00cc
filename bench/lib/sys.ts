// Process, /proc and command helpers for the benchmark (root only, Linux only).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** `ip netns exec NS argv...`, or argv itself in the root namespace. */
export function inNs(ns: string | undefined, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Every child the benchmark started and that has not exited yet: killed on cleanup. */
const live = new Set<ChildProcess>();
let blocked = false;

/** After this no new long-running child starts (Ctrl-C: nothing may outlive the cleanup). */
export function blockNewProcs(): void {
  blocked = true;
}

export function liveChildren(): ChildProcess[] {
  return [...live];
}

function track(child: ChildProcess): void {
  live.add(child);
  child.on('close', () => live.delete(child));
  child.on('error', () => live.delete(child));
}

/** Run a command to completion. Throws on a non-zero exit unless check is false. */
export function run(argv: string[], opts: { ns?: string; timeoutMs?: number; check?: boolean; input?: string } = {}): Promise<RunResult> {
  const full = inNs(opts.ns, argv);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if ((opts.check ?? true) && code !== 0) {
        const why = signal ? `killed by ${signal}` : `exit ${code}`;
        reject(new Error(`${full.join(' ')}: ${why}: ${(stderr + stdout).trim().split('\n').slice(-3).join(' | ')}`));
      } else {
        resolve({ code, stdout, stderr });
      }
    });
  });
}

/** Run and return true when it exited 0 (never throws for a failed command). */
export async function ok(argv: string[], ns?: string): Promise<boolean> {
  try {
    return (await run(argv, { ns, check: false, timeoutMs: 15_000 })).code === 0;
  } catch {
    return false;
  }
}

/**
 * A long-running child. Output is collected; `line()` waits for the next stdout line
 * (for the request/answer helpers vbsink and vbxdpgen). With group: true it gets its
 * own process group and stop() signals the whole group (trafgen forks its sender).
 */
export class Proc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private lines: string[] = [];
  private waiters: Array<(l: string | null) => void> = [];
  private partial = '';
  private closed = false;
  private readonly group: boolean;

  constructor(
    argv: string[],
    opts: { ns?: string; group?: boolean; env?: NodeJS.ProcessEnv; stdin?: boolean } = {},
  ) {
    if (blocked) throw new Error('shutting down');
    const full = inNs(opts.ns, argv);
    this.group = opts.group ?? false;
    this.child = spawn(full[0]!, full.slice(1), {
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: opts.group ?? false,
      env: opts.env ?? process.env,
    });
    track(this.child);
    this.child.stdout!.on('data', (d: Buffer) => {
      const s = d.toString();
      this.stdout = (this.stdout + s).slice(-20_000);
      this.partial += s;
      let nl: number;
      while ((nl = this.partial.indexOf('\n')) >= 0) {
        const l = this.partial.slice(0, nl);
        this.partial = this.partial.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(l);
        else this.lines.push(l);
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-20_000)));
    this.child.stdin?.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve(code);
      });
      this.child.on('error', (err) => {
        this.stderr += String(err);
        this.closed = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve(null);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return !this.closed && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The next stdout line; rejects after timeoutMs or when the process exits first. */
  line(timeoutMs = 10_000): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (!this.running) return Promise.reject(new Error(`process exited: ${this.stderr.trim()}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no output after ${timeoutMs} ms: ${this.stderr.trim()}`));
      }, timeoutMs);
      const w = (l: string | null) => {
        clearTimeout(timer);
        if (l === null) reject(new Error(`process exited: ${this.stderr.trim()}`));
        else resolve(l);
      };
      this.waiters.push(w);
    });
  }

  write(s: string): void {
    if (this.running) this.child.stdin?.write(s);
  }

  /** Ask a question on stdin, return the answering line. */
  async ask(q: string, timeoutMs = 5000): Promise<string> {
    const p = this.line(timeoutMs);
    this.write(q);
    return p;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      if (this.group) process.kill(-this.pid, sig); // the group we created for it
      else this.child.kill(sig);
    } catch {
      /* already gone */
    }
  }

  /** Signal, wait up to graceMs, then SIGKILL. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<number | null> {
    if (this.running) {
      this.signal(sig);
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      const code = await this.exited;
      clearTimeout(timer);
      return code;
    }
    return this.exited;
  }
}

// ---- /proc ----

export const CLK_TCK = 100; // USER_HZ: /proc/stat and /proc/PID/stat count in 1/100 s on Linux

export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

/** Per-CPU jiffies from /proc/stat, index = CPU number. */
export function readCpuTimes(): CpuTimes[] {
  const out: CpuTimes[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    out[Number(m[1])] = {
      user: v[0] ?? 0,
      nice: v[1] ?? 0,
      system: v[2] ?? 0,
      idle: v[3] ?? 0,
      iowait: v[4] ?? 0,
      irq: v[5] ?? 0,
      softirq: v[6] ?? 0,
      steal: v[7] ?? 0,
    };
  }
  return out;
}

export interface CpuSplit {
  /** Percent of this CPU's time over the interval. */
  user: number;
  system: number;
  softirq: number;
  idle: number;
  /** Busy CPU time in ns (everything but idle and iowait). */
  busy_ns: number;
}

export function cpuDelta(a: CpuTimes[], b: CpuTimes[]): CpuSplit[] {
  return b.map((t1, i) => {
    const t0 = a[i]!;
    const d = (k: keyof CpuTimes) => t1[k] - t0[k];
    const total = d('user') + d('nice') + d('system') + d('idle') + d('iowait') + d('irq') + d('softirq') + d('steal');
    const idle = d('idle') + d('iowait');
    const pct = (x: number) => (total > 0 ? (100 * x) / total : 0);
    return {
      user: pct(d('user') + d('nice')),
      system: pct(d('system')),
      softirq: pct(d('softirq') + d('irq')),
      idle: pct(idle),
      busy_ns: ((total - idle) * 1e9) / CLK_TCK,
    };
  });
}

/** utime+stime of a process (all its threads) in ns; 0 when it is gone. */
export function procCpuNs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ": state is f[0]; utime is field 14 of the full line = f[11], stime f[12]
    return ((Number(f[11]) + Number(f[12])) * 1e9) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** A process and its direct children (trafgen forks its sender). */
export function procTreeCpuNs(pid: number): number {
  let sum = procCpuNs(pid);
  for (const c of childPids(pid)) sum += procCpuNs(c);
  return sum;
}

export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** VmRSS and VmHWM in KiB (0 when the process is gone). */
export function procMem(pid: number): { rss_kb: number; hwm_kb: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss_kb: get('VmRSS'), hwm_kb: get('VmHWM') };
  } catch {
    return { rss_kb: 0, hwm_kb: 0 };
  }
}

/** Thread ids of a process whose comm matches re (e.g. OVS pmd threads). */
export function threadsOf(pid: number, re: RegExp): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      if (re.test(comm)) out.push(Number(tid));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Pids of kernel threads (or any process) whose comm matches re. */
export function pidsByComm(re: RegExp): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      if (re.test(comm)) out.push({ pid: Number(d), comm });
    } catch {
      /* raced with exit */
    }
  }
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Undo steps run in reverse order; a failing step is reported and the rest still run. */
export class Cleanup {
  private steps: Array<{ what: string; fn: () => unknown }> = [];

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  async run(log: (s: string) => void = () => undefined): Promise<void> {
    while (this.steps.length > 0) {
      const { what, fn } = this.steps.pop()!;
      try {
        await fn();
      } catch (err) {
        log(`cleanup: ${what}: ${(err as Error).message}`);
      }
    }
  }
}

/**
 * CPU time (utime+stime, ns) of every user-space process on the machine except the
 * given pids and their children: what other work (another test suite, a build) took
 * while the benchmark measured. Kernel threads (no cmdline) are left out.
 */
export function foreignCpuNs(exclude: number[]): Map<number, number> {
  const ex = new Set(exclude);
  for (const p of exclude) for (const c of childPids(p)) ex.add(c);
  const out = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (ex.has(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`).length === 0) continue; // kernel thread
    } catch {
      continue;
    }
    const ns = procCpuNs(pid);
    if (ns > 0) out.set(pid, ns);
  }
  return out;
}

/** Sum of the CPU time the processes took between two foreignCpuNs() samples. */
export function foreignDelta(a: Map<number, number>, b: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ns] of b) sum += ns - (a.get(pid) ?? ns); // a process that started in between: unknown start, skipped
  return sum;
}
