// vswitchctl against a live daemon: every command in table form (headers and rows) and
// with --json parsed back; errors exit non-zero with one line on stderr.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import {
  accessPort,
  eventually,
  parseTable,
  startDaemon,
  trunkPort,
  vswitchctl,
  vswitchctlJson,
  type CtlRun,
  type FdbRow,
  type PortInfo,
  type Stats,
} from '../helpers/daemon.js';
import { repoRoot, sendFrames } from '../helpers/frames.js';
import { addHost, cleanupFor, run, uniqueName, type Host } from '../helpers/netns.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const PORT_COLUMNS = ['NAME', 'INDEX', 'KIND', 'UP', 'QUEUES', 'XDP_MODE', 'WORKERS', 'VLAN'];
const FDB_COLUMNS = ['VLAN', 'MAC', 'PORT', 'STATIC', 'AGE_S'];

interface VlanRow {
  vlan: number;
  ports: { name: string; tagged: boolean }[];
}

// a, b: access VLAN 10; c: access VLAN 20; trunk: trunks 10,20.
async function topology(t: ExecutionContext) {
  const cleanup = cleanupFor(t);
  const [a, b, c, trunk] = (await Promise.all([1, 2, 3, 4].map(() => addHost(cleanup)))) as [Host, Host, Host, Host];
  const sw = await startDaemon(t, cleanup, {
    workers: 2,
    ports: [accessPort(a.port, 10), accessPort(b.port, 10), accessPort(c.port, 20), trunkPort(trunk.port, [10, 20])],
  });
  const ctl = (...args: string[]) => vswitchctl(sw.socketPath, args);
  const json = <T>(...args: string[]) => vswitchctlJson<T>(sw.socketPath, args);
  const bridge = sw.config.bridge as string;
  return { cleanup, sw, a, b, c, trunk, ctl, json, bridge };
}

/** Exit 0, nothing on stderr. */
function ok(t: ExecutionContext, res: CtlRun, what: string): void {
  t.is(res.code, 0, `${what}: exit 0 (stderr: ${res.stderr})`);
  t.is(res.stderr, '', `${what}: nothing on stderr`);
}

/** Exit 1, nothing on stdout, one line "vswitchctl: ..." on stderr matching `reason`. */
function refused(t: ExecutionContext, res: CtlRun, reason: RegExp, what: string): void {
  t.is(res.code, 1, `${what}: exit 1 (stdout: ${res.stdout}, stderr: ${res.stderr})`);
  t.is(res.stdout, '', `${what}: nothing on stdout`);
  t.is(res.stderr.split('\n').filter(Boolean).length, 1, `${what}: one line on stderr: ${JSON.stringify(res.stderr)}`);
  t.true(res.stderr.endsWith('\n'), `${what}: the line ends with a newline`);
  t.regex(res.stderr, /^vswitchctl: /, `${what}: the line starts with vswitchctl:`);
  t.regex(res.stderr, reason, `${what}: the reason`);
}

/** A table as records keyed by column; the columns named in `required` must be there, in that order. */
function records(t: ExecutionContext, text: string, required: string[], what: string): Record<string, string>[] {
  const { header, rows } = parseTable(text);
  const at = required.map((c) => header.indexOf(c));
  t.true(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1]!)), `${what}: columns ${required.join(' ')} (got ${header.join(' ')})`);
  for (const r of rows) t.is(r.length, header.length, `${what}: a cell per column in ${JSON.stringify(r)}`);
  return rows.map((r) => Object.fromEntries(header.map((c, i) => [c, r[i] ?? ''])));
}

/** Only these keys of each record. */
const pick = (rows: Record<string, string>[], keys: string[]) => rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])));

const vlanCell = (v: PortInfo['vlan']) =>
  v.mode === 'access' ? `access ${v.vlan}` : `trunk ${v.trunks.join(',')}${v.nativeVlan ? ` native ${v.nativeVlan}` : ''}`;

const portRow = (p: PortInfo): Record<string, string> => ({
  NAME: p.name,
  INDEX: `${p.index}`,
  KIND: p.kind,
  UP: `${p.up}`,
  QUEUES: `${p.queues}`,
  XDP_MODE: p.xdp_mode,
  WORKERS: p.workers.join(','),
  VLAN: vlanCell(p.vlan),
});

test.serial('version: the daemon version as a line and as JSON', async (t) => {
  const { ctl, json } = await topology(t);
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  const res = await ctl('version');
  ok(t, res, 'version');
  t.is(res.stdout, `vswitchd ${pkg.version}\n`, 'version prints "vswitchd VERSION"');
  t.deepEqual(await json('version'), { version: pkg.version }, '--json version');
});

test.serial('port list: aligned table with a row per port, and the same ports in JSON', async (t) => {
  const { a, b, c, trunk, ctl, json, bridge } = await topology(t);
  const ports = await json<PortInfo[]>('port', 'list');
  t.deepEqual(ports.map((p) => p.name).sort(), [bridge, a.port, b.port, c.port, trunk.port].sort(), '--json lists every port');
  const byName = new Map(ports.map((p) => [p.name, p]));
  t.like(byName.get(a.port), { kind: 'veth', up: true, vlan: { mode: 'access', vlan: 10 } }, 'a: access 10, up');
  t.like(byName.get(c.port), { kind: 'veth', up: true, vlan: { mode: 'access', vlan: 20 } }, 'c: access 20, up');
  t.deepEqual(byName.get(trunk.port)?.vlan, { mode: 'trunk', trunks: [10, 20] }, 'trunk: trunks 10,20');
  t.like(byName.get(bridge), { kind: 'internal', up: true, vlan: { mode: 'access', vlan: 1 } }, 'the internal port');
  for (const p of ports) {
    t.true(p.queues >= 1, `${p.name}: queues`);
    t.true(p.workers.every((w) => w === 0 || w === 1), `${p.name}: owned by worker 0 or 1`);
  }

  const res = await ctl('port', 'list');
  ok(t, res, 'port list');
  const rows = records(t, res.stdout, PORT_COLUMNS, 'port list');
  t.deepEqual(pick(rows, PORT_COLUMNS), ports.map(portRow), 'one row per port, the same values as --json');
  // Aligned: every column starts at the same offset on every line.
  const lines = res.stdout.trimEnd().split('\n');
  const vlanAt = lines[0]!.indexOf('VLAN');
  t.true(lines.slice(1).every((l) => /^(access|trunk)/.test(l.slice(vlanAt))), 'the VLAN column is aligned');
});

test.serial('port add and port del: table and JSON results, port list follows, errors exit 1', async (t) => {
  const { cleanup, ctl, json, a } = await topology(t);
  const tap1 = `${uniqueName()}t`;
  const tap2 = `${uniqueName()}t`;
  for (const tap of [tap1, tap2]) cleanup.add(() => run(['ip', 'link', 'del', tap], { check: false }));

  const added = await ctl('port', 'add', tap1, '--type', 'tap', '--vlan', '30');
  ok(t, added, 'port add');
  const addRows = records(t, added.stdout, PORT_COLUMNS, 'port add');
  t.is(addRows.length, 1, 'port add prints one row');
  t.like(addRows[0], { NAME: tap1, KIND: 'tap', UP: 'true', VLAN: 'access 30' }, 'the row: name, tap, up, access 30');

  const trunkAdded = await json<PortInfo>('port', 'add', tap2, '--type', 'tap', '--trunks', '10,30', '--native-vlan', '40');
  t.like(trunkAdded, { name: tap2, kind: 'tap', up: true }, '--json port add returns the port');
  t.deepEqual(trunkAdded.vlan, { mode: 'trunk', trunks: [10, 30], nativeVlan: 40 }, '... a trunk with its native VLAN');

  const listed = await json<PortInfo[]>('port', 'list');
  t.like(listed.find((p) => p.name === tap1), { up: true, vlan: { mode: 'access', vlan: 30 } }, 'port list has the access tap');
  t.like(listed.find((p) => p.name === tap2), { up: true }, 'port list has the trunk tap');
  const vlans = await json<VlanRow[]>('vlan', 'show');
  t.deepEqual(vlans.find((v) => v.vlan === 30)?.ports, [{ name: tap1, tagged: false }, { name: tap2, tagged: true }], 'vlan show has VLAN 30');
  t.deepEqual(vlans.find((v) => v.vlan === 40)?.ports, [{ name: tap2, tagged: false }], 'and the native VLAN 40');

  refused(t, await ctl('port', 'add', tap1, '--type', 'tap', '--vlan', '30'), new RegExp(`${tap1} already exists`), 'adding it again');
  refused(t, await ctl('port', 'add', `${uniqueName()}t`, '--type', 'tap', '--vlan', '5000'), /vlan: expected an integer in 1\.\.4094, got 5000/, 'VLAN 5000');
  refused(t, await ctl('port', 'del', a.port.replace(/p$/, 'x')), /no port named/, 'deleting an unknown port');

  const removed = await ctl('port', 'del', tap1);
  ok(t, removed, 'port del');
  t.deepEqual(parseTable(removed.stdout), { header: ['REMOVED'], rows: [[tap1]] }, 'port del prints REMOVED and the name');
  t.deepEqual(await json('port', 'del', tap2), { removed: tap2 }, '--json port del');
  const after = (await json<PortInfo[]>('port', 'list')).map((p) => p.name);
  t.false(after.includes(tap1) || after.includes(tap2), 'port list no longer has them');
  refused(t, await ctl('port', 'del', tap1), new RegExp(`no port named ${tap1}`), 'deleting it twice');
});

test.serial('vlan show: a row per VLAN with its ports, tagged ones marked', async (t) => {
  const { a, b, c, trunk, ctl, json, bridge } = await topology(t);
  const vlans = await json<VlanRow[]>('vlan', 'show');
  const members = (vlan: number) => vlans.find((v) => v.vlan === vlan)?.ports;
  t.deepEqual(vlans.map((v) => v.vlan).sort((x, y) => x - y), [1, 10, 20], '--json: VLANs 1, 10, 20');
  t.deepEqual(members(1), [{ name: bridge, tagged: false }], 'VLAN 1: the internal port');
  t.deepEqual(members(10), [{ name: a.port, tagged: false }, { name: b.port, tagged: false }, { name: trunk.port, tagged: true }], 'VLAN 10');
  t.deepEqual(members(20), [{ name: c.port, tagged: false }, { name: trunk.port, tagged: true }], 'VLAN 20');

  const res = await ctl('vlan', 'show');
  ok(t, res, 'vlan show');
  const rows = records(t, res.stdout, ['VLAN', 'PORTS'], 'vlan show');
  t.deepEqual(
    pick(rows, ['VLAN', 'PORTS']),
    vlans.map((v) => ({ VLAN: `${v.vlan}`, PORTS: v.ports.map((p) => `${p.name}${p.tagged ? '(tagged)' : ''}`).join(' ') })),
    'one row per VLAN, tagged members marked',
  );
  t.like(rows.find((r) => r.VLAN === '10'), { PORTS: `${a.port} ${b.port} ${trunk.port}(tagged)` }, 'the VLAN 10 row');
});

test.serial('bond show [NAME]: each bond with its legs, in a table and in JSON; an unknown bond exits 1', async (t) => {
  const cleanup = cleanupFor(t);
  // Two veths whose far ends sit in namespaces serve as the legs.
  const [l0, l1, a] = (await Promise.all([1, 2, 3].map(() => addHost(cleanup)))) as [Host, Host, Host];
  const bond = `${uniqueName()}o`;
  const sw = await startDaemon(t, cleanup, {
    ports: [accessPort(a.port, 10)],
    bonds: [{ name: bond, members: [l0.port, l1.port], mode: 'active-backup', vlan: 10 }],
  });
  const ctl = (...args: string[]) => vswitchctl(sw.socketPath, args);
  type Bond = { name: string; mode: string; activeLeg?: string; failovers: number; legs: { name: string; carrier: boolean; active: boolean }[]; legTx: Record<string, number> };
  await eventually('the bond has an active leg', async () => (await vswitchctlJson<Bond[]>(sw.socketPath, ['bond', 'show']))[0]?.activeLeg !== undefined);

  const all = await vswitchctlJson<Bond[]>(sw.socketPath, ['bond', 'show']);
  t.is(all.length, 1, '--json bond show: one bond');
  const b = all[0]!;
  t.like(b, { name: bond, mode: 'active-backup', failovers: 0 }, 'its name and mode');
  t.deepEqual(b.legs.map((l) => l.name), [l0.port, l1.port], 'its legs');
  t.true(b.legs.every((l) => l.carrier), 'both legs have carrier');
  t.deepEqual(b.legs.filter((l) => l.active).map((l) => l.name), [b.activeLeg], 'exactly one leg is active: the activeLeg');
  t.deepEqual(Object.keys(b.legTx).sort(), [l0.port, l1.port].sort(), 'tx per leg');
  t.deepEqual(await vswitchctlJson<Bond[]>(sw.socketPath, ['bond', 'show', bond]), all, '--json bond show NAME: the same bond');

  const res = await ctl('bond', 'show', bond);
  ok(t, res, 'bond show NAME');
  const [head, ...rest] = res.stdout.split('\n');
  t.regex(head!, new RegExp(`^bond ${bond}: mode active-backup, hash \\S+, active leg ${b.activeLeg}, failovers 0$`), 'the bond line');
  const legs = records(t, rest.join('\n'), ['LEG', 'CARRIER', 'USABLE', 'ACTIVE', 'BUCKETS', 'TX_PACKETS'], 'bond show legs');
  t.deepEqual(
    pick(legs, ['LEG', 'CARRIER', 'ACTIVE']),
    b.legs.map((l) => ({ LEG: l.name, CARRIER: 'up', ACTIVE: `${l.active}` })),
    'a row per leg: carrier and which is active',
  );
  const listed = await ctl('bond', 'show');
  ok(t, listed, 'bond show');
  t.is(listed.stdout, res.stdout, 'bond show lists the one bond the same way');
  refused(t, await ctl('bond', 'show', 'vtnosuchbond'), /no bond named vtnosuchbond/, 'bond show of an unknown bond');
});

test.serial('fdb show with --vlan and --port, and fdb flush [--port]', async (t) => {
  const { sw, a, b, c, trunk, ctl, json } = await topology(t);
  const ET = 0x88b5;
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: BROADCAST, ethertype: ET });
  await sendFrames({ dev: b.dev, ns: b.ns, src: b.mac, dst: BROADCAST, ethertype: ET });
  await sendFrames({ dev: c.dev, ns: c.ns, src: c.mac, dst: BROADCAST, ethertype: ET });
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: BROADCAST, ethertype: ET, vlan: 10 });
  await sendFrames({ dev: trunk.dev, ns: trunk.ns, src: trunk.mac, dst: BROADCAST, ethertype: ET, vlan: 20 });
  const hostRows = (rows: FdbRow[]) =>
    rows
      .filter((r) => [a, b, c, trunk].some((h) => h.mac === r.mac))
      .map((r) => `${r.vlan} ${r.mac} ${r.port} ${r.static}`)
      .sort();
  const row = (h: Host, vlan: number) => `${vlan} ${h.mac} ${h.port} false`;
  await eventually('all five learned', async () => hostRows(await json<FdbRow[]>('fdb', 'show')).length === 5);

  const all = await json<FdbRow[]>('fdb', 'show');
  t.deepEqual(hostRows(all), [row(a, 10), row(b, 10), row(c, 20), row(trunk, 10), row(trunk, 20)].sort(), '--json fdb show: every MAC, VLAN, port');
  t.true(all.every((r) => typeof r.age_s === 'number' && r.age_s >= 0), 'each row has an age');
  t.deepEqual(hostRows(await json<FdbRow[]>('fdb', 'show', '--vlan', '20')), [row(c, 20), row(trunk, 20)].sort(), 'fdb show --vlan 20');
  t.deepEqual(hostRows(await json<FdbRow[]>('fdb', 'show', '--port', trunk.port)), [row(trunk, 10), row(trunk, 20)].sort(), 'fdb show --port trunk');
  t.deepEqual(hostRows(await json<FdbRow[]>('fdb', 'show', '--vlan', '10', '--port', trunk.port)), [row(trunk, 10)], 'fdb show --vlan 10 --port trunk');
  t.deepEqual(await json<FdbRow[]>('fdb', 'show', '--port', 'vtnosuchport'), [], 'fdb show --port of an unknown port: nothing');

  const res = await ctl('fdb', 'show', '--vlan', '10');
  ok(t, res, 'fdb show');
  const rows = records(t, res.stdout, FDB_COLUMNS, 'fdb show');
  t.deepEqual(
    rows.filter((r) => [a.mac, b.mac, trunk.mac].includes(r.MAC!)).map((r) => `${r.VLAN} ${r.MAC} ${r.PORT} ${r.STATIC}`).sort(),
    [row(a, 10), row(b, 10), row(trunk, 10)].sort(),
    'fdb show --vlan 10 table rows',
  );
  t.true(rows.every((r) => r.VLAN === '10' && /^\d+$/.test(r.AGE_S!)), 'only VLAN 10, ages in seconds');
  t.regex(res.stdout, /^VLAN {2}MAC {16}PORT/, 'the columns are aligned to the MAC width');

  // Flush one port: only its entries go.
  const flushed = await ctl('fdb', 'flush', '--port', trunk.port);
  ok(t, flushed, 'fdb flush --port');
  t.deepEqual(parseTable(flushed.stdout), { header: ['FLUSHED'], rows: [['2']] }, 'fdb flush --port prints how many went');
  t.deepEqual(hostRows(await json<FdbRow[]>('fdb', 'show')), [row(a, 10), row(b, 10), row(c, 20)].sort(), 'the trunk MACs are gone, the rest stay');
  t.deepEqual(await json('fdb', 'flush', '--port', trunk.port), { flushed: 0 }, '--json fdb flush --port: nothing left to flush');
  refused(t, await ctl('fdb', 'flush', '--port', 'vtnosuchport'), /no port named vtnosuchport/, 'fdb flush --port of an unknown port');

  // Flush everything.
  const before = (await json<FdbRow[]>('fdb', 'show')).length;
  t.deepEqual(await json('fdb', 'flush'), { flushed: before }, '--json fdb flush: every entry');
  t.deepEqual(hostRows(await json<FdbRow[]>('fdb', 'show')), [], 'fdb show: the hosts are gone');
  t.is(sw.running, true);
});

test.serial('fdb add and fdb del: a static entry shows static=true and goes again; bad entries exit 1', async (t) => {
  const { a, c, ctl, json } = await topology(t);
  const mac = '02:00:00:00:0a:01';
  const mac2 = '02:00:00:00:0a:02';

  const added = await ctl('fdb', 'add', mac, '--vlan', '10', '--port', a.port);
  ok(t, added, 'fdb add');
  t.deepEqual(parseTable(added.stdout), { header: ['ADDED'], rows: [[`mac=${mac} vlan=10 port=${a.port}`]] }, 'fdb add table');
  t.deepEqual(await json('fdb', 'add', mac2, '--vlan', '20', '--port', c.port), { added: { mac: mac2, vlan: 20, port: c.port } }, '--json fdb add');

  const rows = await json<FdbRow[]>('fdb', 'show');
  t.like(rows.find((r) => r.mac === mac), { vlan: 10, port: a.port, static: true }, '--json fdb show: static true');
  t.like(rows.find((r) => r.mac === mac2), { vlan: 20, port: c.port, static: true }, '--json fdb show: the second one');
  const shown = records(t, (await ctl('fdb', 'show', '--port', a.port)).stdout, FDB_COLUMNS, 'fdb show --port');
  t.like(shown.find((r) => r.MAC === mac), { VLAN: '10', PORT: a.port, STATIC: 'true' }, 'fdb show table: STATIC true');

  refused(t, await ctl('fdb', 'add', '01:00:5e:00:00:01', '--vlan', '10', '--port', a.port), /multicast/, 'a multicast MAC');
  refused(t, await ctl('fdb', 'add', 'ff:ff:ff:ff:ff:ff', '--vlan', '10', '--port', a.port), /multicast|broadcast/, 'the broadcast MAC');
  refused(t, await ctl('fdb', 'add', '02:00:00:00:0a:03', '--vlan', '10', '--port', 'vtnosuchport'), /no port named vtnosuchport/, 'an unknown port');
  refused(t, await ctl('fdb', 'add', '02:00:00:00:0a:04', '--vlan', '20', '--port', a.port), /does not carry VLAN 20/, 'a VLAN the port lacks');
  refused(t, await ctl('fdb', 'add', 'not-a-mac', '--vlan', '10', '--port', a.port), /mac|MAC/, 'a malformed MAC');
  t.false((await json<FdbRow[]>('fdb', 'show')).some((r) => ['01:00:5e:00:00:01', '02:00:00:00:0a:03', '02:00:00:00:0a:04'].includes(r.mac)), 'none of them was added');

  const removed = await ctl('fdb', 'del', mac, '--vlan', '10');
  ok(t, removed, 'fdb del');
  t.deepEqual(parseTable(removed.stdout), { header: ['REMOVED'], rows: [[`mac=${mac} vlan=10`]] }, 'fdb del table');
  t.deepEqual(await json('fdb', 'del', mac2, '--vlan', '20'), { removed: { mac: mac2, vlan: 20 } }, '--json fdb del');
  const left = await json<FdbRow[]>('fdb', 'show');
  t.false(left.some((r) => r.mac === mac || r.mac === mac2), 'fdb show no longer has them');
  refused(t, await ctl('fdb', 'del', mac, '--vlan', '10'), /no static entry/, 'deleting it twice');

  // A static entry survives a flush of its port.
  await json('fdb', 'add', mac, '--vlan', '10', '--port', a.port);
  await json('fdb', 'flush', '--port', a.port);
  t.like((await json<FdbRow[]>('fdb', 'show')).find((r) => r.mac === mac), { static: true }, 'fdb flush leaves the static entry');
});

test.serial('stats: a port table and a worker table; JSON counters follow the traffic', async (t) => {
  const { a, b, ctl, json } = await topology(t);
  await sendFrames({ dev: a.dev, ns: a.ns, src: a.mac, dst: b.mac, ethertype: 0x88b5, count: 25 });
  await eventually('a counted 25 frames', async () => (await json<Stats>('stats')).ports[a.port]!.rx_packets >= 25);
  const stats = await json<Stats & { workers: Record<string, number>[] }>('stats');
  t.is(stats.ports[a.port]!.rx_packets, 25, '--json stats: rx_packets of a');
  t.is(stats.ports[a.port]!.rx_bytes, 25 * 60, '--json stats: rx_bytes of a');
  t.is(stats.ports[b.port]!.tx_packets, 25, '--json stats: tx_packets of b (the frames, flooded to b and the trunk)');
  t.is(typeof stats.ports[a.port]!.drops, 'object', 'drops by reason');
  t.is(stats.workers.length, 2, 'one entry per worker');
  for (const key of ['rx_frames', 'rx_batches', 'wakeups', 'busy_ns', 'total_ns', 'handoffs', 'learn_events']) {
    t.true(stats.workers.every((w) => typeof w[key] === 'number'), `workers have ${key}`);
  }
  t.is(stats.workers.reduce((n, w) => n + w.rx_frames!, 0) >= 25, true, 'the workers received the frames');
  t.true(stats.workers.every((w) => w.restarts === 0), 'no worker restarted');
  const fdbStats = (stats as unknown as { fdb: { entries: number; rejected: Record<string, number> } }).fdb;
  t.deepEqual(Object.keys(fdbStats.rejected).sort(), ['multicast', 'port-down', 'port-limit', 'static', 'table-full'], 'FDB rejections by reason');

  const res = await ctl('stats');
  ok(t, res, 'stats');
  const [portsPart, workersPart, fdbPart] = res.stdout.split('\n\n');
  const ports = records(t, portsPart!, ['PORT', 'RX_PACKETS', 'RX_BYTES', 'TX_PACKETS', 'TX_BYTES', 'DROPS'], 'stats ports');
  t.like(ports.find((r) => r.PORT === a.port), { RX_PACKETS: '25', RX_BYTES: '1500', TX_PACKETS: '0', DROPS: '-' }, 'the row of a');
  t.like(ports.find((r) => r.PORT === b.port), { RX_PACKETS: '0', TX_PACKETS: '25', TX_BYTES: '1500' }, 'the row of b');
  t.deepEqual(ports.map((r) => r.PORT).sort(), Object.keys(stats.ports).sort(), 'a row per port');
  const workers = records(t, workersPart!, ['WORKER', 'BUSY', 'RX_FRAMES', 'MEAN_BATCH', 'WAKEUPS', 'HANDOFFS', 'LEARN_EVENTS'], 'stats workers');
  t.deepEqual(workers.map((r) => r.WORKER), ['0', '1'], 'a row per worker');
  t.true(workers.every((r) => /^\d+\.\d%$/.test(r.BUSY!)), 'busy as a percentage');
  t.true(workers.every((r) => r.RESTARTS === '0'), 'a RESTARTS column, 0 each');
  const fdbRows = records(t, fdbPart!, ['FDB_ENTRIES', 'REJECTED_MULTICAST', 'REJECTED_PORT_LIMIT', 'REJECTED_TABLE_FULL'], 'stats fdb');
  t.is(fdbRows.length, 1, 'one FDB row');
});

test.serial('reload: "no changes", and what needs a restart, in a table and in JSON', async (t) => {
  const { sw, ctl, json } = await topology(t);
  const res = await ctl('reload');
  ok(t, res, 'reload');
  t.is(res.stdout, 'no changes\n', 'reload of the same file: no changes');
  t.deepEqual(await json('reload'), { changes: [], needsRestart: [] }, '--json reload');

  const config = structuredClone(sw.config) as Record<string, unknown>;
  config.workers = 1;
  config.fdb = { aging: 77 };
  writeFileSync(sw.configPath, stringify(config));
  const changed = await ctl('reload');
  ok(t, changed, 'reload of a changed file');
  t.deepEqual(changed.stdout.trim().split('\n').sort(), ['changed: fdb.aging 300 -> 77', 'not applied until restart: workers'], 'reload lists the change and what waits for a restart');
  config.fdb = { aging: 78 };
  writeFileSync(sw.configPath, stringify(config));
  t.deepEqual(await json('reload'), { changes: ['fdb.aging 77 -> 78'], needsRestart: ['workers'] }, '--json reload with a change');
});

test.serial('usage errors exit 2; a command the daemon refuses exits 1', async (t) => {
  const { ctl } = await topology(t);
  const unknown = await ctl('frobnicate');
  t.is(unknown.code, 2, 'an unknown command exits 2');
  t.regex(unknown.stderr, /unknown command "frobnicate"/, 'and names it');
  const noArg = await ctl('fdb', 'add', '02:00:00:00:00:01', '--port', 'x');
  t.is(noArg.code, 2, 'a missing --vlan exits 2');
  t.regex(noArg.stderr, /--vlan is required/, 'and says what is missing');
  const badOpt = await ctl('port', 'list', '--frobnicate');
  t.is(badOpt.code, 2, 'an unknown option exits 2');
  const noCmd = await ctl();
  t.is(noCmd.code, 2, 'no command exits 2');
  t.regex(noCmd.stdout + noCmd.stderr, /^usage: vswitchctl/m, 'and prints the usage');
  const help = await ctl('--help');
  t.is(help.code, 0, '--help exits 0');
  for (const cmd of ['version', 'port list', 'port add', 'port del', 'vlan show', 'bond show', 'fdb show', 'fdb flush', 'fdb add', 'fdb del', 'stats', 'reload']) {
    t.true(help.stdout.includes(`  ${cmd}`), `the usage lists ${cmd}`);
  }
});

// vswitchctl today prints only `vswitchctl: unknown command "..."` (exit 2) and no usage;
// the usage is printed only when no command is given at all.
test.serial('an unknown command prints the usage', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vswitchctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const unknown = await vswitchctl(join(dir, 'vswitchd.sock'), ['frobnicate']);
  t.is(unknown.code, 2, 'exit 2');
  t.regex(unknown.stdout + unknown.stderr, /usage: vswitchctl/, 'the usage is printed');
});

test.serial('without a running daemon: exit 1 and "cannot reach vswitchd"; the socket is mode 0600 while it runs', async (t) => {
  const { sw } = await topology(t);
  const st = statSync(sw.socketPath);
  t.true(st.isSocket(), 'the control socket is a unix socket');
  t.is((st.mode & 0o777).toString(8), '600', 'mode 0600');
  t.is(st.uid, 0, 'owned by root');

  const nowhere = join(sw.dir, 'nowhere', 'vswitchd.sock');
  for (const [what, path] of [['a socket path with nothing there', nowhere]] as const) {
    const res = await vswitchctl(path, ['port', 'list']);
    refused(t, res, /cannot reach vswitchd/, what);
    t.true(res.stderr.includes(path), `${what}: names the socket path`);
  }
  t.is((await sw.stop()).code, 0, 'the daemon stops');
  for (const args of [['version'], ['--json', 'port', 'list'], ['fdb', 'show']]) {
    const res = await vswitchctl(sw.socketPath, args);
    refused(t, res, /cannot reach vswitchd/, `vswitchctl ${args.join(' ')} after the daemon stopped`);
  }
});
