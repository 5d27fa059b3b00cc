// /metrics as an operator scrapes it: per-port counters match what a generator sent and
// what arrived, exactly; drops are counted by reason; process and worker metrics exist;
// the endpoint is on loopback only.
//
// Every namespace has IPv6 off and no host pings, so the only frames on the wire are the
// ones a test sends.

import test, { type ExecutionContext } from 'ava';
import {
  accessPort,
  eventually,
  freePort,
  metricValue,
  metricsListen,
  scrapeMetrics,
  startDaemon,
  trunkPort,
  type Daemon,
  type MetricSample,
} from '../helpers/daemon.js';
import { sendFrames, startCapture, type Frame } from '../helpers/frames.js';
import { addHost, cleanupFor, run, sleep, type Host } from '../helpers/netns.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const ET_UNICAST = 0x88b5;
const ET_BCAST = 0x88b6;
const UNICAST = 1000;
const BCASTS = 50;
/** 14-byte header + frames.py's default 46-byte payload. */
const FRAME_LEN = 60;

const only = (frames: Frame[], ethertype: number) => frames.filter((f) => f.ethertype === ethertype);

async function scrape(sw: Daemon): Promise<MetricSample[]> {
  return (await scrapeMetrics(metricsListen(sw))).samples;
}

/** A port counter from a scrape; 0 when the port has no sample (yet). */
function portMetric(samples: MetricSample[], name: string, port: string, extra: Record<string, string> = {}): number {
  return metricValue(samples, name, { port, ...extra }) ?? 0;
}

// a, b, c: access ports of VLAN 10; trunk: a trunk of [10, 20].
async function topology(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [a, b, c, trunk] = (await Promise.all([1, 2, 3, 4].map(() => addHost(cleanup)))) as [Host, Host, Host, Host];
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [accessPort(a.port, 10), accessPort(b.port, 10), accessPort(c.port, 10), trunkPort(trunk.port, [10, 20])],
  });
  return { cleanup, sw, a, b, c, trunk };
}

test.serial('port rx/tx counters on /metrics rise by exactly the frames sent and delivered', async (t) => {
  const { cleanup, sw, a, b, c, trunk } = await topology(t);

  // b announces itself, so frames to b are known unicast.
  await sendFrames({ dev: b.dev, ns: b.ns, src: b.mac, dst: BROADCAST, ethertype: ET_BCAST });
  await eventually('b learned on its port', async () => (await sw.fdb()).some((e) => e.mac === b.mac && e.port === b.port));
  await sleep(300);

  const before = await scrape(sw);
  const capB = await startCapture(cleanup, { dev: b.dev, ns: b.ns, seconds: 15, count: UNICAST + BCASTS });
  const capC = await startCapture(cleanup, { dev: c.dev, ns: c.ns, seconds: 15, count: BCASTS });
  // Paced a little so that the capture sockets' buffers never overflow.
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: b.mac, ethertype: ET_UNICAST, count: UNICAST, interval: 0.0002 });
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: BROADCAST, ethertype: ET_BCAST, count: BCASTS, interval: 0.001 });
  const atB = await capB.frames();
  const atC = await capC.frames();
  await sleep(500); // let the counters of the last frames settle
  const after = await scrape(sw);
  const delta = (name: string, port: string) => portMetric(after, name, port) - portMetric(before, name, port);

  t.is(only(atB, ET_UNICAST).length, UNICAST, 'b captured every unicast frame');
  t.is(only(atB, ET_BCAST).length, BCASTS, 'b captured every broadcast');
  t.is(only(atC, ET_UNICAST).length, 0, 'c got none of the known unicast');
  t.is(only(atC, ET_BCAST).length, BCASTS, 'c captured every broadcast');

  const sent = UNICAST + BCASTS;
  t.is(delta('vswitchd_port_rx_packets_total', a.port), sent, `rx_packets_total{port=a} rose by the ${sent} frames sent`);
  t.is(delta('vswitchd_port_rx_bytes_total', a.port), sent * FRAME_LEN, 'rx_bytes_total{port=a} rose by their bytes');
  t.is(delta('vswitchd_port_tx_packets_total', b.port), sent, 'tx_packets_total{port=b} rose by what b captured');
  t.is(delta('vswitchd_port_tx_bytes_total', b.port), sent * FRAME_LEN, 'tx_bytes_total{port=b} rose by their bytes');
  t.is(delta('vswitchd_port_tx_packets_total', c.port), BCASTS, 'tx_packets_total{port=c}: the broadcasts only');
  // The trunk carries VLAN 10 too: it gets the broadcasts, tagged (4 bytes more each).
  t.is(delta('vswitchd_port_tx_packets_total', trunk.port), BCASTS, 'tx_packets_total{port=trunk}: the broadcasts');
  t.is(delta('vswitchd_port_tx_bytes_total', trunk.port), BCASTS * (FRAME_LEN + 4), 'tx_bytes_total{port=trunk}: tagged');
  t.is(delta('vswitchd_port_rx_packets_total', b.port), 0, 'b sent nothing');
  t.is(delta('vswitchd_port_tx_packets_total', a.port), 0, 'nothing went back to a');
  t.is(delta('vswitchd_flood_packets_total', c.port), BCASTS, 'flood_packets_total{port=c}: the broadcasts');

  // The same figures through the control socket.
  const stats = await sw.stats();
  t.is(stats.ports[a.port]!.rx_packets, portMetric(after, 'vswitchd_port_rx_packets_total', a.port), 'stats and /metrics agree');
});

// A truncated 802.1Q tag reaches the hot loop only through an XDP hook: at a tc-hooked
// port the kernel drops it before any program sees it (skb_vlan_untag in the receive
// path, counted nowhere but the device's rx_packets), so that half runs with the XDP hook.
const XDP_HOOK = process.env.VSWITCHD_TEST_FAST_PATH === 'xdp';

test.serial('a truncated 802.1Q tag and a multicast source show in vswitchd_port_drops_total by reason', async (t) => {
  const { cleanup, sw, a, b, trunk } = await topology(t);
  const before = await scrape(sw);
  const capB = await startCapture(cleanup, { dev: b.dev, ns: b.ns, seconds: 3 });

  // 16 bytes: both MACs, the 802.1Q TPID and half a TCI.
  const mac = (m: string) => m.replace(/:/g, '');
  const truncated = `${mac(BROADCAST)}${mac(trunk.mac)}81000a`;
  if (XDP_HOOK) await sendFrames({ dev: trunk.dev, ns: trunk.ns, raw: truncated, count: 7 });
  // A well-formed frame whose source is a multicast MAC.
  await sendFrames({ dev: a.dev, ns: a.ns, src: '01:00:5e:00:00:07', dst: BROADCAST, ethertype: ET_BCAST, count: 3 });

  await eventually('the drops to show on /metrics', async () => {
    const now = await scrape(sw);
    return (
      portMetric(now, 'vswitchd_port_drops_total', trunk.port, { reason: 'malformed' }) -
        portMetric(before, 'vswitchd_port_drops_total', trunk.port, { reason: 'malformed' }) >= (XDP_HOOK ? 7 : 0) &&
      portMetric(now, 'vswitchd_port_drops_total', a.port, { reason: 'multicast_source' }) -
        portMetric(before, 'vswitchd_port_drops_total', a.port, { reason: 'multicast_source' }) >= 3
    );
  });
  await sleep(300);
  const after = await scrape(sw);
  const drops = (s: MetricSample[], port: string, reason: string) => portMetric(s, 'vswitchd_port_drops_total', port, { reason });
  if (XDP_HOOK) t.is(drops(after, trunk.port, 'malformed') - drops(before, trunk.port, 'malformed'), 7, 'drops_total{reason="malformed"} +7 on the trunk');
  t.is(drops(after, a.port, 'multicast_source') - drops(before, a.port, 'multicast_source'), 3, 'drops_total{reason="multicast_source"} +3 on a');
  t.is(drops(after, trunk.port, 'multicast_source') - drops(before, trunk.port, 'multicast_source'), 0, 'no multicast_source drop on the trunk');
  t.is(
    portMetric(after, 'vswitchd_port_rx_packets_total', trunk.port) - portMetric(before, 'vswitchd_port_rx_packets_total', trunk.port),
    XDP_HOOK ? 7 : 0,
    'the dropped frames were received (rx) all the same',
  );
  t.is((await capB.frames()).length, 0, 'no dropped frame reached b');
});

test.serial('/metrics has process metrics, worker busy ratios and FDB figures, and listens on 127.0.0.1 only', async (t) => {
  const { sw, a, b } = await topology(t);
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: b.mac, ethertype: ET_UNICAST, count: 5 });
  await eventually('a learned', async () => (await sw.fdb()).some((e) => e.mac === a.mac));
  const { text, samples } = await scrapeMetrics(metricsListen(sw));

  t.regex(text, /^# TYPE vswitchd_port_rx_packets_total counter$/m, 'port rx is a counter');
  t.regex(text, /^# TYPE vswitchd_port_drops_total counter$/m, 'drops is a counter');
  t.true((metricValue(samples, 'vswitchd_process_cpu_seconds_total') ?? 0) > 0, 'vswitchd_process_cpu_seconds_total');
  t.true((metricValue(samples, 'vswitchd_process_resident_memory_bytes') ?? 0) > 0, 'vswitchd_process_resident_memory_bytes');
  t.truthy(metricValue(samples, 'vswitchd_process_start_time_seconds'), 'vswitchd_process_start_time_seconds');
  for (const worker of ['0', '1']) {
    const ratio = metricValue(samples, 'vswitchd_worker_busy_ratio', { worker });
    t.true(ratio !== undefined && ratio >= 0 && ratio <= 1, `vswitchd_worker_busy_ratio{worker="${worker}"} is a ratio: ${ratio}`);
  }
  t.true((metricValue(samples, 'vswitchd_fdb_entries') ?? 0) >= 1, 'vswitchd_fdb_entries counts the learned MAC');
  t.true((metricValue(samples, 'vswitchd_fdb_events_total', { event: 'learn' }) ?? 0) >= 1, 'fdb learn events');
  for (const p of [a.port, b.port]) {
    for (const reason of ['runt', 'malformed', 'vlan_not_allowed']) {
      t.not(metricValue(samples, 'vswitchd_port_drops_total', { port: p, reason }), undefined, `drops_total{port=${p},reason=${reason}} exported`);
    }
  }

  const port = metricsListen(sw).split(':').pop()!;
  const { stdout } = await run(['ss', '-Hltn', `sport = :${port}`]);
  const locals = stdout.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
  t.deepEqual(locals, [`127.0.0.1:${port}`], `only 127.0.0.1:${port} listens:\n${stdout}`);
  t.notRegex(sw.stdout, /metrics endpoint is not on a loopback address/, 'no warning on loopback');
});

// Issue 12: allowed (an operator may scrape from another host), but never silently.
test.serial('metrics.listen on 0.0.0.0 works and logs a warning that it is not loopback', async (t) => {
  const cleanup = cleanupFor(t);
  const port = await freePort();
  const sw = await startDaemon(t, cleanup, { metrics: { listen: `0.0.0.0:${port}` } });
  const { samples } = await scrapeMetrics(`127.0.0.1:${port}`);
  t.true((metricValue(samples, 'vswitchd_process_resident_memory_bytes') ?? 0) > 0, 'it serves /metrics');
  const warning = sw.stdout.split('\n').find((l) => l.includes('metrics endpoint is not on a loopback address'));
  t.truthy(warning, `the warning is logged:\n${sw.stdout}`);
  const entry = JSON.parse(warning ?? '{}') as { level?: number; listen?: string; address?: string };
  t.is(entry.level, 40, 'at warn level');
  t.is(entry.listen, `0.0.0.0:${port}`);
  t.is(entry.address, '0.0.0.0');
});

test.serial('FDB rejections and worker restarts are on /metrics and in stats: a port over its MAC limit', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b] = (await Promise.all([1, 2].map(() => addHost(cleanup)))) as [Host, Host];
  const sw = await startDaemon(t, cleanup, { workers: 2, fdb: { max_per_port: 1 }, ports: [accessPort(a.port, 10), accessPort(b.port, 10)] });
  // a's own MAC takes its one slot; two more sources on a are refused. The port is then
  // full, so the datapath drops their frames where they arrive (mac_limit) rather than
  // ask the control plane (whose port-limit rejections count only what it was asked).
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: BROADCAST, ethertype: ET_BCAST });
  await eventually('a learned', async () => (await sw.fdb()).some((e) => e.mac === a.mac));
  for (const src of ['02:00:00:aa:00:01', '02:00:00:aa:00:02']) await sendFrames({ dev: a.dev, ns: a.ns, src, dst: BROADCAST, ethertype: ET_BCAST });
  await eventually('two mac_limit drops on /metrics', async () =>
    (metricValue(await scrape(sw), 'vswitchd_port_drops_total', { port: a.port, reason: 'mac_limit' }) ?? 0) >= 2);
  const samples = await scrape(sw);
  t.is(metricValue(samples, 'vswitchd_fdb_rejections_total', { reason: 'table-full' }), 0, 'table-full exported, 0');
  t.not(metricValue(samples, 'vswitchd_fdb_rejections_total', { reason: 'port-limit' }), undefined, 'port-limit exported');
  for (const worker of ['0', '1']) t.is(metricValue(samples, 'vswitchd_worker_restarts_total', { worker }), 0, `worker ${worker} restarts exported, 0`);
  const stats = (await sw.ctl('stats')) as { ports: Record<string, { drops: Record<string, number> }>; fdb: { rejected: Record<string, number> } };
  t.true(stats.ports[a.port]!.drops.mac_limit! >= 2, `stats shows the mac_limit drops: ${JSON.stringify(stats.ports[a.port]!.drops)}`);
  t.true('port-limit' in stats.fdb.rejected, 'stats shows the FDB rejections');
  t.false((await sw.fdb()).some((e) => e.mac.startsWith('02:00:00:aa')), 'the refused sources are not in the FDB');
});

// Counters belong to the port, not to its device and not to its slot: a port whose veth is
// deleted and created again counts on from where it was (the fast path's per-port map
// entry was zeroed at the device's removal before, so /metrics dipped), and a new port
// that takes a deleted port's slot starts from 0 (the hot loop's counts of the slot were
// inherited before).
test.serial('a port counts on across its device re-created; a new port in a deleted port\'s slot starts from 0', async (t) => {
  const { cleanup, sw, a, b, c } = await topology(t);
  const rxOf = async (port: string) => (await sw.stats()).ports[port]?.rx_packets ?? 0;
  const known = async () => {
    await sendFrames({ dev: b.dev, ns: b.ns, src: b.mac, dst: BROADCAST, ethertype: ET_BCAST });
    await eventually('b learned on its port', async () => (await sw.fdb()).some((e) => e.mac === b.mac && e.port === b.port));
  };
  await known();
  const burst = async () => {
    await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: BROADCAST, ethertype: ET_BCAST });  // a learned first
    await eventually('a learned', async () => (await sw.fdb()).some((e) => e.mac === a.mac && e.port === a.port));
    await sleep(300);
    await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: b.mac, ethertype: ET_UNICAST, count: 200, interval: 0.0002 });
    await sleep(300);
  };
  await burst();
  const first = await rxOf(a.port);
  t.true(first >= 201, `a counted its frames (${first})`);

  // a's veth pair deleted and made again under the same names.
  await run(['ip', 'link', 'del', a.port]);
  await eventually('a is down', async () => (await sw.ctl<{ name: string; up: boolean }[]>('port.list')).some((p) => p.name === a.port && !p.up));
  t.true((await rxOf(a.port)) >= first, 'the counters did not dip while the device was gone');
  await run(['ip', 'link', 'add', a.port, 'type', 'veth', 'peer', 'name', a.dev, 'netns', a.ns]);
  await run(['ip', 'link', 'set', a.dev, 'address', a.mac], { ns: a.ns });
  await run(['ip', 'link', 'set', a.dev, 'up'], { ns: a.ns });
  await run(['ip', 'link', 'set', a.port, 'up']);
  await eventually('a is up again', async () => (await sw.ctl<{ name: string; up: boolean }[]>('port.list')).some((p) => p.name === a.port && p.up));
  await known();
  await burst();
  const second = await rxOf(a.port);
  t.is(second, first + 201, 'a counted on: the frames before the re-creation and the 201 after');

  // a deleted; a new port (c's device under a new config entry) takes its slot.
  await sw.ctl('port.del', { name: a.port });
  await sw.ctl('port.del', { name: c.port });
  await sw.ctl('port.add', { name: c.port, vlan: 10 });
  await sleep(500);
  const fresh = (await sw.stats()).ports[c.port]!;
  t.is(fresh.rx_packets, 0, 'the new port starts from 0 rx packets');
  t.is(fresh.tx_packets, 0, 'and 0 tx packets');
  cleanup.add(() => undefined);
});
