// npm run bench:flood [-- --rate 200000] [-- --seconds 4] [-- --rounds 3] [-- --limit 1024] [-- --modes auto,off]
//
// A MAC flood beside normal traffic (issue 12): one port (a third namespace) sends
// --rate frames/s, each from a random source MAC to the broadcast address (macof), while
// two containers run iperf3 and ping through the same switch on the same VLAN. Per
// datapath.fast_path mode it prints, beside the same figures without the flood: the
// iperf3 rate, ping loss, the daemon's CPU while only the flood runs (once the port is at
// its MAC limit), and where the flood's frames went (drops by reason, per second).
// The generator is vbxdpgen (XDP live frames, paced in bursts of 50 ms' worth), pinned
// to CPU 0, iperf3 and ping to CPU 1 (--traffic-cpu). Writes bench/results/flood-latest.json. See bench/README.md.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, setupSwitch, type RunningSwitch } from './lib/switches.js';
import { Proc, procCpuNs, run, sleep } from './lib/sys.js';
import { GEN_IP, NS_IDLE, NS_SINK, SINK_MAC, buildTopology, idlePort, iperf3, pingOk, removeStale } from './lib/topo.js';

const FLOOD_DEV = 'vbi0';
const FLOOD_PORT = idlePort(0);

interface PortStats {
  rx_packets: number;
  drops: Record<string, number>;
}

interface Phase {
  iperf_gbps: number;
  retransmits: number;
  ping: { sent: number; received: number };
}

interface ModeResult {
  mode: string;
  /** Medians over the rounds (ping: summed). */
  baseline: Phase;
  rounds: { without: number; with: number }[];
  flood: Phase & {
    offered_pps: number;
    daemon_cpu_pct: number;
    fdb_entries_on_flood_port: number;
    drops_per_s: Record<string, number>;
    learn_events_per_s: number;
  };
  error?: string;
}

const rxPackets = (dev: string) => Number(readFileSync(`/sys/class/net/${dev}/statistics/rx_packets`, 'utf8'));

/** iperf3 gen -> sink for `seconds` with a ping sink -> gen every 10 ms beside it. */
async function phase(seconds: number, cpu?: number): Promise<Phase> {
  const count = seconds * 100;
  const pin = (argv: string[]) => (cpu === undefined ? argv : ['taskset', '-c', `${cpu}`, ...argv]);
  const pinger = new Proc(pin(['ping', '-n', '-q', '-c', `${count}`, '-i', '0.01', '-W', '1', GEN_IP]), { ns: NS_SINK });
  const r = await iperf3(seconds, cpu);
  await pinger.exited;
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(pinger.stdout);
  return { iperf_gbps: r.gbps, retransmits: r.retransmits, ping: { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) } };
}

async function portStats(sw: RunningSwitch): Promise<{ port: PortStats; learn: number }> {
  const s = (await sw.stats()) as { ports: Record<string, PortStats>; workers: { learn_events: number }[] };
  return { port: s.ports[FLOOD_PORT] ?? { rx_packets: 0, drops: {} }, learn: s.workers.reduce((n, w) => n + w.learn_events, 0) };
}

async function measureMode(mode: string, o: { rate: number; seconds: number; rounds: number; limit: number; workDir: string; trafficCpu?: number }): Promise<ModeResult> {
  const topo = await buildTopology(3, { defaultOffloads: true });
  let sw: RunningSwitch | undefined;
  let gen: Proc | undefined;
  try {
    // Frames an XDP generator sends reach a veth only if it has NAPI (an XDP program or GRO).
    await run(['ethtool', '-K', FLOOD_PORT, 'gro', 'on']);
    // "floor": the flood goes into a veth that is no switch port (the host stack drops it):
    // what the generator and the kernel's receive cost the other traffic by themselves.
    const floor = mode === 'floor';
    const ports = floor ? topo.ports.filter((p) => p !== FLOOD_PORT) : topo.ports;
    sw = await setupSwitch('vswitchd', { ports, workDir: o.workDir, vswitchdSet: { 'datapath.fast_path': floor ? 'auto' : mode, 'fdb.max_per_port': o.limit }, log: console.log });
    for (let i = 0; i < 20 && !(await pingOk(1)); i++);
    const frame = Buffer.alloc(60);
    Buffer.from('ffffffffffff02f100000001', 'hex').copy(frame, 0);
    frame.writeUInt16BE(0x0800, 12);
    const startFlood = async () => {
      const p = new Proc(['taskset', '-c', '0', join(repoRoot(), 'bench', 'build', 'vbxdpgen'), '--dev', FLOOD_DEV, '--obj', join(repoRoot(), 'bench', 'build', 'vb_gen.bpf.o'),
        '--frame', frame.toString('hex'), '--seconds', `${o.seconds * 2 + 10}`, '--random-src', '--rate', `${o.rate}`], { ns: NS_IDLE, stdin: true });
      if ((await p.line(10_000)) !== 'ready') throw new Error(`vbxdpgen: ${p.stderr}`);
      return p;
    };
    // Rounds of (no flood, flood) side by side: the host is shared, one window alone is noise.
    const baselines: Phase[] = [];
    const floods: Phase[] = [];
    let cpuPct = 0;
    let offered = 0;
    let learnPerS = 0;
    let fdbEntries = 0;
    const drops: Record<string, number> = {};
    for (let round = 0; round < o.rounds; round++) {
      baselines.push(await phase(o.seconds, o.trafficCpu));
      gen = await startFlood();
      await sleep(2000);  // the port reaches its limit (first round), or is at it still
      if (round === 0) {
        // The flood alone: the daemon's CPU for it, and where its frames go.
        const t0 = process.hrtime.bigint();
        const cpu0 = procCpuNs(sw.pid!);
        const rx0 = rxPackets(FLOOD_PORT);
        const s0 = await portStats(sw);
        await sleep(o.seconds * 1000);
        const s1 = await portStats(sw);
        const rx1 = rxPackets(FLOOD_PORT);
        const cpu1 = procCpuNs(sw.pid!);
        const wallNs = Number(process.hrtime.bigint() - t0);
        for (const [r, n] of Object.entries(s1.port.drops)) {
          const d = n - (s0.port.drops[r] ?? 0);
          if (d > 0) drops[r] = Math.round((d * 1e9) / wallNs);
        }
        cpuPct = (100 * (cpu1 - cpu0)) / wallNs;
        offered = Math.round(((rx1 - rx0) * 1e9) / wallNs);
        learnPerS = Math.round(((s1.learn - s0.learn) * 1e9) / wallNs);
        if (!floor) {
          const fdb = (await run([process.execPath, join(repoRoot(), 'bin', 'vswitchctl.js'), '--socket', join(o.workDir, 'vswitchd', 'vswitchd.sock'), '--json', 'fdb', 'show', '--port', FLOOD_PORT])).stdout;
          fdbEntries = (JSON.parse(fdb) as unknown[]).length;
        }
      }
      floods.push(await phase(o.seconds, o.trafficCpu));
      gen.write('q\n');
      await gen.stop('SIGTERM', 5000);
      gen = undefined;
    }
    const med = (ps: Phase[]): Phase => {
      const sorted = [...ps].sort((x, y) => x.iperf_gbps - y.iperf_gbps);
      const m = sorted[Math.floor(sorted.length / 2)]!;
      return { ...m, ping: { sent: ps.reduce((n, p) => n + p.ping.sent, 0), received: ps.reduce((n, p) => n + p.ping.received, 0) } };
    };
    return {
      mode,
      baseline: med(baselines),
      rounds: baselines.map((b, i) => ({ without: b.iperf_gbps, with: floods[i]!.iperf_gbps })),
      flood: {
        ...med(floods),
        offered_pps: offered,
        daemon_cpu_pct: cpuPct,
        fdb_entries_on_flood_port: fdbEntries,
        drops_per_s: drops,
        learn_events_per_s: learnPerS,
      },
    };
  } finally {
    if (gen) {
      gen.write('q\n');
      await gen.stop('SIGTERM', 5000);
    }
    await sw?.stop().catch(() => undefined);
    await topo.cleanup.run();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      limit: { type: 'string', default: '1024' },
      // floor: the same flood into a veth that is not a switch port, for reference.
      modes: { type: 'string', default: 'auto,off,floor' },
      // The generator (and the kernel's receive work for the flood, in its softirq) runs on
      // CPU 0; iperf3 and ping on CPU 1 by default, so what the flood costs them is what the
      // switch spends on it, not the generator's own CPU. "any": let the scheduler place them.
      'traffic-cpu': { type: 'string', default: '1' },
    },
  });
  const trafficCpu = values['traffic-cpu'] === 'any' ? undefined : Number(values['traffic-cpu']);
  const o = { rate: Number(values.rate), seconds: Number(values.seconds), rounds: Number(values.rounds), limit: Number(values.limit), ...(trafficCpu !== undefined ? { trafficCpu } : {}) };
  const workDir = join('/tmp', `vbench-flood-${process.pid}`);
  mkdirSync(workDir, { recursive: true });
  await removeStale();
  const results: ModeResult[] = [];
  for (const mode of values.modes!.split(',')) {
    const r = await measureMode(mode, { ...o, workDir }).catch((err: Error): ModeResult => ({ mode, error: err.message } as ModeResult));
    results.push(r);
    console.log(JSON.stringify(r));
  }
  rmSync(workDir, { recursive: true, force: true });

  console.log(`\nMAC flood: ${o.rate} frames/s offered from one port, each from a random source (broadcast destination), MAC limit ${o.limit}; iperf3 median of ${o.rounds} rounds of ${o.seconds} s without and with the flood, ping summed; generator on CPU 0, iperf3 and ping on ${trafficCpu === undefined ? 'any CPU' : `CPU ${trafficCpu}`}`);
  console.log('fast_path | iperf3 Gbit/s without -> with flood (ratio) | ping lost without / with | daemon CPU, flood only | flood received/s | MACs on flood port | learn events/s | flood drops/s by reason');
  const lost = (p: Phase) => `${p.ping.sent - p.ping.received}/${p.ping.sent}`;
  for (const r of results) {
    if (r.error) {
      console.log(`${r.mode} | error: ${r.error.split('\n')[0]}`);
      continue;
    }
    const f = r.flood;
    console.log(
      [r.mode, `${r.baseline.iperf_gbps.toFixed(2)} -> ${f.iperf_gbps.toFixed(2)} (${(f.iperf_gbps / r.baseline.iperf_gbps).toFixed(2)}; rounds ${r.rounds.map((x) => (x.with / x.without).toFixed(2)).join(' ')})`, `${lost(r.baseline)} / ${lost(f)}`,
        `${f.daemon_cpu_pct.toFixed(1)} %`, `${f.offered_pps}`, `${f.fdb_entries_on_flood_port}`, `${f.learn_events_per_s}`,
        Object.entries(f.drops_per_s).map(([k, v]) => `${k} ${v}`).join(', ')].join(' | '),
    );
  }
  const out = join(repoRoot(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, trafficCpu === undefined ? 'flood-any-cpu-latest.json' : 'flood-latest.json'), JSON.stringify({ when: new Date().toISOString(), ...o, sink_mac: SINK_MAC, results }, null, 2) + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
