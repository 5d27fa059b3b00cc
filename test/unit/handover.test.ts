// The fds a start is handed (systemd's fd store or a re-exec): LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES;
// what identifies a build's programs; the early start's log.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Logger } from 'pino';
import { DeferredLog } from '../../src/switch/daemon/early.js';
import type { NativeAddon } from '../../src/switch/datapath/native.js';
import { Handover, inheritedFds, isXskFdName, programBuild, xskNamesOf } from '../../src/switch/daemon/handover.js';

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

test('a port\'s AF_XDP socket names: one per device queue, the punt far end\'s for a tc port; told from the other fds', (t) => {
  t.deepEqual(xskNamesOf({ name: 'eth0.10', queues: 2, hook: 'tc' }), { device: ['xsk.0.eth0.10', 'xsk.1.eth0.10'], punt: 'xskp.eth0.10' });
  t.deepEqual(xskNamesOf({ name: 'veth1', queues: 1, hook: 'xdp' }), { device: ['xsk.0.veth1'], punt: '' });
  for (const n of ['umem', 'umem.anchor', 'xsk.0.veth1', 'xsk.12.eth0.10', 'xskp.veth1']) t.true(isXskFdName(n), n);
  for (const n of ['fdb', 'link.veth1', 'punt.veth1', 'tap.br0', 'state', 'xsk.veth1']) t.false(isXskFdName(n), n);
});

/** A Handover over a native stand-in that records what goes to the store and what is closed. */
function recordingHandover(inherited: [string, number][]) {
  const said: string[] = [];
  const closed: number[] = [];
  const native = { sdNotify: (s: string, fds?: number[]) => said.push(`${s.replace('\n', ' ')}${fds ? ' ' + fds.join(',') : ''}`), closeFd: (fd: number) => closed.push(fd) } as unknown as NativeAddon;
  const saved = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = '/run/test.sock';
  const h = new Handover(native, new Map(inherited), new DeferredLog().logger);
  if (saved === undefined) delete process.env.NOTIFY_SOCKET;
  else process.env.NOTIFY_SOCKET = saved;
  return { h, said, closed };
}

test('sockets not adopted are closed and taken out of the store (their queues are free only then); the rest stays', (t) => {
  const { h, said, closed } = recordingHandover([['fdb', 3], ['umem', 4], ['umem.anchor', 5], ['xsk.0.veth1', 6], ['xskp.veth1', 7], ['link.veth1', 8]]);
  const original = new Map(h.inherited);
  t.deepEqual(h.dropXsks(original), ['umem', 'umem.anchor', 'xsk.0.veth1', 'xskp.veth1']);
  t.deepEqual(closed, [4, 5, 6, 7]);
  t.deepEqual(said, ['FDSTOREREMOVE=1 FDNAME=umem', 'FDSTOREREMOVE=1 FDNAME=umem.anchor', 'FDSTOREREMOVE=1 FDNAME=xsk.0.veth1', 'FDSTOREREMOVE=1 FDNAME=xskp.veth1']);
  t.deepEqual([...h.inherited.keys()], ['fdb', 'link.veth1']);
  t.deepEqual([...original.keys()], ['fdb', 'link.veth1'], 'a re-exec does not pass closed fds on');
});

test('sync keeps exactly the sockets asked for in the store: new ones stored, gone ones removed, others untouched', (t) => {
  const { h, said } = recordingHandover([]);
  const member = (n: string) => n.startsWith('xsk.');
  h.store('fdb', 3);
  h.sync(member, new Map([['xsk.0.a', 10], ['xsk.0.b', 11]]));
  h.sync(member, new Map([['xsk.0.a', 10]]));
  t.deepEqual(said, ['FDSTORE=1 FDNAME=fdb 3', 'FDSTORE=1 FDNAME=xsk.0.a 10', 'FDSTORE=1 FDNAME=xsk.0.b 11', 'FDSTOREREMOVE=1 FDNAME=xsk.0.b']);
});
