// A real Linux guest under QEMU on a tap device, for tests that need a VM's own network
// stack (virtio-net with its default offloads: partial checksums, TSO).
//
//   const vm = await startGuest(t, cleanup, { tap, mac: randomMac(), ip: '10.2.0.100/24' });
//   const { code, stdout } = await vm.exec('ping -c 1 10.2.0.1');
//   await vm.stop();   // the Cleanup stops it anyway when the test ends
//
// The kernel and initramfs come from scripts/guest/build.sh (cached under
// /var/cache/vswitchd-test/guest, or $VSWITCHD_GUEST_CACHE); it is run here once per
// process when the cache is missing. The guest's /init (scripts/guest/init) sets up eth0
// from the kernel command line, starts `iperf3 -s` and serves commands on its second
// serial port, which QEMU exposes as a unix socket: one line `ID TIMEOUT BASE64(cmd)` in,
// `@@VSW-BEGIN ID`, base64 output, `@@VSW-END ID CODE` back.
//
// The tap may already exist (a vswitchd tap port) or QEMU creates it; either way the
// helper brings it up and, when it created it, deletes it at cleanup.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { repoRoot } from './frames.js';
import { linkExists, noIpv6, run, sleep, type Cleanup } from './netns.js';

export const GUEST_CACHE = process.env.VSWITCHD_GUEST_CACHE ?? '/var/cache/vswitchd-test/guest';

export interface GuestOptions {
  /** The tap device QEMU attaches to (existing, or created by QEMU). */
  tap: string;
  mac: string;
  /** eth0's address with prefix length, e.g. "10.2.0.100/24". */
  ip: string;
  /** eth0's MTU (the virtio-net default, 1500, when absent). */
  mtu?: number;
  /** Enslave the tap to this Linux bridge once it exists (for runs outside the switch). */
  master?: string;
  /** Guest memory in MiB (default 256). */
  memoryMb?: number;
  /** How long boot may take until the agent answers (default 90 s: TCG on a busy host). */
  bootTimeoutMs?: number;
}

export interface ExecResult {
  /** Exit status inside the guest (137 when the guest-side timeout killed it). */
  code: number;
  /** stdout and stderr, interleaved. */
  stdout: string;
}

export interface Guest {
  tap: string;
  mac: string;
  /** eth0's address without prefix length. */
  ip: string;
  /** 'kvm' or 'tcg'. */
  accel: string;
  /** Milliseconds from starting QEMU until the agent answered. */
  bootMs: number;
  /** Run a shell command in the guest (one at a time; calls queue). Rejects if no answer. */
  exec(cmd: string, timeoutMs?: number): Promise<ExecResult>;
  /** The guest's console (ttyS0) so far. */
  console(): string;
  /** Stop QEMU (SIGTERM, SIGKILL after 5 s) and wait for it. */
  stop(): Promise<void>;
}

function qemuBinary(): string {
  return process.env.VSWITCHD_QEMU ?? 'qemu-system-x86_64';
}

let imageReady: Promise<void> | undefined;

/**
 * Run scripts/guest/build.sh once per process: under a second when its output is cached and
 * current, a rebuild when scripts/guest/init or build.sh changed. VSWITCHD_GUEST_NO_BUILD=1
 * uses whatever is in the cache.
 */
export function ensureGuestImage(): Promise<void> {
  imageReady ??= (async () => {
    const cached = existsSync(join(GUEST_CACHE, 'vmlinuz')) && existsSync(join(GUEST_CACHE, 'initrd.img'));
    if (cached && process.env.VSWITCHD_GUEST_NO_BUILD === '1') return;
    const res = await run(['bash', join(repoRoot(), 'scripts', 'guest', 'build.sh')], { timeoutMs: 600_000, check: false });
    if (res.code !== 0) throw new Error(`scripts/guest/build.sh failed (exit ${res.code}):\n${res.stderr}${res.stdout}`);
  })();
  return imageReady;
}

let accelChoice: Promise<string> | undefined;

/**
 * 'kvm' when a KVM guest actually runs here, else 'tcg'. /dev/kvm existing is not enough:
 * on a PVM host kernel QEMU aborts ("failed to set MSR 0x10a") or hangs. The probe boots
 * the kernel without an initramfs to its panic (-no-reboot: QEMU exits) under KVM.
 * VSWITCHD_GUEST_ACCEL=tcg|kvm skips the probe.
 */
export function guestAccel(): Promise<string> {
  accelChoice ??= (async () => {
    const forced = process.env.VSWITCHD_GUEST_ACCEL;
    if (forced) return forced;
    if (!existsSync('/dev/kvm')) return 'tcg';
    const argv = [
      qemuBinary(), '-accel', 'kvm', '-cpu', 'host', '-nodefaults', '-no-user-config', '-display', 'none',
      '-no-reboot', '-m', '128', '-kernel', join(GUEST_CACHE, 'vmlinuz'), '-append', 'console=ttyS0 panic=-1',
      '-serial', 'stdio',
    ];
    const res = await run(argv, { timeoutMs: 8000, check: false }).catch(() => undefined);
    return res && res.code === 0 && /Kernel panic/.test(res.stdout) ? 'kvm' : 'tcg';
  })();
  return accelChoice;
}

/** Boot a guest on opts.tap and wait until its command agent answers. */
export async function startGuest(t: ExecutionContext, cleanup: Cleanup, opts: GuestOptions): Promise<Guest> {
  await ensureGuestImage();
  const accel = await guestAccel();
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-guest-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const consolePath = join(dir, 'console.log');
  const agentPath = join(dir, 'agent.sock');

  const tapExisted = await linkExists(opts.tap);
  if (!tapExisted) cleanup.add(() => run(['ip', 'link', 'del', opts.tap], { check: false })); // QEMU's own tap goes with it; in case

  const append = ['console=ttyS0', 'panic=-1', 'quiet', `vsw.ip=${opts.ip}`];
  if (opts.mtu) append.push(`vsw.mtu=${opts.mtu}`);
  const netdev = `tap,id=n0,ifname=${opts.tap},script=no,downscript=no,vhost=off`;
  const device = `virtio-net-pci,netdev=n0,mac=${opts.mac}${opts.mtu && opts.mtu > 1500 ? `,host_mtu=${opts.mtu}` : ''}`;
  const argv = [
    '-name', `vswitchd-test-${opts.tap}`, '-accel', accel, ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-smp', '1', '-m', `${opts.memoryMb ?? 256}`,
    '-kernel', join(GUEST_CACHE, 'vmlinuz'), '-initrd', join(GUEST_CACHE, 'initrd.img'), '-append', append.join(' '),
    '-chardev', `file,id=con,path=${consolePath}`, '-serial', 'chardev:con',
    '-chardev', `socket,id=agent,path=${agentPath},server=on,wait=off`, '-serial', 'chardev:agent',
    '-netdev', netdev, '-device', device,
  ];
  const started = Date.now();
  // setpriv --pdeathsig: QEMU (and with it a tap it created) dies with this process, even
  // when ava kills a timed-out test process before any cleanup runs.
  const qemu: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', '--', qemuBinary(), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let qemuOut = '';
  qemu.stdout!.on('data', (d: Buffer) => (qemuOut += d.toString()));
  qemu.stderr!.on('data', (d: Buffer) => (qemuOut += d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    qemu.on('close', (code) => resolve(code));
    qemu.on('error', (err) => {
      qemuOut += `${err}\n`;
      resolve(null);
    });
  });
  const running = () => qemu.exitCode === null && qemu.signalCode === null;
  const readConsole = () => {
    try {
      return readFileSync(consolePath, 'utf8');
    } catch {
      return '';
    }
  };
  let sock: Socket | undefined;
  const stop = async () => {
    sock?.destroy();
    if (running()) qemu.kill('SIGTERM');
    const timer = setTimeout(() => qemu.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  cleanup.add(stop);
  t.teardown(() => {
    if (t.passed) return;
    console.error(`=== ${t.title}: guest on ${opts.tap} (${accel})\nqemu ${argv.join(' ')}\n--- qemu output ---\n${qemuOut}\n--- guest console ---\n${readConsole()}`);
  });
  const dead = (what: string) => new Error(`QEMU exited (${qemu.exitCode ?? qemu.signalCode}) ${what}\n${qemuOut}\n${readConsole()}`);

  // The tap: wait for QEMU to open it, then up (and into a bridge when asked).
  const bootTimeoutMs = opts.bootTimeoutMs ?? 90_000;
  const end = started + bootTimeoutMs;
  while (!(await linkExists(opts.tap))) {
    if (!running()) throw dead('before the tap appeared');
    if (Date.now() > end) throw new Error(`tap ${opts.tap} did not appear`);
    await sleep(50);
  }
  if (!tapExisted) noIpv6(opts.tap);
  if (opts.master) await run(['ip', 'link', 'set', opts.tap, 'master', opts.master]);
  await run(['ip', 'link', 'set', opts.tap, 'up']);

  // The agent socket.
  while (!existsSync(agentPath)) {
    if (!running()) throw dead('before its agent socket appeared');
    if (Date.now() > end) throw new Error(`no agent socket ${agentPath}`);
    await sleep(50);
  }
  sock = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(agentPath);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  sock.on('error', () => undefined);
  let buf = '';
  const waiting = new Map<string, (r: ExecResult) => void>();
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (;;) {
      const m = /@@VSW-BEGIN (\S+)\n([\s\S]*?)@@VSW-END \1 (\d+)\n/.exec(buf);
      if (!m) break;
      buf = buf.slice(m.index + m[0].length);
      const done = waiting.get(m[1]!);
      waiting.delete(m[1]!);
      done?.({ code: Number(m[3]), stdout: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64').toString() });
    }
  });

  let seq = 0;
  const send = (cmd: string, timeoutMs: number): Promise<ExecResult> => {
    const id = `c${++seq}x${Date.now().toString(36)}`;
    const guestTimeout = Math.max(1, Math.ceil(timeoutMs / 1000));
    return new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        const tail = JSON.stringify(buf.slice(-300));
        reject(new Error(`guest: no answer to ${JSON.stringify(cmd)} in ${timeoutMs + 10_000} ms (agent line ends: ${tail}; qemu ${running() ? 'running' : 'exited'})`));
      }, timeoutMs + 10_000); // the serial line needs time for long output
      waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      sock!.write(`${id} ${guestTimeout} ${Buffer.from(cmd).toString('base64')}\n`);
    });
  };

  // Boot: ask until the agent answers (requests sent before it reads are lost or garbled).
  for (;;) {
    if (!running()) throw dead('while booting');
    if (Date.now() > end) throw new Error(`guest did not answer within ${bootTimeoutMs} ms\n${readConsole()}`);
    const id = `boot${++seq}`;
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(false);
      }, 1000);
      waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r.code === 0 && r.stdout.includes('vsw-ready'));
      });
    });
    sock.write(`${id} 5 ${Buffer.from('echo vsw-ready').toString('base64')}\n`);
    if (await answered) break;
  }
  const bootMs = Date.now() - started;

  let queue: Promise<unknown> = Promise.resolve();
  const exec = (cmd: string, timeoutMs = 30_000): Promise<ExecResult> => {
    const p = queue.then(() => {
      if (!running()) throw dead(`before ${JSON.stringify(cmd)}`);
      return send(cmd, timeoutMs);
    });
    queue = p.catch(() => undefined);
    return p;
  };
  return { tap: opts.tap, mac: opts.mac, ip: opts.ip.split('/')[0]!, accel, bootMs, exec, console: readConsole, stop };
}

/** A counter of /proc/net/snmp in the guest, e.g. snmp(vm, 'Tcp', 'InCsumErrors'). */
export async function guestSnmp(vm: Guest, group: string, field: string): Promise<number> {
  const { stdout } = await vm.exec('cat /proc/net/snmp');
  return snmpField(stdout, group, field);
}

/** Parse one field out of /proc/net/snmp text (header line, then values line, per group). */
export function snmpField(text: string, group: string, field: string): number {
  const lines = text.split('\n').filter((l) => l.startsWith(`${group}:`));
  const names = lines[0]?.split(/\s+/).slice(1) ?? [];
  const values = lines[1]?.split(/\s+/).slice(1) ?? [];
  const i = names.indexOf(field);
  if (i < 0) throw new Error(`no ${group} ${field} in /proc/net/snmp`);
  return Number(values[i]);
}

export interface GuestIperf {
  /** Whether iperf3 finished with a report and no error. */
  ok: boolean;
  bytes: number;
  mbps: number;
  retransmits: number;
  /** iperf3's error, or why there was no report. */
  error: string;
  raw: string;
}

/** Parse `iperf3 -J` output (from the guest or the host) into the figures a test checks. */
export function parseIperf(raw: string): GuestIperf {
  try {
    const report = JSON.parse(raw.slice(raw.indexOf('{'))) as {
      error?: string;
      end?: { sum_received?: { bytes: number; bits_per_second: number }; sum_sent?: { retransmits?: number } };
    };
    const rx = report.end?.sum_received;
    return {
      ok: !report.error && !!rx && rx.bytes > 0,
      bytes: rx?.bytes ?? 0,
      mbps: (rx?.bits_per_second ?? 0) / 1e6,
      retransmits: report.end?.sum_sent?.retransmits ?? 0,
      error: report.error ?? (rx ? '' : 'no sum_received'),
      raw,
    };
  } catch {
    return { ok: false, bytes: 0, mbps: 0, retransmits: 0, error: `no JSON: ${raw.slice(0, 500)}`, raw };
  }
}

/** iperf3 TCP from the guest to a server at `serverIp` (reverse: the server sends). */
export async function iperfFromGuest(vm: Guest, serverIp: string, opts: { seconds?: number; reverse?: boolean; port?: number } = {}): Promise<GuestIperf> {
  const seconds = opts.seconds ?? 3;
  const cmd = `iperf3 -c ${serverIp} -p ${opts.port ?? 5201} -t ${seconds} -J --connect-timeout 5000${opts.reverse ? ' -R' : ''}`;
  const res = await vm.exec(cmd, (seconds + 25) * 1000);
  return parseIperf(res.stdout);
}
