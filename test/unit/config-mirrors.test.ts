// The mirrors: key (issue 14): what a valid mirror parses to, and every refusal
// with its file:line:column and key path.
import test from 'ava';
import { ConfigError, parseConfig, type ConfigIssue } from '../../src/switch/config/config.js';

const FILE = 'switch.yaml';

function yaml(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

const PORTS = [
  'ports:',
  '  - name: tap-vm1',      // line 2
  '    vlan: 10',
  '  - name: tap-vm2',      // line 4
  '    vlan: 10',
  '  - name: tap-ids',      // line 6
  '  - name: tap-ids2',     // line 7
  'bonds:',
  '  - name: up0',          // line 9
  '    members: [eth0, eth1]',
];

function issuesOf(t: import('ava').ExecutionContext, text: string): ConfigIssue[] {
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  return err?.issues ?? [];
}

function oneIssue(t: import('ava').ExecutionContext, text: string, want: { line: number; column: number; path: string; message: string }): void {
  const issues = issuesOf(t, text);
  t.is(issues.length, 1, JSON.stringify(issues));
  const [issue] = issues;
  if (!issue) return;
  t.is(`${issue.file}:${issue.line}:${issue.column}`, `${FILE}:${want.line}:${want.column}`, JSON.stringify(issue));
  t.is(issue.path, want.path);
  t.true(issue.message.includes(want.message), issue.message);
}

test('a mirror parses with its defaults: direction both, no VLAN filter', (t) => {
  const cfg = parseConfig(yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids'), FILE);
  t.deepEqual(cfg.mirrors, [{ name: 'span0', select: { ports: ['tap-vm1'], direction: 'both' }, output: 'tap-ids' }]);
});

test('a mirror may select by VLANs alone, and the internal port may be a source', (t) => {
  const cfg = parseConfig(yaml(...PORTS, 'mirrors:',
    '  - name: v10', '    select: { vlans: [10, 20], direction: ingress }', '    output: tap-ids',
    '  - name: host', '    select: { ports: [br0], direction: egress }', '    output: tap-ids2'), FILE);
  t.deepEqual(cfg.mirrors.map((m) => m.select), [{ vlans: [10, 20], direction: 'ingress' }, { ports: ['br0'], direction: 'egress' }]);
});

test('no mirrors key: an empty list', (t) => {
  t.deepEqual(parseConfig(yaml(...PORTS), FILE).mirrors, []);
});

test('an unknown port in select is refused where it is written', (t) => {
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1, tap-nope] }', '    output: tap-ids'),
    { line: 13, column: 32, path: 'mirrors[0].select.ports[1]', message: 'expected the name of a port, got "tap-nope"' });
});

test('an unknown output port is refused', (t) => {
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-gone'),
    { line: 14, column: 13, path: 'mirrors[0].output', message: 'expected the name of a port, got "tap-gone"' });
});

test('the output cannot also be selected, by its own mirror or another', (t) => {
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1, tap-ids] }', '    output: tap-ids'),
    { line: 14, column: 13, path: 'mirrors[0].output', message: 'output port "tap-ids" is also selected by this mirror' });
  oneIssue(t, yaml(...PORTS, 'mirrors:',
    '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids',
    '  - name: span1', '    select: { ports: [tap-ids] }', '    output: tap-ids2'),
  { line: 14, column: 13, path: 'mirrors[0].output', message: 'selected by mirror "span1" (line 16)' });
});

test('a port is the output of one mirror at most', (t) => {
  oneIssue(t, yaml(...PORTS, 'mirrors:',
    '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids',
    '  - name: span1', '    select: { ports: [tap-vm2] }', '    output: tap-ids'),
  { line: 17, column: 13, path: 'mirrors[1].output', message: 'already the output of mirror "span0" (line 14)' });
});

test('duplicate mirror names, an empty selection, a bad direction, bonds and the internal port are refused', (t) => {
  oneIssue(t, yaml(...PORTS, 'mirrors:',
    '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids',
    '  - name: span0', '    select: { ports: [tap-vm2] }', '    output: tap-ids2'),
  { line: 15, column: 11, path: 'mirrors[1].name', message: 'duplicate mirror name "span0" (first at line 12)' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { direction: both }', '    output: tap-ids'),
    { line: 13, column: 13, path: 'mirrors[0].select', message: 'expected ports and/or vlans' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1], direction: sideways }', '    output: tap-ids'),
    { line: 13, column: 44, path: 'mirrors[0].select.direction', message: 'expected one of: both, ingress, egress, got "sideways"' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [up0] }', '    output: tap-ids'),
    { line: 13, column: 23, path: 'mirrors[0].select.ports[0]', message: '"up0" is a bond' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [eth0] }', '    output: tap-ids'),
    { line: 13, column: 23, path: 'mirrors[0].select.ports[0]', message: '"eth0" is a member of bond "up0"' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: br0'),
    { line: 14, column: 13, path: 'mirrors[0].output', message: "the bridge's internal port" });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1], vlans: [5000] }', '    output: tap-ids'),
    { line: 13, column: 41, path: 'mirrors[0].select.vlans[0]', message: 'expected an integer in 1..4094, got 5000' });
  oneIssue(t, yaml(...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids', '    extra: 1'),
    { line: 15, column: 5, path: 'mirrors[0].extra', message: 'unknown key (expected one of: name, select, output)' });
});

test('a static FDB entry on a mirror output is refused (it receives only copies)', (t) => {
  oneIssue(t, yaml('fdb:', '  static:', '  - { mac: "02:00:00:00:00:09", vlan: 1, port: tap-ids }', ...PORTS, 'mirrors:', '  - name: span0', '    select: { ports: [tap-vm1] }', '    output: tap-ids'),
    { line: 3, column: 48, path: 'fdb.static[0].port', message: 'is the output of mirror "span0"' });
});
