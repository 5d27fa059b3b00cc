// Generated test/vectors/shared.json ONCE, from the behaviour of the tree at the
// time (src/switch/bond/flow-hash.ts hashFlow and src/switch/l2/vlan-rules.ts ingressVlan as built
// in dist/, the FDB hash of native/fdb_table.h, now bpf/include/vswitchd_shared.h).
// It is kept to show where the expected values came from and to append new
// vectors; do NOT re-run it to make
// a failing consumer pass: a failure means one copy of a rule changed alone.
//
//   npm run build:ts && node test/vectors/generate.mjs > test/vectors/shared.json
import { hashFlow } from '../../dist/src/switch/bond.js';
import { ingressVlan } from '../../dist/src/switch/flood.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const DST = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const SRC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

function eth(ethertype, payload, { vid = null, pcp = 0, dst = DST, src = SRC } = {}) {
  const out = [...dst, ...src];
  if (vid !== null) out.push(0x81, 0x00, ((pcp << 5) | (vid >> 8)) & 0xff, vid & 0xff);
  out.push(ethertype >> 8, ethertype & 0xff, ...payload);
  return out;
}
function ipv4(proto, l4, { src = [10, 0, 0, 1], dst = [10, 0, 0, 2], frag = 0, ihl = 5 } = {}) {
  const h = new Array(ihl * 4).fill(0);
  h[0] = 0x40 | ihl;
  const total = ihl * 4 + l4.length;
  h[2] = total >> 8; h[3] = total & 0xff;
  h[6] = frag >> 8; h[7] = frag & 0xff;
  h[8] = 64; h[9] = proto;
  h.splice(12, 8, ...src, ...dst);
  return [...h, ...l4];
}
function ipv6(next, l4, { src = 1, dst = 2 } = {}) {
  const h = new Array(40).fill(0);
  h[0] = 0x60; h[4] = l4.length >> 8; h[5] = l4.length & 0xff; h[6] = next; h[7] = 64;
  h[8] = 0xfd; h[23] = src; h[24] = 0xfd; h[39] = dst;
  return [...h, ...l4];
}
const ports = (s, d, rest = 16) => [s >> 8, s & 0xff, d >> 8, d & 0xff, ...new Array(rest).fill(0)];
const pad = (f, n = 60) => (f.length >= n ? f : [...f, ...new Array(n - f.length).fill(0)]);

const flowFrames = {
  'ipv4 tcp 1000->80': pad(eth(0x0800, ipv4(6, ports(1000, 80)))),
  'ipv4 tcp 1001->80': pad(eth(0x0800, ipv4(6, ports(1001, 80)))),
  'ipv4 udp 5000->53': pad(eth(0x0800, ipv4(17, ports(5000, 53, 4)))),
  'ipv4 udp 5000->53 other addresses': pad(eth(0x0800, ipv4(17, ports(5000, 53, 4), { src: [192, 168, 7, 9], dst: [172, 16, 0, 3] }))),
  'ipv4 icmp': pad(eth(0x0800, ipv4(1, [8, 0, 0, 0, 0, 1, 0, 1]))),
  'ipv4 tcp first fragment (MF)': pad(eth(0x0800, ipv4(6, ports(1000, 80), { frag: 0x2000 }))),
  'ipv4 udp later fragment (offset 185)': pad(eth(0x0800, ipv4(17, ports(5000, 53, 4), { frag: 185 }))),
  'ipv4 tcp DF set (not a fragment)': pad(eth(0x0800, ipv4(6, ports(1000, 80), { frag: 0x4000 }))),
  'ipv4 tcp with options (IHL 6)': pad(eth(0x0800, ipv4(6, ports(1000, 80), { ihl: 6 }))),
  'ipv4 bad IHL 4': pad(eth(0x0800, ipv4(6, ports(1000, 80), { ihl: 5 }).map((b, i) => (i === 0 ? 0x44 : b)))),
  'ipv4 version 6 in an 0x0800 frame': pad(eth(0x0800, ipv4(6, ports(1000, 80)).map((b, i) => (i === 0 ? 0x65 : b)))),
  'ipv4 tcp truncated L4 (2 port bytes)': eth(0x0800, ipv4(6, [0x03, 0xe8])),
  'ipv4 header truncated (19 bytes)': eth(0x0800, ipv4(6, []).slice(0, 19)),
  'ipv6 tcp 1000->443': eth(0x86dd, ipv6(6, ports(1000, 443))),
  'ipv6 udp 5000->53': eth(0x86dd, ipv6(17, ports(5000, 53, 4))),
  'ipv6 icmpv6': eth(0x86dd, ipv6(58, [128, 0, 0, 0, 0, 1, 0, 1])),
  'ipv6 tcp truncated L4 (2 bytes)': eth(0x86dd, ipv6(6, [0x03, 0xe8])),
  'ipv6 header truncated (39 bytes)': eth(0x86dd, ipv6(6, []).slice(0, 39)),
  'ipv6 version 4 in an 0x86dd frame': eth(0x86dd, ipv6(6, ports(1000, 443)).map((b, i) => (i === 0 ? 0x40 : b))),
  'tagged vid 10 ipv4 tcp 1000->80': pad(eth(0x0800, ipv4(6, ports(1000, 80)), { vid: 10 }), 64),
  'tagged vid 20 pcp 5 ipv4 udp': pad(eth(0x0800, ipv4(17, ports(5000, 53, 4)), { vid: 20, pcp: 5 }), 64),
  'tagged vid 10 ipv6 tcp': eth(0x86dd, ipv6(6, ports(1000, 443)), { vid: 10 }),
  'tagged vid 0 (priority) ipv4 tcp': pad(eth(0x0800, ipv4(6, ports(1000, 80)), { vid: 0, pcp: 3 }), 64),
  'arp': pad(eth(0x0806, new Array(28).fill(0x11))),
  'arp other macs': pad(eth(0x0806, new Array(28).fill(0x11), { dst: [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee], src: [0x0a, 0, 0, 0, 0, 7] })),
  'tagged vid 30 arp': pad(eth(0x0806, new Array(28).fill(0x11), { vid: 30 }), 64),
  'unknown ethertype 0x88b5': pad(eth(0x88b5, [1, 2, 3, 4])),
  'short: 10 bytes': [...DST, 0, 0, 0, 1],
  'short: 13 bytes': [...DST, ...SRC, 0x08],
  'short: header only (14 bytes)': eth(0x0800, []),
  'short: 0x8100 with 16 bytes (tag not skipped)': eth(0x8100, [0x00, 0x0a]),
  'short: tag + 18 bytes, ethertype ipv4, no L3': eth(0x0800, [], { vid: 10 }),
};

const flow = [];
for (const [name, frame] of Object.entries(flowFrames))
  for (const hash of ['l2', 'l3l4']) flow.push({ name, hash, frame: hex(frame), bucket: hashFlow(Uint8Array.from(frame), hash) });

const portModes = {
  'access 10': { mode: 'access', vlan: 10 },
  'trunk 10,20 native 1': { mode: 'trunk', trunks: [10, 20], nativeVlan: 1 },
  'trunk 10,20 no native': { mode: 'trunk', trunks: [10, 20] },
  'trunk 10,20 native 10': { mode: 'trunk', trunks: [10, 20], nativeVlan: 10 },
  'trunk 10,20 native 30': { mode: 'trunk', trunks: [10, 20], nativeVlan: 30 },
  'trunk 1,4094 no native': { mode: 'trunk', trunks: [1, 4094] },
};
const ingressFrames = [
  ['untagged', null, 0],
  ['priority tagged (vid 0, pcp 5)', 0, 5],
  ['tagged 1', 1, 0],
  ['tagged 10', 10, 0],
  ['tagged 20 pcp 7', 20, 7],
  ['tagged 30', 30, 0],
  ['tagged 99', 99, 0],
  ['tagged 4094', 4094, 0],
  ['tagged 4095 (reserved)', 4095, 0],
];
const vlan = [];
for (const [portName, mode] of Object.entries(portModes)) {
  const port = mode.mode === 'access'
    ? { mode: 'access', access_vlan: mode.vlan }
    : { mode: 'trunk', trunks: mode.trunks, native_vlan: mode.nativeVlan ?? 0 };
  for (const [frameName, vid, pcp] of ingressFrames) {
    const frame = pad(eth(0x0800, ipv4(17, ports(5000, 53, 4)), { vid, pcp }), vid === null ? 60 : 64);
    const got = ingressVlan(mode, vid);
    const expect = got !== null ? { vlan: got }
      : { drop: mode.mode === 'trunk' && (vid === null || vid === 0) ? 'untagged_no_native' : 'vlan_not_allowed' };
    vlan.push({ name: `${portName}: ${frameName}`, port, frame: hex(frame), ...expect });
  }
  // A tag header cut short: the hot loop drops it before any VLAN rule.
  vlan.push({ name: `${portName}: truncated tag (16 bytes)`, port, frame: hex(eth(0x8100, [0x00, 0x0a])).slice(0, 32), drop: 'malformed' });
}

const MULT = 0x9e3779b97f4a7c15n;
function slot(vlanId, mac, capacity) {
  let key = BigInt(vlanId) << 48n;
  for (let i = 0; i < 6; i++) key |= BigInt(mac[i]) << BigInt(8 * i);  // little-endian memcpy of the MAC
  return Number((((key * MULT) & 0xffffffffffffffffn) >> 32n) & BigInt(capacity - 1));
}
const capacities = [16, 1024, 65536];
const fdb = [];
for (const vlanId of [1, 10, 4094]) {
  const chosen = [];
  for (let n = 1; chosen.length < 4; n++) {
    const mac = [0x02, 0x00, 0x5e, n >> 8, n & 0xff, (n * 37) & 0xff];
    // Keys of one VLAN take distinct slots at every capacity (the BPF test pairs them as source and destination).
    if (capacities.some((c) => chosen.some((m) => slot(vlanId, m, c) === slot(vlanId, mac, c)))) continue;
    chosen.push(mac);
  }
  for (const mac of chosen)
    for (const capacity of capacities)
      fdb.push({ vlan: vlanId, mac: mac.map((b) => b.toString(16).padStart(2, '0')).join(':'), capacity, slot: slot(vlanId, mac, capacity) });
}

// Constants more than one language uses (the C++/BPF side: bpf/include/vswitchd_shared.h).
const constants = {
  max_ports: 4096, // VSW_MAX_PORTS; the addon's maxPorts; types.ts MAX_PORTS
  bond_buckets: 256, // VSW_BOND_BUCKETS; bond.ts BOND_BUCKETS
  fdb_flag_static: 1, // VSW_FDB_STATIC; types.ts FDB_FLAG_STATIC
  last_seen_refresh_ms: 1000, // VSW_LAST_SEEN_REFRESH_MS: how stale last_seen gets before a hit rewrites it
  fdb_hash_mult: '0x9e3779b97f4a7c15', // VSW_FDB_HASH_MULT
  fnv_offset: '0x811c9dc5', // VSW_FNV_OFFSET
  fnv_prime: '0x01000193', // VSW_FNV_PRIME
  max_mtu: 9000, // VSW_MAX_MTU; hygiene.ts MAX_MTU (the punt pairs' MTU)
};

// Egress MTU (vsw_exceeds_mtu): len counts the Ethernet header and the tag the frame leaves with.
const mtu = [];
for (const [portMtu, tagged, len] of [[1500, false, 1514], [1500, false, 1515], [1500, true, 1518], [1500, true, 1519],
  [9000, false, 9014], [9000, false, 9015], [9000, true, 9018], [1500, false, 9014], [0, false, 9022]]) {
  const limit = portMtu + 14 + (tagged ? 4 : 0);
  mtu.push({ name: `mtu ${portMtu}${tagged ? ' tagged' : ''} len ${len}`, mtu: portMtu, tagged, len, exceeds: portMtu !== 0 && len > limit });
}

const doc = {
  about: [
    'Cross-language test vectors for the rules the TypeScript control plane, the C++ hot loop and the BPF',
    'programs each implement. Format and consumers: test/vectors/README.md. Generated once from the behaviour',
    'of the tree (test/vectors/generate.mjs); a consumer that fails means one copy changed alone: fix the copy.',
  ],
  flow,
  vlan,
  fdb,
  mtu,
};
// One vector per line, so a diff shows which vector changed.
const list = (items) => `[\n${items.map((v) => `    ${JSON.stringify(v)}`).join(',\n')}\n  ]`;
process.stdout.write(`{\n  "about": ${JSON.stringify(doc.about)},\n  "constants": ${JSON.stringify(constants)},\n  "flow": ${list(flow)},\n  "vlan": ${list(vlan)},\n  "fdb": ${list(fdb)},\n  "mtu": ${list(mtu)}\n}\n`);
