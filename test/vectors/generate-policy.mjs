// Generated the "policy" vectors of test/vectors/shared.json ONCE (issue 14: port
// security, vsw_source_verdict in bpf/include/vswitchd_shared.h). Each verdict is the
// rule as specified (the issue and the function's comment), not read off the code; the
// C++ function and both BPF programs must give it. Do NOT re-run to make a consumer pass.
//
//   node test/vectors/generate-policy.mjs   (prints the list; shared.json holds it as "policy")
const A = [0x52, 0x54, 0x00, 0x00, 0x00, 0x05]; // the port's MAC
const B = [0x52, 0x54, 0x00, 0x00, 0x00, 0x06]; // another
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const hex = (b) => Buffer.from(b).toString('hex');
const mac = (m) => m.map((x) => x.toString(16).padStart(2, '0')).join(':');
const v6 = (s) => {
  const [head, tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t].map((w) => parseInt(w, 16));
  return words.flatMap((w) => [w >> 8, w & 0xff]);
};
function eth(ethertype, payload, { src = A, dst = BCAST, vid = null } = {}) {
  const out = [...dst, ...src];
  if (vid !== null) out.push(0x81, 0x00, vid >> 8, vid & 0xff);
  out.push(ethertype >> 8, ethertype & 0xff, ...payload);
  while (out.length < 60) out.push(0);
  return out;
}
function ipv4(src, dst, proto, l4) {
  const h = new Array(20).fill(0);
  h[0] = 0x45; h[2] = (20 + l4.length) >> 8; h[3] = (20 + l4.length) & 0xff; h[8] = 64; h[9] = proto;
  h.splice(12, 8, ...src, ...dst);
  return [...h, ...l4];
}
const udp = (sport, dport) => [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 8, 0, 0];
const arp = (op, sha, spa, tpa) => [0, 1, 8, 0, 6, 4, 0, op, ...sha, ...spa, 0, 0, 0, 0, 0, 0, ...tpa];
function ipv6(src, dst, next, l4) {
  return [0x60, 0, 0, 0, l4.length >> 8, l4.length & 0xff, next, 255, ...v6(src), ...v6(dst), ...l4];
}
// NS (135) / NA (136) with a link-layer address option (1: source, 2: target) or none.
const nd = (type, target, opt, lla) => [type, 0, 0, 0, 0, 0, 0, 0, ...v6(target), ...(opt ? [opt, 1, ...lla] : [])];

const MACS = { macs: [mac(A)] };
const FULL = { macs: [mac(A)], ips: ['10.0.0.5', 'fd00::5'] };
const IPS = { ips: ['10.0.0.5'] };
const v = [];
const add = (name, policy, frame, verdict) => v.push({ name, policy, frame: hex(frame), verdict });
const ip5 = [10, 0, 0, 5], ip6 = [10, 0, 0, 6], bc = [255, 255, 255, 255], zero = [0, 0, 0, 0];

add('ipv4 from its MAC and IP', FULL, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9))), 'ok');
add('ipv4 from another MAC', FULL, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { src: B }), 'spoofed_mac');
add('ipv4 from another IP', FULL, eth(0x0800, ipv4(ip6, bc, 17, udp(9, 9))), 'spoofed_ip');
add('dhcp discover from 0.0.0.0:68 to :67', FULL, eth(0x0800, ipv4(zero, bc, 17, udp(68, 67))), 'ok');
add('udp from 0.0.0.0 to another port', FULL, eth(0x0800, ipv4(zero, bc, 17, udp(1234, 67))), 'spoofed_ip');
add('tcp from 0.0.0.0', FULL, eth(0x0800, ipv4(zero, bc, 6, udp(68, 67))), 'spoofed_ip');
add('truncated ipv4 header', FULL, eth(0x0800, [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17]).slice(0, 24), 'spoofed_ip');
add('arp request from its MAC and IP', FULL, eth(0x0806, arp(1, A, ip5, [10, 0, 0, 1])), 'ok');
add('gratuitous arp for another host', FULL, eth(0x0806, arp(1, A, [10, 0, 0, 1], [10, 0, 0, 1])), 'spoofed_arp');
add('arp reply claiming another IP', FULL, eth(0x0806, arp(2, A, ip6, [10, 0, 0, 1])), 'spoofed_arp');
add('arp probe from 0.0.0.0', FULL, eth(0x0806, arp(1, A, zero, ip5)), 'ok');
add('arp with another sender MAC', FULL, eth(0x0806, arp(1, B, ip5, [10, 0, 0, 1])), 'spoofed_arp');
add('truncated arp', FULL, eth(0x0806, arp(1, A, ip5, [10, 0, 0, 1])).slice(0, 30), 'spoofed_arp');
add('ipv6 from its address', FULL, eth(0x86dd, ipv6('fd00::5', 'fd00::1', 17, udp(9, 9))), 'ok');
add('ipv6 from another address', FULL, eth(0x86dd, ipv6('fd00::6', 'fd00::1', 17, udp(9, 9))), 'spoofed_ip');
add('ipv6 from link-local', FULL, eth(0x86dd, ipv6('fe80::1', 'ff02::1', 17, udp(546, 547))), 'ok');
add('ipv6 from :: (mld before an address)', FULL, eth(0x86dd, ipv6('::', 'ff02::16', 58, [143, 0, 0, 0, 0, 0, 0, 0])), 'ok');
add('na for its address, its MAC', FULL, eth(0x86dd, ipv6('fd00::5', 'ff02::1', 58, nd(136, 'fd00::5', 2, A))), 'ok');
add('na for another address', FULL, eth(0x86dd, ipv6('fe80::5', 'ff02::1', 58, nd(136, 'fd00::6', 2, A))), 'spoofed_nd');
add('na with another target MAC', FULL, eth(0x86dd, ipv6('fd00::5', 'ff02::1', 58, nd(136, 'fd00::5', 2, B))), 'spoofed_nd');
add('ns for a neighbour, its MAC', FULL, eth(0x86dd, ipv6('fd00::5', 'ff02::1:ff00:1', 58, nd(135, 'fd00::1', 1, A))), 'ok');
add('ns with another source MAC', FULL, eth(0x86dd, ipv6('fd00::5', 'ff02::1:ff00:1', 58, nd(135, 'fd00::1', 1, B))), 'spoofed_nd');
add('dad ns for its address', FULL, eth(0x86dd, ipv6('::', 'ff02::1:ff00:5', 58, nd(135, 'fd00::5', 0, []))), 'ok');
add('dad ns for another address', FULL, eth(0x86dd, ipv6('::', 'ff02::1:ff00:6', 58, nd(135, 'fd00::6', 0, []))), 'spoofed_nd');
add('na behind hop-by-hop options', FULL, eth(0x86dd, ipv6('fe80::5', 'ff02::1', 0, [58, 0, 1, 4, 0, 0, 0, 0, ...nd(136, 'fd00::6', 2, A)])), 'spoofed_nd');
add('tagged ipv4 from its MAC and IP', FULL, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { vid: 10 }), 'ok');
add('tagged ipv4 from another IP', FULL, eth(0x0800, ipv4(ip6, bc, 17, udp(9, 9)), { vid: 10 }), 'spoofed_ip');
add('a second tag hides the headers', FULL, eth(0x8100, [0, 20, 0x08, 0x00, ...ipv4(ip6, bc, 17, udp(9, 9))], { vid: 10 }), 'spoofed_ip');
add('802.1ad outer tag hides the headers', FULL, eth(0x88a8, [0, 20, 0x08, 0x00, ...ipv4(ip6, bc, 17, udp(9, 9))]), 'spoofed_ip');
add('other ethertype from its MAC', FULL, eth(0x88b5, [1, 2, 3, 4]), 'ok');
add('macs only: any IP', MACS, eth(0x0800, ipv4(ip6, bc, 17, udp(9, 9))), 'ok');
add('macs only: another MAC', MACS, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { src: B }), 'spoofed_mac');
add('macs only: arp for any IP', MACS, eth(0x0806, arp(1, A, [10, 0, 0, 1], [10, 0, 0, 1])), 'ok');
add('macs only: arp with another sender MAC', MACS, eth(0x0806, arp(1, B, ip5, [10, 0, 0, 1])), 'spoofed_arp');
add('macs only: na with another target MAC', MACS, eth(0x86dd, ipv6('fd00::9', 'ff02::1', 58, nd(136, 'fd00::9', 2, B))), 'spoofed_nd');
add('ips only: any MAC', IPS, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { src: B }), 'ok');
add('ips only: another IP', IPS, eth(0x0800, ipv4(ip6, bc, 17, udp(9, 9)), { src: B }), 'spoofed_ip');
add('ips only: ipv6 with no address bound', IPS, eth(0x86dd, ipv6('fd00::5', 'fd00::1', 17, udp(9, 9))), 'spoofed_ip');
// security.learn as the datapath has it: macs = listed and learned so far, learn = not locked yet.
const LEARNING = { macs: [], learn: true };
const LEARNED = { macs: [mac(A)], learn: true };
add('learning, nothing admitted: any MAC goes up', LEARNING, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9))), 'learn');
add('learning: its admitted MAC', LEARNED, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9))), 'ok');
add('learning: another MAC goes up', LEARNED, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { src: B }), 'learn');
add('learning: arp from its MAC with another sender MAC', LEARNED, eth(0x0806, arp(1, B, ip5, [10, 0, 0, 1])), 'spoofed_arp');
add('learning with ips: its MAC, another IP', { ...LEARNED, ips: ['10.0.0.5'] }, eth(0x0800, ipv4(ip6, bc, 17, udp(9, 9))), 'spoofed_ip');
add('locked (learn done): another MAC', MACS, eth(0x0800, ipv4(ip5, bc, 17, udp(9, 9)), { src: B }), 'spoofed_mac');

process.stdout.write(`[\n${v.map((x) => `    ${JSON.stringify(x)}`).join(',\n')}\n  ]\n`);
