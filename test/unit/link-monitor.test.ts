import test from 'ava';
import { parseLinkEvent } from '../../src/switch/ports/link-monitor.js';

test('a new link line gives its index, name, admin state and carrier', (t) => {
  t.deepEqual(
    parseLinkEvent('425: vzv1@vzv0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether e2:f2:d3:b5:04:78'),
    { kind: 'new', ifindex: 425, name: 'vzv1', adminUp: true, carrier: true, mtu: 1500 },
  );
});

test('an MTU change reaches us as a new link line with the new MTU', (t) => {
  t.like(parseLinkEvent('425: vzv1@vzv0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noqueue state UP group default'), { kind: 'new', mtu: 9000 });
});

test('no carrier while the peer is down', (t) => {
  t.like(parseLinkEvent('426: vzv0@vzv1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500'), { adminUp: true, carrier: false });
  t.like(parseLinkEvent('424: vzmon0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN'), { name: 'vzmon0', adminUp: false, carrier: false });
});

test('a deleted link', (t) => {
  t.like(parseLinkEvent('Deleted 424: vzmon0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN'), { kind: 'deleted', ifindex: 424, name: 'vzmon0' });
});

test('other lines are ignored', (t) => {
  t.is(parseLinkEvent('    link/ether 72:7c:69:9e:2c:0c brd ff:ff:ff:ff:ff:ff'), undefined);
  t.is(parseLinkEvent(''), undefined);
});
