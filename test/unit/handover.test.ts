// The fds a start is handed (systemd's fd store or a re-exec): LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES;
// what identifies a build's programs; the early start's log.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Logger } from 'pino';
import { DeferredLog } from '../../src/switch/daemon/early.js';
import { inheritedFds, programBuild } from '../../src/switch/daemon/handover.js';

test('the fds handed to this process are named from 3 on, and the variables are taken out', (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '3', LISTEN_FDNAMES: 'fdb:link.veth1:state', OTHER: 'x' };
  const fds = inheritedFds(env, 42);
  t.deepEqual([...fds], [['fdb', 3], ['link.veth1', 4], ['state', 5]]);
  t.deepEqual(env, { OTHER: 'x' }, 'children (ip, ethtool) do not see them');
});

test('fds meant for another process (a parent that did not exec us) are not ours', (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '41', LISTEN_FDS: '2', LISTEN_FDNAMES: 'fdb:ports' };
  t.is(inheritedFds(env, 42).size, 0);
  t.is(env.LISTEN_FDS, undefined);
});

test('no handover: nothing', (t) => {
  t.is(inheritedFds({}, 42).size, 0);
});

test('programBuild: the same objects give the same build, a changed one another', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vsw-build-'));
  const a = join(dir, 'a.o'), b = join(dir, 'b.o');
  writeFileSync(a, 'program a');
  writeFileSync(b, 'program b');
  const first = programBuild([a, b]);
  t.is(programBuild([a, b]), first);
  writeFileSync(b, 'program b with one no-op more');
  t.not(programBuild([a, b]), first);
  rmSync(dir, { recursive: true, force: true });
});

test('the early start\'s log keeps what is said until the logger exists, in order', (t) => {
  const log = new DeferredLog();
  log.info({ ports: 2 }, 'early start');
  log.warn('a port left to the daemon');
  const seen: string[] = [];
  const target = Object.fromEntries(['debug', 'info', 'warn', 'error'].map((l) => [l, (o: object, m?: string) => seen.push(`${l} ${m} ${JSON.stringify(o)}`)]));
  log.attach(target as unknown as Logger);
  log.error({ n: 1 }, 'after');
  t.deepEqual(seen, ['info early start {"ports":2}', 'warn a port left to the daemon {}', 'error after {"n":1}']);
});
