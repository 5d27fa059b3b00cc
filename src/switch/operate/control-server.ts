// The control socket: a unix stream socket speaking newline-delimited JSON.
// Request: {"cmd": "fdb.show", "args": {...}}. Reply: {"ok": true, "result": ...}
// or {"ok": false, "error": "one line"}. Mode 0600: only root may drive the switch.
import { hasPolicy, policyView } from '../ports/policy.js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parsePortConfig } from '../config/config.js';
import type { SwitchApi } from './switch-api.js';
import { VERSION } from './version.js';
import { portCarriesVlan } from '../l2/vlan-rules.js';
import { parseMac } from '../l2/mac.js';
import type { Port } from '../ports/ports.js';

type Args = Record<string, unknown>;

/** This start of the daemon (a re-exec keeps the pid, not this): `vswitchctl restart` waits for another. */
const INSTANCE = `${process.pid}.${Math.round(performance.timeOrigin)}`;
type Handler = (sw: SwitchApi, args: Args) => unknown | Promise<unknown>;

function optNumber(args: Args, key: string): number | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${key} must be an integer`);
  return v;
}

function optString(args: Args, key: string): string | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new Error(`${key} must be a string`);
  return v;
}

function required<T>(v: T | undefined, key: string): T {
  if (v === undefined) throw new Error(`${key} is required`);
  return v;
}

function vlanId(v: number | undefined, key: string): number | undefined {
  if (v !== undefined && (v < 1 || v > 4094)) throw new Error(`${key} must be in 1..4094, got ${v}`);
  return v;
}

function portRow(p: Port, mirror?: 'output' | 'source') {
  return {
    name: p.name,
    index: p.index,
    kind: p.kind,
    up: p.up,
    ...(p.downReason ? { down_reason: p.downReason } : {}),
    queues: p.queues,
    xdp_mode: p.xdpMode,
    ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
    ...(p.hook ? { hook: p.hook } : {}),
    workers: p.owners,
    vlan: p.vlan,
    ...(p.bond ? { bond: p.bond } : {}),
    ...(p.progId !== undefined ? { prog_id: p.progId } : {}),
    ...(p.adopted ? { adopted: true } : {}),
    // A mirror's source or output is never switched in the kernel (the hot loop makes the copies).
    ...(p.fastPath ? { fast_path: mirror ? 'no' : p.fastPath.in && p.fastPath.out ? 'yes' : p.fastPath.in ? 'in' : p.fastPath.out ? 'out' : 'no' } : {}),
    ...(mirror ? { mirror } : {}),
  };
}

/** A port's row with its security, storm control and policing settings and their drops. */
function withPolicy(p: Port, drops: Record<string, number> | undefined, mirror?: 'output' | 'source') {
  const policy = policyView(p.cfg, drops, p.learned);
  return { ...portRow(p, mirror), ...(policy ? { policy } : {}) };
}

const handlers: Record<string, Handler> = {
  version: () => ({ version: VERSION }),
  /** Which start of the daemon answers (vswitchctl restart waits for the next one). */
  instance: () => ({ instance: INSTANCE, pid: process.pid }),
  'port.list': (sw) => {
    const ports = sw.ports.list();
    // The drop counts are shown only beside a policy: without one, no pass over every
    // port's counters (and no handover save) for a port list.
    const counters = ports.some((p) => hasPolicy(p.cfg)) ? sw.portCounters() : {};
    return ports.map((p) => withPolicy(p, counters[p.name]?.drops, sw.mirrorRole(p.name)));
  },
  'port.show': (sw, args) => {
    const name = required(optString(args, 'name'), 'name');
    const port = sw.ports.byName(name);
    if (!port) throw new Error(`no port named ${name}`);
    return withPolicy(port, hasPolicy(port.cfg) ? sw.portCounters()[name]?.drops : undefined, sw.mirrorRole(name));
  },
  'port.add': async (sw, args) => {
    const cfg = parsePortConfig(args);
    if (cfg.type === 'internal') throw new Error('type: the internal port comes with the switch; give veth or tap');
    const port = await sw.addPort(cfg);
    return portRow(port, sw.mirrorRole(port.name));
  },
  'port.del': async (sw, args) => {
    const name = required(optString(args, 'name'), 'name');
    await sw.removePort(name);
    return { removed: name };
  },
  'port.unlock': (sw, args) => sw.unlockPort(required(optString(args, 'name'), 'name')),
  'vlan.show': (sw) => sw.vlans(),
  'bond.show': (sw, args) => sw.bondStatus(optString(args, 'name')),
  'mirror.show': (sw) => sw.mirrors(),
  'tunnel.show': (sw) => sw.tunnelStatus() ?? { local: null, port: null, vnis: [], vteps: [] },
  stats: (sw) => {
    const restarts = sw.workerRestarts();
    return {
      ports: sw.portCounters(),
      mirrors: Object.fromEntries(sw.mirrors().map((m) => [m.name, { frames: m.frames, bytes: m.bytes, lost: m.lost }])),
      workers: sw.workerCounters().map((c, w) => ({ ...c, restarts: restarts[w] ?? 0 })),
      fdb: { entries: sw.fdb.size, rejected: { ...sw.fdb.stats.rejected } },
    };
  },
  'fdb.show': (sw, args) => {
    const vlan = optNumber(args, 'vlan');
    const port = optString(args, 'port');
    return sw.fdbView({ ...(vlan !== undefined ? { vlan } : {}), ...(port !== undefined ? { port } : {}) });
  },
  'fdb.flush': (sw, args) => {
    const name = optString(args, 'port');
    const vlan = optNumber(args, 'vlan');
    const port = name === undefined ? undefined : sw.ports.byName(name);
    if (name !== undefined && !port) throw new Error(`no port named ${name}`);
    return { flushed: sw.fdb.flush({ ...(port ? { port: port.index } : {}), ...(vlan !== undefined ? { vlan } : {}) }) };
  },
  'fdb.add': (sw, args) => {
    const mac = parseMac(required(optString(args, 'mac'), 'mac'));
    const vlan = required(vlanId(optNumber(args, 'vlan'), 'vlan'), 'vlan');
    const name = required(optString(args, 'port'), 'port');
    const port = sw.ports.byName(name);
    if (!port) throw new Error(`no port named ${name}`);
    if (!portCarriesVlan(port.vlan, vlan)) throw new Error(`port ${name} does not carry VLAN ${vlan}`);
    if (sw.mirrorRole(name) === 'output') throw new Error(`port ${name} is a mirror's output: it receives only copies, never frames for a MAC`);
    if (!sw.fdb.addStatic(vlan, mac, port.index)) throw new Error('the FDB is full');
    return { added: { mac, vlan, port: name } };
  },
  'fdb.del': (sw, args) => {
    const mac = parseMac(required(optString(args, 'mac'), 'mac'));
    const vlan = required(vlanId(optNumber(args, 'vlan'), 'vlan'), 'vlan');
    if (!sw.fdb.removeStatic(vlan, mac)) throw new Error(`no static entry for ${mac} in VLAN ${vlan}`);
    return { removed: { mac, vlan } };
  },
  reload: (sw) => sw.reload(),
  restart: (sw) => ({ ...sw.restart(), instance: INSTANCE }),
};

export class ControlServer {
  private readonly server: net.Server;

  constructor(private readonly sw: SwitchApi, private readonly socketPath: string) {
    this.server = net.createServer((conn) => this.serve(conn));
  }

  async listen(): Promise<void> {
    mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    rmSync(this.socketPath, { force: true });  // a stale socket from a crashed run
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
  }

  private serve(conn: net.Socket): void {
    let buffered = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      // Split once per chunk: a client may pipeline many requests (linear, not quadratic).
      const lines = (buffered + chunk).split('\n');
      buffered = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.trim();
        if (line) void this.answer(line).then((reply) => conn.write(JSON.stringify(reply) + '\n'));
      }
    });
    conn.on('error', () => conn.destroy());
  }

  private async answer(line: string): Promise<{ ok: true; result: unknown } | { ok: false; error: string }> {
    try {
      const req = JSON.parse(line) as { cmd?: unknown; args?: unknown };
      const handler = typeof req.cmd === 'string' ? handlers[req.cmd] : undefined;
      if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(req.cmd)} (known: ${Object.keys(handlers).join(', ')})` };
      const args = (req.args && typeof req.args === 'object' ? req.args : {}) as Args;
      return { ok: true, result: await handler(this.sw, args) };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }
}
