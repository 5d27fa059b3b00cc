// Soak (issue 12): `npm run bench -- --soak MINUTES`. Mixed traffic through vswitchd for
// that long (bulk TCP, UDP at a fixed rate, fast pings with large frames, ARP and
// broadcast from arping), /metrics scraped every second; at the end the RSS and fd
// drift, scrape failures, drops by reason, and every warn/error line the daemon logged.
// Run it under `flock /work/bench.lock` on a shared machine.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './lib/switches.js';

const sh = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const inNs = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Host { ns: string; port: string; ip: string }

function addHost(tag: string, i: number): Host {
  const ns = `vsoak${tag}${i}`;
  const port = `vsk${tag}${i}p`;
  sh(['ip', 'netns', 'add', ns]);
  sh(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh(['ip', 'link', 'set', port, 'up']);
  sh(inNs(ns, ['ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', 'eth0']));
  sh(inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']));
  sh(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']));
  return { ns, port, ip: `10.77.0.${i + 1}` };
}

function background(argv: string[]): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
}

function output(p: ChildProcess): Promise<string> {
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => p.on('close', () => resolve(out)));
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

export async function runSoak(minutes: number): Promise<number> {
  const seconds = Math.max(10, Math.round(minutes * 60));
  const tag = Math.random().toString(16).slice(2, 6);
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-soak-'));
  const hosts: Host[] = [];
  const procs: ChildProcess[] = [];
  let daemon: ChildProcess | undefined;
  try {
    for (let i = 0; i < 4; i++) hosts.push(addHost(tag, i));
    const metricsPort = 19000 + Math.floor(Math.random() * 1000);
    const config = [
      `bridge: vsk${tag}b`, 'workers: 2',
      'control:', `  socket: ${join(dir, 'vswitchd.sock')}`,
      'metrics:', `  listen: 127.0.0.1:${metricsPort}`,
      'ports:', ...hosts.map((h) => `  - { name: ${h.port}, vlan: 10 }`),
    ].join('\n');
    writeFileSync(join(dir, 'switch.yaml'), config + '\n');
    daemon = spawn(process.execPath, [join(repoRoot(), 'bin', 'vswitchd.js'), '--config', join(dir, 'switch.yaml'), '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const logged: string[] = [];
    let partial = '';
    const take = (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        try {
          if ((JSON.parse(l) as { level: number }).level >= 40) logged.push(l);
        } catch {
          if (l.trim()) logged.push(l);  // not JSON: stderr text
        }
      }
    };
    daemon.stdout!.on('data', take);
    daemon.stderr!.on('data', take);
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    for (let i = 0; ; i++) {
      if (await fetch(url).then((r) => r.ok, () => false)) break;
      if (i > 200 || daemon.exitCode !== null) throw new Error(`vswitchd did not start:\n${logged.join('\n')}`);
      await sleep(100);
    }
    const pid = daemon.pid!;
    const [h0, h1, h2, h3] = hosts as [Host, Host, Host, Host];
    procs.push(background(inNs(h1.ns, ['iperf3', '-s', '-1'])), background(inNs(h0.ns, ['iperf3', '-s', '-1', '-p', '5202'])));
    await sleep(500);
    const tcp = background(inNs(h0.ns, ['iperf3', '-c', h1.ip, '-t', `${seconds}`, '-J']));
    const udp = background(inNs(h2.ns, ['iperf3', '-c', h0.ip, '-p', '5202', '-u', '-b', '100M', '-l', '1200', '-t', `${seconds}`, '-J']));
    const ping = background(inNs(h3.ns, ['ping', '-q', '-i', '0.01', '-s', '1400', '-w', `${seconds}`, h2.ip]));
    const arp = background(inNs(h3.ns, ['sh', '-c', `end=$(($(date +%s)+${seconds})); while [ $(date +%s) -lt $end ]; do arping -q -c 20 -i eth0 -W 0.05 ${h1.ip}; done`]));
    procs.push(tcp, udp, ping, arp);
    const results = [tcp, udp, ping].map(output);

    const samples: { t: number; rss: number; fds: number }[] = [];
    let scrapeFailures = 0;
    let last = '';
    const start = Date.now();
    while (Date.now() - start < seconds * 1000) {
      const t0 = Date.now();
      const text = await fetch(url).then((r) => (r.ok ? r.text() : ''), () => '');
      if (!text) scrapeFailures++;
      else {
        last = text;
        samples.push({ t: (t0 - start) / 1000, rss: metric(text, 'vswitchd_process_resident_memory_bytes'), fds: readdirSync(`/proc/${pid}/fd`).length });
      }
      if (samples.length % 30 === 0 && samples.length) {
        const s = samples[samples.length - 1]!;
        process.stderr.write(`soak: ${s.t.toFixed(0)} s, RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, ${s.fds} fds\n`);
      }
      await sleep(Math.max(0, 1000 - (Date.now() - t0)));
    }
    const [tcpOut = '', udpOut = '', pingOut = ''] = await Promise.all(results);
    // After the first 10 s (start-up allocations settle), first against last.
    const settled = samples.filter((s) => s.t >= 10);
    const first = settled[0] ?? samples[0]!;
    const end = samples[samples.length - 1]!;
    const maxRss = Math.max(...samples.map((s) => s.rss));
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const drops = [...last.matchAll(/^vswitchd_port_drops_total\{([^}]*)\} (\S+)$/gm)]
      .filter((m) => Number(m[2]) > 0).map((m) => `${m[1]} ${m[2]}`);
    const tcpJson = JSON.parse(tcpOut || '{}') as { end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } } };
    const udpJson = JSON.parse(udpOut || '{}') as { end?: { sum?: { lost_percent?: number; bits_per_second?: number } } };
    const lines = [
      `soak: ${seconds} s of mixed traffic through vswitchd (4 veth ports, 2 workers, fast_path auto), /metrics every second (${samples.length} scrapes, ${scrapeFailures} failed)`,
      `  RSS ${mib(first.rss)} at ${first.t.toFixed(0)} s -> ${mib(end.rss)} at ${end.t.toFixed(0)} s (drift ${mib(end.rss - first.rss)}), max ${mib(maxRss)}`,
      `  fds ${first.fds} -> ${end.fds} (drift ${end.fds - first.fds})`,
      `  TCP h0->h1 ${((tcpJson.end?.sum_received?.bits_per_second ?? 0) / 1e9).toFixed(2)} Gbit/s, ${tcpJson.end?.sum_sent?.retransmits ?? '?'} retransmits`,
      `  UDP h2->h0 100 Mbit/s offered: ${((udpJson.end?.sum?.bits_per_second ?? 0) / 1e6).toFixed(0)} Mbit/s, ${udpJson.end?.sum?.lost_percent?.toFixed(3) ?? '?'} % lost`,
      `  ping h3->h2 every 10 ms, 1400 bytes: ${/(\d+ packets transmitted, \d+ received, [\d.]+% packet loss)/.exec(pingOut)?.[1] ?? pingOut.trim()}`,
      `  drops by reason (non-zero): ${drops.length ? drops.join('; ') : 'none'}`,
      `  warn/error log lines: ${logged.length}`,
      ...logged.slice(0, 50).map((l) => `    ${l}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('close', r));
    }
    for (const h of hosts) {
      try { sh(['ip', 'netns', 'del', h.ns]); } catch { /* already gone */ }
      try { sh(['ip', 'link', 'del', h.port]); } catch { /* went with the namespace */ }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
