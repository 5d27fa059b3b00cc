// A private Open vSwitch (userspace datapath) for tests that need an independent
// switch on the far side, e.g. an LACP partner.
//
//   const ovs = await startOvs(cleanup, ns);              // ovsdb-server + ovs-vswitchd in `ns`
//   await ovs.vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev');
//   const lacp = parseLacpShow(await ovs.appctl('lacp/show', 'bond0'));
//   await ovs.stop();                                     // the Cleanup does it anyway
//
// Everything lives in a temporary directory of its own (database, sockets, pid
// and log files; OVS_RUNDIR / OVS_DBDIR / OVS_LOGDIR point there), so the
// system's Open vSwitch database and /var/run/openvswitch are never touched.
// ovs-vswitchd runs inside the given network namespace, so the devices it
// opens (and the bridge taps it creates) are that namespace's.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sleep, type Cleanup, type RunResult } from './netns.js';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export class Ovs {
  constructor(
    /** The namespace ovs-vswitchd runs in. */
    readonly ns: string,
    /** Private run/db/log directory. */
    readonly dir: string,
  ) {}

  get dbSocket(): string {
    return join(this.dir, 'db.sock');
  }

  /** ovs-vswitchd's unixctl socket (for ovs-appctl -t). */
  get ctlSocket(): string {
    return join(this.dir, 'ovs-vswitchd.ctl');
  }

  private env(): string[] {
    return ['env', `OVS_RUNDIR=${this.dir}`, `OVS_DBDIR=${this.dir}`, `OVS_LOGDIR=${this.dir}`];
  }

  /** Runs a program with the private OVS environment (in ovs-vswitchd's namespace when `inNs`). */
  exec(argv: string[], inNs = false, check = true): Promise<RunResult> {
    return run([...this.env(), ...argv], { ...(inNs ? { ns: this.ns } : {}), check, timeoutMs: 20_000 });
  }

  /** ovs-vsctl against the private database; waits for ovs-vswitchd to apply the change. */
  async vsctl(...args: string[]): Promise<string> {
    return (await this.exec(['ovs-vsctl', `--db=unix:${this.dbSocket}`, '--timeout=15', ...args])).stdout;
  }

  /** ovs-appctl to the private ovs-vswitchd. */
  async appctl(...args: string[]): Promise<string> {
    return (await this.exec(['ovs-appctl', '-t', this.ctlSocket, ...args])).stdout;
  }

  /** `ovs-appctl lacp/show BOND`, parsed. */
  async lacpShow(bond: string): Promise<LacpShow> {
    return parseLacpShow(await this.appctl('lacp/show', bond));
  }

  /** `ovs-appctl bond/show BOND`, parsed (only what the tests use). */
  async bondShow(bond: string): Promise<BondShow> {
    return parseBondShow(await this.appctl('bond/show', bond));
  }

  private pid(name: string): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, `${name}.pid`), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** Pid of ovs-vswitchd (undefined once it is stopped). */
  get vswitchdPid(): number | undefined {
    const pid = this.pid('ovs-vswitchd');
    return pid !== undefined && alive(pid) ? pid : undefined;
  }

  /** Sends a signal to ovs-vswitchd (SIGSTOP freezes it: no more LACPDUs; SIGCONT resumes). */
  signalVswitchd(signal: NodeJS.Signals): void {
    const pid = this.vswitchdPid;
    if (pid === undefined) throw new Error('ovs-vswitchd is not running');
    process.kill(pid, signal);
  }

  /** Stops ovs-vswitchd and ovsdb-server (SIGTERM, SIGKILL after 5 s) and removes the directory. */
  async stop(): Promise<void> {
    for (const name of ['ovs-vswitchd', 'ovsdb-server']) {
      const pid = this.pid(name);
      if (pid === undefined || !alive(pid)) continue;
      try {
        process.kill(pid, 'SIGCONT'); // in case a test froze it
        process.kill(pid, 'SIGTERM');
      } catch {
        continue;
      }
      const end = Date.now() + 5000;
      while (alive(pid) && Date.now() < end) await sleep(50);
      if (alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
        while (alive(pid)) await sleep(20);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) answers signal 0 too.
  try {
    return !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Starts a private ovsdb-server (root namespace, unix socket in a temp dir) and
 * ovs-vswitchd inside `ns`, both detached, and registers their stop with the Cleanup
 * (which must run before the namespace is deleted: register the namespace first).
 */
export async function startOvs(cleanup: Cleanup, ns: string): Promise<Ovs> {
  if (!existsSync(SCHEMA)) throw new Error(`${SCHEMA} not found: is openvswitch-switch installed?`);
  const dir = mkdtempSync(join(tmpdir(), 'vt-ovs-'));
  const ovs = new Ovs(ns, dir);
  cleanup.add(() => ovs.stop());
  const db = join(dir, 'conf.db');
  await ovs.exec(['ovsdb-tool', 'create', db, SCHEMA]);
  await ovs.exec([
    'ovsdb-server', db,
    `--remote=punix:${ovs.dbSocket}`,
    `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
    `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
    `--log-file=${join(dir, 'ovsdb-server.log')}`,
    '--no-chdir', '--detach',
  ]);
  await ovs.vsctl('--no-wait', 'init');
  await ovs.exec([
    'ovs-vswitchd', `unix:${ovs.dbSocket}`,
    `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
    `--unixctl=${ovs.ctlSocket}`,
    `--log-file=${join(dir, 'ovs-vswitchd.log')}`,
    '--no-chdir', '--detach',
  ], true);
  return ovs;
}

/** The tail of ovs-vswitchd's log, for a failed test's report. */
export function ovsLog(ovs: Ovs, lines = 60): string {
  try {
    return readFileSync(join(ovs.dir, 'ovs-vswitchd.log'), 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no ovs-vswitchd log)';
  }
}

// ---------------------------------------------------------------------------
// ovs-appctl output.

export interface LacpShowMember {
  name: string;
  /** e.g. "current attached", "defaulted detached", "expired attached". */
  status: string;
  portId: number;
  actorSysId: string;
  actorKey: number;
  /** Words of the actor state line: activity timeout aggregation synchronized collecting distributing ... */
  actorState: string[];
  partnerSysId: string;
  partnerKey: number;
  partnerState: string[];
}

export interface LacpShow {
  name: string;
  /** "negotiated", "configured" (no partner heard) ... */
  status: string;
  sysId: string;
  members: Record<string, LacpShowMember>;
}

/**
 * Parses `ovs-appctl lacp/show BOND` (OVS 3.x):
 *
 *   ---- bond0 ----
 *     status: active negotiated
 *     sys_id: aa:55:aa:55:00:01
 *     ...
 *   <TAB>member: vt1a: current attached
 *     port_id: 1
 *     actor sys_id: aa:55:aa:55:00:01
 *     actor key: 1
 *     actor state: activity timeout aggregation synchronized collecting distributing
 *     partner sys_id: ...
 *     partner state: ...
 */
export function parseLacpShow(text: string): LacpShow {
  const out: LacpShow = { name: '', status: '', sysId: '', members: {} };
  let m: LacpShowMember | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let g: RegExpExecArray | null;
    if ((g = /^---- (\S+) ----$/.exec(line))) {
      out.name = g[1]!;
    } else if ((g = /^(?:member|slave): (\S+): (.*)$/.exec(line))) {
      m = { name: g[1]!, status: g[2]!.trim(), portId: 0, actorSysId: '', actorKey: 0, actorState: [], partnerSysId: '', partnerKey: 0, partnerState: [] };
      out.members[m.name] = m;
    } else if ((g = /^([a-z_ ]+):\s*(.*)$/.exec(line))) {
      const [key, value] = [g[1]!, g[2]!.trim()];
      if (!m) {
        if (key === 'status') out.status = value;
        else if (key === 'sys_id') out.sysId = value;
        continue;
      }
      if (key === 'port_id') m.portId = Number(value);
      else if (key === 'actor sys_id') m.actorSysId = value;
      else if (key === 'actor key') m.actorKey = Number(value);
      else if (key === 'actor state') m.actorState = value.split(/\s+/).filter(Boolean);
      else if (key === 'partner sys_id') m.partnerSysId = value;
      else if (key === 'partner key') m.partnerKey = Number(value);
      else if (key === 'partner state') m.partnerState = value.split(/\s+/).filter(Boolean);
    }
  }
  return out;
}

export interface BondShowMember {
  name: string;
  enabled: boolean;
  /** "active member" line present. */
  active: boolean;
}

export interface BondShow {
  mode: string;
  lacpStatus: string;
  members: Record<string, BondShowMember>;
}

/** Parses `ovs-appctl bond/show BOND`: bond_mode, lacp_status, and each member's enabled/disabled. */
export function parseBondShow(text: string): BondShow {
  const out: BondShow = { mode: '', lacpStatus: '', members: {} };
  let m: BondShowMember | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let g: RegExpExecArray | null;
    if ((g = /^bond_mode: (\S+)/.exec(line))) out.mode = g[1]!;
    else if ((g = /^lacp_status: (\S+)/.exec(line))) out.lacpStatus = g[1]!;
    else if ((g = /^(?:member|slave) (\S+): (enabled|disabled)/.exec(line))) {
      m = { name: g[1]!, enabled: g[2] === 'enabled', active: false };
      out.members[m.name] = m;
    } else if (m && /^active (member|slave)/.test(line)) {
      m.active = true;
    }
  }
  return out;
}
