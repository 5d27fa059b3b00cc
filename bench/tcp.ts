// npm run bench:tcp [-- --seconds N] [-- --runs N] [-- --switches ...]
//
// Bulk TCP between two containers (network namespaces on veth pairs) whose side keeps
// its default offloads (partial checksums, TSO/GSO), through vswitchd (as shipped: tc
// on veths; and with the XDP hook), the Linux bridge and Open vSwitch's userspace
// datapath, one after the other in one run: iperf3 with 1 and 4 flows at MTU 1500 and
// 9000, the median of N runs, CPU per Gbit/s (all CPUs' busy time over the run, per
// Gbit transferred) and the receiver's TCP checksum errors. Writes
// bench/results/tcp-latest.json. See bench/README.md.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OVS_DIR, removeStaleOvs, repoRoot, setupSwitch, type RunningSwitch, type SwitchKind } from './lib/switches.js';
import { cpuDelta, readCpuTimes, run } from './lib/sys.js';
import { GEN_DEV, GEN_PORT, NS_GEN, NS_SINK, SINK_DEV, SINK_PORT, buildTopology, iperf3, pingOk, removeStale } from './lib/topo.js';

interface Contender {
  name: string;
  kind: SwitchKind;
  set?: Record<string, unknown>;
}

const CONTENDERS: Contender[] = [
  { name: 'vswitchd', kind: 'vswitchd' },
  { name: 'vswitchd-xdp-hook', kind: 'vswitchd', set: { 'datapath.fast_path': 'xdp' } },
  { name: 'linux-bridge', kind: 'bridge' },
  { name: 'ovs-afxdp', kind: 'ovs' },
];

interface Cell {
  gbps?: number;
  runs?: number[];
  retransmits?: number;
  cpu_ms_per_gbit?: number;
  csum_errors?: number;
  error?: string;
}

async function csumErrors(): Promise<number> {
  const res = await run(['nstat', '-asz', 'TcpInCsumErrors'], { ns: NS_SINK, check: false });
  return Number(/TcpInCsumErrors\s+(\d+)/.exec(res.stdout)?.[1] ?? 0);
}

async function setMtu(mtu: number): Promise<void> {
  for (const p of [GEN_PORT, SINK_PORT]) await run(['ip', 'link', 'set', p, 'mtu', `${mtu}`]);
  await run(['ip', 'link', 'set', GEN_DEV, 'mtu', `${mtu}`], { ns: NS_GEN });
  await run(['ip', 'link', 'set', SINK_DEV, 'mtu', `${mtu}`], { ns: NS_SINK });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(seconds: number, runs: number, flows: number): Promise<Cell> {
  const before = await csumErrors();
  const rates: number[] = [];
  let retransmits = 0;
  let busyNs = 0;
  let gbit = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = readCpuTimes();
    const r = await iperf3(seconds, undefined, flows);
    busyNs += cpuDelta(t0, readCpuTimes()).reduce((n, c) => n + c.busy_ns, 0);
    rates.push(r.gbps);
    retransmits += r.retransmits;
    gbit += r.gbps * seconds;
  }
  return {
    gbps: median(rates),
    runs: rates,
    retransmits,
    cpu_ms_per_gbit: gbit > 0 ? busyNs / 1e6 / gbit : undefined,
    csum_errors: (await csumErrors()) - before,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      runs: { type: 'string', default: '3' },
      switches: { type: 'string', default: CONTENDERS.map((c) => c.name).join(',') },
    },
  });
  const seconds = Number(values.seconds);
  const runs = Number(values.runs);
  const wanted = new Set(values.switches!.split(','));
  const workDir = join('/tmp', `vbench-tcp-${process.pid}`);
  mkdirSync(workDir, { recursive: true });
  await removeStaleOvs();
  await removeStale();
  const results: Record<string, Record<string, Cell>> = {};
  for (const c of CONTENDERS.filter((x) => wanted.has(x.name))) {
    const topo = await buildTopology(2, { defaultOffloads: true });
    let sw: RunningSwitch | undefined;
    results[c.name] = {};
    try {
      sw = await setupSwitch(c.kind, { ports: topo.ports, workDir, vswitchdSet: c.set ?? {}, log: (s) => console.log(s) });
      for (const mtu of [1500, 9000]) {
        try {
          await setMtu(mtu);
        } catch (err) {
          for (const flows of [1, 4]) results[c.name]![`mtu${mtu} x${flows}`] = { error: `MTU ${mtu} refused: ${(err as Error).message.split('\n').slice(-2).join(' ').trim()}` };
          continue;
        }
        for (let i = 0; i < 20 && !(await pingOk(1)); i++);
        for (const flows of [1, 4]) {
          const key = `mtu${mtu} x${flows}`;
          results[c.name]![key] = await measure(seconds, runs, flows).catch((err: Error) => ({ error: err.message.split('\n')[0]! }));
          console.log(`${c.name} ${key}: ${JSON.stringify(results[c.name]![key])}`);
        }
      }
    } catch (err) {
      results[c.name]!['setup'] = { error: (err as Error).message.split('\n')[0]! };
    } finally {
      await sw?.stop().catch(() => undefined);
      await topo.cleanup.run();
    }
  }
  rmSync(workDir, { recursive: true, force: true });
  rmSync(OVS_DIR, { recursive: true, force: true });

  const keys = ['mtu1500 x1', 'mtu1500 x4', 'mtu9000 x1', 'mtu9000 x4'];
  const cell = (r?: Cell) => (!r ? '-' : r.error ? `error` : `${r.gbps!.toFixed(1)} (${r.cpu_ms_per_gbit?.toFixed(0) ?? '-'} ms/Gbit, csum err ${r.csum_errors})`);
  console.log(`\nTCP, container side with default offloads: Gbit/s, median of ${runs} x ${seconds} s (CPU ms per Gbit, receiver checksum errors)`);
  console.log(['switch', ...keys].join(' | '));
  for (const [name, r] of Object.entries(results)) console.log([name, ...keys.map((k) => cell(r[k]))].join(' | '));
  for (const [name, r] of Object.entries(results))
    for (const [k, v] of Object.entries(r)) if (v.error) console.log(`  ${name} ${k}: ${v.error}`);
  const bridge = results['linux-bridge'];
  const ours = results['vswitchd'];
  if (bridge && ours) {
    console.log('\nvswitchd / linux-bridge:', keys.map((k) => `${k} ${ours[k]?.gbps && bridge[k]?.gbps ? (ours[k]!.gbps! / bridge[k]!.gbps!).toFixed(2) : '-'}x`).join(', '));
  }
  const out = join(repoRoot(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'tcp-latest.json'), JSON.stringify({ when: new Date().toISOString(), seconds, runs, results }, null, 2) + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
