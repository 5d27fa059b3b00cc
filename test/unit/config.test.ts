import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MAX_PORTS } from '../../src/switch/types.js';

import {
  ConfigError,
  formatPath,
  loadConfig,
  MAX_CONFIG_BYTES,
  MAX_NESTING,
  MAX_SHOWN_ISSUES,
  MAX_VALUES,
  parseConfig,
  parsePortConfig,
  type ConfigIssue,
  type SwitchConfig,
} from '../../src/switch/config/config.js';
import { nativePolicy } from '../../src/switch/ports/policy.js';

const FILE = 'switch.yaml';

/** YAML from lines, so that each test can see which line is which. */
function yaml(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

function issuesOf(t: ExecutionContext, text: string): ConfigIssue[] {
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  return err?.issues ?? [];
}

/** The config must have exactly one issue, at this place, with this message fragment. */
function assertOneIssue(
  t: ExecutionContext,
  text: string,
  want: { line: number; column: number; path: string; message: string },
): void {
  const issues = issuesOf(t, text);
  t.is(issues.length, 1, JSON.stringify(issues));
  const issue = issues[0];
  if (!issue) return;
  t.is(issue.file, FILE);
  t.is(issue.line, want.line);
  t.is(issue.column, want.column);
  t.is(issue.path, want.path);
  t.true(issue.message.includes(want.message), issue.message);
}

const DEFAULTS: SwitchConfig = {
  bridge: 'br0',
  workers: 2,
  datapath: { xdp_mode: 'auto', frames_per_worker: 8192, fast_path: 'auto' },
  fdb: { aging: 300, max_per_port: 4096, capacity: 65536, static: [] },
  metrics: { listen: '127.0.0.1:9417' },
  control: { socket: '/run/vswitchd/vswitchd.sock' },
  log: { level: 'info' },
  ports: [],
  bonds: [],
  mirrors: [],
};

// --- valid configs ---------------------------------------------------------

test('an empty file gives all defaults and no ports', (t) => {
  t.deepEqual(parseConfig('', FILE), DEFAULTS);
  t.deepEqual(parseConfig('# only a comment\n', FILE), DEFAULTS);
});

test('empty sections are filled with their defaults', (t) => {
  const text = yaml('datapath: {}', 'fdb: {}', 'metrics: {}', 'control: {}', 'log: {}', 'ports: []', 'bonds: []');
  t.deepEqual(parseConfig(text, FILE), DEFAULTS);
});

test('a section or list with nothing after it takes its default', (t) => {
  const text = yaml('datapath:', 'fdb:', '  static:', 'metrics:', 'control:', 'log:', 'ports:', '  # - name: p1', 'bonds:');
  t.deepEqual(parseConfig(text, FILE), DEFAULTS);
});

test('metrics.listen takes host:port, [v6]:port, or "" / "off" to disable', (t) => {
  for (const listen of ['127.0.0.1:9417', 'localhost:0', '[::1]:9417', '', 'off']) {
    t.is(parseConfig(`metrics: { listen: "${listen}" }\n`, FILE).metrics.listen, listen);
  }
  assertOneIssue(t, yaml('metrics:', '  listen: 9417'), {
    line: 2,
    column: 11,
    path: 'metrics.listen',
    message: 'expected "host:port" (like 127.0.0.1:9417), or "" or "off" to disable, got 9417',
  });
});

test('a full valid config comes back with every value and default', (t) => {
  const text = yaml(
    'bridge: br-test',
    'workers: 4',
    'datapath:',
    '  xdp_mode: native',
    '  frames_per_worker: 4096',
    '  fast_path: auto',
    'fdb:',
    '  aging: 60',
    '  max_per_port: 100',
    '  capacity: 1024',
    '  static:',
    '    - { mac: "02:AB:00:00:00:01", vlan: 10, port: tap-vm1 }',
    '    - { mac: "02:00:00:00:00:02", vlan: 20, port: uplink }',
    '    - { mac: "02:00:00:00:00:03", vlan: 1, port: br-test }',
    'metrics:',
    '  listen: "off"',
    'control:',
    '  socket: /tmp/vsd.sock',
    'log:',
    '  level: debug',
    'ports:',
    '  - name: tap-vm1',
    '    type: tap',
    '    vlan: 10',
    '  - name: veth-c1',
    '  - name: eth2',
    '    trunks: [10, 20]',
    '    native_vlan: 1',
    '  - name: br-test',
    'bonds:',
    '  - name: uplink',
    '    members: [eth0, eth1]',
    '    mode: lacp',
    '    hash: l2',
    '    updelay: 100',
    '    downdelay: 200',
    '    lacp: { rate: fast }',
    '    trunks: [10, 20]',
    '  - name: ab',
    '    members: [eth3, eth4]',
    '    primary: eth4',
    '    vlan: 30',
  );
  const want: SwitchConfig = {
    bridge: 'br-test',
    workers: 4,
    datapath: { xdp_mode: 'native', frames_per_worker: 4096, fast_path: 'auto' },
    fdb: {
      aging: 60,
      max_per_port: 100,
      capacity: 1024,
      static: [
        { mac: '02:ab:00:00:00:01', vlan: 10, port: 'tap-vm1' },
        { mac: '02:00:00:00:00:02', vlan: 20, port: 'uplink' },
        { mac: '02:00:00:00:00:03', vlan: 1, port: 'br-test' },
      ],
    },
    metrics: { listen: 'off' },
    control: { socket: '/tmp/vsd.sock' },
    log: { level: 'debug' },
    ports: [
      { name: 'tap-vm1', type: 'tap', vlan: 10 },
      { name: 'veth-c1' },
      { name: 'eth2', trunks: [10, 20], native_vlan: 1 },
      { name: 'br-test', type: 'internal' },
    ],
    bonds: [
      {
        name: 'uplink',
        members: ['eth0', 'eth1'],
        mode: 'lacp',
        hash: 'l2',
        updelay: 100,
        downdelay: 200,
        lacp: { mode: 'active', rate: 'fast', system_priority: 65535, fallback: 'none' },
        trunks: [10, 20],
      },
      {
        name: 'ab',
        members: ['eth3', 'eth4'],
        mode: 'active-backup',
        hash: 'l3l4',
        primary: 'eth4',
        updelay: 0,
        downdelay: 0,
        vlan: 30,
      },
    ],
    mirrors: [],
  };
  t.deepEqual(parseConfig(text, FILE), want);
});

test('a lacp bond without a lacp block gets the LACP defaults', (t) => {
  const config = parseConfig(yaml('bonds:', '  - { name: b, members: [e0], mode: lacp }'), FILE);
  t.deepEqual(config.bonds[0]?.lacp, { mode: 'active', rate: 'slow', system_priority: 65535, fallback: 'none' });
});

test('a port with neither vlan nor trunks is left without a vlan (an access port of VLAN 1)', (t) => {
  const config = parseConfig(yaml('ports:', '  - name: p1'), FILE);
  t.deepEqual(config.ports, [{ name: 'p1' }]);
});

test('config/switch.example.yaml parses without error', (t) => {
  const config = loadConfig(resolve('config/switch.example.yaml'));
  t.true(config.ports.length > 0);
  t.true(config.bonds.length > 0);
});

test('config/default.yaml is the demo config', (t) => {
  const config = loadConfig(resolve('config/default.yaml'));
  t.is(config.bridge, 'vsd-demo-br');
  t.is(config.workers, 2);
  t.is(config.metrics.listen, '127.0.0.1:9417');
  t.is(config.control.socket, '/run/vswitchd/demo.sock');
  t.deepEqual(config.ports, [
    { name: 'vsd-demo-br', type: 'internal', vlan: 10 },
    { name: 'vsd-demo-h1', vlan: 10 },
    { name: 'vsd-demo-h2', vlan: 10 },
    { name: 'vsd-demo-h3', vlan: 20 },
    { name: 'vsd-demo-h4', vlan: 20 },
  ]);
});

// --- one issue each --------------------------------------------------------

test('an unknown key names the keys that are known', (t) => {
  assertOneIssue(t, yaml('workers: 2', 'datapath:', '  xdp_mod: native'), {
    line: 3,
    column: 3,
    path: 'datapath.xdp_mod',
    message: 'unknown key (expected one of: xdp_mode, frames_per_worker, fast_path)',
  });
});

test('an unknown top-level key', (t) => {
  assertOneIssue(t, yaml('bridge: br0', 'portz: []'), {
    line: 2,
    column: 1,
    path: 'portz',
    message: 'unknown key (expected one of: bridge, bridge_mac, workers,',
  });
});

test('a wrong type says what was expected and what was found', (t) => {
  assertOneIssue(t, yaml('workers: two'), {
    line: 1,
    column: 10,
    path: 'workers',
    message: 'expected an integer in 1..64, got "two"',
  });
});

test('a string where a VLAN number belongs', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: "10"'), {
    line: 3,
    column: 11,
    path: 'ports[0].vlan',
    message: 'expected an integer in 1..4094, got "10"',
  });
});

test('a duplicate port name points at the second and names the line of the first', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: veth-c1', '    vlan: 10', '  - name: veth-c1', '    vlan: 20'), {
    line: 4,
    column: 11,
    path: 'ports[1].name',
    message: 'duplicate port name "veth-c1" (first at line 2)',
  });
});

test('VLAN 0 is out of range', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: 0'), {
    line: 3,
    column: 11,
    path: 'ports[0].vlan',
    message: 'expected an integer in 1..4094, got 0',
  });
});

test('VLAN 4095 is out of range', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: 4095'), {
    line: 3,
    column: 11,
    path: 'ports[0].vlan',
    message: 'expected an integer in 1..4094, got 4095',
  });
});

test('a trunk VLAN out of range is reported at its list entry', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    trunks: [10, 4095]'), {
    line: 3,
    column: 18,
    path: 'ports[0].trunks[1]',
    message: 'expected an integer in 1..4094, got 4095',
  });
});

test('native_vlan without trunks', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    native_vlan: 5'), {
    line: 3,
    column: 18,
    path: 'ports[0].native_vlan',
    message: 'native_vlan needs trunks',
  });
});

test('vlan and trunks together', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: 10', '    trunks: [10, 20]'), {
    line: 4,
    column: 13,
    path: 'ports[0].trunks',
    message: 'expected either vlan (access port) or trunks (trunk port), got both',
  });
});

test('a malformed static MAC', (t) => {
  assertOneIssue(
    t,
    yaml('ports:', '  - { name: p1, vlan: 10 }', 'fdb:', '  static:', '    - { mac: "02:00:00:00:01", vlan: 10, port: p1 }'),
    { line: 5, column: 14, path: 'fdb.static[0].mac', message: 'expected a MAC address like "02:00:00:00:00:01", got "02:00:00:00:01"' },
  );
});

test('a multicast static MAC', (t) => {
  assertOneIssue(
    t,
    yaml('ports:', '  - { name: p1, vlan: 10 }', 'fdb:', '  static:', '    - mac: "01:00:5e:00:00:01"', '      vlan: 10', '      port: p1'),
    { line: 5, column: 12, path: 'fdb.static[0].mac', message: 'multicast MAC cannot be a static unicast entry' },
  );
});

test('a static entry pointing to an unknown port', (t) => {
  assertOneIssue(
    t,
    yaml('ports:', '  - { name: p1, vlan: 10 }', 'fdb:', '  static:', '    - mac: "02:00:00:00:00:01"', '      vlan: 10', '      port: p2'),
    { line: 7, column: 13, path: 'fdb.static[0].port', message: 'expected the name of a port or bond, got "p2"' },
  );
});

test('a static entry in a VLAN its port does not carry', (t) => {
  assertOneIssue(
    t,
    yaml('ports:', '  - { name: p1, vlan: 10 }', 'fdb:', '  static:', '    - { mac: "02:00:00:00:00:01", vlan: 20, port: p1 }'),
    { line: 5, column: 51, path: 'fdb.static[0].port', message: 'port "p1" does not carry VLAN 20' },
  );
});

test('a YAML syntax error has its line and column', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: [10', 'workers: 2'), {
    line: 4,
    column: 1,
    path: '',
    message: 'YAML syntax error: ',
  });
});

test('a duplicate YAML key points at the second key', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    vlan: 10', '    vlan: 20'), {
    line: 4,
    column: 5,
    path: 'ports[0].vlan',
    message: 'duplicate key "vlan"',
  });
});

test('a top-level document that is not a mapping', (t) => {
  assertOneIssue(t, yaml('- name: p1'), {
    line: 1,
    column: 1,
    path: '',
    message: 'expected a mapping at the top level, got a list',
  });
});

test('a missing required key points at its parent', (t) => {
  assertOneIssue(t, yaml('ports:', '  - vlan: 10'), {
    line: 2,
    column: 5,
    path: 'ports[0].name',
    message: 'missing required key (expected a name of 1..15 characters',
  });
});

test('a name longer than IFNAMSIZ allows', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: abcdefghijklmnop'), {
    line: 2,
    column: 11,
    path: 'ports[0].name',
    message: 'expected a name of 1..15 characters from [A-Za-z0-9_.:-], got "abcdefghijklmnop"',
  });
});

test('frames_per_worker must be a power of two', (t) => {
  assertOneIssue(t, yaml('datapath:', '  frames_per_worker: 3000'), {
    line: 2,
    column: 22,
    path: 'datapath.frames_per_worker',
    message: 'expected a power of two in 1024..262144, got 3000',
  });
});

test('the bridge-named port must be internal', (t) => {
  assertOneIssue(t, yaml('bridge: br1', 'ports:', '  - { name: br1, type: tap }'), {
    line: 3,
    column: 24,
    path: 'ports[0].type',
    message: 'expected internal',
  });
});

test('type internal on a port not named like the bridge', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: p1', '    type: internal'), {
    line: 3,
    column: 11,
    path: 'ports[0].type',
    message: 'type internal is only for the port named like the bridge ("br0")',
  });
});

test('a bond member must not also be a port', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: eth0', 'bonds:', '  - name: b', '    members: [eth0, eth1]'), {
    line: 5,
    column: 15,
    path: 'bonds[0].members[0]',
    message: '"eth0" is also listed as a port (line 2)',
  });
});

test('a member in two bonds', (t) => {
  assertOneIssue(t, yaml('bonds:', '  - { name: b1, members: [eth0] }', '  - { name: b2, members: [eth0] }'), {
    line: 3,
    column: 27,
    path: 'bonds[1].members[0]',
    message: '"eth0" is already a member of bond "b1" (first at line 2)',
  });
});

test('a bond needs a member', (t) => {
  assertOneIssue(t, yaml('bonds:', '  - name: b', '    members: []'), {
    line: 3,
    column: 14,
    path: 'bonds[0].members',
    message: 'expected a non-empty list of member interface names, got an empty list',
  });
});

test('a lacp block needs mode lacp', (t) => {
  assertOneIssue(t, yaml('bonds:', '  - name: b', '    members: [e0]', '    lacp: { rate: fast }'), {
    line: 4,
    column: 11,
    path: 'bonds[0].lacp',
    message: 'a lacp block needs mode lacp, got mode "active-backup"',
  });
});

test('a bond primary must be a member', (t) => {
  assertOneIssue(t, yaml('bonds:', '  - name: b', '    members: [e0, e1]', '    primary: e2'), {
    line: 4,
    column: 14,
    path: 'bonds[0].primary',
    message: 'expected one of the bond\'s members (e0, e1), got "e2"',
  });
});

test('a bond and a port with the same name', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: x', 'bonds:', '  - { name: x, members: [e0] }'), {
    line: 4,
    column: 13,
    path: 'bonds[0].name',
    message: 'bond name is already a port name "x" (first at line 2)',
  });
});

// --- all issues at once ----------------------------------------------------

test('every issue is collected, in source order, and the message lists them all', (t) => {
  const text = yaml(
    'workers: 0', // 1
    'datapath:', // 2
    '  xdp_mode: fast', // 3
    'ports:', // 4
    '  - name: p1', // 5
    '    vlan: 5000', // 6
    '  - name: p1', // 7
    'fdb:', // 8
    '  static:', // 9
    '    - { mac: "ff:ff:ff:ff:ff:ff", vlan: 10, port: nope }', // 10
  );
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  const got = (err?.issues ?? []).map((i) => `${i.line}:${i.column} ${i.path}`);
  t.deepEqual(got, [
    '1:10 workers',
    '3:13 datapath.xdp_mode',
    '6:11 ports[0].vlan',
    '7:11 ports[1].name',
    '10:14 fdb.static[0].mac',
    '10:51 fdb.static[0].port',
  ]);
  const lines = err?.message.split('\n') ?? [];
  t.is(lines.length, 6);
  t.is(lines[0], 'switch.yaml:1:10: workers: expected an integer in 1..64, got 0');
  t.is(lines[1], 'switch.yaml:3:13: datapath.xdp_mode: expected one of: auto, native, generic, got "fast"');
});

// --- files and paths -------------------------------------------------------

test('loadConfig reads a file and reports issues under its name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vsd-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'workers: 3\n');
  t.is(loadConfig(good).workers, 3);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'workers: 99\n');
  const err = t.throws(() => loadConfig(bad), { instanceOf: ConfigError });
  t.is(err?.issues[0]?.file, bad);
  t.true(err?.message.startsWith(`${bad}:1:10: workers: `));
});

test('an unreadable file is a ConfigError at line 0 with the OS reason', (t) => {
  const missing = join(tmpdir(), 'vsd-no-such-dir', 'switch.yaml');
  const err = t.throws(() => loadConfig(missing), { instanceOf: ConfigError });
  t.is(err?.issues.length, 1);
  const issue = err?.issues[0];
  t.is(issue?.line, 0);
  t.is(issue?.column, 0);
  t.is(issue?.path, '');
  t.true(issue?.message.includes('ENOENT'));
});

test('formatPath writes paths as an operator reads them', (t) => {
  t.is(formatPath(['ports', 1, 'vlan']), 'ports[1].vlan');
  t.is(formatPath(['fdb', 'static', 0, 'mac']), 'fdb.static[0].mac');
  t.is(formatPath(['workers']), 'workers');
  t.is(formatPath([]), '');
  t.is(formatPath(['ports', 0, 'odd key']), 'ports[0]["odd key"]');
});

test('parsePortConfig (vswitchctl port add) takes what a ports: entry takes and refuses it the same way', (t) => {
  t.deepEqual(parsePortConfig({ name: 'vm:1', vlan: 10 }), { name: 'vm:1', vlan: 10 }, 'a ":" in the name, as the config allows');
  t.deepEqual(parsePortConfig({ name: 'tap-a', type: 'tap', trunks: [10, 20], native_vlan: 5 }), { name: 'tap-a', type: 'tap', trunks: [10, 20], native_vlan: 5 });
  t.throws(() => parsePortConfig({ name: 'tap-a', vlan: 5000 }), { message: 'vlan: expected an integer in 1..4094, got 5000' });
  t.throws(() => parsePortConfig({ name: 'tap-a', vlan: 10, trunks: [20] }), { message: 'trunks: expected either vlan (access port) or trunks (trunk port), got both' });
  t.throws(() => parsePortConfig({ name: 'tap-a', native_vlan: 3 }), { message: /^native_vlan: native_vlan needs trunks/ });
  t.throws(() => parsePortConfig({ name: 'abcdefghijklmnop' }), { message: /^name: expected a name of 1\.\.15 characters/ });
  t.throws(() => parsePortConfig({ name: 'tap-a', colour: 'red' }), { message: /^colour: unknown key/ });
});

// --- hostile files (issue 12): bounded time, bounded output, a position on every line ---

const LINE_RE = /^switch\.yaml:\d+:\d+: /;

/** Checks text, in well under a second, and returns the printed message's lines. */
function hostile(t: ExecutionContext, text: string): string[] {
  const start = performance.now();
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  // How long is logged, not asserted (no timed tests): what the limits give is the error
  // list below, capped, instead of one message per key.
  t.log(`checked in ${(performance.now() - start).toFixed(0)} ms`);
  const lines = (err?.message ?? '').split('\n');
  for (const line of lines) t.regex(line, LINE_RE);
  return lines;
}

test('a file over the size limit is refused at once, without reading it all', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vsd-big-'));
  try {
    const file = join(dir, 'switch.yaml');
    writeFileSync(file, 'ports:\n' + '  - name: p\n    vlan: 1\n'.repeat(400_000));  // 10 MB
    const start = performance.now();
    const err = t.throws(() => loadConfig(file), { instanceOf: ConfigError });
    t.log(`refused in ${(performance.now() - start).toFixed(1)} ms`);
    t.is(err?.issues.length, 1);
    t.regex(err?.message ?? '', new RegExp(`^${file}:1:1: the config file is 9600007 bytes, more than the ${MAX_CONFIG_BYTES} bytes \\(256 KiB\\)`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // A device that never ends: at most one byte past the limit is read.
  const err = t.throws(() => loadConfig('/dev/zero'), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /^\/dev\/zero:1:1: the config file is larger than that, more than the 262144 bytes/);
});

test('thousands of errors: the first 20 are printed, then where the rest start and how many', (t) => {
  const text = yaml('ports:', ...Array.from({ length: 3000 }, (_, i) => `  - { name: p${i}, vlan: 0 }`));
  const lines = hostile(t, text);
  t.is(lines.length, MAX_SHOWN_ISSUES + 1);
  t.is(lines[0], 'switch.yaml:2:23: ports[0].vlan: expected an integer in 1..4094, got 0');
  t.is(lines[MAX_SHOWN_ISSUES], 'switch.yaml:22:24: ... and 2980 more errors from here on, not shown');
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  t.is(err?.issues.length, 3000, 'every issue is still collected (reload logs the count)');
  t.is(err?.shownIssues.length, MAX_SHOWN_ISSUES);
});

test('deep nesting is reported as nesting, where it goes too deep', (t) => {
  const flow = (n: number) => `bridge: ${'['.repeat(n)}${']'.repeat(n)}\n`;
  const lines = hostile(t, flow(100_000));
  t.deepEqual(lines, [`switch.yaml:1:${9 + MAX_NESTING}: mappings and lists nested more than ${MAX_NESTING} deep (a switch config needs 4)`]);
  // The top-level mapping and 31 lists are 32 levels: an ordinary error, no depth error.
  t.regex(hostile(t, flow(MAX_NESTING - 1))[0]!, /bridge: expected a name/);
  const block = Array.from({ length: 5000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n');
  t.regex(hostile(t, block)[0]!, new RegExp(`^switch\\.yaml:${MAX_NESTING + 1}:\\d+: mappings and lists nested more than`));
});

test('tens of thousands of duplicate keys, syntax errors or values: the first errors and a count of the rest', (t) => {
  const dups = hostile(t, 'workers: 1\n'.repeat(20_000));
  t.is(dups[0], 'switch.yaml:2:1: workers: duplicate key "workers" (keys of a mapping must be unique)');
  t.regex(dups[MAX_SHOWN_ISSUES]!, /and 19979 more errors/);
  const junk = hostile(t, ': : :\n\t- [ }\n'.repeat(10_000));
  t.regex(junk[0]!, /YAML syntax error/);
  const values = hostile(t, yaml('ports:', `  - { name: a, trunks: [${'7,'.repeat(MAX_VALUES + 10)}7] }`));
  t.regex(values[0]!, new RegExp(`^switch\\.yaml:2:\\d+: more than ${MAX_VALUES} values`));
});

// --- port slots (issue 12): --check refuses what start would ---

const ports = (n: number, first = 0) => Array.from({ length: n }, (_, i) => `  - { name: p${first + i}, vlan: 1 }`);

test(`the internal port and ${MAX_PORTS - 1} ports fit; one more is refused where it stands`, (t) => {
  t.is(parseConfig(yaml('ports:', ...ports(MAX_PORTS - 1)), FILE).ports.length, MAX_PORTS - 1);
  // Listing the internal port does not take a second slot.
  t.is(parseConfig(yaml('ports:', '  - { name: br0, vlan: 1 }', ...ports(MAX_PORTS - 1)), FILE).ports.length, MAX_PORTS);
  assertOneIssue(t, yaml('ports:', ...ports(MAX_PORTS)), {
    line: MAX_PORTS + 1,
    column: 13,
    path: `ports[${MAX_PORTS - 1}].name`,
    message: `too many ports: ${MAX_PORTS + 1} port slots, at most ${MAX_PORTS}`,
  });
});

test('a bond and each of its members take a port slot', (t) => {
  const text = yaml('ports:', ...ports(MAX_PORTS - 3), 'bonds:', '  - { name: bond0, members: [e0, e1] }');
  assertOneIssue(t, text, { line: MAX_PORTS, column: 34, path: 'bonds[0].members[1]', message: 'too many ports' });
  t.is(parseConfig(yaml('ports:', ...ports(MAX_PORTS - 4), 'bonds:', '  - { name: bond0, members: [e0, e1] }'), FILE).bonds.length, 1);
});

// --- bridge_mac (issue 12) ---

test('bridge_mac: a unicast MAC, lowercased; absent by default', (t) => {
  t.is(parseConfig(yaml('bridge_mac: 02:AB:00:00:00:01'), FILE).bridge_mac, '02:ab:00:00:00:01');
  t.false('bridge_mac' in parseConfig('', FILE));
  assertOneIssue(t, yaml('bridge: br0', 'bridge_mac: 01:00:5e:00:00:01'), { line: 2, column: 13, path: 'bridge_mac', message: "multicast MAC cannot be the bridge's MAC" });
  assertOneIssue(t, yaml('bridge_mac: "00:00:00:00:00:00"'), { line: 1, column: 13, path: 'bridge_mac', message: "the all-zero MAC cannot be the bridge's MAC" });
  assertOneIssue(t, yaml('bridge_mac: 02:00:00:00:01'), { line: 1, column: 13, path: 'bridge_mac', message: 'expected a MAC address like' });
  assertOneIssue(t, yaml('bridge_mac: 5'), { line: 1, column: 13, path: 'bridge_mac', message: 'expected a MAC address like' });
});

test('vxlan: local, port (default 4789) and vnis; absent by default', (t) => {
  t.is(parseConfig('', FILE).vxlan, undefined);
  const config = parseConfig(yaml('vxlan:', '  local: 10.255.0.1', '  vnis:', '    - { vlan: 10, vni: 10010 }', '    - { vlan: 20, vni: 10020 }'), FILE);
  t.deepEqual(config.vxlan, { local: '10.255.0.1', port: 4789, vnis: [{ vlan: 10, vni: 10010 }, { vlan: 20, vni: 10020 }] });
  t.deepEqual(loadConfig(resolve('config/switch.example.yaml')).vxlan?.vnis.length, 2);
});

test('vxlan: a local address that is not IPv4', (t) => {
  assertOneIssue(t, yaml('vxlan:', '  local: 10.255.0.300'), {
    line: 2,
    column: 10,
    path: 'vxlan.local',
    message: 'expected an IPv4 address (the VTEP, like 10.255.0.1), got "10.255.0.300"',
  });
});

test('vxlan: a VNI out of range', (t) => {
  assertOneIssue(t, yaml('vxlan:', '  local: 10.255.0.1', '  vnis:', '    - { vlan: 10, vni: 16777216 }'), {
    line: 4,
    column: 24,
    path: 'vxlan.vnis[0].vni',
    message: 'expected an integer in 1..16777215, got 16777216',
  });
});

test('vxlan: a VLAN mapped to two VNIs points at the second', (t) => {
  assertOneIssue(t, yaml('vxlan:', '  local: 10.255.0.1', '  vnis:', '    - { vlan: 10, vni: 10010 }', '    - { vlan: 10, vni: 10011 }'), {
    line: 5,
    column: 15,
    path: 'vxlan.vnis[1].vlan',
    message: 'vlan 10 is mapped twice (first at line 4)',
  });
});

test('vxlan: an unknown key', (t) => {
  assertOneIssue(t, yaml('vxlan:', '  local: 10.255.0.1', '  remote: 10.255.0.2'), {
    line: 3,
    column: 3,
    path: 'vxlan.remote',
    message: 'unknown key (expected one of: local, port, vnis)',
  });
});

test('vxlan: a port may not take a tunnel device name', (t) => {
  assertOneIssue(t, yaml('ports:', '  - { name: vsw-tn10010, vlan: 10 }'), {
    line: 2,
    column: 13,
    path: 'ports[0].name',
    message: '"vsw-tn10010" is the name of a VXLAN tunnel device vswitchd creates',
  });
});

// --- port security, storm control, policing (issue 14) ----------------------

test('port security, storm control and policing keys come back validated, MACs lowercase, burst defaulted to 200 ms of the rate', (t) => {
  const cfg = parseConfig(
    yaml(
      'ports:',
      '  - name: tap-vm1',
      '    vlan: 10',
      '    security:',
      '      macs: ["52:54:00:12:34:AB"]',
      '      ips: ["10.0.10.5", "fd00:10::5"]',
      '    storm_control: { broadcast: 1000, multicast: 5000, unknown_unicast: 1000 }',
      '    policing: { rate_kbps: 100000 }',
    ),
    FILE,
  );
  t.deepEqual(cfg.ports[0], {
    name: 'tap-vm1',
    vlan: 10,
    security: { macs: ['52:54:00:12:34:ab'], ips: ['10.0.10.5', 'fd00:10::5'] },
    storm_control: { broadcast: 1000, multicast: 5000, unknown_unicast: 1000 },
    policing: { rate_kbps: 100000, burst_kb: 20000 },
  });
  // The default burst: 200 ms of the rate, at least 8000 kbit (OVS's default), at most the key's maximum.
  const burst = (rate: number) => parseConfig(yaml('ports:', '  - name: a', `    policing: { rate_kbps: ${rate} }`), FILE).ports[0]!.policing!.burst_kb;
  t.is(burst(10_000), 8000);
  t.is(burst(100_000), 20_000);
  t.is(burst(100_000_000), 1_000_000);
  t.is(parseConfig(yaml('ports:', '  - name: a', '    policing: { rate_kbps: 100000, burst_kb: 1000 }'), FILE).ports[0]!.policing!.burst_kb, 1000);
});

test('nativePolicy: kilobits are 1000 bits (rate in bytes/s, burst in bytes); storm classes in order', (t) => {
  t.deepEqual(nativePolicy({ name: 'p', security: { macs: ['02:00:00:00:00:01'] }, storm_control: { multicast: 50 }, policing: { rate_kbps: 100000, burst_kb: 1000 } }), {
    macs: ['02:00:00:00:00:01'],
    storm: [0, 50, 0],
    policeRate: 12_500_000,
    policeBurst: 125_000,
  });
  t.deepEqual(nativePolicy({ name: 'p' }), {});
});

test('a security MAC that is not one, or is multicast, is refused at its position', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', '      macs: ["52:54:00:12:34"]'), {
    line: 4, column: 14, path: 'ports[0].security.macs[0]', message: 'expected a MAC address like "02:00:00:00:00:01", got "52:54:00:12:34"',
  });
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', '      macs: ["01:00:5e:00:00:01"]'), {
    line: 4, column: 14, path: 'ports[0].security.macs[0]', message: "multicast MAC cannot be a port's source MAC",
  });
});

test('more than 8 security MACs, or 9 addresses of one family, are refused', (t) => {
  const macs = Array.from({ length: 9 }, (_, i) => `"02:00:00:00:00:0${i}"`).join(', ');
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', `      macs: [${macs}]`), {
    line: 4, column: 13, path: 'ports[0].security.macs', message: 'expected a list of up to 8 unicast MACs',
  });
  const ips = Array.from({ length: 9 }, (_, i) => `"10.0.0.${i + 1}"`).join(', ');
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', `      ips: [${ips}, "fd00::1"]`), {
    line: 4, column: 109, path: 'ports[0].security.ips[8]', message: 'too many IPv4 addresses: at most 8 per port',
  });
});

test('security.learn: 1..8 MACs learned then locked, alone, beside macs (8 in all) and with ips', (t) => {
  const port = (...lines: string[]) => parseConfig(yaml('ports:', '  - name: a', '    security:', ...lines), FILE).ports[0]!.security;
  t.deepEqual(port('      learn: 2'), { learn: 2 });
  t.deepEqual(port('      macs: ["52:54:00:12:34:AB"]', '      learn: 7', '      ips: ["10.0.0.5"]'), { macs: ['52:54:00:12:34:ab'], ips: ['10.0.0.5'], learn: 7 });
  for (const bad of ['0', '9', '1.5', '"one"']) {
    assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', `      learn: ${bad}`), {
      line: 4, column: 14, path: 'ports[0].security.learn', message: `expected an integer in 1..8, got ${bad}`,
    });
  }
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', '      macs: ["02:00:00:00:00:01", "02:00:00:00:00:02"]', '      learn: 7'), {
    line: 5, column: 14, path: 'ports[0].security.learn', message: 'too many MACs: macs lists 2 and learn adds 7; at most 8 in all',
  });
});

test('nativePolicy with security.learn: the listed then the learned MACs; learn set until N are learned', (t) => {
  const cfg = { name: 'p', security: { macs: ['02:00:00:00:00:01'], learn: 2 } };
  t.deepEqual(nativePolicy(cfg), { macs: ['02:00:00:00:00:01'], learn: true });
  t.deepEqual(nativePolicy(cfg, ['02:00:00:00:00:0a']), { macs: ['02:00:00:00:00:01', '02:00:00:00:00:0a'], learn: true });
  t.deepEqual(nativePolicy(cfg, ['02:00:00:00:00:0a', '02:00:00:00:00:0b']), { macs: ['02:00:00:00:00:01', '02:00:00:00:00:0a', '02:00:00:00:00:0b'] }, 'locked');
  t.deepEqual(nativePolicy({ name: 'p', security: { learn: 1 } }), { macs: [], learn: true }, 'nothing allowed yet: every MAC goes up');
});

test('a security address that is not an IPv4 or IPv6 address (a prefix, a name) is refused', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: a', '    security:', '      ips: ["10.0.0.5/24"]'), {
    line: 4, column: 13, path: 'ports[0].security.ips[0]', message: 'expected an IPv4 or IPv6 address (no prefix length), got "10.0.0.5/24"',
  });
});

test('storm caps and policing rates out of range, and unknown keys, are refused with their path', (t) => {
  assertOneIssue(t, yaml('ports:', '  - name: a', '    storm_control:', '      broadcast: 0'), {
    line: 4, column: 18, path: 'ports[0].storm_control.broadcast', message: 'expected an integer in 1..100000000, got 0',
  });
  assertOneIssue(t, yaml('ports:', '  - name: a', '    storm_control:', '      broadcst: 10'), {
    line: 4, column: 7, path: 'ports[0].storm_control.broadcst', message: 'unknown key (expected one of: broadcast, multicast, unknown_unicast)',
  });
  assertOneIssue(t, yaml('ports:', '  - name: a', '    policing:', '      burst_kb: 10'), {
    line: 4, column: 7, path: 'ports[0].policing.rate_kbps', message: 'missing required key (expected an integer in 1..100000000)',
  });
  assertOneIssue(t, yaml('ports:', '  - name: a', '    policing:', '      rate_kbps: 1.5'), {
    line: 4, column: 18, path: 'ports[0].policing.rate_kbps', message: 'expected an integer in 1..100000000, got 1.5',
  });
});
