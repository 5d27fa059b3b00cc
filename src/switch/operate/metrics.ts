// Prometheus metrics. Counters live in native memory that the hot loops write;
// collect() reads them at scrape time, so a scrape never stops a worker.
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { TunnelStatus, VxlanCounters } from '../tunnel/evpn.js';
import type { SwitchApi } from './switch-api.js';
import type { BondLegStatus } from '../bond/policy.js';
import type { WorkerCounters } from '../datapath/native.js';

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(listen.slice(i + 1)) };
}

/**
 * A reading of the switch taken once per scrape and shared by every metric built from
 * it (each port counter, path and drop metric reads all ports' counters), instead of
 * once per metric. prom-client runs every collect() of a scrape in one turn of the
 * event loop; the reading is dropped after it.
 */
function perScrape<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (!cached) {
      cached = { value: read() };
      setImmediate(() => (cached = undefined));
    }
    return cached.value;
  };
}

export function buildRegistry(sw: SwitchApi): Registry {
  const registry = new Registry();
  const portCounters = perScrape(() => sw.portCounters());
  const mirrors = perScrape(() => sw.mirrors());
  const tunnelStatus = perScrape(() => sw.tunnelStatus());
  const workerCounters = perScrape(() => sw.workerCounters());
  const bondStatus = perScrape(() => sw.bondStatus());
  // The event-loop lag histogram samples on a timer; prom-client's 10 ms default
  // wakes an idle daemon 100 times a second (half of its idle CPU).
  collectDefaultMetrics({ register: registry, prefix: 'vswitchd_', eventLoopMonitoringPrecision: 200 });
  const portCounter = (name: string, help: string, field: 'rx_packets' | 'rx_bytes' | 'tx_packets' | 'tx_bytes' | 'flood_packets') =>
    new Counter({
      name,
      help,
      labelNames: ['port'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [port, c] of Object.entries(portCounters())) this.inc({ port }, c[field]);
      },
    });
  portCounter('vswitchd_port_rx_packets_total', 'Frames received on the port', 'rx_packets');
  portCounter('vswitchd_port_rx_bytes_total', 'Bytes received on the port', 'rx_bytes');
  portCounter('vswitchd_port_tx_packets_total', 'Frames sent on the port', 'tx_packets');
  portCounter('vswitchd_port_tx_bytes_total', 'Bytes sent on the port', 'tx_bytes');
  portCounter('vswitchd_flood_packets_total', 'Frames sent on the port as part of a flood', 'flood_packets');
  const byPath = (name: string, help: string, field: 'rx_packets' | 'rx_bytes' | 'tx_packets' | 'tx_bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['port', 'path'],
      registers: [registry],
      collect() {
        this.reset();
        const hooks = new Map(sw.ports.list().map((p) => [p.name, p.hook]));
        for (const [port, c] of Object.entries(portCounters())) {
          this.inc({ port, path: 'afxdp' }, c.paths.afxdp[field]);
          // The kernel fast path is labelled by the program that ran it.
          this.inc({ port, path: hooks.get(port) === 'xdp' ? 'xdp' : 'tc' }, c.paths.fast[field]);
        }
      },
    });
  byPath('vswitchd_port_path_rx_packets_total', 'Frames received on the port, by datapath path (tc or xdp: the fast path in the kernel; afxdp: the hot loop)', 'rx_packets');
  byPath('vswitchd_port_path_rx_bytes_total', 'Bytes received on the port, by datapath path', 'rx_bytes');
  byPath('vswitchd_port_path_tx_packets_total', 'Frames sent on the port, by datapath path', 'tx_packets');
  byPath('vswitchd_port_path_tx_bytes_total', 'Bytes sent on the port, by datapath path', 'tx_bytes');
  new Counter({
    name: 'vswitchd_port_drops_total',
    help: 'Frames dropped, by port and reason',
    labelNames: ['port', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [port, c] of Object.entries(portCounters()))
        for (const [reason, n] of Object.entries(c.drops)) this.inc({ port, reason }, n);
    },
  });
  const mirrorCounter = (name: string, help: string, field: 'frames' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['mirror'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of mirrors()) this.inc({ mirror: m.name }, m[field]);
      },
    });
  mirrorCounter('vswitchd_mirror_frames_total', 'Copies a mirror sent to its output port', 'frames');
  mirrorCounter('vswitchd_mirror_bytes_total', 'Bytes of the copies a mirror sent to its output port', 'bytes');
  new Counter({
    name: 'vswitchd_mirror_lost_total',
    help: 'Copies a mirror could not send to its output port, by reason',
    labelNames: ['mirror', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const m of mirrors()) for (const [reason, n] of Object.entries(m.lost)) this.inc({ mirror: m.name, reason }, n);
    },
  });
  new Gauge({
    name: 'vswitchd_fdb_entries',
    help: 'Entries in the FDB',
    registers: [registry],
    collect() {
      this.set(sw.fdb.size);
    },
  });
  new Counter({
    name: 'vswitchd_fdb_events_total',
    help: 'FDB learns, moves, ages and flushes',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      const s = sw.fdb.stats;
      this.inc({ event: 'learn' }, s.learned);
      this.inc({ event: 'move' }, s.moved);
      this.inc({ event: 'age' }, s.aged);
      this.inc({ event: 'flush' }, s.flushed);
    },
  });
  new Counter({
    name: 'vswitchd_fdb_rejections_total',
    help: 'Source MACs the FDB refused to learn, by reason (multicast, static, port-limit, table-full, port-down)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(sw.fdb.stats.rejected)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'vswitchd_port_up',
    help: '1 when the port is attached to the datapath, 0 when it is down (e.g. its device is gone)',
    labelNames: ['port'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of sw.ports.list()) this.set({ port: p.name }, p.up ? 1 : 0);
    },
  });
  // Port security learn: N, beside the drops (a MAC is never a label: the list is in `port show`).
  new Gauge({
    name: 'vswitchd_port_security_learned_macs',
    help: 'Source MACs a port with security.learn has learned and is locked to (it is locked when this reaches vswitchd_port_security_learn_limit)',
    labelNames: ['port'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of sw.ports.list()) if (p.cfg.security?.learn !== undefined) this.set({ port: p.name }, p.learned.length);
    },
  });
  new Gauge({
    name: 'vswitchd_port_security_learn_limit',
    help: 'security.learn of a port: how many source MACs it learns before it is locked',
    labelNames: ['port'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of sw.ports.list()) if (p.cfg.security?.learn !== undefined) this.set({ port: p.name }, p.cfg.security.learn);
    },
  });
  // Busy ratio and mean batch since the previous scrape (since start on the first one).
  const previous: WorkerCounters[] = [];
  const sinceLast = () =>
    workerCounters().map((now, w) => {
      const before = previous[w];
      previous[w] = now;
      const d = (k: keyof WorkerCounters) => now[k] - (before?.[k] ?? 0);
      return { busy: d('total_ns') > 0 ? d('busy_ns') / d('total_ns') : 0, batch: d('rx_batches') > 0 ? d('rx_frames') / d('rx_batches') : 0 };
    });
  let window: { busy: number; batch: number }[] = [];
  new Gauge({
    name: 'vswitchd_worker_busy_ratio',
    help: 'Share of its time a datapath worker spent working rather than waiting in poll(), since the previous scrape',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      window = sinceLast();
      window.forEach((r, w) => this.set({ worker: String(w) }, r.busy));
    },
  });
  new Gauge({
    name: 'vswitchd_worker_rx_batch_frames',
    help: 'Mean frames per non-empty receive burst, since the previous scrape',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      window.forEach((r, w) => this.set({ worker: String(w) }, r.batch));
    },
  });
  const workerCounter = (name: string, help: string, field: keyof WorkerCounters) =>
    new Counter({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        workerCounters().forEach((c, w) => this.inc({ worker: String(w) }, c[field]));
      },
    });
  workerCounter('vswitchd_worker_loops_total', 'Passes of the hot loop', 'loops');
  workerCounter('vswitchd_worker_rx_batches_total', 'Receive bursts that brought at least one frame', 'rx_batches');
  workerCounter('vswitchd_worker_rx_frames_total', 'Frames received by the worker', 'rx_frames');
  workerCounter('vswitchd_worker_wakeups_total', 'Returns from poll() with work to do', 'wakeups');
  workerCounter('vswitchd_worker_handoffs_total', 'Frames handed to another worker that owns the egress port', 'handoffs');
  workerCounter('vswitchd_worker_tx_kicks_total', 'sendto() calls that asked the kernel to transmit', 'tx_kicks');
  workerCounter('vswitchd_worker_learn_events_total', 'Source MACs reported to the control plane', 'learn_events');
  new Counter({
    name: 'vswitchd_worker_restarts_total',
    help: 'Times a datapath worker died and was started again',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset();
      sw.workerRestarts().forEach((n, w) => this.inc({ worker: String(w) }, n));
    },
  });
  // Bonds, read from the bond policies at scrape time: one series per bond or per leg.
  new Counter({
    name: 'vswitchd_bond_failovers_total',
    help: 'Times the bond moved its traffic to another leg (active-backup, or LACP fallback)',
    labelNames: ['bond'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of bondStatus()) this.inc({ bond: b.name }, b.failovers);
    },
  });
  // One series per bond leg; undefined: none for that leg (LACP figures of a non-LACP bond).
  const perLeg = (kind: 'gauge' | 'counter', name: string, help: string, value: (leg: BondLegStatus) => number | undefined) => {
    const cfg = { name, help, labelNames: ['bond', 'leg'] as const, registers: [registry] };
    const collect = (metric: Gauge<'bond' | 'leg'> | Counter<'bond' | 'leg'>) => {
      metric.reset();
      for (const b of bondStatus())
        for (const leg of b.legs) {
          const v = value(leg);
          if (v !== undefined) metric.inc({ bond: b.name, leg: leg.name }, v);
        }
    };
    if (kind === 'gauge') new Gauge({ ...cfg, collect() { collect(this); } });
    else new Counter({ ...cfg, collect() { collect(this); } });
  };
  // VXLAN tunnels (src/switch/tunnel/evpn.ts): per VNI the VXLAN device's counters, per remote VTEP what zebra told.
  const perVni = (name: string, help: string, fields: Record<string, keyof VxlanCounters>) =>
    new Counter({
      name, help, labelNames: ['vni', 'direction'], registers: [registry],
      collect() {
        this.reset();
        for (const v of tunnelStatus()?.vnis ?? [])
          for (const [direction, field] of Object.entries(fields)) this.inc({ vni: String(v.vni), direction }, v.counters[field]);
      },
    });
  perVni('vswitchd_vxlan_packets_total', 'Frames encapsulated towards remote VTEPs (tx) and decapsulated from them (rx), per VNI', { rx: 'rx_packets', tx: 'tx_packets' });
  perVni('vswitchd_vxlan_bytes_total', 'Bytes of those frames (inner frames), per VNI', { rx: 'rx_bytes', tx: 'tx_bytes' });
  perVni('vswitchd_vxlan_drops_total', 'Frames the VXLAN device lost (tx: no VTEP for the MAC, no route to the VTEP, errors; rx: dropped, errors), per VNI', { rx: 'rx_dropped', tx: 'tx_dropped', rx_errors: 'rx_errors', tx_errors: 'tx_errors' });
  const perVtep = (name: string, help: string, value: (v: TunnelStatus['vteps'][number]) => number) =>
    new Gauge({
      name, help, labelNames: ['vtep'], registers: [registry],
      collect() {
        this.reset();
        for (const v of tunnelStatus()?.vteps ?? []) this.set({ vtep: v.vtep }, value(v));
      },
    });
  perVtep('vswitchd_vxlan_vtep_remote_macs', 'MACs zebra says are behind the remote VTEP', (v) => v.remote_macs);
  perVtep('vswitchd_vxlan_vtep_flood_vnis', "VNIs whose flood list has the remote VTEP (its type-3 routes)", (v) => v.flood_vnis.length);
  new Counter({
    name: 'vswitchd_vxlan_events_total',
    help: 'EVPN control-surface events: local MACs advertised to and withdrawn from FRR, remote MACs added and removed',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(tunnelStatus()?.events ?? {})) this.inc({ event }, n);
    },
  });
  const flag = (on: boolean) => (on ? 1 : 0);
  perLeg('gauge', 'vswitchd_bond_leg_carrier', "1 when the leg's device has carrier (after updelay/downdelay)", (l) => flag(l.carrierUp));
  perLeg('gauge', 'vswitchd_bond_leg_usable', "1 when the leg carries the bond's traffic (carrier, and LACP collecting/distributing on an LACP bond)", (l) => flag(l.usable));
  perLeg('gauge', 'vswitchd_bond_leg_active', '1 for the leg an active-backup bond (or an LACP bond in fallback) sends on', (l) => flag(l.active));
  perLeg('gauge', 'vswitchd_bond_leg_buckets', 'Flow hash buckets, of 256, that leave on the leg', (l) => l.buckets);
  perLeg('counter', 'vswitchd_lacp_pdus_rx_total', 'LACPDUs received on the leg', (l) => l.lacp?.rx);
  perLeg('counter', 'vswitchd_lacp_pdus_tx_total', 'LACPDUs sent on the leg', (l) => l.lacp?.tx);
  perLeg('counter', 'vswitchd_lacp_rx_errors_total', 'Malformed slow-protocol frames received on the leg', (l) => l.lacp?.rxErrors);
  perLeg('counter', 'vswitchd_lacp_markers_total', 'Marker PDUs answered on the leg (802.1AX Marker responder)', (l) => l.lacp?.markers);
  return registry;
}

/** 127.0.0.0/8 and ::1 (also IPv4-mapped): only this host reaches them. */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d+\.\d+\.\d+$/.test(v4) || address === '::1';
}

export class MetricsServer {
  private readonly server: http.Server;
  private readonly registry: Registry;

  constructor(sw: SwitchApi, private readonly listenAddr: string) {
    this.registry = buildRegistry(sw);
    this.server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('try /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
  }

  async listen(): Promise<void> {
    const { host, port } = splitListen(this.listenAddr);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
  }

  /** The address it is bound to (a host name in metrics.listen is resolved by then). */
  boundAddress(): string {
    const addr = this.server.address();
    return typeof addr === 'object' && addr !== null ? addr.address : '';
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
