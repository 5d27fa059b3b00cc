// Ports that come and go at run time, as VMs start and stop: `vswitchctl port add/del`
// while a TCP stream runs between two other hosts, and tap devices that vanish and return.

import test from 'ava';
import { accessPort, eventually, startDaemon, vswitchctl, vswitchctlJson, parseTable, type FdbRow, type PortInfo } from '../helpers/daemon.js';
import { startVm, type Capture } from '../helpers/frames.js';
import {
  Background,
  addHosts,
  cleanupFor,
  linkExists,
  pingUntil,
  randomMac,
  run,
  sleep,
  staticArp,
  uniqueName,
  type Host,
} from '../helpers/netns.js';

// The stream runs 30 s (the acceptance asks for 20 s): 40 runs of vswitchctl take
// 15-20 s of a 2-core host by themselves (each imports the daemon's modules), and all 20
// ports must come and go while the stream runs.
const IPERF_SECONDS = 30;
const CHURN_PORTS = 20;
/**
 * Paced, so that the stream leaves the CPU time that 40 runs of vswitchctl need on a
 * 2-core host; a stall or a burst of losses shows all the same.
 */
const IPERF_RATE = '500M';
const IPERF_MIN_BPS = 350e6;
// Measured on a shared 2-core VM at 500 Mbit/s: 1 and 7 retransmits in 20 s with no port
// change; with the churn below 2 to 25 in 30 s, all of them while ports come and go, at
// most 4 in any second, with the fast path off or on (on, the stream never enters the hot
// loop, so these few come from the CPU the churn's processes take). Twice, on a host
// loaded by other work, one second had a burst: 188 (at 405 Mbit/s), 52. A stall at each
// port change, or frames lost at each, would cost far more; the switch's own drop counters
// for the stream's ports are checked to stay at zero as well.
const RETRANSMIT_LIMIT = 300;
const RETRANSMIT_SPIKE = 200;

interface IperfInterval {
  start: number;
  end: number;
  retransmits: number;
  bitsPerSecond: number;
}

interface IperfReport {
  gbps: number;
  retransmits: number;
  segments: number;
  seconds: number;
  intervals: IperfInterval[];
}

/** iperf3 TCP client -> server with the per-second figures (retransmits per interval). */
async function iperfRun(client: Host, server: Host, seconds: number, port: number, rate: string): Promise<IperfReport> {
  const srv = new Background(['iperf3', '-s', '-1', '--forceflush', '-B', server.ip, '-p', `${port}`], server.ns);
  try {
    await srv.waitFor('Server listening');
    const res = await run(['iperf3', '-c', server.ip, '-p', `${port}`, '-t', `${seconds}`, '-b', rate, '-J'], {
      ns: client.ns,
      timeoutMs: (seconds + 30) * 1000,
      check: false,
    });
    const report = JSON.parse(res.stdout) as {
      error?: string;
      intervals?: { sum: { start: number; end: number; retransmits?: number; bits_per_second: number } }[];
      end?: { sum_received?: { bits_per_second: number; seconds: number; bytes: number }; sum_sent?: { retransmits?: number; bytes: number } };
    };
    if (report.error || !report.end?.sum_received) throw new Error(`iperf3 failed (exit ${res.code}): ${report.error ?? res.stdout}`);
    return {
      gbps: report.end.sum_received.bits_per_second / 1e9,
      retransmits: report.end.sum_sent?.retransmits ?? 0,
      // Full-sized segments: a lower bound of the segments sent (1448 payload bytes each).
      segments: Math.round((report.end.sum_sent?.bytes ?? 0) / 1448),
      seconds: report.end.sum_received.seconds,
      intervals: (report.intervals ?? []).map((i) => ({
        start: i.sum.start,
        end: i.sum.end,
        retransmits: i.sum.retransmits ?? 0,
        bitsPerSecond: i.sum.bits_per_second,
      })),
    };
  } finally {
    await srv.stop('SIGKILL');
  }
}

/** One ping at a time every 20 ms until one is answered; ms until then, or undefined after timeoutMs. */
async function msUntilReply(from: Host, ip: string, timeoutMs: number): Promise<number | undefined> {
  const t0 = Date.now();
  const res = await run(['ping', '-n', '-q', '-c', '1', '-i', '0.02', '-w', `${Math.ceil(timeoutMs / 1000)}`, ip], {
    ns: from.ns,
    check: false,
    timeoutMs: timeoutMs + 5000,
  });
  return /1 (?:packets )?received/.test(res.stdout) ? Date.now() - t0 : undefined;
}

test.serial(`an iperf3 stream is undisturbed while ${CHURN_PORTS} tap ports are added and removed with vswitchctl; each forwards within 1 s`, async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = (await addHosts(cleanup, ['10.7.0.1/24', '10.7.0.2/24', '10.7.0.3/24'])) as [Host, Host, Host];
  const [a, b, c] = hosts;
  for (const h of hosts) for (const o of hosts) if (h !== o) await staticArp(h, o);
  const sw = await startDaemon(t, cleanup, { workers: 2, ports: hosts.map((h) => accessPort(h.port, 10)) });
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  t.true(await pingUntil(c, b.ip), 'c reaches b');

  // The VMs' addresses, known to c up front so that no ARP is needed during the churn.
  const vms = Array.from({ length: CHURN_PORTS }, (_, i) => ({ tap: `${uniqueName()}t`, mac: randomMac(), ip: `10.7.0.${100 + i}` }));
  for (const vm of vms) {
    cleanup.add(() => run(['ip', 'link', 'del', vm.tap], { check: false }));
    await run(['ip', 'neigh', 'replace', vm.ip, 'lladdr', vm.mac, 'nud', 'permanent', 'dev', c.dev], { ns: c.ns });
  }

  const dropsBefore = await sw.stats();
  const started = Date.now();
  let iperfDone = 0;
  const iperf = iperfRun(a, b, IPERF_SECONDS, 5301, IPERF_RATE).finally(() => (iperfDone = Date.now()));
  await sleep(1000);

  // ms from `port add` returning (for a tap the daemon created: from the VM attaching to
  // it, which can only happen after) to the first ping reply from the VM.
  const forwardMs: number[] = [];
  const vmAttachMs: number[] = [];
  const ctlMs = { add: [] as number[], del: [] as number[] };
  const failures: string[] = [];
  // When each port add/del ran, in seconds from the stream's start: to match against its retransmits.
  const timeline: string[] = [];
  const timed = async <T>(list: number[], f: () => Promise<T>, what: string): Promise<T> => {
    const t0 = Date.now();
    const r = await f();
    list.push(Date.now() - t0);
    timeline.push(`${what}${((t0 - started) / 1000).toFixed(1)}-${((Date.now() - started) / 1000).toFixed(1)}`);
    return r;
  };
  // A port's removal runs while the next port is added (still one add and one del at a time).
  let removing: Promise<void> = Promise.resolve();
  for (const [i, vm] of vms.entries()) {
    const { tap } = vm;
    // Every other VM is started the way libvirt does it (tap first, then the port);
    // the others on a tap that `port add` creates.
    const precreated = i % 2 === 1;
    let capture: Capture | undefined;
    if (precreated) {
      await run(['ip', 'tuntap', 'add', tap, 'mode', 'tap']);
      capture = await startVm(cleanup, { ...vm, seconds: 30 });
    }
    const add = await timed(ctlMs.add, () => vswitchctl(sw.socketPath, ['port', 'add', tap, '--type', 'tap', '--vlan', '10']), '+');
    let ready = Date.now();
    if (add.code !== 0) {
      failures.push(`port add ${tap}: exit ${add.code}: ${add.stderr}`);
      continue;
    }
    if (!capture) {
      capture = await startVm(cleanup, { ...vm, seconds: 30 });
      vmAttachMs.push(Date.now() - ready);
      ready = Date.now();
    }
    const answered = (await msUntilReply(c, vm.ip, 3000)) !== undefined;
    if (answered) forwardMs.push(Date.now() - ready);
    else {
      // What an operator would look at: the port, its counters, the FDB for both ends.
      const port = (await sw.ports()).find((p) => p.name === tap);
      const counters = (await sw.stats()).ports[tap];
      const fdb = (await sw.fdb()).filter((e) => e.mac === vm.mac || e.mac === c.mac);
      failures.push(
        `${tap} (${precreated ? 'tap made first' : 'tap made by port add'}): no ping reply from its VM within 3 s;` +
          ` port ${JSON.stringify(port)}; counters ${JSON.stringify(counters)}; fdb ${JSON.stringify(fdb)}`,
      );
    }
    const seen = await capture.stop();
    if (!answered) failures.push(`${tap}: its VM received ${seen.length} frames, answered ${seen.filter((f) => f.replied).length}`);
    await removing;
    removing = (async () => {
      const del = await timed(ctlMs.del, () => vswitchctl(sw.socketPath, ['port', 'del', tap]), '-');
      if (del.code !== 0) failures.push(`port del ${tap}: exit ${del.code}: ${del.stderr}`);
      if (precreated) await run(['ip', 'link', 'del', tap]);
    })();
  }
  await removing;
  const churnDone = Date.now();
  const report = await iperf;

  const max = (xs: number[]) => Math.max(...xs);
  const paths = (await sw.ctl<{ ports: Record<string, { paths?: Record<string, { rx_packets: number }> }> }>('stats')).ports[a.port]?.paths;
  if (paths) t.log(`frames from a by path: ${Object.entries(paths).map(([k, v]) => `${k} ${v.rx_packets}`).join(', ')}`);
  t.log(
    `iperf3 ${report.gbps.toFixed(2)} Gbit/s over ${report.seconds.toFixed(1)} s, ${report.retransmits} retransmits of >= ${report.segments} segments;` +
      ` per second: [${report.intervals.map((i) => i.retransmits).join(' ')}], Mbit/s: [${report.intervals.map((i) => Math.round(i.bitsPerSecond / 1e6)).join(' ')}]`,
  );
  t.log(`time to forward (ms): [${forwardMs.join(' ')}], max ${max(forwardMs)}`);
  t.log(`VM attach to a daemon-created tap (ms, not counted above): [${vmAttachMs.join(' ')}]`);
  t.log(`vswitchctl port add (ms): max ${max(ctlMs.add)}, port del: max ${max(ctlMs.del)}`);
  t.log(`port add (+) and del (-), s from the stream's start: ${timeline.join(' ')}`);
  t.log(`the churn took ${((churnDone - started) / 1000).toFixed(1)} s of iperf3's ${((iperfDone - started) / 1000).toFixed(1)} s`);

  t.deepEqual(failures, [], 'every port add, VM reply and port del worked');
  t.is(forwardMs.length, CHURN_PORTS, 'every added port forwarded');
  t.true(max(forwardMs) < 1000, `each added port forwarded within 1 s: max ${max(forwardMs)} ms`);
  t.true(churnDone < iperfDone, 'all the ports came and went while iperf3 ran');
  t.true(report.seconds >= IPERF_SECONDS - 0.5, `iperf3 completed its ${IPERF_SECONDS} s`);
  t.true(report.retransmits <= RETRANSMIT_LIMIT, `retransmits ${report.retransmits} <= ${RETRANSMIT_LIMIT}`);
  const worst = max(report.intervals.map((i) => i.retransmits));
  t.true(worst <= RETRANSMIT_SPIKE, `no second with more than ${RETRANSMIT_SPIKE} retransmits: worst ${worst}`);
  // The switch's own view: no frame of the stream's ports dropped while ports came and went.
  const dropsAfter = await sw.stats();
  for (const h of [a, b]) {
    const grew = Object.entries(dropsAfter.ports[h.port]!.drops)
      .map(([reason, n]) => [reason, n - (dropsBefore.ports[h.port]!.drops[reason] ?? 0)] as const)
      .filter(([, n]) => n !== 0);
    if (grew.length) t.log(`drops on ${h.port}: ${JSON.stringify(grew)}`);
    t.deepEqual(grew, [], `no drops counted on ${h.port}`);
  }
  const slowest = Math.min(...report.intervals.map((i) => i.bitsPerSecond));
  t.true(slowest >= IPERF_MIN_BPS, `no second below ${IPERF_MIN_BPS / 1e6} Mbit/s: slowest ${Math.round(slowest / 1e6)}`);

  const left = (await vswitchctlJson<PortInfo[]>(sw.socketPath, ['port', 'list'])).map((p) => p.name).sort();
  t.deepEqual(left, [a.port, b.port, c.port, (sw.config as { bridge: string }).bridge].sort(), 'port list is back to the configured ports');
  for (const vm of vms) t.false(await linkExists(vm.tap), `${vm.tap} is gone (port del removed the taps it created)`);
});

test.serial('a port whose tap is deleted goes down and forgets its MACs; a new tap of that name brings it back', async (t) => {
  const cleanup = cleanupFor(t);
  const [h] = (await addHosts(cleanup, ['10.7.1.1/24'])) as [Host];
  const tap = `${uniqueName()}t`;
  cleanup.add(() => run(['ip', 'link', 'del', tap], { check: false }));
  const sw = await startDaemon(t, cleanup, { ports: [accessPort(h.port, 10)] });
  // The VM starts: its tap port is added at run time (the daemon creates the tap).
  const add = await vswitchctl(sw.socketPath, ['port', 'add', tap, '--type', 'tap', '--vlan', '10']);
  t.is(add.code, 0, `port add: ${add.stderr}`);
  const vm = { mac: randomMac(), ip: '10.7.1.100' };
  const portOf = async (): Promise<PortInfo & { down_reason?: string }> => {
    const p = (await vswitchctlJson<PortInfo[]>(sw.socketPath, ['port', 'list'])).find((x) => x.name === tap);
    if (!p) throw new Error(`${tap} is not in port list`);
    return p;
  };
  const fdbOfTap = () => vswitchctlJson<FdbRow[]>(sw.socketPath, ['fdb', 'show', '--port', tap]);

  let vmProc = await startVm(cleanup, { tap, ...vm, seconds: 60 });
  t.true(await pingUntil(h, vm.ip), 'the host reaches the VM');
  t.true((await fdbOfTap()).some((e) => e.mac === vm.mac), 'fdb show --port lists the VM MAC on the tap');
  t.true((await portOf()).up, 'the tap port is up');

  // The VM shuts down and its tap goes.
  await vmProc.stop();
  await run(['ip', 'link', 'del', tap]);
  await eventually('port list shows the tap port down', async () => !(await portOf()).up, 5000);
  const down = await portOf();
  t.false(down.up, 'port list --json: up false');
  t.regex(down.down_reason ?? '', /deleted|no such device/, `port list --json says why: ${down.down_reason}`);
  const table = parseTable((await vswitchctl(sw.socketPath, ['port', 'list'])).stdout);
  const row = table.rows.find((r) => r[0] === tap);
  t.is(row?.[table.header.indexOf('UP')], 'false', 'the port list table shows it down');
  t.deepEqual(await fdbOfTap(), [], 'fdb show --port has none of its MACs');
  t.false((await sw.fdb()).some((e) => e.mac === vm.mac), 'the VM MAC is gone from the whole FDB');
  const noneTable = await vswitchctl(sw.socketPath, ['fdb', 'show', '--port', tap]);
  t.is(noneTable.stdout.trim(), '(none)', 'fdb show --port in table form says (none)');

  // The VM starts again: a tap of the same name reappears.
  await run(['ip', 'tuntap', 'add', tap, 'mode', 'tap']);
  const recreated = Date.now();
  await eventually('the tap port up again', async () => (await sw.ports()).find((p) => p.name === tap)?.up === true, 5000);
  t.log(`the port was up again ${Date.now() - recreated} ms after the tap reappeared`);
  t.true((await portOf()).up, 'port list shows the port up again: it came back by itself');
  vmProc = await startVm(cleanup, { tap, ...vm, seconds: 60 });
  t.true(await pingUntil(h, vm.ip, 5000), 'forwarding to the VM resumes');
  await eventually('the VM MAC learned on the tap again', async () => (await fdbOfTap()).some((e) => e.mac === vm.mac));
  t.pass('the VM MAC is learned on the tap again');
  const frames = await vmProc.stop();
  t.true(frames.some((f) => f.replied === 'icmp'), 'the VM answered pings after the tap came back');
});

// The daemon creates the taps of its config at start; the link monitor must not take the
// "new link" events of those taps for devices coming back while they are being added.
test.serial('tap ports in the config that the daemon creates come up at every start', async (t) => {
  const cleanup = cleanupFor(t);
  const taps = [1, 2, 3].map(() => `${uniqueName()}t`);
  for (const tap of taps) cleanup.add(() => run(['ip', 'link', 'del', tap], { check: false }));
  for (let i = 0; i < 5; i++) {
    const sw = await startDaemon(t, cleanup, { ports: taps.map((tap) => accessPort(tap, 10, 'tap')) });
    const ports = await vswitchctlJson<PortInfo[]>(sw.socketPath, ['port', 'list']);
    for (const tap of taps) t.true(ports.find((p) => p.name === tap)?.up, `start ${i + 1}: ${tap} is up`);
    t.is((await sw.stop()).code, 0, `start ${i + 1}: a clean stop`);
  }
});
