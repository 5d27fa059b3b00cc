// The switches under test: vswitchd, the Linux bridge, Open vSwitch (userspace
// datapath, AF_XDP ports). Each one is set up on a fresh topology and torn down after.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../../src/switch/cli/vswitchctl.js';
import { GEN_IP, GEN_MAC, GEN_PORT, SINK_IP, SINK_MAC, SINK_PORT } from './topo.js';
import { Proc, ok, run, sleep } from './sys.js';

export type SwitchKind = 'vswitchd' | 'vswitchd-xdp' | 'vswitchd-afxdp' | 'vswitchd-policy' | 'vswitchd-xdp-policy' | 'bridge' | 'ovs';
type VswitchdKind = Exclude<SwitchKind, 'bridge' | 'ovs'>;
export const SWITCH_LABEL: Record<SwitchKind, string> = {
  vswitchd: 'vswitchd',
  'vswitchd-xdp': 'vswitchd-xdp-hook',
  'vswitchd-afxdp': 'vswitchd-afxdp-only',
  'vswitchd-policy': 'vswitchd+policy',
  'vswitchd-xdp-policy': 'vswitchd-xdp-hook+policy',
  bridge: 'linux-bridge',
  ovs: 'ovs-afxdp',
};

export interface SetupOptions {
  ports: string[];
  workDir: string;
  /** Pin the switch's threads to this CPU (switch-pinned placement). */
  cpu?: number;
  /** Extra vswitchd config, as dotted key paths: { "datapath.fast_path": "auto" }. */
  vswitchdSet: Record<string, unknown>;
  /** vswitchd: port security (its own MAC and IP) and policing on the generator and sink ports. */
  portPolicy?: boolean;
  log: (s: string) => void;
}

export interface RunningSwitch {
  kind: SwitchKind;
  /** What the table shows as the switch's name (OVS: afxdp or system fallback). */
  label: string;
  /** The process whose CPU and RSS are the switch's own; undefined for the bridge. */
  pid?: number;
  /** How its ports attached, pinning, fallbacks. */
  notes: string[];
  /** Extra processes that belong to it (ovsdb-server) for the JSON. */
  extraPids: Record<string, number>;
  /** The switch's own counters (vswitchd: control socket stats; OVS: coverage/pmd stats). */
  stats(): Promise<unknown>;
  /** vswitchd: fill the FDB with n static entries on `port` (VLAN 1), pipelined on one connection. */
  fillFdb?(n: number, port: string): Promise<void>;
  stop(): Promise<void>;
}

export function repoRoot(): string {
  // dist/bench/lib/switches.js → the repository root
  return fileURLToPath(new URL('../../../', import.meta.url));
}

export async function setupSwitch(kind: SwitchKind, o: SetupOptions): Promise<RunningSwitch> {
  switch (kind) {
    case 'vswitchd':
      // As shipped: known unicast switched in XDP (datapath.fast_path: auto, the default).
      return setupVswitchd({ ...o, vswitchdSet: { 'datapath.fast_path': 'auto', ...o.vswitchdSet } }, 'vswitchd');
    case 'vswitchd-xdp':
      // The XDP hook on the veths (datapath.fast_path: xdp): raw buffers, peers' tx checksum off.
      return setupVswitchd({ ...o, vswitchdSet: { 'datapath.fast_path': 'xdp', ...o.vswitchdSet } }, 'vswitchd-xdp');
    case 'vswitchd-afxdp':
      // The same daemon with every frame through the AF_XDP hot loop (datapath.fast_path: off).
      return setupVswitchd({ ...o, vswitchdSet: { 'datapath.fast_path': 'off', ...o.vswitchdSet } }, 'vswitchd-afxdp');
    case 'vswitchd-policy':
      // As shipped, with port security and policing on the generator and sink ports (issue 14).
      return setupVswitchd({ ...o, portPolicy: true, vswitchdSet: { 'datapath.fast_path': 'auto', ...o.vswitchdSet } }, 'vswitchd-policy');
    case 'vswitchd-xdp-policy':
      return setupVswitchd({ ...o, portPolicy: true, vswitchdSet: { 'datapath.fast_path': 'xdp', ...o.vswitchdSet } }, 'vswitchd-xdp-policy');
    case 'bridge':
      return setupBridge(o);
    case 'ovs':
      return setupOvs(o);
  }
}

// ---- vswitchd ----

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]!] = value;
}

/** n `fdb.add` requests written in one go; resolves when every answer is in (or rejects on the first error). */
function fillStatics(socket: string, n: number, port: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let answered = 0;
    let buffered = '';
    conn.setEncoding('utf8');
    conn.on('error', reject);
    conn.on('data', (chunk: string) => {
      const lines = (buffered + chunk).split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const reply = JSON.parse(line) as { ok: boolean; error?: string };
        if (!reply.ok) {
          conn.destroy();
          reject(new Error(`fdb.add: ${reply.error}`));
          return;
        }
        if (++answered === n) {
          conn.end();
          resolve();
        }
      }
    });
    conn.on('connect', () => {
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        // 02:fd:xx:xx:xx:xx, locally administered unicast, never a real host here.
        const hex = i.toString(16).padStart(8, '0');
        const mac = `02:fd:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}`;
        lines.push(JSON.stringify({ cmd: 'fdb.add', args: { mac, vlan: 1, port } }));
        if (lines.length === 10_000 || i === n - 1) conn.write(lines.splice(0).join('\n') + '\n');
      }
    });
  });
}

/**
 * --port-policy: the two active ports may send only from their own MAC and IP, and are
 * policed at 100 Gbit/s (far above what 64-byte frames reach: the checks' cost is
 * measured, not the cap).
 */
function benchPortPolicy(name: string): Record<string, unknown> {
  const own = name === GEN_PORT ? { mac: GEN_MAC, ip: GEN_IP } : name === SINK_PORT ? { mac: SINK_MAC, ip: SINK_IP } : undefined;
  if (!own) return {};
  return { security: { macs: [own.mac], ips: [own.ip] }, policing: { rate_kbps: 100_000_000, burst_kb: 1_000_000 } };
}

async function setupVswitchd(o: SetupOptions, kind: VswitchdKind): Promise<RunningSwitch> {
  const dir = join(o.workDir, 'vswitchd');
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'vswitchd.sock');
  const config: Record<string, unknown> = {
    bridge: 'vbvs',
    workers: 2,
    metrics: { listen: 'off' },
    control: { socket },
    log: { level: 'warn' },
    ports: o.ports.map((name) => ({ name, vlan: 1, ...(o.portPolicy ? benchPortPolicy(name) : {}) })),
  };
  for (const [k, v] of Object.entries(o.vswitchdSet)) setPath(config, k, v);
  const configPath = join(dir, 'switch.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n'); // JSON is YAML
  const root = repoRoot();
  const argv = [process.execPath, join(root, 'bin', 'vswitchd.js'), '--config', configPath];
  const proc = new Proc(o.cpu === undefined ? argv : ['taskset', '-c', `${o.cpu}`, ...argv]);
  const stop = async () => {
    await proc.stop('SIGTERM', 10_000);
  };
  const ctl = async (cmd: string) => {
    // The daemon's own client (vswitchctl's), with the bench's 5 s patience.
    return request(socket, cmd, {}, 5000);
  };
  try {
    const end = Date.now() + 30_000;
    for (;;) {
      if (!proc.running) throw new Error(`vswitchd exited: ${(proc.stderr + proc.stdout).trim().split('\n').slice(-3).join(' | ')}`);
      if (existsSync(socket) && (await ctl('version').then(() => true, () => false))) break;
      if (Date.now() > end) throw new Error('vswitchd did not answer on its control socket in 30 s');
      await sleep(100);
    }
    const ports = (await ctl('port.list')) as Array<{ name: string; xdp_mode?: string; hook?: string; queues?: number; up?: boolean; workers?: number[] }>;
    const gen = ports.find((p) => p.name === GEN_PORT);
    const notes = [`${ports.length} ports, gen port ${gen?.hook ?? '?'} hook, xdp ${gen?.xdp_mode ?? '?'}, ${gen?.queues ?? '?'} queues, workers ${JSON.stringify(gen?.workers ?? [])}`];
    if (gen?.hook === 'tc') {
      // As for the bridge: frames the XDP generator sends reach a port with no XDP
      // program of its own only with NAPI on, which GRO gives (64-byte UDP is not aggregated).
      await run(['ethtool', '-K', GEN_PORT, 'gro', 'on']);
      notes.push('GRO on at the generator port (veth NAPI, needed for XDP-sourced frames)');
    }
    if (Object.keys(o.vswitchdSet).length) notes.push(`config ${JSON.stringify(o.vswitchdSet)}`);
    const down = ports.filter((p) => p.up === false).map((p) => p.name);
    if (down.length) notes.push(`ports down: ${down.join(' ')}`);
    const fillFdb = (n: number, port: string) => fillStatics(socket, n, port);
    return { kind, label: SWITCH_LABEL[kind], pid: proc.pid, notes, extraPids: {}, stats: () => ctl('stats'), fillFdb, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- Linux bridge ----

async function setupBridge(o: SetupOptions): Promise<RunningSwitch> {
  const br = 'vbbr';
  const stop = async () => {
    if (existsSync(`/sys/class/net/${br}`)) await run(['ip', 'link', 'del', br], { check: false });
  };
  try {
    await run(['ip', 'link', 'add', br, 'type', 'bridge', 'stp_state', '0']);
    writeFileSync(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, '1');
    for (const p of o.ports) await run(['ip', 'link', 'set', p, 'master', br]);
    await run(['ip', 'link', 'set', br, 'up']);
    // Frames XDP_TX'd by the generator reach the port through veth's ndo_xdp_xmit, which
    // drops them unless the port has an XDP program or GRO (NAPI) on: GRO it is.
    await run(['ethtool', '-K', GEN_PORT, 'gro', 'on']);
    const notes = ['GRO on at the generator port (veth NAPI, needed for XDP-sourced frames)'];
    const nf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
    if (existsSync(nf) && readFileSync(nf, 'utf8').trim() === '1') notes.push('br_netfilter: bridge-nf-call-iptables=1 (left as found)');
    return { kind: 'bridge', label: SWITCH_LABEL.bridge, notes, extraPids: {}, stats: async () => ({}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- Open vSwitch, userspace datapath ----

export const OVS_DIR = '/run/vbench-ovs';

async function setupOvs(o: SetupOptions): Promise<RunningSwitch> {
  const dir = OVS_DIR;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Everything OVS writes goes into dir: never the system's database or run directory.
  const env = { ...process.env, OVS_RUNDIR: dir, OVS_DBDIR: dir, OVS_LOGDIR: dir, OVS_SYSCONFDIR: dir };
  const db = `unix:${join(dir, 'db.sock')}`;
  const pin = (argv: string[]) => (o.cpu === undefined ? argv : ['taskset', '-c', `${o.cpu}`, ...argv]);
  const vsctl = async (...args: string[]) => (await run(['ovs-vsctl', `--db=${db}`, '--timeout=20', ...args], { timeoutMs: 30_000 })).stdout.trim();
  const appctl = async (...args: string[]) => (await run(['ovs-appctl', '-t', join(dir, 'ovs-vswitchd.ctl'), ...args], { timeoutMs: 10_000 })).stdout;
  let server: Proc | undefined;
  let vswitchd: Proc | undefined;
  const stop = async () => {
    if (vswitchd?.running) {
      await run(['ovs-appctl', '-t', join(dir, 'ovs-vswitchd.ctl'), 'exit', '--cleanup'], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
      await vswitchd.stop('SIGTERM', 10_000);
    }
    if (server?.running) await server.stop('SIGTERM', 5000);
    if (existsSync('/sys/class/net/vbovs')) await run(['ip', 'link', 'del', 'vbovs'], { check: false });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run(['ovsdb-tool', 'create', join(dir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema']);
    server = new Proc(
      pin(['ovsdb-server', join(dir, 'conf.db'), `--remote=punix:${join(dir, 'db.sock')}`, `--unixctl=${join(dir, 'ovsdb-server.ctl')}`, `--pidfile=${join(dir, 'ovsdb-server.pid')}`, `--log-file=${join(dir, 'ovsdb-server.log')}`, '--no-chdir']),
      { env },
    );
    const end = Date.now() + 10_000;
    while (!existsSync(join(dir, 'db.sock'))) {
      if (!server.running || Date.now() > end) throw new Error(`ovsdb-server did not start: ${server.stderr.trim()}`);
      await sleep(50);
    }
    await run(['ovs-vsctl', `--db=${db}`, '--no-wait', 'init']);
    if (o.cpu !== undefined) await run(['ovs-vsctl', `--db=${db}`, '--no-wait', 'set', 'Open_vSwitch', '.', `other_config:pmd-cpu-mask=0x${(1 << o.cpu).toString(16)}`]);
    vswitchd = new Proc(
      pin(['ovs-vswitchd', db, `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`, `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`, `--log-file=${join(dir, 'ovs-vswitchd.log')}`, '--no-chdir']),
      { env },
    );
    const end2 = Date.now() + 15_000;
    while (!existsSync(join(dir, 'ovs-vswitchd.ctl'))) {
      if (!vswitchd.running || Date.now() > end2) throw new Error(`ovs-vswitchd did not start: ${vswitchd.stderr.trim()}`);
      await sleep(50);
    }
    await vsctl('add-br', 'vbovs', '--', 'set', 'bridge', 'vbovs', 'datapath_type=netdev');
    const notes: string[] = [];
    let fallback = 0;
    const rxqs = (dev: string) => {
      try {
        return Math.max(1, readdirSync(`/sys/class/net/${dev}/queues`).filter((q) => q.startsWith('rx-')).length);
      } catch {
        return 1;
      }
    };
    for (const p of o.ports) {
      // One AF_XDP socket per rx queue of the veth, as vswitchd binds every queue.
      await vsctl('add-port', 'vbovs', p, '--', 'set', 'interface', p, 'type=afxdp', 'options:xdp-mode=native', `options:n_rxq=${rxqs(p)}`);
      const err = (await vsctl('get', 'interface', p, 'error').catch(() => '')).replace(/^"|"$/g, '');
      const ofport = Number(await vsctl('get', 'interface', p, 'ofport').catch(() => '-1'));
      if (err && err !== '[]' || ofport < 0) {
        o.log(`ovs: afxdp on ${p} failed (${err}); falling back to type=system`);
        await vsctl('set', 'interface', p, 'type=system');
        await vsctl('remove', 'interface', p, 'options', 'xdp-mode', 'n_rxq').catch(() => '');
        fallback++;
      }
    }
    if (existsSync('/sys/class/net/vbovs')) writeFileSync('/proc/sys/net/ipv6/conf/vbovs/disable_ipv6', '1');
    notes.push(fallback ? `afxdp failed on ${fallback}/${o.ports.length} ports: type=system (AF_PACKET) used there` : `afxdp xdp-mode=native n_rxq=${rxqs(GEN_PORT)} on all ${o.ports.length} ports`);
    const pmd = await appctl('dpif-netdev/pmd-rxq-show').catch(() => '');
    const pmds = (pmd.match(/pmd thread numa_id/g) ?? []).length;
    notes.push(`${pmds} PMD thread(s)${o.cpu === undefined ? '' : ` (pmd-cpu-mask=0x${(1 << o.cpu).toString(16)})`}`);
    const ovsPid = vswitchd.pid;
    return {
      kind: 'ovs',
      label: fallback ? 'ovs-system(fallback)' : SWITCH_LABEL.ovs,
      pid: ovsPid,
      notes,
      extraPids: { 'ovsdb-server': server.pid },
      stats: async () => ({ pmd_perf: await appctl('dpif-netdev/pmd-stats-show').catch(() => '') }),
      stop,
    };
  } catch (err) {
    const log = vswitchd ? `${vswitchd.stderr}` : '';
    await stop();
    throw new Error(`${(err as Error).message}${log ? `\n${log.trim().split('\n').slice(-5).join('\n')}` : ''}`);
  }
}

/** Kill OVS processes a crashed earlier run left in OVS_DIR (by their pid files). */
export async function removeStaleOvs(): Promise<void> {
  for (const name of ['ovs-vswitchd', 'ovsdb-server']) {
    const pidFile = join(OVS_DIR, `${name}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number((await run(['cat', pidFile], { check: false })).stdout.trim());
    if (pid > 1 && (await ok(['grep', '-q', OVS_DIR, `/proc/${pid}/cmdline`]))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  if (existsSync('/sys/class/net/vbovs')) await run(['ip', 'link', 'del', 'vbovs'], { check: false });
  if (existsSync('/sys/class/net/vbbr')) await run(['ip', 'link', 'del', 'vbbr'], { check: false });
  if (existsSync('/sys/class/net/vbvs')) await run(['ip', 'link', 'del', 'vbvs'], { check: false });
  rmSync(OVS_DIR, { recursive: true, force: true });
}
