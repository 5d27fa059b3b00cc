import test from 'ava';

import {
  LACP_FRAME_LENGTH,
  LACP_STATE_ACTIVITY,
  LACP_STATE_AGGREGATION,
  LACP_STATE_COLLECTING,
  LACP_STATE_DEFAULTED,
  LACP_STATE_DISTRIBUTING,
  LACP_STATE_EXPIRED,
  LACP_STATE_SYNCHRONIZATION,
  LACP_STATE_TIMEOUT,
  decodeLacpdu,
  encodeLacpdu,
  formatLacpState,
  type Lacpdu,
} from '../../src/switch/bond/lacp.js';

const PDU: Lacpdu = {
  actor: {
    systemPriority: 0x8000,
    systemMac: '02:00:00:00:00:0a',
    key: 1,
    portPriority: 255,
    portNumber: 3,
    state: 0x3d,
  },
  partner: {
    systemPriority: 0xffff,
    systemMac: '02:00:00:00:00:0b',
    key: 0x11,
    portPriority: 0x80,
    portNumber: 7,
    state: 0,
  },
  collectorMaxDelay: 0,
};

// The same PDU written out by hand from 802.1AX-2014 6.4.2.3 (Figure 6-7).
const PDU_HEX = [
  '0180c2000002', // destination: Slow_Protocols_Multicast
  '020000000001', // source
  '8809', // Slow_Protocols_Type
  '01', // subtype LACP
  '01', // version
  '01', '14', '8000', '02000000000a', '0001', '00ff', '0003', '3d', '000000', // actor TLV
  '02', '14', 'ffff', '02000000000b', '0011', '0080', '0007', '00', '000000', // partner TLV
  '03', '10', '0000', '00'.repeat(12), // collector TLV
  '00', '00', // terminator
  '00'.repeat(50), // reserved
].join('');

function frame(): Buffer {
  return encodeLacpdu(PDU, '02:00:00:00:00:01');
}

test('state bits have the 802.1AX values', (t) => {
  t.deepEqual(
    [
      LACP_STATE_ACTIVITY,
      LACP_STATE_TIMEOUT,
      LACP_STATE_AGGREGATION,
      LACP_STATE_SYNCHRONIZATION,
      LACP_STATE_COLLECTING,
      LACP_STATE_DISTRIBUTING,
      LACP_STATE_DEFAULTED,
      LACP_STATE_EXPIRED,
    ],
    [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80],
  );
  t.is(formatLacpState(0x3d), 'activity aggregation synchronized collecting distributing');
  t.is(formatLacpState(0), '');
});

test('encode produces the 124-byte frame of the standard, byte for byte', (t) => {
  const f = frame();
  t.is(f.length, LACP_FRAME_LENGTH);
  t.is(f.length, 124);
  t.is(f.toString('hex'), PDU_HEX);
});

test('decode(encode(pdu)) round-trips', (t) => {
  t.deepEqual(decodeLacpdu(frame()), PDU);
  const other: Lacpdu = {
    actor: { systemPriority: 1, systemMac: 'fe:dc:ba:98:76:54', key: 0xffff, portPriority: 0, portNumber: 0xffff, state: 0xff },
    partner: { systemPriority: 0, systemMac: '00:00:00:00:00:00', key: 0, portPriority: 0, portNumber: 0, state: 0x47 },
    collectorMaxDelay: 0x1234,
  };
  t.deepEqual(decodeLacpdu(encodeLacpdu(other, 'fe:dc:ba:98:76:55')), other);
});

test('decode reads a hand-written frame and accepts one given as a plain Uint8Array', (t) => {
  t.deepEqual(decodeLacpdu(Uint8Array.from(Buffer.from(PDU_HEX, 'hex'))), PDU);
});

test('decode ignores the reserved fields and tolerates a frame cut after the terminator', (t) => {
  const f = frame();
  f[34] = 0xaa; // a reserved byte of the actor TLV (16..35)
  f[100] = 0x55; // reserved tail
  t.deepEqual(decodeLacpdu(f), PDU);
  t.deepEqual(decodeLacpdu(frame().subarray(0, 74)), PDU);
});

test('decode rejects a wrong ethertype', (t) => {
  const f = frame();
  f.writeUInt16BE(0x0800, 12);
  t.throws(() => decodeLacpdu(f), { message: /ethertype 0x0800, expected 0x8809/ });
});

test('decode rejects a short frame', (t) => {
  t.throws(() => decodeLacpdu(frame().subarray(0, 60)), { message: /frame of 60 bytes is shorter than 74/ });
  t.throws(() => decodeLacpdu(new Uint8Array(0)), { message: /shorter/ });
});

test('decode rejects a bad TLV length', (t) => {
  const f = frame();
  f[17] = 19; // actor information length (the TLV starts at 16)
  t.throws(() => decodeLacpdu(f), { message: /Actor Information TLV \(type 1, length 20\) at byte 16, got type 1, length 19/ });
  const g = frame();
  g[57] = 15; // collector information length
  t.throws(() => decodeLacpdu(g), { message: /Collector Information/ });
});

test('decode rejects a bad TLV type, a missing terminator, subtype, version and destination', (t) => {
  const swapped = frame();
  swapped[36] = 1; // partner TLV type written as actor
  t.throws(() => decodeLacpdu(swapped), { message: /Partner Information/ });

  const noTerm = frame();
  noTerm[72] = 9;
  t.throws(() => decodeLacpdu(noTerm), { message: /Terminator/ });

  const marker = frame();
  marker[14] = 2; // Marker protocol
  t.throws(() => decodeLacpdu(marker), { message: /subtype 2, expected 1/ });

  const v0 = frame();
  v0[15] = 0;
  t.throws(() => decodeLacpdu(v0), { message: /version 0/ });

  const unicast = frame();
  unicast[0] = 0x02;
  t.throws(() => decodeLacpdu(unicast), { message: /destination 02:80:c2:00:00:02/ });
});

test('a later version is read as version 1, skipping TLVs it adds before the terminator', (t) => {
  const f = frame();
  f[15] = 2;
  // An unknown 6-byte TLV where the terminator was, then the terminator.
  f.set([0x0a, 6, 1, 2, 3, 4, 0, 0], 72);
  t.deepEqual(decodeLacpdu(f), PDU);

  const bad = frame();
  bad[15] = 2;
  bad.set([0x0a, 0], 72); // zero length would loop forever
  t.throws(() => decodeLacpdu(bad), { message: /TLV type 10 at byte 72 has length 0/ });
});
