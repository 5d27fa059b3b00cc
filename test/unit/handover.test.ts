// The fds a start is handed (systemd's fd store or a re-exec): LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES.
import test from 'ava';
import { inheritedFds } from '../../src/switch/daemon/handover.js';

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
