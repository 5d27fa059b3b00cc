// The control socket: a unix stream socket speaking newline-delimited JSON.
// Request: {"cmd": "fdb.show", "args": {...}}. Reply: {"ok": true, "result": ...}
// or {"ok": false, "error": "one line"}. Mode 0600: only root may drive the switch.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Switch } from './daemon.js';
import { VERSION } from './daemon.js';

type Args = Record<string, unknown>;
type Handler = (sw: Switch, args: Args) => unknown | Promise<unknown>;

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

const handlers: Record<string, Handler> = {
  version: () => ({ version: VERSION }),
  'port.list': (sw) =>
    sw.ports.list().map((p) => ({ name: p.name, index: p.index, kind: p.kind, up: p.up, queues: p.queues, xdp_mode: p.xdpMode, workers: p.owners, vlan: p.vlan })),
  stats: (sw) => ({ ports: sw.portCounters() }),
  'fdb.show': (sw, args) => {
    const vlan = optNumber(args, 'vlan');
    const port = optString(args, 'port');
    return sw.fdbView({ ...(vlan !== undefined ? { vlan } : {}), ...(port !== undefined ? { port } : {}) });
  },
  'fdb.flush': (sw, args) => {
    const name = optString(args, 'port');
    if (name === undefined) return { flushed: sw.fdb.flush() };
    const port = sw.ports.byName(name);
    if (!port) throw new Error(`no port named ${name}`);
    return { flushed: sw.fdb.flushPort(port.index) };
  },
};

export class ControlServer {
  private readonly server: net.Server;

  constructor(private readonly sw: Switch, private readonly socketPath: string) {
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
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
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
