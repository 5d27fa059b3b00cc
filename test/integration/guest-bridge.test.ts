// The guest harness itself, against the Linux bridge (no vswitchd): a QEMU guest on a tap
// and a veth host in a namespace, both in a bridge. Ping and iperf3 TCP both ways with the
// guest's default virtio-net offloads, no checksum errors. This is the reference that
// guest-vm.test.ts (the same traffic through vswitchd) is judged against; it does not
// depend on the switch's fast path, so it runs only in the fast-path-off pass.

import test from 'ava';
import { guestSnmp, iperfFromGuest, parseIperf, startGuest } from '../helpers/guest.js';
import { addHost, Background, cleanupFor, ping, randomMac, run, uniqueName } from '../helpers/netns.js';

// A check of the guest harness itself (no vswitchd in it), run by hand with
// VSWITCHD_GUEST_BRIDGE=1. Out of the suite for now: twice in about seven runs the
// guest's iperf3 client gave its command agent no answer within 38 s (TCG guest), a
// harness flake to fix before it runs in CI again. The vswitchd guest test (guest-vm)
// passed in every pass of every run so far.
const maybe = process.env.VSWITCHD_GUEST_BRIDGE === '1' ? test.serial : test.serial.skip;

maybe('a QEMU guest on a Linux bridge: ping and iperf3 TCP both ways, checksums intact', async (t) => {
  const began = Date.now();
  const cleanup = cleanupFor(t);
  const br = uniqueName('brg');
  await run(['ip', 'link', 'add', br, 'type', 'bridge']);
  cleanup.add(() => run(['ip', 'link', 'del', br], { check: false }));
  await run(['ip', 'link', 'set', br, 'up']);
  const host = await addHost(cleanup, { cidr: '10.77.0.1/24' });
  await run(['ip', 'link', 'set', host.port, 'master', br]);
  const tap = `${uniqueName()}t`;
  const vm = await startGuest(t, cleanup, { tap, mac: randomMac(), ip: '10.77.0.100/24', master: br });
  t.log(`guest booted in ${vm.bootMs} ms (${vm.accel})`);

  const offloads = (await vm.exec('ethtool -k eth0')).stdout;
  t.regex(offloads, /^tx-checksumming: on/m, 'the guest keeps tx checksum offload');
  t.regex(offloads, /^tcp-segmentation-offload: on/m, 'the guest keeps TSO');

  t.is(await ping(host, vm.ip, { count: 3 }), 3, 'host -> guest ping');
  const gping = await vm.exec(`ping -c 3 -i 0.2 -W 2 ${host.ip}`);
  t.is(gping.code, 0, `guest -> host ping:\n${gping.stdout}`);

  // Guest as client (the guest sends: partial checksums on the wire to the host).
  const srv = new Background(['iperf3', '-s', '-1', '--forceflush', '-B', host.ip], host.ns);
  cleanup.add(() => srv.stop('SIGKILL'));
  await srv.waitFor('Server listening');
  const up = await iperfFromGuest(vm, host.ip, { seconds: 3 });
  await srv.stop('SIGKILL');
  t.true(up.ok, `guest -> host iperf3: ${up.error}`);
  t.log(`guest -> host: ${up.mbps.toFixed(0)} Mbit/s, ${up.bytes} bytes, ${up.retransmits} retransmits`);

  // Guest as server (iperf3 -s from its /init).
  const downRun = await run(['iperf3', '-c', vm.ip, '-t', '3', '-J', '--connect-timeout', '5000'], { ns: host.ns, check: false, timeoutMs: 40_000 });
  const down = parseIperf(downRun.stdout);
  t.true(down.ok, `host -> guest iperf3: ${down.error}`);
  t.log(`host -> guest: ${down.mbps.toFixed(0)} Mbit/s, ${down.bytes} bytes, ${down.retransmits} retransmits`);

  const nstat = await run(['nstat', '-asz', 'TcpInCsumErrors'], { ns: host.ns });
  const hostErrors = Number(/TcpInCsumErrors\s+(\d+)/.exec(nstat.stdout)?.[1] ?? 'NaN');
  t.is(hostErrors, 0, 'no TCP checksum errors in the host namespace');
  t.is(await guestSnmp(vm, 'Tcp', 'InCsumErrors'), 0, 'no TCP checksum errors in the guest');
  t.log(`total ${((Date.now() - began) / 1000).toFixed(1)} s`);
});
