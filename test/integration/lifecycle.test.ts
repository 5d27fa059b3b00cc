// Start, stop, restart: a clean stop leaves the host as it was; a killed daemon can be restarted.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { accessPort, restartDaemon, runVswitchd, startDaemon, type Daemon } from '../helpers/daemon.js';
import { puntNames } from '../../src/switch/ports/hygiene.js';
import { addHosts, cleanupFor, hasXdp, linkExists, listFiles, pingUntil, run, sleep, startPing, uniqueName, type Host } from '../helpers/netns.js';

/** The punt pair devices of a bridge's ports (tc hook), as they exist now. */
function puntDevices(bridge: string): string[] {
  const { prefix } = puntNames(bridge, 0);
  return readdirSync('/sys/class/net').filter((d) => d.startsWith(prefix));
}

/** The port's datapath programs are in place: XDP on its device, or (tc hook) the punt pair's XDP on its far end. */
async function hooked(sw: Daemon, port: string): Promise<boolean> {
  const row = (await sw.ports()).find((p) => p.name === port) as { index: number; hook?: string } | undefined;
  if (!row) return false;
  if (row.hook !== 'tc') return hasXdp(port);
  const { far } = puntNames((sw.config as { bridge: string }).bridge, row.index);
  return hasXdp(far);
}

async function topology(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [a, b] = (await addHosts(cleanup, ['10.5.0.1/24', '10.5.0.2/24'])) as [Host, Host];
  const tap = `${uniqueName()}t`;
  const bridge = `${uniqueName()}b`;
  for (const dev of [tap, bridge]) cleanup.add(() => run(['ip', 'link', 'del', dev], { check: false }));
  const pinnedBefore = listFiles('/sys/fs/bpf');
  const config = { bridge, ports: [accessPort(a.port, 10), accessPort(b.port, 10), accessPort(tap, 10, 'tap')] };
  return { cleanup, a, b, tap, bridge, pinnedBefore, config };
}

/** What a clean stop must leave: no XDP on the ports, no created devices, no pins, no socket. */
async function assertCleanStop(
  t: ExecutionContext,
  sw: Daemon,
  env: { a: Host; b: Host; tap: string; bridge: string; pinnedBefore: string[] },
  how: 'SIGTERM' | 'SIGINT' = 'SIGTERM',
  checkTap = true,
): Promise<void> {
  const { code, signal } = await sw.stop(how);
  t.is(code, 0, `${how}: exit status 0 (signal ${signal})`);
  t.false(await hasXdp(env.a.port), `no XDP program left on ${env.a.port}`);
  t.false(await hasXdp(env.b.port), `no XDP program left on ${env.b.port}`);
  t.deepEqual(puntDevices(env.bridge), [], 'no punt pair left');
  if (checkTap) t.false(await linkExists(env.tap), 'the tap the daemon created is gone');
  t.false(await linkExists(env.bridge), 'the internal port is gone');
  t.deepEqual(listFiles('/sys/fs/bpf'), env.pinnedBefore, 'nothing left pinned under /sys/fs/bpf');
  t.false(existsSync(sw.socketPath), 'the control socket is gone');
}

test.serial('SIGTERM and SIGINT stop cleanly and the same config starts again', async (t) => {
  const env = await topology(t);
  const { cleanup, a, b, config } = env;

  const sw = await startDaemon(t, cleanup, config);
  t.true(await hooked(sw, a.port), 'the datapath programs are attached while running');
  t.true(await pingUntil(a, b.ip), 'traffic flows');
  await assertCleanStop(t, sw, env);

  const again = await restartDaemon(t, cleanup, sw);
  t.true(await pingUntil(a, b.ip), 'traffic flows after the restart');
  await assertCleanStop(t, again, env, 'SIGINT');
});

/** Ids of the BPF programs a process holds open (its program and link fds name them in fdinfo). */
function programsOf(pid: number): number[] {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info = '';
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;  // closed meanwhile
    }
    const m = /^prog_id:\s*(\d+)$/m.exec(info);
    if (m) ids.add(Number(m[1]));
  }
  return [...ids].sort((x, y) => x - y);
}

async function programExists(id: number): Promise<boolean> {
  return (await run(['bpftool', 'prog', 'show', 'id', `${id}`], { check: false })).code === 0;
}

test.serial('SIGKILL while two hosts ping, then start again: forwarding back, nothing stale', async (t) => {
  const env = await topology(t);
  const { cleanup, a, b, tap, bridge, config } = env;

  const sw = await startDaemon(t, cleanup, config);
  t.true(await pingUntil(a, b.ip), 'traffic flows');
  const oldPrograms = programsOf(sw.proc.pid!);
  t.true(oldPrograms.length > 0, 'the daemon holds its programs');
  const pairs = puntDevices(bridge).sort();
  const ping = await startPing(cleanup, a, b.ip, { count: 160, interval: 0.05 });  // 8 s
  await sleep(1000);
  const { signal } = await sw.stop('SIGKILL');
  t.is(signal, 'SIGKILL');
  t.true(await linkExists(tap), 'the tap the daemon created outlives it');

  const killedAt = Date.now();
  const again = await restartDaemon(t, cleanup, sw);
  t.true(await pingUntil(a, b.ip), 'traffic flows after a restart over the leftovers of a killed daemon');
  const backMs = Date.now() - killedAt;
  t.log(`forwarding back ${backMs} ms after the kill`);
  t.true(backMs < 10_000, `forwarding back in under 10 s (${backMs} ms)`);
  const { transmitted, received } = await ping.done();
  t.log(`continuous ping across the kill and restart: ${received}/${transmitted} answered`);
  t.true(received > 0 && received < transmitted, 'the ping ran through it');

  // Nothing stale: the same punt pairs (no second set), the same number of programs, none of the old ones alive.
  t.deepEqual(puntDevices(bridge).sort(), pairs, 'one punt pair per tc port, as before the kill');
  const newPrograms = programsOf(again.proc.pid!);
  t.log(`programs: killed daemon ${oldPrograms.join(",")}; new daemon ${newPrograms.join(",")}`);
  t.is(newPrograms.length, oldPrograms.length, `as many programs as the first daemon held (${oldPrograms.length})`);
  const alive = [];
  for (const id of oldPrograms) if (await programExists(id)) alive.push(id);
  t.deepEqual(alive, [], 'every program of the killed daemon is gone from the kernel');
  t.true((await again.ports()).find((p) => p.name === tap)?.up, 'the tap port is up again');
  // The tap outlived the killed daemon; the new one knows it created it (its state file
  // beside the control socket), so a clean stop still removes it.
  await assertCleanStop(t, again, env, 'SIGTERM');
});

test.serial('a second daemon on the same config says why in one line, exits 1 and leaves the first one forwarding', async (t) => {
  const env = await topology(t);
  const { cleanup, a, b, config, bridge } = env;
  const sw = await startDaemon(t, cleanup, config);
  t.true(await pingUntil(a, b.ip), 'traffic flows');

  const second = await runVswitchd(['--config', sw.configPath, '--log-format', 'json'], 30_000);
  t.is(second.code, 1, `exit status 1 (stderr: ${second.stderr})`);
  const lines = second.stderr.trim().split('\n');
  t.is(lines.length, 1, `one line on stderr: ${second.stderr}`);
  t.regex(lines[0]!, new RegExp(`^vswitchd: cannot start: internal port ${bridge}: .*another vswitchd`), 'it names the internal port and the likely cause');
  t.notRegex(second.stderr, /\n\s+at /, 'no stack trace');
  t.true(await pingUntil(a, b.ip), 'the first daemon still forwards');
  t.true(await hooked(sw, a.port), 'and its datapath programs are still attached');
  await assertCleanStop(t, sw, env);
});
