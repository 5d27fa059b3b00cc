// PortTable against a fake datapath and fake device operations: which file
// descriptors it closes, and when (no root, no devices).

import test from 'ava';
import { pino } from 'pino';
import type { NativeAddon, NativeDatapath } from '../../src/switch/datapath/native.js';
import { CreatedDevices, PortTable, type HostOps } from '../../src/switch/ports/ports.js';

function rig(logLines: string[] = []) {
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
