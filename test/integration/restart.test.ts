// Restarts keep the datapath (issue 13): the daemon runs under a stand-in for
// systemd (test/helpers/fdstore.py: the notify socket, the fd store,
// RestartKillSignal=SIGUSR2), as config/vswitchd.service runs it. Known unicast
// keeps flowing across a restart, a crash and an upgrade; the FDB is the same
// after; a stop leaves nothing.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { accessPort, eventually, freePort, metricValue, request, scrapeMetrics, vswitchctl, type FdbRow } from '../helpers/daemon.js';
import { repoRoot } from '../helpers/frames.js';
import { addHosts, Background, cleanupFor, linkNames, pingUntil, run, sleep, staticArp, uniqueName, type Cleanup, type Host } from '../helpers/netns.js';

const FAST = process.env.VSWITCHD_TEST_FAST_PATH ?? 'off';
/** The tc hook (auto, tc) is adopted in its links; the XDP hook's program is attached again (a short gap). */
const TC_HOOK = FAST === 'auto' || FAST === 'tc';
const STREAM = join(repoRoot(), 'test', 'helpers', 'stream.py');
/**
 * The slow path's gap asserted: the issue asks 200 ms (measured figures: bench/README.md,
 * "Restarts"); CI shares 2 CPUs with other tests, so the bound here is looser. The figures are logged.
 */
const GAP_BOUND_MS = Number(process.env.VSWITCHD_TEST_RESTART_GAP_MS ?? 1500);
/** VSWITCHD_TEST_RESTART_EARLY=off: the next daemon starts without the early start (for comparing; its assertions then fail). */
const EARLY_OFF = process.env.VSWITCHD_TEST_RESTART_EARLY === 'off';

/** vswitchd under the systemd stand-in. */
class Service {
  readonly proc: ChildProcessWithoutNullStreams;
  events = '';
  readonly socketPath: string;
  readonly log: string;

  constructor(readonly dir: string, configPath: string, env: NodeJS.ProcessEnv = {}, readonly metrics = '') {
    this.socketPath = join(dir, 'vswitchd.sock');
    this.log = join(dir, 'vswitchd.log');
    const bin = join(repoRoot(), 'bin', 'vswitchd.js');
    this.proc = spawn('python3', [join(repoRoot(), 'test', 'helpers', 'fdstore.py'), join(dir, 'notify.sock'), this.log, '--', process.execPath, bin, '--config', configPath, '--log-level', 'debug'], {
      cwd: repoRoot(),
      env: { ...process.env, ...env },
    });
    this.proc.stdout.on('data', (d: Buffer) => (this.events += d.toString()));
    this.proc.stderr.on('data', (d: Buffer) => (this.events += d.toString()));
  }

  /** Waits for the n-th line matching re. */
  async event(re: RegExp, n = 1, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ((this.events.match(new RegExp(re.source, 'gm')) ?? []).length < n) {
      if (Date.now() > end) throw new Error(`no ${re} (#${n}) after ${timeoutMs} ms; events:\n${this.events}\n${this.logs()}`);
      await sleep(10);
    }
  }

  send(cmd: string): void {
    this.proc.stdin.write(cmd + '\n');
  }

  async ctl<T>(cmd: string, args?: object): Promise<T> {
    const reply = await request(this.socketPath, args ? { cmd, args } : { cmd });
    if (!reply.ok) throw new Error(`${cmd}: ${reply.error}`);
    return reply.result as T;
  }

  logs(): string {
    try {
      return readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }
}

async function startService(t: ExecutionContext, cleanup: Cleanup, ports: Host[], env: NodeJS.ProcessEnv = {}): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-restart-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const config = {
    bridge: `${uniqueName()}b`,
    // VSWITCHD_TEST_RESTART_WORKERS=2: frames then cross between workers (each owns a range of the UMEM).
    workers: Number(process.env.VSWITCHD_TEST_RESTART_WORKERS ?? 1),
    datapath: { fast_path: FAST },
    control: { socket: join(dir, 'vswitchd.sock') },
    metrics: { listen: `127.0.0.1:${await freePort()}` },
    ports: ports.map((h) => accessPort(h.port, 10)),
  };
  const configPath = join(dir, 'switch.yaml');
  writeFileSync(configPath, stringify(config));
  const svc = new Service(dir, configPath, env, config.metrics.listen);
  cleanup.add(async () => {
    svc.send('stop');
    await svc.event(/^stopped/m, 1, 15_000).catch(() => undefined);
    svc.send('quit');
    svc.proc.kill();
  });
  t.teardown(() => {
    if (!t.passed) console.error(`=== ${t.title}\n${svc.events}\n${svc.logs()}`);
  });
  await svc.event(/^ready/m);
  return svc;
}

/** Hosts a, b that have talked (learned), and c, d that never have. */
async function topology(cleanup: Cleanup, net: number): Promise<Host[]> {
  const hosts = await addHosts(cleanup, [1, 2, 3, 4].map((i) => `10.13.${net}.${i}/24`));
  const [a, b] = hosts as [Host, Host];
  await staticArp(a, b);
  await staticArp(b, a);
  return hosts;
}

async function learned(svc: Service, hosts: Host[]): Promise<FdbRow[]> {
  await eventually('a and b learned', async () => {
    const fdb = await svc.ctl<FdbRow[]>('fdb.show');
    return hosts.every((h) => fdb.some((e) => e.mac === h.mac));
  });
  return svc.ctl<FdbRow[]>('fdb.show');
}

/** A 10 k frames/s UDP stream a -> b and a TCP exchange every 10 ms, for `seconds`. */
function traffic(cleanup: Cleanup, a: Host, b: Host, seconds: number) {
  const recv = new Background(['python3', STREAM, 'udp-recv', '7000', String(seconds + 2)], b.ns);
  const echo = new Background(['python3', STREAM, 'tcp-echo', '7001'], b.ns);
  cleanup.add(() => recv.stop('SIGKILL'));
  cleanup.add(() => echo.stop('SIGKILL'));
  let send: Background | undefined, tcp: Background | undefined;
  return {
    async start() {
      await recv.waitFor('listening');
      await echo.waitFor('listening');
      send = new Background(['python3', STREAM, 'udp-send', b.ip, '7000', '10000', String(seconds)], a.ns);
      tcp = new Background(['python3', STREAM, 'tcp-ping', b.ip, '7001', String(seconds)], a.ns);
      cleanup.add(() => send!.stop('SIGKILL'));
      cleanup.add(() => tcp!.stop('SIGKILL'));
    },
    async results() {
      await send!.exited;
      await tcp!.exited;
      await recv.exited;
      const sent = Number(/sent (\d+)/.exec(send!.stdout)?.[1]);
      const r = /received (\d+) unique (\d+) max_gap_ms ([\d.]+)/.exec(recv.stdout);
      const x = /exchanged (\d+) max_stall_ms ([\d.]+) error (\S+)/.exec(tcp!.stdout);
      return { sent, received: Number(r?.[2]), udpGapMs: Number(r?.[3]), exchanged: Number(x?.[1]), stallMs: Number(x?.[2]), tcpError: x?.[3] ?? `no result: ${tcp!.stderr}` };
    },
  };
}

/** Milliseconds from now until c reaches d (never seen before: ARP and learning need the hot loop). */
async function newPairGap(c: Host, d: Host): Promise<number> {
  // ARP asks again every 10 ms (not every second), so the first answer comes as soon as the switch can carry it.
  await run(['sysctl', '-qw', `net.ipv4.neigh.${c.dev}.retrans_time_ms=10`, `net.ipv4.neigh.${c.dev}.mcast_solicit=100`], { ns: c.ns });
  const start = Date.now();
  const p = new Background(['ping', '-n', '-i', '0.01', '-c', '1000', '-W', '1', d.ip], c.ns);
  await p.waitFor('bytes from', 15_000);
  const gap = Date.now() - start;
  await p.stop('SIGKILL');
  return gap;
}

async function across(t: ExecutionContext, kind: 'restart' | 'kill' | 'ctl', net: number): Promise<void> {
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, net);
  const [a, b, c, d] = hosts as [Host, Host, Host, Host];
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip), 'a reaches b');
  const before = await learned(svc, [a, b]);
  // The program each port runs and the mode it runs in (a kept program's mode is read from its device again).
  const progIds = async () => Object.fromEntries((await svc.ctl<{ name: string; prog_id?: number; xdp_mode?: string }[]>('port.list')).map((p) => [p.name, [p.prog_id, p.xdp_mode]]));
  const progsBefore = await progIds();
  await sleep(2000);  // ages that can be seen to continue
  const flow = traffic(cleanup, a, b, 4);
  await flow.start();
  if (EARLY_OFF) svc.send('env VSWITCHD_EARLY=off');
  await sleep(1000);
  const asked = Date.now();
  // c and d speak first once the old daemon has stopped serving: ARP and their
  // learning need the hot loop, so this is the slow path's gap (from the restart asked).
  const oldGone = kind === 'ctl' ? eventually('the old daemon re-executes', async () => svc.logs().includes('"reexec":true'), 15_000) : svc.event(/^exited/m);
  const newPair = oldGone.then(() => newPairGap(c, d)).then(() => Date.now() - asked);
  if (kind === 'ctl') {
    const r = await vswitchctl(svc.socketPath, ['restart']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /restarted .*the datapath was kept/);
  } else {
    svc.send(kind);
    await svc.event(/^ready/m, 2);
  }
  const readyMs = Date.now() - asked;
  const gap = await newPair;
  // Where the time goes (the new daemon's log, ms after the restart was asked).
  const timeline = svc.logs().split('\n').flatMap((l) => {
    try {
      const e = JSON.parse(l) as { time: number; level: number; msg: string; port?: string; handed_over_ms_ago?: number; process_uptime_ms?: number; took_ms?: number; steps?: Record<string, number>; frames_to_fill_rings?: number };
      // The early start logs once the logger exists: its own figures say when it served (ms after the old daemon's last save).
      const when = e.handed_over_ms_ago !== undefined ? ` (served ${e.handed_over_ms_ago} ms after the handover, process up ${e.process_uptime_ms} ms${e.took_ms !== undefined ? `, took ${e.took_ms} ms` : ''}${e.steps ? ': ' + JSON.stringify(e.steps) : ''})` : '';
      const filled = e.frames_to_fill_rings !== undefined ? ` (${e.frames_to_fill_rings} frames to the fill rings)` : '';
      return e.time >= asked - 50 && e.level !== 20 ? [`${e.time - asked} ${e.msg}${e.port ? ' ' + e.port : ''}${when}${filled}`] : [];
    } catch {
      return [];
    }
  });
  // The stand-in's view: when the old daemon had exited and the new one was started.
  const standIn = [...svc.events.matchAll(/^(started|exited)\b.* at=(\d+)$/gm)].filter((m) => Number(m[2]) >= asked).map((m) => `${Number(m[2]) - asked} ${m[1]}`);
  t.log([...standIn, ...timeline].join('; '));
  const res = await flow.results();
  t.log(`${kind} (fast_path ${FAST}): UDP ${res.sent - res.received}/${res.sent} lost, max gap ${res.udpGapMs} ms; TCP ${res.exchanged} exchanges, max stall ${res.stallMs} ms, ${res.tcpError}; new pair pings after ${gap} ms; answering after ${readyMs} ms`);
  if (FAST !== 'off') {
    // The program on each port's device (tc or XDP) stays in its link across the restart.
    t.is(res.sent - res.received, 0, 'no known-unicast frame lost');
    t.true(res.stallMs < 200, `TCP stalled ${res.stallMs} ms at most`);
  }
  t.is(res.tcpError, 'none', 'the TCP connection lived on');
  // The AF_XDP sockets and the UMEM were handed over and adopted: frames that arrived
  // while no daemon ran waited in the rings. With fast_path off every UDP frame takes
  // the slow path: of the frames due in the receiver's longest gap (10 per ms) at least
  // 500 arrived late rather than never (a restart that drops the sockets loses them all:
  // 5-53 of 1 790-2 110 arrived before this was built, 830-1 900 since).
  t.regex(svc.logs(), /"afxdp":"UMEM and \d+ sockets adopted/, 'the early start adopted the AF_XDP sockets');
  if (FAST === 'off') {
    const lost = res.sent - res.received;
    t.true(lost === 0 || res.udpGapMs * 10 - lost >= 500, `${lost} frames lost of ~${Math.round(res.udpGapMs * 10)} due in the longest gap (${res.udpGapMs} ms)`);
  }
  // The early start served every handed-over port before the config was read (c and d among them).
  const early = /"ports":(\[[^\]]*\]).*"msg":"early start: the handed-over ports forward again/.exec(svc.logs());
  t.truthy(early, 'the early start served the handed-over ports');
  t.true(hosts.every((h) => (JSON.parse(early?.[1] ?? '[]') as string[]).includes(h.port)), 'every port among them');
  t.true(gap < GAP_BOUND_MS, `a new pair talked ${gap} ms after the restart was asked (bound ${GAP_BOUND_MS} ms)`);

  const after = await svc.ctl<FdbRow[]>('fdb.show');
  for (const e of before.filter((x) => x.mac === a.mac || x.mac === b.mac)) {
    const now = after.find((x) => x.mac === e.mac && x.vlan === e.vlan);
    t.is(now?.port, e.port, `${e.mac} is still on ${e.port}`);
  }
  const ports = await svc.ctl<{ name: string; adopted?: boolean }[]>('port.list');
  t.true(ports.filter((p) => hosts.some((h) => h.port === p.name)).every((p) => p.adopted), 'port list says the ports were adopted');
  // The same build restarted: the programs run on as they were (nothing loaded; an upgrade replaces them, see below).
  if (FAST !== 'off') t.deepEqual(await progIds(), progsBefore, 'the same programs run in the links');
  t.regex(svc.logs(), /"programs":"kept \(same build\)"/);
  t.regex(svc.logs(), /datapath adopted; reconciled with the config/);
}

test.serial('systemctl restart (RestartKillSignal): known unicast and TCP go on, the FDB stays, a new pair talks soon', (t) => across(t, 'restart', 1));
test.serial('a crash (SIGKILL) and Restart=on-failure: the same', (t) => across(t, 'kill', 2));
test.serial('vswitchctl restart (re-exec in place): the same', (t) => across(t, 'ctl', 3));

test.serial('FDB ages continue and counters do not go back across a restart', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, 4);
  const [a, b] = hosts as [Host, Host];
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip));
  await learned(svc, [a, b]);
  // Broadcast through the hot loop: slow-path counters that live in process memory.
  await run(['ping', '-b', '-c', '5', '-i', '0.05', '10.13.4.255'], { ns: a.ns, check: false });
  await sleep(3000);
  const fdb0 = await svc.ctl<FdbRow[]>('fdb.show');
  const stats0 = await svc.ctl<{ ports: Record<string, { rx_packets: number; paths: { afxdp: { rx_packets: number } } }> }>('stats');
  const metrics0 = (await scrapeMetrics(svc.metrics)).samples.filter((m) => m.name.endsWith('_total') && !m.name.startsWith('vswitchd_process') && !m.name.startsWith('vswitchd_nodejs'));
  svc.send('restart');
  await svc.event(/^ready/m, 2);
  const metrics1 = (await scrapeMetrics(svc.metrics)).samples;
  const back = metrics0.filter((m) => (metricValue(metrics1, m.name, m.labels) ?? 0) < m.value).map((m) => `${m.name}${JSON.stringify(m.labels)} ${m.value} -> ${metricValue(metrics1, m.name, m.labels)}`);
  t.true(metrics0.length > 20, 'counters were scraped');
  t.deepEqual(back, [], 'no counter on /metrics went back');
  const fdb1 = await svc.ctl<FdbRow[]>('fdb.show');
  const stats1 = await svc.ctl<typeof stats0>('stats');
  const ageOf = (rows: FdbRow[], mac: string) => rows.find((e) => e.mac === mac)?.age_s ?? -1;
  t.true(ageOf(fdb1, a.mac) >= ageOf(fdb0, a.mac) - 1 && ageOf(fdb0, a.mac) >= 2, `a's age went on (${ageOf(fdb0, a.mac)} -> ${ageOf(fdb1, a.mac)} s)`);
  t.true(stats1.ports[a.port]!.paths.afxdp.rx_packets >= stats0.ports[a.port]!.paths.afxdp.rx_packets, 'the hot loop counters did not go back');
  t.true(stats1.ports[a.port]!.rx_packets >= stats0.ports[a.port]!.rx_packets, 'nor the totals');
});

test.serial('a stop leaves nothing: no program, no punt pair, no internal tap, an empty fd store', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, 5);
  const [a, b] = hosts as [Host, Host];
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip));
  svc.send('restart');
  await svc.event(/^ready/m, 2);
  svc.send('store');
  await svc.event(/^store /m);
  t.regex(svc.events, /store .*link\./, 'the ports\' program links are in the store');
  const bridge = /bridge: (\S+)/.exec(readFileSync(join(svc.dir, 'switch.yaml'), 'utf8'))![1]!;
  svc.send('stop');
  await svc.event(/^stopped/m);
  const links = await linkNames();
  t.false(links.includes(bridge), 'the internal tap is gone');
  t.false(links.some((l) => /^vp[0-9a-f]{6}[nf]\d+$/.test(l) && svc.logs().includes(l)), 'no punt pair of ours is left');
  for (const h of hosts) {
    const out = (await run(['bpftool', 'net', 'show', 'dev', h.port], { check: false })).stdout;
    t.notRegex(out, /vswitchd/, `no program on ${h.port}`);
  }
});

test.serial('upgrade: a build with a different tc program replaces the running one in its link, no known-unicast loss', async (t) => {
  if (!TC_HOOK) return t.pass();  // the program that is replaced in its link is the tc one
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, 6);
  const [a, b] = hosts as [Host, Host];
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip));
  await learned(svc, [a, b]);
  // The program in a's tcx link: its id and translated size.
  const progOf = async () => {
    const ports = await svc.ctl<{ name: string; prog_id?: number }[]>('port.list');
    const id = ports.find((p) => p.name === a.port)?.prog_id;
    const prog = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'id', String(id)])).stdout) as { id: number; bytes_xlated: number };
    return { id: prog.id, bytes: prog.bytes_xlated };
  };
  const before = await progOf();
  const flow = traffic(cleanup, a, b, 3);
  await flow.start();
  await sleep(1000);
  // The "new build": the next daemon loads the variant with one no-op more.
  svc.send(`env VSWITCHD_TC_OBJECT=${join(repoRoot(), 'bpf', 'tc_fastpath_upgrade.bpf.o')}`);
  svc.send('restart');
  await svc.event(/^ready/m, 2);
  const res = await flow.results();
  const after = await progOf();
  t.log(`upgrade: UDP ${res.sent - res.received}/${res.sent} lost; program ${before.id} (${before.bytes} B) -> ${after.id} (${after.bytes} B)`);
  t.is(res.sent - res.received, 0, 'no known-unicast frame lost');
  t.not(after.id, before.id, 'another program runs in the link');
  // The variant's code differs from the running build's (one instruction more, and what the
  // compiler makes of it): the same build restarted would translate to the same size.
  t.not(after.bytes, before.bytes, 'the new build\'s program, not the running build\'s');
});

test.serial('a restart onto a config without a port: the port goes only once the rest is adopted', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, 7);
  const [a, b, c] = hosts as [Host, Host, Host];
  await staticArp(a, c);
  await staticArp(c, a);
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip));
  t.true(await pingUntil(c, a.ip));
  await learned(svc, [a, b, c]);
  const cIndex = (await svc.ctl<{ name: string; index: number }[]>('port.list')).find((p) => p.name === c.port)!.index;
  const configPath = join(svc.dir, 'switch.yaml');
  writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(new RegExp(`  - name: ${c.port}\\n(    .*\\n)*?(?=  - |$)`), ''));
  t.false(readFileSync(configPath, 'utf8').includes(c.port), 'the new config lacks c');
  const flow = traffic(cleanup, a, b, 3);
  await flow.start();
  await sleep(1000);
  svc.send('restart');
  await svc.event(/^ready/m, 2);
  const res = await flow.results();
  if (FAST !== 'off') t.is(res.sent - res.received, 0, 'a and b lost nothing');
  const ports = await svc.ctl<{ name: string }[]>('port.list');
  t.false(ports.some((p) => p.name === c.port), 'c is no longer a port');
  t.false((await svc.ctl<FdbRow[]>('fdb.show')).some((e) => e.mac === c.mac), "c's MAC is flushed");
  t.true((await svc.ctl<FdbRow[]>('fdb.show')).some((e) => e.mac === a.mac), "a's stays");
  const links = await linkNames();
  t.false(links.some((l) => new RegExp(`^vp[0-9a-f]{6}[nf]${cIndex}$`).test(l) && svc.logs().includes(l)), "c's punt pair is gone");
  t.regex(svc.logs(), new RegExp(`"removed":\\["${c.port}"\\]`), 'the log says what the reconciliation removed');
  t.is(await run(['ping', '-c', '2', '-W', '1', a.ip], { ns: c.ns, check: false }).then((r) => r.code), 1, 'c no longer reaches a');
});

test.serial('maps of another layout are not adopted: the daemon says why, starts afresh and forwards', async (t) => {
  const cleanup = cleanupFor(t);
  const hosts = await topology(cleanup, 8);
  const [a, b] = hosts as [Host, Host];
  const svc = await startService(t, cleanup, hosts);
  t.true(await pingUntil(a, b.ip));
  await learned(svc, [a, b]);
  // A build whose FDB has another size stands for any incompatible layout.
  const configPath = join(svc.dir, 'switch.yaml');
  writeFileSync(configPath, readFileSync(configPath, 'utf8') + 'fdb:\n  capacity: 4096\n');
  svc.send('restart');
  await svc.event(/^ready/m, 2);
  // The early start built a datapath for the old FDB size: the daemon starts again in place without it.
  t.regex(svc.logs(), /"reason":"the config changed fdb.capacity".*starting again in place without the early start/);
  t.regex(svc.logs(), /"reason":"fdb.capacity 65536".*not adopting the running datapath: starting afresh/);
  t.true(await pingUntil(a, b.ip), 'a reaches b through the fresh datapath');
  const ports = await svc.ctl<{ name: string; adopted?: boolean; up: boolean }[]>('port.list');
  t.true(ports.every((p) => p.up && !p.adopted), 'every port up, none adopted');
  await learned(svc, [a, b]);
});
