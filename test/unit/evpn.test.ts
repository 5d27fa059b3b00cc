// The EVPN control surface without root: kernel commands and the `bridge` processes are
// fakes; the lines fed to the monitor are what `bridge monitor fdb` printed with FRR 8.4
// and Linux 6.18 here (zebra's remote MACs and flood list, our static entries).
import test from 'ava';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { pino } from 'pino';
import { Evpn, parseFdbLine } from '../../src/switch/tunnel/evpn.js';
import { FdbManager } from '../../src/switch/l2/fdb.js';
import { FakeClock, FakeFdbTable } from './fake-fdb-table.js';

const M = '02:00:00:00:0a:01';

function fakeChild(): ChildProcessWithoutNullStreams & { written: string[] } {
  const child = new EventEmitter() as ChildProcessWithoutNullStreams & { written: string[] };
  const stdin = new PassThrough();
  child.written = [];
  stdin.on('data', (d: Buffer) => child.written.push(...d.toString().split('\n').filter(Boolean)));
  Object.assign(child, { stdin, stdout: new PassThrough(), stderr: new PassThrough(), kill: () => true });
  return child;
}

async function setup(dump = '', reconcile = true) {
  const commands: string[] = [];
  const children: Record<string, ReturnType<typeof fakeChild>> = {};
  const remote: [number, string, string | undefined][] = [];
  const evpn = new Evpn({
    config: { local: '10.255.0.1', port: 4789, vnis: [{ vlan: 10, vni: 10010 }] },
    log: pino({ level: 'silent' }),
    onRemote: (vlan, mac, vtep) => remote.push([vlan, mac, vtep]),
    sh: async (cmd, args) => {
      commands.push([cmd, ...args].join(' '));
      return cmd === 'bridge' && args[0] === 'fdb' ? dump : '';
    },
    spawn: (_cmd, args) => (children[args.includes('monitor') ? 'monitor' : 'batch'] = fakeChild()),
  });
  await evpn.start();
  if (reconcile) await evpn.reconcile();
  const feed = async (...lines: string[]) => {
    (children.monitor!.stdout as unknown as PassThrough).write(lines.join('\n') + '\n');
    await new Promise((r) => setImmediate(r));
  };
  return { evpn, commands, children, remote, feed };
}

test('parseFdbLine reads the monitor and show formats', (t) => {
  t.like(parseFdbLine('02:00:00:00:0A:01 dev vsw-vx10010 dst 10.255.0.2 self extern_learn '), { deleted: false, mac: M, dev: 'vsw-vx10010', dst: '10.255.0.2', self: true, externLearn: true });
  t.like(parseFdbLine('Deleted 02:00:00:00:0a:01 dev vsw-vx10010 extern_learn master vsw-br10010 '), { deleted: true, master: 'vsw-br10010', self: false });
  t.like(parseFdbLine('00:00:00:00:00:00 dev vsw-vx10010 dst 10.255.0.2 self permanent'), { mac: '00:00:00:00:00:00', permanent: true });
  t.is(parseFdbLine('junk'), undefined);
});

test('start creates the VNI objects zebra needs: bridge, VXLAN device with learning off, the pair', async (t) => {
  const { commands, evpn } = await setup();
  t.true(commands.includes('ip link add vsw-br10010 type bridge'));
  t.true(commands.includes('ip link add vsw-vx10010 type vxlan id 10010 local 10.255.0.1 dstport 4789 nolearning'));
  t.true(commands.includes('ip link add vsw-tn10010 type veth peer name vsw-tb10010'));
  t.true(commands.includes('bridge link set dev vsw-vx10010 learning off'));
  t.true(commands.includes('bridge link set dev vsw-tb10010 learning off'));
  t.deepEqual(evpn.tunnelPorts(), [{ name: 'vsw-tn10010', type: 'veth', vlan: 10 }]);
});

test('a local MAC is written once as a static entry on the advertise port, and removed', async (t) => {
  const { evpn, children } = await setup();
  evpn.setLocal(10, M, true);
  evpn.setLocal(10, M, true);
  evpn.setLocal(20, M, true);  // no VNI: stays local
  evpn.setLocal(10, M, false);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(children.batch!.written, [`fdb replace ${M} dev vsw-tb10010 master static`, `fdb del ${M} dev vsw-tb10010 master`]);
});

test("zebra's entries: a remote MAC behind its VTEP, the flood list, a withdrawal", async (t) => {
  const { evpn, remote, feed } = await setup();
  await feed(`${M} dev vsw-vx10010 extern_learn master vsw-br10010 `, `${M} dev vsw-vx10010 dst 10.255.0.2 self extern_learn `, '00:00:00:00:00:00 dev vsw-vx10010 dst 10.255.0.2 self permanent');
  t.deepEqual(remote, [[10, M, '10.255.0.2']]);
  t.is(evpn.remoteOf(10, M), '10.255.0.2');
  t.like(evpn.status().vnis[0], { flood_list: ['10.255.0.2'], remote_macs: 1 });
  t.like(evpn.status().vteps[0], { vtep: '10.255.0.2', remote_macs: 1, flood_vnis: [10010] });
  await feed(`Deleted ${M} dev vsw-vx10010 extern_learn master vsw-br10010 `, `Deleted ${M} dev vsw-vx10010 dst 10.255.0.2 self extern_learn `, 'Deleted 00:00:00:00:00:00 dev vsw-vx10010 dst 10.255.0.2 self permanent');
  t.deepEqual(remote, [[10, M, '10.255.0.2'], [10, M, undefined]]);
  t.deepEqual(evpn.status().vnis[0]?.flood_list, []);
});

test('a MAC that comes back here: the bridge entry moves to the advertise port, and it is no longer remote', async (t) => {
  const { evpn, remote, feed } = await setup();
  await feed(`${M} dev vsw-vx10010 extern_learn master vsw-br10010 `, `${M} dev vsw-vx10010 dst 10.255.0.2 self extern_learn `);
  // zebra leaves the VXLAN device's own entry behind; the bridge's says where the MAC is.
  await feed(`${M} dev vsw-tb10010 master vsw-br10010 static`);
  t.deepEqual(remote, [[10, M, '10.255.0.2'], [10, M, undefined]]);
  t.is(evpn.remoteOf(10, M), undefined);
});

test('the full dump at start finds what zebra installed before', async (t) => {
  const { evpn, remote } = await setup(`${M} dev vsw-vx10010 extern_learn master vsw-br10010 \n${M} dev vsw-vx10010 dst 10.255.0.3 self extern_learn \n00:00:00:00:00:00 dev vsw-vx10010 dst 10.255.0.3 self permanent\naa:bb:cc:00:00:01 dev vsw-vx10010 master vsw-br10010 permanent\n`);
  t.deepEqual(remote, [[10, M, '10.255.0.3']]);
  t.deepEqual(evpn.status().vnis[0]?.flood_list, ['10.255.0.3']);
});

test('reconcile deletes static entries on the advertise port that this run did not write', async (t) => {
  const { children, evpn } = await setup(`${M} dev vsw-tb10010 master vsw-br10010 static\n02:00:00:00:0a:02 dev vsw-tb10010 master vsw-br10010 static\n`, false);
  evpn.setLocal(10, '02:00:00:00:0a:02', true);
  await evpn.reconcile();
  await new Promise((r) => setImmediate(r));
  t.true(children.batch!.written.includes(`fdb del ${M} dev vsw-tb10010 master`), JSON.stringify(children.batch!.written));
  t.false(children.batch!.written.includes('fdb del 02:00:00:00:0a:02 dev vsw-tb10010 master'));
});

test('a reload removes a VNI (its remote MACs go) and adds another', async (t) => {
  const { evpn, remote, feed, commands } = await setup();
  await feed(`${M} dev vsw-vx10010 extern_learn master vsw-br10010 `, `${M} dev vsw-vx10010 dst 10.255.0.2 self extern_learn `);
  const dropped: string[] = [];
  const r = await evpn.setConfig({ local: '10.255.0.1', port: 4789, vnis: [{ vlan: 20, vni: 10020 }] }, async (name) => void dropped.push(name));
  t.deepEqual(dropped, ['vsw-tn10010']);
  t.deepEqual(r.added, [{ name: 'vsw-tn10020', type: 'veth', vlan: 20 }]);
  t.deepEqual(r.changes, ['vni 10010 (vlan 10) removed', 'vni 10020 (vlan 20) added']);
  t.deepEqual(remote.at(-1), [10, M, undefined]);
  t.true(commands.includes('ip link del vsw-br10010'));
  t.deepEqual(evpn.status().vnis.map((v) => v.vni), [10020]);
});

test('FdbManager tells every appearance, move and removal (what the advertise port follows)', (t) => {
  const clock = new FakeClock();
  const seen: [number, string, number | undefined][] = [];
  const fdb = new FdbManager({ table: new FakeFdbTable(clock, 64), clock, agingMs: 1000, maxPerPort: 10, onChange: (vlan, mac, port) => seen.push([vlan, mac, port]) });
  fdb.setPortUp(1, true);
  fdb.setPortUp(2, true);
  fdb.learn({ vlan: 10, mac: M, port: 1 });
  fdb.learn({ vlan: 10, mac: M, port: 1 });  // refreshed: nothing to tell
  fdb.learn({ vlan: 10, mac: M, port: 2 });
  t.false(fdb.forget(10, M, 1), 'forget only removes it from the port named');
  t.true(fdb.forget(10, M, 2));
  fdb.learn({ vlan: 10, mac: M, port: 1 });
  clock.advance(2000);
  fdb.age();
  t.deepEqual(seen, [[10, M, 1], [10, M, 2], [10, M, undefined], [10, M, 1], [10, M, undefined]]);
});

test('a reload with another local address rebuilds every VNI; no vxlan section removes them all', async (t) => {
  const { evpn, commands } = await setup();
  const dropped: string[] = [];
  const drop = async (name: string) => void dropped.push(name);
  const r = await evpn.setConfig({ local: '10.255.0.9', port: 4789, vnis: [{ vlan: 10, vni: 10010 }] }, drop);
  t.deepEqual(r.changes, ['vni 10010 (vlan 10) removed', 'vni 10010 (vlan 10) added']);
  t.true(commands.includes('ip link add vsw-vx10010 type vxlan id 10010 local 10.255.0.9 dstport 4789 nolearning'));
  const gone = await evpn.setConfig(undefined, drop);
  t.deepEqual(gone.changes, ['vni 10010 (vlan 10) removed']);
  t.deepEqual(dropped, ['vsw-tn10010', 'vsw-tn10010']);
  t.deepEqual(evpn.status().vnis, []);
});
