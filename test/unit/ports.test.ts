// PortTable against a fake datapath and fake device operations: which file
// descriptors it closes, and when (no root, no devices).

import test from 'ava';
import { pino } from 'pino';
import type { NativeAddon, NativeDatapath } from '../../src/switch/datapath/native.js';
import { CreatedDevices, PortTable, type HostOps, type LearnedMacs } from '../../src/switch/ports/ports.js';

function rig(logLines: string[] = [], learned?: Record<string, LearnedMacs>) {
  const mtus: Array<[number, number]> = [];
  const policies: Array<[number, unknown]> = [];
  const closed: number[] = [];
  const datapathClosed: number[] = [];
  const tapFds = new Map<number, number>();
  let nextFd = 100;
  const native = {
    maxPorts: 256,
    openTap: () => nextFd++,
    closeFd: (fd: number) => void closed.push(fd),
    setTapPersist: () => undefined,
  } as unknown as NativeAddon;
  const datapath = {
    // Like the native Datapath: it takes the tap fd it is given and closes it in removePort.
    addPort: (index: number, _name: string, _queues: number, _mode: string, tapFd?: number) => {
      if (tapFd !== undefined) tapFds.set(index, tapFd);
      return { xdpMode: tapFd !== undefined ? 'none' : 'native', hook: tapFd !== undefined ? 'tap-fd' : 'tc', owners: [0] };
    },
    removePort: (index: number) => {
      const fd = tapFds.get(index);
      if (fd !== undefined) datapathClosed.push(fd);
      tapFds.delete(index);
    },
    setPortVlan: () => undefined,
    setPortActive: () => undefined,
    setPortFast: () => undefined,
    setPortMtu: (index: number, mtu: number) => void mtus.push([index, mtu]),
    setPortPolicy: (index: number, policy: unknown) => void policies.push([index, policy]),
  } as unknown as NativeDatapath;
  const host: HostOps = {
    setLinkUp: async () => undefined,
    linkInfo: async () => undefined,
    prepareDevice: async () => ({ changes: [], warnings: [], peerTakesRedirect: false }),
    restorePeer: async () => [],
    createPuntPair: async () => undefined,
    deleteLink: async () => undefined,
    puntPairExists: () => false,
  };
  const ports = new PortTable({
    native,
    datapath,
    created: new CreatedDevices('/nonexistent/vswitchd-unit/devices.json'),
    xdpMode: 'auto',
    fastPath: 'off',
    bridge: 'br-unit',
    log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
    host,
    ...(learned ? { learned } : {}),
  });
  return { ports, closed, datapathClosed, mtus, policies };
}

test('removing the internal port closes its tap fd once: the datapath closes it, the port table does not again', async (t) => {
  const { ports, closed, datapathClosed } = rig();
  const port = await ports.add({ name: 'br-unit', type: 'internal' }, true, undefined, 42);
  t.true(port.up, 'the internal port is up');
  await ports.remove(port.index);
  t.deepEqual(datapathClosed, [42], 'the datapath closed fd 42');
  t.deepEqual(closed, [], 'the port table closed nothing more (a second close could hit an fd that reused 42)');
});

test('an internal port taken down and then removed: the datapath closes the fd it had, the port table the one it reopened', async (t) => {
  const { ports, closed, datapathClosed } = rig();
  const port = await ports.add({ name: 'br-unit', type: 'internal' }, true, undefined, 42);
  await ports.detach(port, 'test');
  t.deepEqual(datapathClosed, [42], 'detach: the datapath closed fd 42');
  await ports.remove(port.index);
  t.deepEqual(closed, [], 'remove of a down port that holds no fd closes nothing');
});

test('a port MTU goes to the datapath; one above what the switch carries is logged as a warning', async (t) => {
  const lines: string[] = [];
  const { ports, mtus } = rig(lines);
  const port = await ports.add({ name: 'br-unit', type: 'internal' }, true, undefined, 42);
  t.deepEqual(mtus.at(-1), [port.index, 1500], 'at attach: the device MTU (1500: no such device here)');
  t.true(ports.setMtu(port, 9000), 'a change');
  t.false(ports.setMtu(port, 9000), 'the same MTU again is no change');
  t.deepEqual(mtus.at(-1), [port.index, 9000]);
  t.false(lines.some((l) => JSON.parse(l).level === 40), 'MTU 9000: no warning');
  ports.setMtu(port, 9216);
  const warn = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.level === 40);
  t.regex(warn?.msg ?? '', /MTU 9216 is above the 9000 the switch carries/);
});

test('a port\'s policy goes to the datapath when it comes up and when reload changes it (rates in bytes)', async (t) => {
  const { ports, policies } = rig();
  const port = await ports.add({ name: 'br-unit', type: 'internal', security: { macs: ['02:00:00:00:00:01'] } }, true, undefined, 42);
  t.deepEqual(policies.at(-1), [port.index, { macs: ['02:00:00:00:00:01'] }], 'at attach');
  ports.setPolicy(port, { name: 'br-unit', type: 'internal', policing: { rate_kbps: 8, burst_kb: 16 } });
  t.deepEqual(policies.at(-1), [port.index, { policeRate: 1000, policeBurst: 2000 }], 'changed in place');
  ports.setPolicy(port, { name: 'br-unit', type: 'internal' });
  t.deepEqual(policies.at(-1), [port.index, {}], 'removed');
});

test('security.learn: the first N MACs are admitted to the datapath, the last one locks the port; reload and unlock', async (t) => {
  const { ports, policies } = rig();
  const cfg = { name: 'br-unit', type: 'internal' as const, security: { macs: ['02:00:00:00:00:01'], learn: 2 } };
  const port = await ports.add(cfg, true, undefined, 42);
  t.deepEqual(policies.at(-1), [port.index, { macs: ['02:00:00:00:00:01'], learn: true }], 'learning at attach');
  t.is(ports.admitMac(port, '02:00:00:00:00:01'), 'allowed', 'a listed MAC takes no place');
  t.is(ports.admitMac(port, '02:00:00:00:00:0a'), 'admitted');
  t.deepEqual(policies.at(-1), [port.index, { macs: ['02:00:00:00:00:01', '02:00:00:00:00:0a'], learn: true }]);
  t.is(ports.admitMac(port, '02:00:00:00:00:0a'), 'allowed', 'admitted once');
  t.is(ports.admitMac(port, '02:00:00:00:00:0b'), 'admitted');
  t.deepEqual(policies.at(-1), [port.index, { macs: ['02:00:00:00:00:01', '02:00:00:00:00:0a', '02:00:00:00:00:0b'] }], 'locked: learn off');
  const writes = policies.length;
  t.is(ports.admitMac(port, '02:00:00:00:00:0c'), 'refused', 'a third MAC is refused');
  t.is(policies.length, writes, 'and nothing is written');
  t.deepEqual(ports.learnedMacs(), { 'br-unit': { security: cfg.security, macs: ['02:00:00:00:00:0a', '02:00:00:00:00:0b'] } });

  ports.setPolicy(port, { ...cfg, storm_control: { broadcast: 100 } });
  t.deepEqual(port.learned, ['02:00:00:00:00:0a', '02:00:00:00:00:0b'], 'a reload that keeps the security settings keeps the lock');
  t.false((policies.at(-1)![1] as { learn?: boolean }).learn ?? false);
  ports.setPolicy(port, { ...cfg, security: { learn: 2 } });
  t.deepEqual(port.learned, [], 'new security settings unlock it');
  t.deepEqual(policies.at(-1), [port.index, { macs: [], learn: true }]);
  t.is(ports.admitMac(port, '02:00:00:00:00:0c'), 'admitted');
  t.true(ports.unlock(port));
  t.deepEqual(policies.at(-1), [port.index, { macs: [], learn: true }], 'unlock: learning again');
  t.is(ports.admitMac(port, '02:00:00:00:00:0d'), 'admitted');
  t.is(ports.admitMac({ ...port, cfg: { name: 'x' }, learned: [] }, '02:00:00:00:00:0e'), 'allowed', 'a port without learn admits nothing');
});

test('security.learn: a restart keeps what a port learned under the same settings, not under others', async (t) => {
  const { ports: first } = rig();
  const sec = { learn: 1 };
  const a = await first.add({ name: 'br-unit', type: 'internal', security: sec }, true, undefined, 42);
  first.admitMac(a, '02:00:00:00:00:0a');
  const handed = JSON.parse(JSON.stringify(first.learnedMacs())) as Record<string, LearnedMacs>;
  handed['other'] = { security: sec, macs: ['02:00:00:00:00:0b'] };

  const same = rig([], { ...handed });
  const next = same.ports;
  const b = await next.add({ name: 'br-unit', type: 'internal', security: sec }, true, undefined, 43);
  t.deepEqual(b.learned, ['02:00:00:00:00:0a']);
  t.deepEqual(same.policies.at(-1), [b.index, { macs: ['02:00:00:00:00:0a'] }], 'locked from the start');
  t.is(next.admitMac(b, '02:00:00:00:00:0c'), 'refused');

  const other = rig([], { ...handed }).ports;
  const c = await other.add({ name: 'br-unit', type: 'internal', security: { learn: 2 } }, true, undefined, 44);
  t.deepEqual(c.learned, [], 'learned under other settings: forgotten');
});
