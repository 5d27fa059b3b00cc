// PortTable against a fake datapath and fake device operations: which file
// descriptors it closes, and when (no root, no devices).

import test from 'ava';
import { pino } from 'pino';
import type { NativeAddon, NativeDatapath } from '../../src/switch/datapath/native.js';
import { CreatedDevices, PortTable, type HostOps } from '../../src/switch/ports/ports.js';

function rig() {
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
    setPortMtu: () => undefined,
  } as unknown as NativeDatapath;
  const host: HostOps = {
    setLinkUp: async () => undefined,
    linkInfo: async () => undefined,
    prepareDevice: async () => ({ changes: [], warnings: [], peerTakesRedirect: false }),
    restorePeer: async () => [],
    createPuntPair: async () => undefined,
    deleteLink: async () => undefined,
  };
  const ports = new PortTable({
    native,
    datapath,
    created: new CreatedDevices('/nonexistent/vswitchd-unit/devices.json'),
    xdpMode: 'auto',
    fastPath: 'off',
    bridge: 'br-unit',
    log: pino({ level: 'silent' }),
    host,
  });
  return { ports, closed, datapathClosed };
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
