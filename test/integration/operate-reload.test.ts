// Reload (`vswitchctl reload` and SIGHUP): a config with errors is refused with its
// file:line:col message and changes nothing; a valid one is applied as a difference
// (ports added and removed, VLANs changed, FDB settings) and traffic follows it.

import { writeFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import {
  accessPort,
  eventually,
  parseTable,
  startDaemon,
  vswitchctl,
  vswitchctlJson,
  type Daemon,
  type FdbRow,
  type PortInfo,
} from '../helpers/daemon.js';
import { sendFrames } from '../helpers/frames.js';
import { addHost, cleanupFor, ping, pingUntil, randomMac, staticArp, type Host } from '../helpers/netns.js';

type Config = Record<string, unknown> & { ports: Record<string, unknown>[] };

interface VlanRow {
  vlan: number;
  ports: { name: string; tagged: boolean }[];
}

// a, b, c: VLAN 10, 10, 20, all in one subnet; d: a host with no port yet.
async function topology(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [a, b, c, d] = (await Promise.all(
    ['10.9.0.1/24', '10.9.0.2/24', '10.9.0.3/24', '10.9.0.4/24'].map((cidr) => addHost(cleanup, { cidr })),
  )) as [Host, Host, Host, Host];
  const all = [a, b, c, d];
  for (const h of all) for (const o of all) if (h !== o) await staticArp(h, o);
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [accessPort(a.port, 10), accessPort(b.port, 10), accessPort(c.port, 20)],
  });
  t.true(await pingUntil(a, b.ip), 'a reaches b (VLAN 10)');
  return { cleanup, sw, a, b, c, d };
}

/** The daemon's config as it was started, to edit and write back. */
function configOf(sw: Daemon): Config {
  return structuredClone(sw.config) as Config;
}

function writeConfig(sw: Daemon, config: Config, extraLines = ''): string {
  const text = stringify(config) + extraLines;
  writeFileSync(sw.configPath, text);
  return text;
}

const portList = (sw: Daemon) => vswitchctlJson<PortInfo[]>(sw.socketPath, ['port', 'list']);
const vlanShow = (sw: Daemon) => vswitchctlJson<VlanRow[]>(sw.socketPath, ['vlan', 'show']);
const membersOf = (vlans: VlanRow[], vlan: number) => (vlans.find((v) => v.vlan === vlan)?.ports.map((p) => p.name) ?? []).sort();

/** Every column of `port list` but the per-run counters: what an operator compares. */
const portState = (ports: PortInfo[]) => ports.map(({ name, index, kind, up, queues, xdp_mode, workers, vlan }) => ({ name, index, kind, up, queues, xdp_mode, workers, vlan }));

test.serial('vswitchctl reload of a config with errors exits non-zero with file:line:col and changes nothing', async (t) => {
  const { sw, a, b, c } = await topology(t);
  const portsBefore = await portList(sw);
  const tableBefore = (await vswitchctl(sw.socketPath, ['port', 'list'])).stdout;
  const vlansBefore = await vlanShow(sw);

  // A file that also carries valid-looking changes (b moved to VLAN 20, c removed,
  // aging changed) next to an unknown key: none of it may be applied.
  const bad = configOf(sw);
  bad.ports = [accessPort(a.port, 10), accessPort(b.port, 20)];
  bad.fdb = { aging: 5 };
  const text = writeConfig(sw, bad, 'frobnicate: 1\n');
  const badLine = text.split('\n').indexOf('frobnicate: 1') + 1;

  const res = await vswitchctl(sw.socketPath, ['reload']);
  t.not(res.code, 0, 'non-zero exit status');
  t.is(res.code, 1, 'exit status 1 (the daemon refused)');
  t.is(res.stdout, '', 'nothing on stdout');
  const stderrLines = res.stderr.trim().split('\n');
  t.is(stderrLines.length, 1, `one line on stderr: ${res.stderr}`);
  t.true(res.stderr.includes(`${sw.configPath}:${badLine}:1: frobnicate: `), `stderr names ${sw.configPath}:${badLine}:1 and the key: ${res.stderr}`);
  t.regex(res.stderr, /unknown key/, 'and says what is wrong');
  t.true(sw.running, 'the daemon keeps running');

  const json = await vswitchctl(sw.socketPath, ['--json', 'reload']);
  t.is(json.code, 1, '--json reload: exit status 1 too');
  t.true(json.stderr.includes(`${sw.configPath}:${badLine}:1`), '--json reload: the same message');

  t.deepEqual(portState(await portList(sw)), portState(portsBefore), 'port list --json unchanged');
  t.is((await vswitchctl(sw.socketPath, ['port', 'list'])).stdout, tableBefore, 'port list table unchanged');
  t.deepEqual(await vlanShow(sw), vlansBefore, 'vlan show unchanged');
  t.is(await ping(a, b.ip, { count: 5, interval: 0.1 }), 5, 'a still reaches b in VLAN 10');
  t.is(await ping(a, c.ip, { count: 2, interval: 0.1 }), 0, 'and still not c in VLAN 20');
  t.regex(sw.stdout, /reload refused/, 'the refusal is logged');

  // SIGHUP with the same bad file: refused as well.
  sw.proc.kill('SIGHUP');
  await eventually('the SIGHUP refusal logged', async () => (sw.stdout.match(/reload refused/g) ?? []).length >= 2, 5000);
  t.true(sw.running, 'SIGHUP with a bad file: the daemon keeps running');
  t.deepEqual(portState(await portList(sw)), portState(portsBefore), 'port list unchanged after SIGHUP');
  t.is(await ping(a, b.ip, { count: 3, interval: 0.1 }), 3, 'a still reaches b after SIGHUP');
});

test.serial('a valid change applied by vswitchctl reload and another by SIGHUP: port list, vlan show and traffic follow', async (t) => {
  const { sw, a, b, c, d } = await topology(t);
  const bridge = sw.config.bridge as string;

  // Step 1, vswitchctl reload: add d in VLAN 20, move b to VLAN 20, fdb.aging 300 -> 3.
  const next = configOf(sw);
  next.ports = [accessPort(a.port, 10), accessPort(b.port, 20), accessPort(c.port, 20), accessPort(d.port, 20)];
  next.fdb = { aging: 3 };
  writeConfig(sw, next);
  const res = await vswitchctl(sw.socketPath, ['reload']);
  t.is(res.code, 0, `reload exits 0: ${res.stderr}`);
  const changed = res.stdout.trim().split('\n');
  t.true(changed.includes(`changed: port ${d.port} added`), `reload reports the added port:\n${res.stdout}`);
  t.true(changed.some((l) => l.startsWith(`changed: port ${b.port} vlan`)), 'reload reports the VLAN change');
  t.true(changed.includes('changed: fdb.aging 300 -> 3'), 'reload reports the aging change');

  const ports = await portList(sw);
  t.deepEqual(ports.map((p) => p.name).sort(), [a.port, b.port, c.port, d.port, bridge].sort(), 'port list has d');
  t.deepEqual(ports.find((p) => p.name === b.port)?.vlan, { mode: 'access', vlan: 20 }, 'port list: b is in VLAN 20');
  t.true(ports.find((p) => p.name === d.port)?.up, 'port list: d is up');
  const vlans = await vlanShow(sw);
  t.deepEqual(membersOf(vlans, 10), [a.port], 'vlan show: VLAN 10 is a alone');
  t.deepEqual(membersOf(vlans, 20), [b.port, c.port, d.port].sort(), 'vlan show: VLAN 20 is b, c, d');
  const vlanTable = parseTable((await vswitchctl(sw.socketPath, ['vlan', 'show'])).stdout);
  t.deepEqual(vlanTable.rows.find((r) => r[0] === '10'), ['10', a.port], 'vlan show table: VLAN 10 row');

  t.true(await pingUntil(b, c.ip, 5000), 'b reaches c in VLAN 20 now');
  t.true(await pingUntil(d, c.ip, 5000), 'd, added by reload, reaches c');
  t.is(await ping(a, b.ip, { count: 3, interval: 0.1 }), 0, 'a no longer reaches b');

  // fdb.aging 3: a MAC seen once is forgotten within seconds (it would stay 300 s before).
  const ghost = randomMac();
  await sendFrames({ dev: d.dev, ns: d.ns, src: ghost, dst: 'ff:ff:ff:ff:ff:ff', ethertype: 0x88b5 });
  const fdb = () => vswitchctlJson<FdbRow[]>(sw.socketPath, ['fdb', 'show', '--vlan', '20']);
  await eventually('the one-off MAC learned', async () => (await fdb()).some((e) => e.mac === ghost), 5000);
  const learnedAt = Date.now();
  await eventually('the one-off MAC aged out under the new aging time', async () => !(await fdb()).some((e) => e.mac === ghost), 10_000);
  t.log(`a MAC seen once aged out after ${Date.now() - learnedAt} ms with fdb.aging 3`);

  // Step 2, SIGHUP: b back to VLAN 10, d removed.
  const again = configOf(sw);
  again.ports = [accessPort(a.port, 10), accessPort(b.port, 10), accessPort(c.port, 20)];
  again.fdb = { aging: 3 };
  writeConfig(sw, again);
  sw.proc.kill('SIGHUP');
  await eventually('port list shows d removed and b in VLAN 10', async () => {
    const now = await portList(sw);
    return !now.some((p) => p.name === d.port) && now.find((p) => p.name === b.port)?.vlan.mode === 'access' &&
      (now.find((p) => p.name === b.port)?.vlan as { vlan: number }).vlan === 10;
  }, 5000);
  const after = await vlanShow(sw);
  t.deepEqual(membersOf(after, 10), [a.port, b.port].sort(), 'vlan show after SIGHUP: VLAN 10 is a, b');
  t.deepEqual(membersOf(after, 20), [c.port], 'vlan show after SIGHUP: VLAN 20 is c');
  t.regex(sw.stdout, new RegExp(`port ${d.port} removed`), 'the SIGHUP reload is logged with its changes');
  t.true(await pingUntil(a, b.ip, 5000), 'a reaches b again');
  t.is(await ping(b, c.ip, { count: 3, interval: 0.1 }), 0, 'b no longer reaches c');
  t.is(await ping(d, c.ip, { count: 2, interval: 0.1 }), 0, 'd, removed, reaches nobody');
});
