// npm run bench [-- --quick] [-- --help]
//
// Side-by-side forwarding benchmark: vswitchd, the Linux bridge and Open vSwitch's
// userspace datapath (AF_XDP ports) on one veth topology, generator ns → switch → sink
// ns, two generators (an XDP live-frames source and trafgen), two frame sizes, two CPU
// placements. Prints one table at the end and writes bench/results/<timestamp>.json,
// latest.json and latest.svg. See bench/README.md.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderSvg, renderTables, type BenchResults, type RunRecord, type SwitchRecord } from './lib/report.js';
import { runSoak } from './soak.js';
import { OVS_DIR, removeStaleOvs, repoRoot, setupSwitch, type RunningSwitch, type SwitchKind, SWITCH_LABEL } from './lib/switches.js';
import {
  Cleanup,
  blockNewProcs,
  cpuDelta,
  liveChildren,
  nowNs,
  foreignCpuNs,
  foreignDelta,
  procCpuNs,
  procMem,
  procTreeCpuNs,
  readCpuTimes,
  run,
  sleep,
  type CpuTimes,
} from './lib/sys.js';
import {
  GEN_PORT,
  NS_GEN,
  SINK_PORT,
  Sink,
  buildTopology,
  ethtoolStats,
  iperf3,
  offeredCount,
  pinNapi,
  pingOk,
  pingRtt,
  removeStale,
  setThreaded,
  startTrafgen,
  startXdpGen,
  type Generator,
} from './lib/topo.js';

type Placement = 'default' | 'pinned';
type GenKind = 'xdp' | 'trafgen';

const USAGE = `usage: npm run bench -- [options]     (root; after npm run build)
  --soak MINUTES          soak instead: mixed traffic through vswitchd for MINUTES, /metrics every second; prints RSS and fd drift, drops and error lines (bench/soak.ts)

  --quick                 ~3 minutes: 64-byte frames, default placement, 5 s runs
  --seconds N             measured seconds per run (default 10; quick 5)
  --warmup N              seconds of traffic before each measured window (default 1)
  --idle-seconds N        idle CPU window (default 15; /proc counts CPU in 10 ms ticks, so 5 s resolves only 0.2 %)
  --sizes 64,1518         frame sizes in bytes, FCS included (default 64,1518)
  --gens xdp,trafgen      generators (default both)
  --placements default,pinned
  --switches vswitchd,vswitchd-xdp,vswitchd-afxdp,bridge,ovs  (vswitchd: as shipped,
                          fast_path auto (tc on veths); vswitchd-xdp: fast_path xdp (the XDP hook);
                          vswitchd-afxdp: fast_path off, every frame through AF_XDP;
                          vswitchd-policy, vswitchd-xdp-policy: the first two with port
                          security and policing on the generator and sink ports, in the same run)
  --ports N               switch ports, the 2 active ones included (default 8)
  --gen-cpu N             generator's CPU (default 0)
  --switch-cpu N          switch's CPU in the pinned placement (default 1)
  --fdb-entries N         fill vswitchd's FDB with N static entries first (fdb.capacity is raised to fit)
  --flows N               xdp generator: spread frames over N destination MACs, the first N
                          static entries (needs --fdb-entries >= N, vswitchd switches only;
                          the entries then sit on the sink port). Default 1: one flow
  --set KEY=VALUE         extra vswitchd config (dotted path; VALUE as JSON or string), repeatable
  --port-policy           vswitchd: port security (own MAC and IP) and policing (100 Gbit/s) on the
                          generator and sink ports: what the checks cost (issue 14)
  --no-iperf              skip iperf3
  --wait-quiet N          before each switch, wait up to N s for other processes on the
                          machine to use < 10% of a CPU (default 30; 0 = don't wait)
  --label TEXT            free text stored in the results (what this run tries)
  --out DIR               results directory (default bench/results)
`;

interface Options {
  seconds: number;
  warmup: number;
  idleSeconds: number;
  sizes: number[];
  gens: GenKind[];
  placements: Placement[];
  switches: SwitchKind[];
  ports: number;
  genCpu: number;
  switchCpu: number;
  vswitchdSet: Record<string, unknown>;
  portPolicy: boolean;
  /** Static FDB entries vswitchd gets before the runs (the FDB-size target of issue 5). */
  fdbEntries: number;
  flows: number;
  iperf: boolean;
  waitQuiet: number;
  label: string;
  out: string;
  quick: boolean;
  /** --soak MINUTES: the soak run (bench/soak.ts) instead of the rate benchmark. */
  soakMinutes?: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      'idle-seconds': { type: 'string' },
      sizes: { type: 'string' },
      gens: { type: 'string' },
      placements: { type: 'string' },
      switches: { type: 'string' },
      'fdb-entries': { type: 'string' },
      flows: { type: 'string' },
      ports: { type: 'string' },
      'gen-cpu': { type: 'string' },
      'switch-cpu': { type: 'string' },
      set: { type: 'string', multiple: true },
      'no-iperf': { type: 'boolean' },
      'wait-quiet': { type: 'string' },
      label: { type: 'string' },
      'port-policy': { type: 'boolean' },
      out: { type: 'string' },
      soak: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const num = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${v}`);
    return n;
  };
  const list = <T extends string>(v: string | undefined, d: T[], allowed: readonly T[], name: string): T[] => {
    if (v === undefined) return d;
    const out = v.split(',').map((s) => s.trim()) as T[];
    for (const x of out) if (!allowed.includes(x)) throw new Error(`--${name}: unknown "${x}" (one of ${allowed.join(', ')})`);
    return out;
  };
  const vswitchdSet: Record<string, unknown> = {};
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--set wants KEY=VALUE, got ${kv}`);
    const raw = kv.slice(eq + 1);
    let v: unknown = raw;
    try {
      v = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    vswitchdSet[kv.slice(0, eq)] = v;
  }
  const ncpu = cpus().length;
  const o: Options = {
    soakMinutes: values.soak === undefined ? undefined : num(values.soak, 2, 'soak'),
    quick,
    seconds: num(values.seconds, quick ? 5 : 10, 'seconds'),
    warmup: num(values.warmup, 1, 'warmup'),
    idleSeconds: num(values['idle-seconds'], 15, 'idle-seconds'),
    sizes: values.sizes ? values.sizes.split(',').map((s) => num(s, 64, 'sizes')) : quick ? [64] : [64, 1518],
    gens: list(values.gens, ['xdp', 'trafgen'], ['xdp', 'trafgen'] as const, 'gens'),
    placements: list(values.placements, quick ? ['default'] : ['default', 'pinned'], ['default', 'pinned'] as const, 'placements'),
    switches: list(values.switches, ['vswitchd', 'vswitchd-afxdp', 'bridge', 'ovs'], ['vswitchd', 'vswitchd-xdp', 'vswitchd-afxdp', 'vswitchd-policy', 'vswitchd-xdp-policy', 'bridge', 'ovs'] as const, 'switches'),
    ports: Math.max(2, Math.min(16, num(values.ports, 8, 'ports'))),
    genCpu: num(values['gen-cpu'], 0, 'gen-cpu'),
    switchCpu: num(values['switch-cpu'], Math.min(1, ncpu - 1), 'switch-cpu'),
    vswitchdSet,
    fdbEntries: num(values['fdb-entries'], 0, 'fdb-entries'),
    flows: num(values.flows, 1, 'flows'),
    iperf: !(values['no-iperf'] ?? false),
    portPolicy: values['port-policy'] ?? false,
    waitQuiet: num(values['wait-quiet'], 30, 'wait-quiet'),
    label: values.label ?? '',
    out: values.out ?? join(repoRoot(), 'bench', 'results'),
  };
  for (const s of o.sizes) if (s < 64 || s > 1518) throw new Error(`--sizes: ${s} is outside 64..1518`);
  if (o.flows > 1) {
    // Other switches would flood frames to MACs only vswitchd's FDB knows.
    if (o.flows > o.fdbEntries) throw new Error(`--flows ${o.flows} needs --fdb-entries >= ${o.flows}`);
    if (o.switches.some((k) => !k.startsWith('vswitchd'))) throw new Error('--flows applies to vswitchd and vswitchd-afxdp only');
  }
  return o;
}

// ---- progress ----

let stepsDone = 0;
let stepsTotal = 0;
const tty = process.stderr.isTTY;
function progress(msg: string): void {
  const line = `[${stepsDone}/${stepsTotal}] ${msg}`;
  if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  else process.stderr.write(`${line}\n`);
}
function log(msg: string): void {
  if (tty) process.stderr.write('\r\x1b[K');
  process.stderr.write(`${msg}\n`);
}

// ---- measurement ----

/** Numeric leaves of b minus a (same shape); non-numbers dropped, zeros dropped. */
function numDelta(a: unknown, b: unknown): unknown {
  if (typeof b === 'number') return typeof a === 'number' ? b - a : b;
  if (Array.isArray(b)) return b.map((x, i) => numDelta(Array.isArray(a) ? a[i] : undefined, x));
  if (b && typeof b === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(b)) {
      const d = numDelta(a && typeof a === 'object' ? (a as Record<string, unknown>)[k] : undefined, v);
      if (d === 0 || d === undefined) continue;
      if (d && typeof d === 'object' && !Array.isArray(d) && Object.keys(d).length === 0) continue;
      out[k] = d;
    }
    return out;
  }
  return undefined;
}

interface Snapshot {
  foreign: Map<number, number>;
  cpu: CpuTimes[];
  t: bigint;
  swCpuNs: number;
  genCpuNs: number;
  offered: { offered: number; dropped_at_veth: number; t: bigint };
  sink: { packets: number; t: bigint };
  swStats: unknown;
  portVeth: Record<string, number>;
}

async function snapshot(sw: RunningSwitch, sink: Sink, gen: GenKind, genPid: number): Promise<Snapshot> {
  const offered = await offeredCount(gen);
  const sinkC = await sink.count();
  const cpu = readCpuTimes();
  const t = nowNs();
  const swCpuNs = sw.pid ? procCpuNs(sw.pid) : 0;
  const genCpuNs = procTreeCpuNs(genPid);
  const foreign = foreignCpuNs([process.pid, genPid, ...(sw.pid ? [sw.pid] : []), ...Object.values(sw.extraPids), sink.proc.pid]);
  const swStats = await sw.stats().catch(() => undefined);
  const portVeth = await ethtoolStats(GEN_PORT);
  return { foreign, cpu, t, swCpuNs, genCpuNs, offered, sink: sinkC, swStats, portVeth };
}

async function measure(sw: RunningSwitch, sink: Sink, o: Options, placement: Placement, size: number, gen: GenKind, workDir: string): Promise<RunRecord> {
  const base: RunRecord = { placement, switch: sw.label, kind: sw.kind, size, gen, ok: false, seconds: o.seconds, notes: [] };
  if (!(await pingOk(2))) {
    if (!(await pingOk(3))) return { ...base, error: 'no ping across the switch before the run' };
  }
  if (placement === 'pinned') await pinNapi([GEN_PORT, SINK_PORT], o.switchCpu);
  let g: Generator | undefined;
  try {
    g =
      gen === 'xdp'
        ? await startXdpGen(join(repoRoot(), 'bench', 'build'), size, o.genCpu, o.warmup + o.seconds + 30, o.flows)
        : await startTrafgen(workDir, size, o.genCpu);
    await sleep(o.warmup * 1000);
    const a = await snapshot(sw, sink, gen, g.proc.pid);
    await sleep(o.seconds * 1000);
    const b = await snapshot(sw, sink, gen, g.proc.pid);
    const alive = g.proc.running;
    await g.stop();
    if (!alive) throw new Error(`generator exited during the run: ${g.proc.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const sec = (x: bigint, y: bigint) => Number(y - x) / 1e9;
    const offeredPps = (b.offered.offered - a.offered.offered) / sec(a.offered.t, b.offered.t);
    const droppedVethPps = (b.offered.dropped_at_veth - a.offered.dropped_at_veth) / sec(a.offered.t, b.offered.t);
    const fwd = b.sink.packets - a.sink.packets;
    const fwdPps = fwd / sec(a.sink.t, b.sink.t);
    const wall = sec(a.t, b.t);
    const cpu = cpuDelta(a.cpu, b.cpu);
    const busyNs = cpu.reduce((s, c) => s + c.busy_ns, 0);
    const swNs = b.swCpuNs - a.swCpuNs;
    const genNs = b.genCpuNs - a.genCpuNs;
    const rec: RunRecord = {
      ...base,
      ok: fwd > 0,
      offered_pps: offeredPps,
      forwarded_pps: fwdPps,
      loss_pct: offeredPps > 0 ? Math.max(0, 100 * (1 - fwdPps / offeredPps)) : 0,
      dropped_at_gen_veth_pps: droppedVethPps,
      cpu,
      switch_cpu_pct: (100 * swNs) / 1e9 / wall,
      gen_cpu_pct: (100 * genNs) / 1e9 / wall,
      ns_per_frame: fwd > 0 ? busyNs / fwd : undefined,
      ns_per_frame_off_gen_cpu: fwd > 0 ? cpu.reduce((s, c, i) => s + (i === o.genCpu ? 0 : c.busy_ns), 0) / fwd : undefined,
      port_veth: numDelta(a.portVeth, b.portVeth) as Record<string, number>,
      switch_stats: numDelta(a.swStats, b.swStats),
    };
    rec.foreign_cpu_pct = (100 * foreignDelta(a.foreign, b.foreign)) / 1e9 / wall;
    if (rec.foreign_cpu_pct > 5) rec.notes.push(`NOISY: other processes took ${rec.foreign_cpu_pct.toFixed(0)}% of a CPU`);
    if (fwd === 0) rec.error = 'nothing reached the sink';
    if (sw.kind.startsWith('vswitchd')) rec.notes.push(...vswitchdFindings(rec.switch_stats, fwd));
    return rec;
  } catch (err) {
    return { ...base, error: (err as Error).message.split('\n')[0] };
  } finally {
    if (g?.proc.running) await g.proc.stop('SIGKILL', 2000);
  }
}

/** What in vswitchd's own counters over a run looks like a datapath problem. */
function vswitchdFindings(stats: unknown, fwd: number): string[] {
  const out: string[] = [];
  const s = stats as { ports?: Record<string, { flood_packets?: number; drops?: Record<string, number>; rx_packets?: number; tx_packets?: number }> } | undefined;
  if (!s?.ports) return out;
  const drops: Record<string, number> = {};
  let flood = 0;
  for (const [port, c] of Object.entries(s.ports)) {
    for (const [r, n] of Object.entries(c.drops ?? {})) if (n > 0) drops[`${port}:${r}`] = n;
    if (port === GEN_PORT) flood += c.flood_packets ?? 0;
  }
  const d = Object.entries(drops)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  if (d) out.push(`drops ${d}`);
  if (fwd > 0 && flood > 0.01 * fwd) out.push(`flooded ${flood} (sink MAC not learned?)`);
  return out;
}

async function idleWindow(sw: RunningSwitch, seconds: number): Promise<SwitchRecord['idle']> {
  await sleep(1000);
  const mine = [process.pid, ...(sw.pid ? [sw.pid] : []), ...Object.values(sw.extraPids)];
  const f0 = foreignCpuNs(mine);
  const c0 = readCpuTimes();
  const t0 = nowNs();
  const s0 = sw.pid ? procCpuNs(sw.pid) : 0;
  await sleep(seconds * 1000);
  const c1 = readCpuTimes();
  const t1 = nowNs();
  const s1 = sw.pid ? procCpuNs(sw.pid) : 0;
  const f1 = foreignCpuNs(mine);
  const wall = Number(t1 - t0) / 1e9;
  const cpu = cpuDelta(c0, c1);
  return {
    seconds,
    switch_cpu_pct: (100 * (s1 - s0)) / 1e9 / wall,
    system_busy_pct: cpu.reduce((s, c) => s + (100 - c.idle), 0),
    foreign_cpu_pct: (100 * foreignDelta(f0, f1)) / 1e9 / wall,
    cpu,
  };
}

/** Wait (up to maxS) until processes outside the benchmark use < 10% of a CPU; returns their last share. */
async function waitQuiet(maxS: number): Promise<number> {
  const end = Date.now() + maxS * 1000;
  for (;;) {
    const a = foreignCpuNs([process.pid]);
    await sleep(1000);
    const pct = foreignDelta(a, foreignCpuNs([process.pid])) / 1e7;
    if (pct < 10 || Date.now() >= end) return pct;
    progress(`waiting for the machine to go quiet: other processes use ${pct.toFixed(0)}% of a CPU`);
  }
}

async function benchSwitch(kind: SwitchKind, placement: Placement, o: Options, workDir: string): Promise<SwitchRecord> {
  const rec: SwitchRecord = { placement, switch: SWITCH_LABEL[kind], kind, ok: false, notes: [], runs: [] };
  const steps = o.sizes.length * o.gens.length;
  if (o.waitQuiet > 0) {
    const pct = await waitQuiet(o.waitQuiet);
    if (pct >= 10) rec.notes.push(`machine busy: other processes used ${pct.toFixed(0)}% of a CPU before the runs`);
  }
  progress(`${placement} ${rec.switch}: setting up`);
  let topoCleanup: Cleanup | undefined;
  let sink: Sink | undefined;
  let sw: RunningSwitch | undefined;
  try {
    const topo = await buildTopology(o.ports);
    topoCleanup = topo.cleanup;
    // trafgen's TX ring needs socket memory (it dies on EAGAIN otherwise): the generator's namespace too.
    await run(['sysctl', '-qw', 'net.core.wmem_default=4194304'], { ns: NS_GEN, check: false });
    sink = await Sink.start(join(repoRoot(), 'bench', 'build'));
    // Raised only when the default capacity (65536) would be over half full.
    const capacity = o.fdbEntries * 2 > 65536 ? 2 ** Math.ceil(Math.log2(o.fdbEntries * 2)) : o.fdbEntries > 0 ? 65536 : undefined;
    const vswitchdSet = capacity ? { 'fdb.capacity': capacity, ...o.vswitchdSet } : o.vswitchdSet;
    sw = await setupSwitch(kind, { ports: topo.ports, workDir, cpu: placement === 'pinned' ? o.switchCpu : undefined, vswitchdSet, portPolicy: o.portPolicy, log });
    rec.switch = sw.label;
    rec.notes.push(...sw.notes);
    if (o.fdbEntries > 0 && sw.fillFdb) {
      progress(`${placement} ${rec.switch}: filling the FDB with ${o.fdbEntries} entries`);
      const t0 = Date.now();
      // With --flows the generator's frames go to these MACs, so they must lead to the sink.
      const port = o.flows > 1 ? SINK_PORT : topo.ports.find((p) => p !== GEN_PORT && p !== SINK_PORT)!;
      await sw.fillFdb(o.fdbEntries, port);
      rec.notes.push(
        `FDB filled with ${o.fdbEntries} static entries on ${port} (capacity ${capacity}) in ${((Date.now() - t0) / 1000).toFixed(1)} s` +
          (o.flows > 1 ? `; xdp generator spread over ${o.flows} of them` : ''),
      );
    }
    if (placement === 'pinned') {
      rec.notes.push(...(await setThreaded([GEN_PORT, SINK_PORT], true)));
      const n = await pinNapi([GEN_PORT, SINK_PORT], o.switchCpu);
      rec.notes.push(`threaded NAPI: ${n} kthreads pinned to CPU ${o.switchCpu}`);
    }
    // Learn: the sink answers ARP, so the switch learns its MAC; then unicast only.
    const end = Date.now() + 15_000;
    while (!(await pingOk(1))) {
      if (Date.now() > end) throw new Error('no ping across the switch in 15 s');
    }
    progress(`${placement} ${rec.switch}: idle CPU ${o.idleSeconds} s`);
    rec.idle = await idleWindow(sw, o.idleSeconds);
    progress(`${placement} ${rec.switch}: ping RTT`);
    rec.ping = await pingRtt(200, 0.01, placement === 'pinned' ? o.genCpu : undefined).catch((err: Error) => ({ error: err.message }));
    if (o.iperf) {
      progress(`${placement} ${rec.switch}: iperf3`);
      rec.iperf3 = await iperf3(5, placement === 'pinned' ? o.genCpu : undefined).catch((err: Error) => ({ error: err.message.split('\n')[0]! }));
    }
    for (const size of o.sizes) {
      for (const gen of o.gens) {
        progress(`${placement} ${rec.switch} ${size}B ${gen}: ${o.warmup + o.seconds} s`);
        const r = await measure(sw, sink, o, placement, size, gen, workDir);
        rec.runs.push(r);
        stepsDone++;
        const fig = r.error ? `error: ${r.error}` : `${(r.offered_pps! / 1e6).toFixed(2)} Mpps offered, ${(r.forwarded_pps! / 1e6).toFixed(2)} forwarded, ${r.ns_per_frame?.toFixed(0)} ns/frame`;
        progress(`${placement} ${rec.switch} ${size}B ${gen}: ${fig}`);
        if (!tty) continue;
        log(`  ${placement.padEnd(7)} ${rec.switch.padEnd(14)} ${String(size).padStart(4)}B ${gen.padEnd(7)} ${fig}`);
      }
    }
    if (sw.pid) {
      rec.mem = procMem(sw.pid);
      rec.extra_mem = Object.fromEntries(Object.entries(sw.extraPids).map(([k, pid]) => [k, procMem(pid)]));
    }
    rec.ok = rec.runs.some((r) => r.ok);
  } catch (err) {
    rec.error = (err as Error).message;
    log(`${placement} ${rec.switch}: ${rec.error.split('\n')[0]}`);
    stepsDone += steps - rec.runs.length;
  } finally {
    if (sw) await sw.stop().catch((err: Error) => log(`stopping ${rec.switch}: ${err.message}`));
    if (sink) await sink.stop().catch(() => undefined);
    if (topoCleanup) await topoCleanup.run(log);
  }
  return rec;
}

// ---- main ----

const LOCK = '/run/vbench.lock';

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: must run as root (namespaces, XDP)\n');
    return 1;
  }
  if (o.soakMinutes !== undefined) return runSoak(o.soakMinutes);
  const root = repoRoot();
  const build = join(root, 'bench', 'build');
  for (const f of ['vbsink', 'vbxdpgen', 'vb_sink.bpf.o', 'vb_gen.bpf.o']) {
    if (!existsSync(join(build, f))) {
      process.stderr.write(`bench: ${join(build, f)} missing: run make -C bench (npm run bench does)\n`);
      return 1;
    }
  }
  if (o.switches.some((k) => k.startsWith('vswitchd')) && !existsSync(join(root, 'build', 'Release'))) {
    process.stderr.write('bench: the vswitchd addon is not built: run npm run build first\n');
    return 1;
  }
  if (existsSync(LOCK)) {
    const pid = Number(readFileSync(LOCK, 'utf8').trim());
    if (pid > 0 && existsSync(`/proc/${pid}`)) {
      process.stderr.write(`bench: another benchmark (pid ${pid}) is running\n`);
      return 1;
    }
  }
  writeFileSync(LOCK, `${process.pid}\n`);

  const cleanup = new Cleanup();
  cleanup.add('lock', () => rmSync(LOCK, { force: true }));
  const workDir = join('/tmp', `vbench-${process.pid}`);
  mkdirSync(workDir, { recursive: true });
  cleanup.add('work dir', () => rmSync(workDir, { recursive: true, force: true }));

  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`bench: ${sig}, cleaning up`);
    blockNewProcs();
    const killAll = () => {
      for (const c of liveChildren()) {
        try {
          if (c.pid) process.kill(-c.pid, 'SIGKILL'); // the ones started as a group (trafgen)
        } catch {
          /* not a group leader */
        }
        try {
          c.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }
    };
    void (async () => {
      killAll();
      await sleep(300);
      await removeStaleOvs().catch(() => undefined);
      await removeStale().catch(() => undefined);
      await cleanup.run(log);
      killAll();
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  try {
    await removeStaleOvs();
    await removeStale();
    // trafgen dies on "Flushing TX_RING failed: EAGAIN" when the receiver runs on the
    // other CPU; a larger default socket send buffer (root namespace only) avoids it.
    const wmem = readFileSync('/proc/sys/net/core/wmem_default', 'utf8').trim();
    writeFileSync('/proc/sys/net/core/wmem_default', '4194304');
    cleanup.add('wmem_default', () => writeFileSync('/proc/sys/net/core/wmem_default', wmem));

    stepsTotal = o.placements.length * o.switches.length * o.sizes.length * o.gens.length;
    const started = new Date();
    const git = await run(['git', '-C', root, 'rev-parse', '--short', 'HEAD'], { check: false });
    const dirty = await run(['git', '-C', root, 'status', '--porcelain', '--', 'native', 'src', 'bpf'], { check: false });
    const ovsVersion = (await run(['ovs-vswitchd', '--version'], { check: false }).catch(() => ({ stdout: '' }))).stdout.split('\n')[0] ?? '';
    const results: BenchResults = {
      meta: {
        started: started.toISOString(),
        label: o.label,
        quick: o.quick,
        kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? '',
        node: process.version,
        ovs: ovsVersion,
        git: `${git.stdout.trim()}${dirty.stdout.trim() ? '+dirty' : ''}`,
        options: { ...o, out: undefined },
      },
      switches: [],
    };
    for (const placement of o.placements) {
      for (const kind of o.switches) {
        if (stopping) break;
        results.switches.push(await benchSwitch(kind, placement, o, workDir));
      }
    }
    results.meta.seconds_total = (Date.now() - started.getTime()) / 1000;
    if (tty) process.stderr.write('\r\x1b[K');
    process.stdout.write(renderTables(results));
    mkdirSync(o.out, { recursive: true });
    const stamp = started.toISOString().replace(/[:.]/g, '-');
    const json = JSON.stringify(results, null, 2) + '\n';
    writeFileSync(join(o.out, `${stamp}.json`), json);
    writeFileSync(join(o.out, 'latest.json'), json);
    writeFileSync(join(o.out, 'latest.svg'), renderSvg(results));
    process.stdout.write(`\nresults: ${join(o.out, `${stamp}.json`)}, latest.json, latest.svg (${results.meta.seconds_total.toFixed(0)} s)\n`);
    return results.switches.some((s) => s.ok) ? 0 : 1;
  } finally {
    if (!stopping) await cleanup.run(log);
    if (existsSync(OVS_DIR)) rmSync(OVS_DIR, { recursive: true, force: true });
  }
}

process.exitCode = await main();
