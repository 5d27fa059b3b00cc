// vswitchctl: drives a running vswitchd over its control socket.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { VERSION } from './daemon.js';

const USAGE = `usage: vswitchctl [--socket PATH] [--json] COMMAND

commands:
  version            the daemon's version
  port list          ports, their kind, VLANs, queues and XDP mode
  fdb show [--vlan N] [--port P]
  fdb flush [--port P]
  stats              per-port counters
`;

export const DEFAULT_SOCKET = '/run/vswitchd/vswitchd.sock';

/** Sends one request and returns its result, or throws with the daemon's one-line reason. */
export async function request(socketPath: string, cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socketPath);
    let buffered = '';
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify({ cmd, args }) + '\n'));
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      conn.end();
      const reply = JSON.parse(buffered.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.error));
    });
    conn.on('error', (err) => reject(new Error(`cannot reach vswitchd at ${socketPath}: ${err.message}`)));
  });
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(none)\n';
  const cols = Object.keys(rows[0]!);
  const cells = rows.map((r) => cols.map((c) => (typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c]))));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      socket: { type: 'string', default: DEFAULT_SOCKET },
      json: { type: 'boolean', default: false },
      vlan: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', default: false },
      version: { type: 'boolean', default: false },
    },
  });
  if (values.version) return void process.stdout.write(`vswitchctl ${VERSION}\n`), 0;
  const command = positionals.join(' ');
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const args: Record<string, unknown> = {};
  if (values.vlan !== undefined) args.vlan = Number(values.vlan);
  if (values.port !== undefined) args.port = values.port;
  const cmd = { version: 'version', 'port list': 'port.list', 'fdb show': 'fdb.show', 'fdb flush': 'fdb.flush', stats: 'stats' }[command];
  if (!cmd) {
    process.stderr.write(`vswitchctl: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  try {
    const result = await request(values.socket!, cmd, args);
    if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else if (Array.isArray(result)) process.stdout.write(table(result as Record<string, unknown>[]));
    else if (cmd === 'stats') {
      const ports = (result as { ports: Record<string, Record<string, unknown>> }).ports;
      process.stdout.write(table(Object.entries(ports).map(([name, c]) => ({ port: name, ...c }))));
    } else process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`vswitchctl: ${(err as Error).message}\n`);
    return 1;
  }
}
