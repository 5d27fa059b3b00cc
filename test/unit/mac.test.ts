import test from 'ava';
import { bridgeMac, isStationMac, macToBytes } from '../../src/switch/l2/mac.js';
import { isLoopbackAddress } from '../../src/switch/operate/metrics.js';

test('bridgeMac: the same for a bridge on a machine at every call, locally administered unicast', (t) => {
  const id = '0123456789abcdef0123456789abcdef';
  const mac = bridgeMac('br0', undefined, id);
  t.is(bridgeMac('br0', undefined, id), mac, 'a restart gets the same MAC');
  t.not(bridgeMac('br1', undefined, id), mac, 'another bridge on the machine differs');
  t.not(bridgeMac('br0', undefined, 'fedcba9876543210fedcba9876543210'), mac, 'the same bridge on another machine differs');
  for (const m of [mac, bridgeMac('br1', undefined, id), bridgeMac('x', undefined, '')]) {
    const first = macToBytes(m)[0]!;
    t.is(first & 1, 0, `${m}: unicast`);
    t.is(first & 2, 2, `${m}: locally administered`);
    t.true(isStationMac(m));
  }
});

test('bridgeMac: a configured bridge_mac wins', (t) => {
  t.is(bridgeMac('br0', '02:AB:CD:00:00:01', 'any'), '02:ab:cd:00:00:01');
});

test('bridgeMac reads this machine id by default', (t) => {
  t.is(bridgeMac('br0'), bridgeMac('br0'));
});

test('isLoopbackAddress: 127/8 and ::1 only', (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.true(isLoopbackAddress(a), a);
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', '']) t.false(isLoopbackAddress(a), a);
});
