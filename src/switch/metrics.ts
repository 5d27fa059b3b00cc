// Prometheus metrics. Counters live in native memory that the hot loops write;
// collect() reads them at scrape time, so a scrape never stops a worker.
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Switch } from './daemon.js';

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(listen.slice(i + 1)) };
}

export function buildRegistry(sw: Switch): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'vswitchd_' });
  const portCounter = (name: string, help: string, field: 'rx_packets' | 'rx_bytes' | 'tx_packets' | 'tx_bytes' | 'flood_packets') =>
    new Counter({
      name,
      help,
      labelNames: ['port'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [port, c] of Object.entries(sw.portCounters())) this.inc({ port }, c[field]);
      },
    });
  portCounter('vswitchd_port_rx_packets_total', 'Frames received on the port', 'rx_packets');
  portCounter('vswitchd_port_rx_bytes_total', 'Bytes received on the port', 'rx_bytes');
  portCounter('vswitchd_port_tx_packets_total', 'Frames sent on the port', 'tx_packets');
  portCounter('vswitchd_port_tx_bytes_total', 'Bytes sent on the port', 'tx_bytes');
  portCounter('vswitchd_flood_packets_total', 'Frames sent on the port as part of a flood', 'flood_packets');
  new Counter({
    name: 'vswitchd_port_drops_total',
    help: 'Frames dropped, by port and reason',
    labelNames: ['port', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [port, c] of Object.entries(sw.portCounters()))
        for (const [reason, n] of Object.entries(c.drops)) this.inc({ port, reason }, n);
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
  new Gauge({
    name: 'vswitchd_worker_busy_ratio',
    help: 'Share of its time a datapath worker spent working rather than waiting',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      for (let w = 0; w < sw.config.workers; w++) {
        const c = sw.datapath.workerCounters(w);
        this.set({ worker: String(w) }, c.total_ns > 0 ? c.busy_ns / c.total_ns : 0);
      }
    },
  });
  return registry;
}

export class MetricsServer {
  private readonly server: http.Server;
  private readonly registry: Registry;

  constructor(sw: Switch, private readonly listenAddr: string) {
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

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
