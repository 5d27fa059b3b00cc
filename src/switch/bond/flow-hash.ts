// The bond flow hash: which leg of a bond a frame leaves on. The C++ hot loop
// and the BPF fast path implement exactly this; test/vectors/ pins all three.
//
// 1. Parse (offsets from the start of the frame, multi-byte fields big-endian
//    as on the wire):
//      - frame shorter than 14 bytes: the input is empty.
//      - ethertype at 12..13; if it is 0x8100 and the frame has >= 18 bytes,
//        skip the tag: the ethertype is at 16..17 and L3 starts at 18, else
//        L3 starts at 14. Only one tag is skipped; the VLAN id is not hashed.
// 2. Select the input bytes, in this order:
//      l3l4 and ethertype 0x0800 and the frame holds a 20-byte header
//      (version 4, IHL >= 5, and L3 + IHL*4 <= length):
//          source address (4 bytes, L3+12), destination address (4, L3+16);
//          then, if protocol (L3+9) is 6 (TCP) or 17 (UDP), the packet is not
//          a fragment (flags/offset at L3+6..7: (value & 0x3fff) == 0, i.e.
//          neither MF nor an offset), and length >= L4+4 where L4 = L3+IHL*4:
//          source port (2 bytes, L4+0), destination port (2, L4+2).
//      l3l4 and ethertype 0x86dd and length >= L3+40 and version (L3 >> 4) == 6:
//          source address (16, L3+8), destination address (16, L3+24);
//          then, if next header (L3+6) is 6 or 17 and length >= L3+44:
//          source port (2, L3+40), destination port (2, L3+42).
//          Extension headers are not walked (such packets hash on addresses only).
//      otherwise (l2 mode, other ethertypes, truncated or malformed IP):
//          destination MAC (6, at 0), source MAC (6, at 6), then the 2 ethertype
//          bytes as found in step 1 (at 16 when a tag was skipped, else at 12).
//    The hash is NOT symmetric: A->B and B->A may land in different buckets
//    (a bond only decides the transmit direction, so it need not be).
// 3. h = FNV-1a 32-bit over those bytes: h = 0x811c9dc5; for each byte
//    h = (h ^ byte) * 0x01000193 mod 2^32.
// 4. bucket = (h ^ h >> 8 ^ h >> 16 ^ h >> 24) & 0xff, i.e. the XOR of its four bytes.

/** l3l4: addresses and ports (L2 fields when the frame is no IP); l2: MACs and ethertype. */
export type BondHash = 'l2' | 'l3l4';

const ETH_P_8021Q = 0x8100;
const ETH_P_IPV4 = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** The bytes the flow hash runs over (step 1 and 2 above). */
export function flowHashInput(frame: Uint8Array, hash: BondHash = 'l3l4'): Uint8Array {
  const len = frame.length;
  if (len < 14) return new Uint8Array(0);
  let etOff = 12;
  if (((frame[12]! << 8) | frame[13]!) === ETH_P_8021Q && len >= 18) etOff = 16;
  const ethertype = (frame[etOff]! << 8) | frame[etOff + 1]!;
  const l3 = etOff + 2;
  const take = (...ranges: [number, number][]) => {
    const out: number[] = [];
    for (const [at, n] of ranges) for (let i = 0; i < n; i++) out.push(frame[at + i]!);
    return Uint8Array.from(out);
  };

  if (hash === 'l3l4' && ethertype === ETH_P_IPV4 && len >= l3 + 20) {
    const version = frame[l3]! >> 4;
    const ihl = (frame[l3]! & 0x0f) * 4;
    if (version === 4 && ihl >= 20 && l3 + ihl <= len) {
      const proto = frame[l3 + 9]!;
      const fragment = (((frame[l3 + 6]! << 8) | frame[l3 + 7]!) & 0x3fff) !== 0;
      const l4 = l3 + ihl;
      const ports = (proto === IPPROTO_TCP || proto === IPPROTO_UDP) && !fragment && len >= l4 + 4;
      return ports ? take([l3 + 12, 8], [l4, 4]) : take([l3 + 12, 8]);
    }
  }
  if (hash === 'l3l4' && ethertype === ETH_P_IPV6 && len >= l3 + 40 && frame[l3]! >> 4 === 6) {
    const next = frame[l3 + 6]!;
    const ports = (next === IPPROTO_TCP || next === IPPROTO_UDP) && len >= l3 + 44;
    return ports ? take([l3 + 8, 32], [l3 + 40, 4]) : take([l3 + 8, 32]);
  }
  return take([0, 12], [etOff, 2]);
}

/** FNV-1a, 32 bits. */
export function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Fold a 32-bit hash to a bucket: the XOR of its four bytes. */
export function bucketOf(h: number): number {
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & 0xff;
}

/** The bucket (0..255) of a frame: the reference for the hot loop's implementation. */
export function hashFlow(frame: Uint8Array, hash: BondHash = 'l3l4'): number {
  return bucketOf(fnv1a32(flowHashInput(frame, hash)));
}
