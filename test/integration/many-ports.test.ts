// Many ports (issue 12): --check refuses what start cannot run, and a switch of a few
// hundred ports forwards between its last two.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { accessPort, runVswitchd, startDaemon } from '../helpers/daemon.js';
import { addHosts, cleanupFor, linkNames, pingUntil, run, uniqueName, type Host } from '../helpers/netns.js';
import { puntNames } from '../../src/switch/ports/hygiene.js';
import { MAX_PORTS } from '../../src/switch/types.js';

test.serial(`--check refuses a config of more than ${MAX_PORTS} port slots, at the first that does not fit`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-many-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'switch.yaml');
  const ports = (n: number) => Array.from({ length: n }, (_, i) => `  - { name: p${i}, vlan: 1 }`);
  // The internal port takes a slot: MAX_PORTS - 1 more fit.
  writeFileSync(file, ['ports:', ...ports(MAX_PORTS - 1), ''].join('\n'));
  const fits = await runVswitchd(['--config', file, '--check']);
  t.is(fits.code, 0, fits.stderr);
  writeFileSync(file, ['ports:', ...ports(MAX_PORTS), ''].join('\n'));
  const over = await runVswitchd(['--config', file, '--check']);
  t.is(over.code, 2);
  t.is(over.stderr.trim(), `${file}:${MAX_PORTS + 1}:13: ports[${MAX_PORTS - 1}].name: too many ports: ${MAX_PORTS + 1} port slots, at most ${MAX_PORTS} (the internal port, each port, each bond and each bond member take one); the first that does not fit is here`);
});

// 100 ports on one worker with 1024 frames: before, each receiving socket kept 64 frames in
// its fill ring whatever their number, so the first 16 sockets took every frame and the
// ports after them (here the two hosts) never received one, and floods found no buffer.
// (More ports would show no more: each takes about 0.3 s to attach here, mostly loading its programs.)
const FILLERS = 98;

test.serial(`${FILLERS + 2} ports: the last two forward to each other, and the daemon says each socket has few frames`, async (t) => {
  const cleanup = cleanupFor(t);
  const prefix = uniqueName();
  const fillers = Array.from({ length: FILLERS }, (_, i) => `${prefix}f${i}`);
  // One ip process for all pairs (both ends here, only one a port): the quick way to make hundreds.
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-many-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const batch = (name: string, lines: string[]) => (writeFileSync(join(dir, name), lines.join('\n') + '\n'), join(dir, name));
  const del = batch('del', fillers.map((f) => `link del ${f}`));
  cleanup.add(() => run(['ip', '-force', '-batch', del], { check: false }));
  await run(['ip', '-batch', batch('add', fillers.map((f) => `link add ${f} numtxqueues 1 numrxqueues 1 type veth peer name ${f}x numtxqueues 1 numrxqueues 1`))]);
  const [a, b] = (await addHosts(cleanup, ['10.12.5.1/24', '10.12.5.2/24'])) as [Host, Host];
  const started = Date.now();
  const sw = await startDaemon(t, cleanup, {
    workers: 1,
    datapath: { frames_per_worker: 1024 },
    ports: [...fillers.map((f) => accessPort(f, 10)), accessPort(a.port, 10), accessPort(b.port, 10)],
  }, { readyTimeoutMs: 50_000 });
  t.log(`${FILLERS + 2} ports up in ${Date.now() - started} ms`);
  const ports = await sw.ports();
  t.is(ports.filter((p) => p.up).length, FILLERS + 3, 'every port is up (and the internal port)');
  t.true(await pingUntil(a, b.ip), 'the last two ports forward to each other');
  t.true(await pingUntil(b, a.ip), 'both ways');
  t.regex(sw.stdout, /many ports: each receiving socket keeps only 5 frames ready \(64 wanted\); set datapath.frames_per_worker to 16384/);
  // A clean stop removes 100 ports one by one (Daemon.stop would SIGKILL after 10 s).
  const stopping = Date.now();
  sw.proc.kill('SIGTERM');
  const { code } = await sw.exited;
  t.log(`stopped in ${Date.now() - stopping} ms`);
  t.is(code, 0, 'a clean stop');
  const left = (await linkNames()).filter((l) => l.startsWith(puntNames(sw.config.bridge as string, 0).prefix));
  t.deepEqual(left, [], 'no punt pair is left');
});
