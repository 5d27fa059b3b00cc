// vswitchctl: drives a running vswitchd over its control socket.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { VERSION } from '../operate/version.js';
import type { BondReport } from '../bond/manager.js';
import type { TunnelStatus } from '../tunnel/evpn.js';

const USAGE = `usage: vswitchctl [--socket PATH] [--json] COMMAND

commands:
  version                                 the daemon's version
  port list                               ports: kind, state, VLANs, queues, XDP mode, MTU, workers, policy
  port show NAME                          one port, with its security, storm control and policing
                                          settings and what each dropped
  port add NAME [--vlan N | --trunks 10,20 [--native-vlan N]] [--type tap|veth]
  port del NAME
  port unlock NAME                        port security learn: forget the MACs the port learned and
                                          is locked to; it learns its first N again
  vlan show                               VLANs and their member ports
  bond show [NAME]                        bond legs, active leg, LACP actor/partner state, per-leg tx
  mirror show                             mirrors: selection, output, frames/bytes copied, copies lost
  fdb show [--vlan N] [--port P]         entries on a tunnel port show the remote VTEP (vtep)
  fdb flush [--vlan N] [--port P]
  fdb add MAC --vlan N --port P           a static entry
  fdb del MAC --vlan N
  tunnel show                             VXLAN VNIs, their tunnel ports and flood lists, remote VTEPs
  stats                                   per-port counters and per-worker loop figures
  reload                                  re-read the config file and apply the difference
  restart                                 start the daemon again in place (a new build on disk too),
                                          keeping the datapath: forwarding goes on; waits until it answers

--socket defaults to /run/vswitchd/vswitchd.sock; --json prints the raw result.
`;

export const DEFAULT_SOCKET = '/run/vswitchd/vswitchd.sock';

/**
 * Sends one request and returns its result, or throws with the daemon's one-line reason.
 * timeoutMs: give up when no answer comes (default: wait as long as it takes).
 */
export async function request(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs?: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socketPath);
    let buffered = '';
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            conn.destroy();
            reject(new Error(`no answer to ${cmd} from ${socketPath} in ${timeoutMs} ms`));
          }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify({ cmd, args }) + '\n'));
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      const reply = JSON.parse(buffered.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.error));
    });
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach vswitchd at ${socketPath}: ${err.message}`));
    });
  });
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.join(',');
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o.mode === 'access') return `access ${String(o.vlan)}`;
    if (o.mode === 'trunk') return `trunk ${(o.trunks as number[]).join(',')}${o.nativeVlan ? ` native ${String(o.nativeVlan)}` : ''}`;
    return Object.entries(o).filter(([, n]) => n !== 0).map(([k, n]) => `${k}=${String(n)}`).join(' ') || '-';
  }
  return String(v);
}

/** Aligned columns for people. */
export function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(none)\n';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => cols.map((c) => cell(r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

function intOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`--${name} must be a number, got "${v}"`);
  return Number(v);
}

/** Turns the command line into a control request. */
export function toRequest(words: string[], o: Record<string, string | undefined>): { cmd: string; args: Record<string, unknown> } {
  const [noun, verb, arg] = words;
  const vlan = intOption(o.vlan, 'vlan');
  const nativeVlan = intOption(o['native-vlan'], 'native-vlan');
  const trunks = o.trunks === undefined ? undefined : o.trunks.split(',').map((v) => intOption(v.trim(), 'trunks')!);
  const pick = (obj: Record<string, unknown>) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
  const need = (v: string | undefined, what: string) => {
    if (!v) throw new Error(`${words.join(' ')}: ${what} is required`);
    return v;
  };
  switch (`${noun ?? ''} ${verb ?? ''}`.trim()) {
    case 'version':
    case 'stats':
    case 'reload':
    case 'restart':
      return { cmd: noun!, args: {} };
    case 'port list':
      return { cmd: 'port.list', args: {} };
    case 'port show':
      return { cmd: 'port.show', args: { name: need(arg, 'NAME') } };
    case 'port add':
      return { cmd: 'port.add', args: pick({ name: need(arg, 'NAME'), type: o.type, vlan, trunks, native_vlan: nativeVlan }) };
    case 'port del':
      return { cmd: 'port.del', args: { name: need(arg, 'NAME') } };
    case 'port unlock':
      return { cmd: 'port.unlock', args: { name: need(arg, 'NAME') } };
    case 'vlan show':
      return { cmd: 'vlan.show', args: {} };
    case 'bond show':
      return { cmd: 'bond.show', args: pick({ name: arg }) };
    case 'mirror show':
      return { cmd: 'mirror.show', args: {} };
    case 'tunnel show':
      return { cmd: 'tunnel.show', args: {} };
    case 'fdb show':
      return { cmd: 'fdb.show', args: pick({ vlan, port: o.port }) };
    case 'fdb flush':
      return { cmd: 'fdb.flush', args: pick({ vlan, port: o.port }) };
    case 'fdb add':
      return { cmd: 'fdb.add', args: { mac: need(arg, 'MAC'), vlan: vlan ?? need(undefined, '--vlan'), port: need(o.port, '--port') } };
    case 'fdb del':
      return { cmd: 'fdb.del', args: { mac: need(arg, 'MAC'), vlan: vlan ?? need(undefined, '--vlan') } };
    default:
      throw new Error(`unknown command "${words.join(' ')}"`);
  }
}

function render(cmd: string, result: unknown): string {
  if (cmd === 'stats') {
    type Counters = { rx_packets: number; rx_bytes: number; tx_packets: number; tx_bytes: number; flood_packets: number; drops: Record<string, number>; paths: { fast: { rx_packets: number; tx_packets: number } } };
    type Mirror = { frames: number; bytes: number; lost: Record<string, number> };
    const r = result as { ports: Record<string, Counters>; mirrors?: Record<string, Mirror>; workers: Record<string, number>[]; fdb: { entries: number; rejected: Record<string, number> } };
    const ports = table(
      Object.entries(r.ports).map(([port, c]) => ({
        port,
        rx_packets: c.rx_packets,
        rx_bytes: c.rx_bytes,
        tx_packets: c.tx_packets,
        tx_bytes: c.tx_bytes,
        fast_rx: c.paths.fast.rx_packets,
        fast_tx: c.paths.fast.tx_packets,
        flood: c.flood_packets,
        drops: c.drops,
      })),
    );
    const workers = table(
      r.workers.map((w, i) => ({
        worker: i,
        busy: w.total_ns ? `${((100 * w.busy_ns!) / w.total_ns).toFixed(1)}%` : '-',
        rx_frames: w.rx_frames,
        mean_batch: w.rx_batches ? (w.rx_frames! / w.rx_batches).toFixed(1) : '-',
        wakeups: w.wakeups,
        handoffs: w.handoffs,
        learn_events: w.learn_events,
        restarts: w.restarts,
      })),
    );
    const mirrors = r.mirrors && Object.keys(r.mirrors).length
      ? table(Object.entries(r.mirrors).map(([mirror, m]) => ({ mirror, frames: m.frames, bytes: m.bytes, lost: m.lost }))) + '\n'
      : '';
    const fdb = table([{ fdb_entries: r.fdb.entries, ...Object.fromEntries(Object.entries(r.fdb.rejected).map(([k, n]) => [`rejected_${k.replace('-', '_')}`, n])) }]);
    return `${ports}\n${mirrors}${workers}\n${fdb}`;
  }
  if (cmd === 'port.list') {
    // The policy in one column; `port show NAME` has it in full.
    const rows = result as (Record<string, unknown> & { policy?: PolicyView })[];
    return table(rows.map(({ policy, ...row }) => ({ ...row, policy: policy ? policySummary(policy) : '-' })));
  }
  if (cmd === 'port.show') {
    const { policy, ...row } = result as Record<string, unknown> & { policy?: PolicyView };
    return table([row]) + (policy ? policyText(policy) : 'no security, storm control or policing\n');
  }
  if (cmd === 'vlan.show') {
    const rows = result as { vlan: number; ports: { name: string; tagged: boolean }[] }[];
    return table(rows.map((r) => ({ vlan: r.vlan, ports: r.ports.map((p) => `${p.name}${p.tagged ? '(tagged)' : ''}`).join(' ') })));
  }
  if (cmd === 'bond.show') {
    const bonds = result as BondReport[];
    return bonds
      .map((b) => {
        const head = `bond ${b.name}: mode ${b.mode}, hash ${b.hash}, active leg ${b.activeLeg ?? '-'}, failovers ${b.failovers}${b.fallback ? ', LACP fallback to active-backup' : ''}\n`;
        const legs = table(
          b.legs.map((l) => ({
            leg: l.name,
            carrier: l.carrier ? 'up' : 'down',
            usable: l.usable,
            active: l.active,
            buckets: l.buckets,
            tx_packets: b.legTx[l.name] ?? 0,
            ...(l.lacp
              ? { actor: l.lacp.actorStateText, partner: l.lacp.partnerStateText, partner_system: l.lacp.partnerSystem ?? '-', partner_key: l.lacp.partnerKey ?? '-', lacpdu_rx: l.lacp.rx, lacpdu_tx: l.lacp.tx, rx_errors: l.lacp.rxErrors, markers: l.lacp.markers }
              : {}),
          })),
        );
        return head + legs;
      })
      .join('\n');
  }
  if (cmd === 'mirror.show') {
    const rows = result as { name: string; select: { ports?: string[]; direction: string; vlans?: number[] }; output: string; output_up: boolean; frames: number; bytes: number; lost: Record<string, number> }[];
    if (rows.length === 0) return 'no mirrors\n';
    return table(rows.map((m) => ({
      mirror: m.name,
      ports: m.select.ports?.join(',') ?? 'all',
      direction: m.select.direction,
      vlans: m.select.vlans?.join(',') ?? 'all',
      output: m.output_up ? m.output : `${m.output}(down)`,
      frames: m.frames,
      bytes: m.bytes,
      lost: m.lost,
    })));
  }
  if (cmd === 'tunnel.show') {
    const r = result as TunnelStatus;
    if (r.local === null) return 'no vxlan tunnels configured\n';
    const head = `vtep ${r.local}, udp port ${r.port}\n`;
    const vnis = table(r.vnis.map((v) => ({ vni: v.vni, vlan: v.vlan, port: v.port, remote_macs: v.remote_macs, flood_list: v.flood_list.join(' ') || '-' })));
    const vteps = r.vteps.length ? table(r.vteps.map((v) => ({ vtep: v.vtep, remote_macs: v.remote_macs, flood_vnis: v.flood_vnis.join(' ') || '-' }))) : 'no remote VTEPs\n';
    return `${head}${vnis}\n${vteps}`;
  }
  if (cmd === 'reload') {
    const r = result as { changes: string[]; needsRestart: string[] };
    return [
      r.changes.length ? r.changes.map((c) => `changed: ${c}`).join('\n') : 'no changes',
      ...r.needsRestart.map((k) => `not applied until restart: ${k}`),
    ].join('\n') + '\n';
  }
  if (cmd === 'port.unlock') {
    const r = result as { port: string; forgot: string[] };
    return `port ${r.port} unlocked (forgot ${r.forgot.length ? r.forgot.join(' ') : 'nothing'}): it learns its MACs again\n`;
  }
  if (Array.isArray(result)) return table(result as Record<string, unknown>[]);
  if (cmd === 'version') return `vswitchd ${(result as { version: string }).version}\n`;
  return table([result as Record<string, unknown>]);
}

type PolicyView = {
  security?: { macs?: string[]; ips?: string[]; learn?: number; learned?: string[]; locked?: boolean };
  storm_control?: Record<string, number>;
  policing?: { rate_kbps: number; burst_kb: number };
  drops: Record<string, number>;
};

function policySummary(p: PolicyView): string {
  const parts: string[] = [];
  if (p.security?.macs) parts.push(`macs ${p.security.macs.length}`);
  if (p.security?.learn !== undefined) parts.push(`learned ${p.security.learned?.length ?? 0}/${p.security.learn}${p.security.locked ? ' locked' : ''}`);
  if (p.security?.ips) parts.push(`ips ${p.security.ips.length}`);
  if (p.storm_control) parts.push(`storm ${Object.entries(p.storm_control).map(([k, v]) => `${k}=${v}/s`).join(',')}`);
  if (p.policing) parts.push(`policing ${p.policing.rate_kbps}kbps`);
  const dropped = Object.values(p.drops).reduce((a, b) => a + b, 0);
  return `${parts.join(' ')} (dropped ${dropped})`;
}

function policyText(p: PolicyView): string {
  const lines: string[] = [];
  if (p.security) {
    const s = p.security;
    const macs = s.learn === undefined ? s.macs?.join(' ') ?? 'any' : [...(s.macs ?? []), ...(s.learned ?? [])].join(' ') || 'none yet';
    lines.push(`security: macs ${macs}; ips ${s.ips?.join(' ') ?? 'any'}`);
    if (s.learn !== undefined) {
      lines.push(`  learned: ${s.learned?.length ? s.learned.join(' ') : 'none'} (${s.learned?.length ?? 0} of ${s.learn}${s.locked ? ', locked' : ', learning'})`);
    }
    lines.push(`  dropped: spoofed_mac ${p.drops['spoofed_mac']}, spoofed_ip ${p.drops['spoofed_ip']}, spoofed_arp ${p.drops['spoofed_arp']}, spoofed_nd ${p.drops['spoofed_nd']}` +
      (s.learn !== undefined ? `, mac_learning ${p.drops['mac_learning']}` : ''));
  }
  if (p.storm_control) {
    lines.push(`storm_control: ${Object.entries(p.storm_control).map(([k, v]) => `${k} ${v} frames/s`).join(', ')}`);
    lines.push(`  dropped: storm_broadcast ${p.drops['storm_broadcast']}, storm_multicast ${p.drops['storm_multicast']}, storm_unknown_unicast ${p.drops['storm_unknown_unicast']}`);
  }
  if (p.policing) {
    lines.push(`policing: rate ${p.policing.rate_kbps} kbit/s, burst ${p.policing.burst_kb} kbit`);
    lines.push(`  dropped: policed ${p.drops['policed']}`);
  }
  return lines.join('\n') + '\n';
}

/** After `restart`: the new daemon answers on the socket once it has adopted the datapath. */
async function waitRestarted(socketPath: string, r: { pid: number; instance: string }, json: boolean): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      // The old daemon answers until it re-executes: wait for the new one.
      const v = (await request(socketPath, 'instance', {}, 1000)) as { instance?: string };
      if (v.instance === r.instance) throw new Error('the old daemon is still running');
      const ms = Date.now() - start;
      process.stdout.write(json ? JSON.stringify({ restarted: true, pid: r.pid, ms }) + '\n' : `restarted (pid ${r.pid}) in ${ms} ms; the datapath was kept\n`);
      return 0;
    } catch (err) {
      if (Date.now() - start > 60_000) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        socket: { type: 'string', default: DEFAULT_SOCKET },
        json: { type: 'boolean', default: false },
        vlan: { type: 'string' },
        port: { type: 'string' },
        trunks: { type: 'string' },
        'native-vlan': { type: 'string' },
        type: { type: 'string' },
        help: { type: 'boolean', default: false },
        version: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`vswitchctl: ${(err as Error).message}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`vswitchctl ${VERSION}\n`), 0;
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  let req;
  try {
    req = toRequest(positionals, { vlan: values.vlan, port: values.port, trunks: values.trunks, 'native-vlan': values['native-vlan'], type: values.type });
  } catch (err) {
    process.stderr.write(`vswitchctl: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  try {
    const result = await request(values.socket!, req.cmd, req.args);
    if (req.cmd === 'restart') return await waitRestarted(values.socket!, result as { pid: number; instance: string }, values.json!);
    process.stdout.write(values.json ? JSON.stringify(result, null, 2) + '\n' : render(req.cmd, result));
    return 0;
  } catch (err) {
    process.stderr.write(`vswitchctl: ${(err as Error).message.split('\n').join('; ')}\n`);
    return 1;
  }
}
