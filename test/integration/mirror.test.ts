// Mirrors (SPAN, issue 14): with port A mirrored to port M, a capture on M holds
// exactly the frames A sent and received (as many as A's counters say), nothing
// else (traffic between two other hosts is not there); what M sends goes nowhere
// and is counted (mirror_output); ingress-only and egress-only select their half;
// a mirror by VLAN copies every frame of the VLAN once; reload removes the mirror and
// M then receives nothing more; a mirror added by reload works at once.
// Every host has permanent ARP entries and IPv6 off, so the only frames are the
// test's own; iperf3 is rate-limited so that the capture loses nothing.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { accessPort, dropsOf, metricsListen, metricValue, scrapeMetrics, startDaemon, vswitchctl, vswitchctlJson, type Daemon, type Stats } from '../helpers/daemon.js';
import { sendFrames, startCapture } from '../helpers/frames.js';
import { addHost, Background, cleanupFor, ping, pingUntil, run, sleep, staticArp, type Cleanup, type Host } from '../helpers/netns.js';

interface MirrorRow {
  name: string;
  select: { ports?: string[]; direction: string };
  output: string;
  frames: number;
  bytes: number;
  lost: Record<string, number>;
}

type MirrorStats = Stats & { mirrors: Record<string, { frames: number; bytes: number }> };

interface Captured {
  src: string;
  dst: string;
}

/** tcpdump on M's own device (its offloads untouched), frames it receives only; stop() returns them. */
async function captureOn(cleanup: Cleanup, dir: string, host: Host, name: string) {
  const file = join(dir, `${name}.pcap`);
  const proc = new Background(['tcpdump', '-i', host.dev, '-Q', 'in', '-B', '16384', '--immediate-mode', '-U', '-n', '-w', file], host.ns);
  cleanup.add(() => proc.stop('SIGKILL'));
  await proc.waitFor('listening on');
  return {
    async stop(): Promise<Captured[]> {
      await sleep(300);
      await proc.stop('SIGINT');
      // Every frame the socket got was written (immediate mode: none left in an unread block).
      const captured = /(\d+) packets? captured/.exec(proc.stderr)?.[1];
      const received = /(\d+) packets? received by filter/.exec(proc.stderr)?.[1];
      if (captured === undefined || captured !== received || /[1-9]\d* packets? dropped by kernel/.test(proc.stderr)) throw new Error(`the capture lost frames: ${proc.stderr}`);
      const { stdout } = await run(['tcpdump', '-r', file, '-nn', '-e', '-q']);
      return stdout.split('\n').filter((l) => l.trim()).map((line) => {
        const m = /([0-9a-f]{2}(?::[0-9a-f]{2}){5}) > ([0-9a-f]{2}(?::[0-9a-f]{2}){5})/.exec(line);
        if (!m) throw new Error(`cannot read the capture line: ${line}`);
        return { src: m[1]!, dst: m[2]! };
      });
    },
  };
}

async function countersOf(sw: Daemon, port: string): Promise<{ rx: number; tx: number; mirrored: number; stats: MirrorStats }> {
  const stats = await sw.ctl<MirrorStats>('stats');
  const p = stats.ports[port]!;
  return { rx: p.rx_packets, tx: p.tx_packets, mirrored: stats.mirrors['span0']?.frames ?? 0, stats };
}

/** A short, rate-limited TCP stream (unless iperf is false) and a ping from a to b, and a ping between two other hosts. */
async function traffic(a: Host, b: Host, c: Host, d: Host, iperf = true): Promise<void> {
  if (iperf) await tcpStream(a, b);
  if ((await ping(a, b.ip, { count: 5, interval: 0.05 })) !== 5) throw new Error('a lost pings to b');
  if ((await ping(c, d.ip, { count: 5, interval: 0.05 })) !== 5) throw new Error('c lost pings to d');
}

async function tcpStream(a: Host, b: Host): Promise<void> {
  const server = new Background(['iperf3', '-s', '-1', '--forceflush', '-B', b.ip], b.ns);
  await server.waitFor('listening', 5000);
  const res = await run(['iperf3', '-c', b.ip, '-t', '1', '-b', '20M', '-l', '1000'], { ns: a.ns, timeoutMs: 15_000 });
  await server.exited;
  if (!/sender/.test(res.stdout)) throw new Error(`iperf3: ${res.stdout}`);
}

function writeConfig(sw: Daemon, mirrors: unknown[]): void {
  writeFileSync(sw.configPath, stringify({ ...sw.config, mirrors }));
}

async function reload(t: import('ava').ExecutionContext, sw: Daemon): Promise<void> {
  const r = await vswitchctl(sw.socketPath, ['reload']);
  t.is(r.code, 0, r.stderr + r.stdout);
}

test.serial('a mirror copies exactly the frames of its port to the output, which sends nothing anywhere; reload changes and removes it', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b, c, d, m] = (await Promise.all(
    ['10.77.0.1/24', '10.77.0.2/24', '10.77.0.3/24', '10.77.0.4/24', undefined].map((cidr) => addHost(cleanup, { prefix: 'vmir', ...(cidr ? { cidr } : {}) })),
  )) as [Host, Host, Host, Host, Host];
  const all = [a, b, c, d];
  for (const h of all) for (const o of all) if (h !== o) await staticArp(h, o);
  const span = (direction: string) => ({ name: 'span0', select: { ports: [a.port], direction }, output: m.port });
  // M is in the same VLAN: were it not kept out of floods and the FDB, it would see more.
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [a, b, c, d, m].map((h) => accessPort(h.port, 10)),
    mirrors: [span('both')],
  });
  const dir = join(sw.configPath, '..');
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  t.true(await pingUntil(c, d.ip), 'c reaches d');
  await sleep(300);

  // Both directions: every frame A received and every frame sent to A, once each.
  let cap = await captureOn(cleanup, dir, m, 'both');
  let before = await countersOf(sw, a.port);
  await traffic(a, b, c, d);
  await sleep(300);
  let after = await countersOf(sw, a.port);
  let frames = await cap.stop();
  const rx = after.rx - before.rx;
  const tx = after.tx - before.tx;
  t.true(rx > 500 && tx > 100, `A carried the traffic (rx ${rx}, tx ${tx})`);
  t.is(frames.length, rx + tx, 'M received one copy of each frame A received and sent');
  t.is(after.mirrored - before.mirrored, rx + tx, 'the mirror counted each copy');
  t.is(frames.filter((f) => f.src === a.mac).length, rx, 'the frames from A');
  t.is(frames.filter((f) => f.dst === a.mac).length, tx, 'the frames to A');
  const others = new Set([c.mac, d.mac]);
  t.is(frames.filter((f) => others.has(f.src) || others.has(f.dst)).length, 0, 'nothing of the traffic between c and d');

  // What M sends goes nowhere: not to b (unicast to its MAC) nor anywhere (broadcast).
  const fake = '02:00:00:77:77:77';
  const onB = await startCapture(cleanup, { dev: b.dev, ns: b.ns, seconds: 2 });
  const droppedBefore = dropsOf(after.stats, m.port, 'mirror_output');
  await sendFrames({ dev: m.dev, ns: m.ns, src: fake, dst: b.mac, count: 10 });
  await sendFrames({ dev: m.dev, ns: m.ns, src: fake, dst: 'ff:ff:ff:ff:ff:ff', count: 10 });
  const seenOnB = (await onB.frames()).filter((f) => f.src === fake);
  t.is(seenOnB.length, 0, 'b received nothing M sent');
  const stats = await sw.ctl<MirrorStats>('stats');
  t.is(dropsOf(stats, m.port, 'mirror_output') - droppedBefore, 20, 'each frame M sent is dropped as mirror_output');
  t.false((await sw.fdb()).some((e) => e.mac === fake), 'nothing is learned on M');

  // mirror show, --json and the table; /metrics.
  const rows = await vswitchctlJson<MirrorRow[]>(sw.socketPath, ['mirror', 'show']);
  t.is(rows.length, 1);
  t.like(rows[0], { name: 'span0', output: m.port, select: { ports: [a.port], direction: 'both' } });
  t.true(rows[0]!.frames >= rx + tx && rows[0]!.bytes > rows[0]!.frames * 60);
  const table = await vswitchctl(sw.socketPath, ['mirror', 'show']);
  t.regex(table.stdout, new RegExp(`span0\\s+${a.port}\\s+both\\s+all\\s+${m.port}\\s+${rows[0]!.frames}`));
  const { samples } = await scrapeMetrics(metricsListen(sw));
  t.is(metricValue(samples, 'vswitchd_mirror_frames_total', { mirror: 'span0' }), rows[0]!.frames);

  // A restart that keeps the datapath: the mirror counts on from where it was.
  const restart = await vswitchctl(sw.socketPath, ['restart'], 30_000);
  t.is(restart.code, 0, restart.stderr + restart.stdout);
  const again = await vswitchctlJson<MirrorRow[]>(sw.socketPath, ['mirror', 'show']);
  t.true(again[0]!.frames >= rows[0]!.frames, `mirror counters go on across a restart (${rows[0]!.frames} -> ${again[0]!.frames})`);

  // Ingress only: the frames A received; egress only: the frames sent to A.
  for (const direction of ['ingress', 'egress'] as const) {
    writeConfig(sw, [span(direction)]);
    await reload(t, sw);
    cap = await captureOn(cleanup, dir, m, direction);
    before = await countersOf(sw, a.port);
    await traffic(a, b, c, d, false);
    await sleep(300);
    after = await countersOf(sw, a.port);
    frames = await cap.stop();
    const want = direction === 'ingress' ? after.rx - before.rx : after.tx - before.tx;
    t.true(want >= 5, `${direction}: A carried the traffic`);
    t.is(frames.length, want, `${direction}: M received one copy of each frame of that direction`);
    t.is(frames.filter((f) => (direction === 'ingress' ? f.src === a.mac : f.dst === a.mac)).length, want, `${direction}: only that half`);
  }

  // By VLAN alone: every frame of VLAN 10, whichever port it enters by, copied once (so
  // as many as the VLAN's ports received together); every port of the VLAN is a source.
  writeConfig(sw, [{ name: 'span0', select: { vlans: [10] }, output: m.port }]);
  await reload(t, sw);
  const vlanPorts = [a, b, c, d].map((h) => h.port);
  const list = await sw.ports();
  for (const p of vlanPorts) t.like(list.find((q) => q.name === p), { mirror: 'source', fast_path: 'no' } as never, `${p} is a source, off the fast path`);
  t.like(list.find((q) => q.name === m.port), { mirror: 'output', fast_path: 'no' } as never);
  cap = await captureOn(cleanup, dir, m, 'vlan');
  const rxOf = (s: Stats) => vlanPorts.reduce((n, p) => n + s.ports[p]!.rx_packets, 0);
  const vlanBefore = rxOf(await sw.stats());
  await traffic(a, b, c, d, false);
  await sleep(300);
  const vlanRx = rxOf(await sw.stats()) - vlanBefore;
  frames = await cap.stop();
  t.true(vlanRx >= 20, 'the VLAN carried the traffic');
  t.is(frames.length, vlanRx, 'vlans: [10]: one copy of each frame of the VLAN');
  t.true(frames.some((f) => f.src === c.mac && f.dst === d.mac), 'the traffic between c and d too');

  // Reload without the mirror: M receives nothing of A's traffic any more (it is an
  // ordinary port again, and A's unicast is not flooded).
  writeConfig(sw, []);
  await reload(t, sw);
  t.deepEqual(await vswitchctlJson<MirrorRow[]>(sw.socketPath, ['mirror', 'show']), []);
  t.false((await sw.ports()).some((p) => 'mirror' in p), 'no port has a part in a mirror any more');
  cap = await captureOn(cleanup, dir, m, 'removed');
  await traffic(a, b, c, d, false);
  await tcpStream(a, b);
  frames = await cap.stop();
  t.is(frames.length, 0, 'M receives nothing once the mirror is gone');
  t.true(readFileSync(sw.configPath, 'utf8').includes('mirrors: []'));

  // A mirror added by reload on the running switch, counting from 0.
  writeConfig(sw, [{ ...span('ingress'), name: 'span1' }]);
  await reload(t, sw);
  cap = await captureOn(cleanup, dir, m, 'added');
  const rxBefore = (await sw.portStats(a.port)).rx_packets;
  t.is(await ping(a, b.ip, { count: 5, interval: 0.05 }), 5);
  await sleep(300);
  const added = (await sw.portStats(a.port)).rx_packets - rxBefore;
  frames = await cap.stop();
  t.is(added, 5, 'A received the 5 echo requests');
  t.is(frames.length, 5, 'the added mirror copies them');
  t.like((await vswitchctlJson<MirrorRow[]>(sw.socketPath, ['mirror', 'show']))[0], { name: 'span1', frames: 5 });
});
