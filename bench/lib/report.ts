// Result types, the printed tables and the SVG chart.

import type { CpuSplit } from './sys.js';

export interface RunRecord {
  placement: string;
  switch: string;
  kind: string;
  size: number;
  gen: string;
  ok: boolean;
  error?: string;
  seconds: number;
  offered_pps?: number;
  forwarded_pps?: number;
  loss_pct?: number;
  /** Frames the generator's veth could not hand to the switch port (its ring was full). */
  dropped_at_gen_veth_pps?: number;
  cpu?: CpuSplit[];
  /** The switch process's own CPU (utime+stime of all its threads), % of one CPU. */
  switch_cpu_pct?: number;
  gen_cpu_pct?: number;
  /** CPU taken by processes that are not part of the benchmark (other work on the machine), % of one CPU. */
  foreign_cpu_pct?: number;
  /** Busy CPU time of the whole machine per forwarded frame. */
  ns_per_frame?: number;
  /**
   * Busy time of every CPU but the generator's, per forwarded frame. In the pinned
   * placement that is the switch's cost (plus the sink's XDP drop); in the default one
   * part of the switch's work runs in softirq on the generator's CPU and is missing here.
   */
  ns_per_frame_off_gen_cpu?: number;
  port_veth?: Record<string, number>;
  switch_stats?: unknown;
  notes: string[];
}

export interface SwitchRecord {
  placement: string;
  switch: string;
  kind: string;
  ok: boolean;
  error?: string;
  notes: string[];
  idle?: { seconds: number; switch_cpu_pct: number; system_busy_pct: number; foreign_cpu_pct: number; cpu: CpuSplit[] };
  ping?: { sent: number; received: number; p50_ms: number; p99_ms: number } | { error: string };
  iperf3?: { gbps: number; retransmits: number } | { error: string };
  mem?: { rss_kb: number; hwm_kb: number };
  extra_mem?: Record<string, { rss_kb: number; hwm_kb: number }>;
  runs: RunRecord[];
}

export interface BenchResults {
  meta: Record<string, unknown> & { seconds_total?: number };
  switches: SwitchRecord[];
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i < 4 || i === head.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

const f = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const mpps = (v: number | undefined) => f(v === undefined ? undefined : v / 1e6, 3);
const split = (c: CpuSplit | undefined) => (c ? `${c.user.toFixed(0)}/${c.system.toFixed(0)}/${c.softirq.toFixed(0)}` : '-');

export function renderTables(r: BenchResults): string {
  let out = '';
  const ncpu = Math.max(0, ...r.switches.flatMap((s) => s.runs.map((x) => x.cpu?.length ?? 0)));
  const runHead = ['placement', 'switch', 'size', 'gen', 'offered Mpps', 'fwd Mpps', 'loss %', ...Array.from({ length: ncpu }, (_, i) => `cpu${i} us/sy/si %`), 'switch proc %', 'ns/frame', 'ns/frame off-gen-CPU', 'notes'];
  const rows: string[][] = [];
  for (const s of r.switches) {
    if (s.error && s.runs.length === 0) {
      rows.push([s.placement, s.switch, '-', '-', '-', '-', '-', ...Array.from({ length: ncpu }, () => '-'), '-', '-', '-', `SETUP FAILED: ${s.error.split('\n')[0]}`]);
      continue;
    }
    for (const x of s.runs) {
      rows.push([
        x.placement,
        x.switch,
        `${x.size}`,
        x.gen,
        mpps(x.offered_pps),
        mpps(x.forwarded_pps),
        f(x.loss_pct, 1),
        ...Array.from({ length: ncpu }, (_, i) => split(x.cpu?.[i])),
        s.kind === 'bridge' ? '0*' : f(x.switch_cpu_pct, 0),
        f(x.ns_per_frame, 0),
        f(x.ns_per_frame_off_gen_cpu, 0),
        [x.error ? `ERROR: ${x.error}` : '', ...x.notes].filter(Boolean).join('; '),
      ]);
    }
  }
  out += '\nForwarding (64/1518-byte frames incl. FCS; CPU split = user/system/softirq % of each CPU over the window)\n';
  out += table(runHead, rows);
  out += '* the Linux bridge has no process: its work is the softirq (and system) time above.\n';

  const swHead = ['placement', 'switch', 'RSS MB', 'peak MB', 'idle proc %CPU', 'idle all CPUs busy %', 'ping p50 ms', 'ping p99 ms', 'iperf3 Gbit/s', 'ports / notes'];
  const swRows = r.switches.map((s) => {
    const ping = s.ping && 'p50_ms' in s.ping ? s.ping : undefined;
    const ip = s.iperf3 && 'gbps' in s.iperf3 ? s.iperf3 : undefined;
    return [
      s.placement,
      s.switch,
      s.mem ? f(s.mem.rss_kb / 1024, 1) : s.kind === 'bridge' ? '0*' : '-',
      s.mem ? f(s.mem.hwm_kb / 1024, 1) : '-',
      s.kind === 'bridge' ? '0*' : f(s.idle?.switch_cpu_pct, 2),
      f(s.idle?.system_busy_pct, 1),
      f(ping?.p50_ms, 3),
      f(ping?.p99_ms, 3),
      ip ? f(ip.gbps, 2) : s.iperf3 ? 'error' : '-',
      [s.error ? `ERROR: ${s.error.split('\n')[0]}` : '', ...s.notes].filter(Boolean).join('; '),
    ];
  });
  out += '\nPer switch (RSS after the runs; idle = no traffic for the idle window)\n';
  out += table(swHead, swRows);

  // Ratios of vswitchd to each peer, run by run.
  const vs = r.switches.filter((s) => s.kind.startsWith('vswitchd'));
  const peers = r.switches.filter((s) => !s.kind.startsWith('vswitchd'));
  const ratioRows: string[][] = [];
  for (const v of vs) {
    for (const p of peers.filter((x) => x.placement === v.placement)) {
      for (const vr of v.runs) {
        const pr = p.runs.find((x) => x.size === vr.size && x.gen === vr.gen);
        if (!pr) continue;
        const div = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
        ratioRows.push([
          v.placement,
          `${v.switch} / ${p.switch}`,
          `${vr.size}`,
          vr.gen,
          f(div(vr.forwarded_pps, pr.forwarded_pps), 2),
          f(div(vr.ns_per_frame, pr.ns_per_frame), 2),
          f(div(vr.ns_per_frame_off_gen_cpu, pr.ns_per_frame_off_gen_cpu), 2),
        ]);
      }
    }
  }
  const swRatioRows: string[][] = [];
  for (const v of vs) {
    for (const p of peers.filter((x) => x.placement === v.placement)) {
      const div = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
      const ipv = v.iperf3 && 'gbps' in v.iperf3 ? v.iperf3.gbps : undefined;
      const ipp = p.iperf3 && 'gbps' in p.iperf3 ? p.iperf3.gbps : undefined;
      const pv = v.ping && 'p50_ms' in v.ping ? v.ping : undefined;
      const pp = p.ping && 'p50_ms' in p.ping ? p.ping : undefined;
      swRatioRows.push([
        v.placement,
        `${v.switch} / ${p.switch}`,
        p.kind === 'bridge' ? 'n/a (no process)' : f(div(v.mem?.rss_kb, p.mem?.rss_kb), 3),
        p.kind === 'bridge' ? 'n/a' : f(div(v.idle?.switch_cpu_pct, p.idle?.switch_cpu_pct), 3),
        f(div(pv?.p50_ms, pp?.p50_ms), 2),
        f(div(pv?.p99_ms, pp?.p99_ms), 2),
        f(div(ipv, ipp), 2),
      ]);
    }
  }
  if (ratioRows.length) {
    out += '\nRatios vswitchd / peer (fwd: >1 = vswitchd forwards more; ns/frame: <1 = vswitchd cheaper)\n';
    out += table(['placement', 'pair', 'size', 'gen', 'fwd Mpps ratio', 'ns/frame ratio', 'off-gen-CPU ratio'], ratioRows);
  }
  if (swRatioRows.length) {
    out += '\nRatios vswitchd / peer, per switch (<1 = vswitchd smaller/faster, except iperf3: >1 = vswitchd faster)\n';
    out += table(['placement', 'pair', 'RSS ratio', 'idle CPU ratio', 'ping p50 ratio', 'ping p99 ratio', 'iperf3 ratio'], swRatioRows);
  }
  return out;
}

// ---- SVG: grouped bars, forwarded Mpps and CPU ns per frame ----

const COLORS: Record<string, string> = { vswitchd: '#1f77b4', bridge: '#2ca02c', ovs: '#d62728' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderSvg(r: BenchResults): string {
  const groups: string[] = [];
  for (const s of r.switches) for (const x of s.runs) {
    const g = `${x.placement} ${x.size}B ${x.gen}`;
    if (!groups.includes(g)) groups.push(g);
  }
  const series: Array<{ kind: string; label: string }> = [];
  for (const s of r.switches) if (!series.some((x) => x.kind === s.kind)) series.push({ kind: s.kind, label: s.switch });
  const value = (kind: string, group: string, metric: 'fwd' | 'ns') => {
    for (const s of r.switches) {
      if (s.kind !== kind) continue;
      for (const x of s.runs) {
        if (`${x.placement} ${x.size}B ${x.gen}` !== group || x.error) continue;
        return metric === 'fwd' ? (x.forwarded_pps ?? 0) / 1e6 : (x.ns_per_frame ?? 0);
      }
    }
    return undefined;
  };
  const bw = 26;
  const gap = 50;
  const gw = Math.max(1, series.length) * bw + gap;
  const left = 60;
  const width = Math.max(760, left + groups.length * gw + 20);
  const panelH = 220;
  const top = 50;
  const height = top + 2 * (panelH + 70) + 10;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">\n`;
  svg += `<rect width="100%" height="100%" fill="white"/>\n`;
  svg += `<text x="${left}" y="18" font-size="14" font-weight="bold">vswitchd benchmark ${esc(String(r.meta.started ?? ''))} (${esc(String(r.meta.git ?? ''))})</text>\n`;
  series.forEach((s, i) => {
    const x = left + i * 150;
    svg += `<rect x="${x}" y="28" width="12" height="12" fill="${COLORS[s.kind] ?? '#777'}"/><text x="${x + 16}" y="38">${esc(s.label)}</text>\n`;
  });
  const panel = (metric: 'fwd' | 'ns', title: string, y0: number) => {
    const vals = groups.flatMap((g) => series.map((s) => value(s.kind, g, metric) ?? 0));
    const max = Math.max(1e-9, ...vals) * 1.15;
    let p = `<text x="${left}" y="${y0 - 8}" font-size="12" font-weight="bold">${esc(title)}</text>\n`;
    p += `<line x1="${left}" y1="${y0 + panelH}" x2="${width - 10}" y2="${y0 + panelH}" stroke="#333"/>\n`;
    p += `<line x1="${left}" y1="${y0}" x2="${left}" y2="${y0 + panelH}" stroke="#333"/>\n`;
    for (let t = 0; t <= 4; t++) {
      const v = (max * t) / 4;
      const y = y0 + panelH - (panelH * t) / 4;
      p += `<line x1="${left - 4}" y1="${y}" x2="${width - 10}" y2="${y}" stroke="#ddd"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toFixed(2)}</text>\n`;
    }
    groups.forEach((g, gi) => {
      const gx = left + 10 + gi * gw;
      series.forEach((s, si) => {
        const v = value(s.kind, g, metric);
        const x = gx + si * bw;
        if (v === undefined) {
          p += `<text x="${x + bw / 2}" y="${y0 + panelH - 4}" text-anchor="middle" fill="#999">n/a</text>\n`;
          return;
        }
        const h = (panelH * v) / max;
        p += `<rect x="${x}" y="${y0 + panelH - h}" width="${bw - 3}" height="${h}" fill="${COLORS[s.kind] ?? '#777'}"><title>${esc(`${s.label} ${g}: ${v.toFixed(metric === 'fwd' ? 3 : 0)}`)}</title></rect>\n`;
        p += `<text x="${x + (bw - 3) / 2}" y="${y0 + panelH - h - 3}" text-anchor="middle" font-size="9">${metric === 'fwd' ? v.toFixed(2) : v.toFixed(0)}</text>\n`;
      });
      const [pl, ...rest] = g.split(' ');
      const cx = gx + (series.length * bw) / 2;
      p += `<text x="${cx}" y="${y0 + panelH + 14}" text-anchor="middle">${esc(rest.join(' '))}</text>\n`;
      p += `<text x="${cx}" y="${y0 + panelH + 27}" text-anchor="middle" fill="#555">${esc(pl ?? '')}</text>\n`;
    });
    return p;
  };
  svg += panel('fwd', 'Forwarded Mpps (sink count) — higher is better', top + 20);
  svg += panel('ns', 'CPU ns per forwarded frame (all CPUs busy time / frames) — lower is better', top + 20 + panelH + 70);
  svg += '</svg>\n';
  return svg;
}
