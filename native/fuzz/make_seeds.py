#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus: one file per frame kind and ingress port.

Each file is one byte (the ingress port, native/fuzz/frame_fuzzer.cc) and a frame.
  make_seeds.py OUT_DIR
"""
import os
import struct
import sys

DST = bytes.fromhex("020000000002")
SRC = bytes.fromhex("020000000001")


def eth(ethertype, payload, dst=DST, src=SRC, tags=()):
    hdr = dst + src
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    return hdr + struct.pack("!H", ethertype) + payload


def ipv4(proto, l4, options=b"", frag=0):
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(l4)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + options + l4


def ipv6(proto, l4):
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, bytes(15) + b"\1", bytes(15) + b"\2") + l4


TCP = struct.pack("!HHIIHHHH", 40000, 5201, 1, 0, 0x5002, 65535, 0, 0)
UDP = struct.pack("!HHHH", 40000, 47474, 8 + 18, 0) + bytes(18)
LACPDU = bytes([1, 1, 1, 20]) + bytes(106)

KINDS = {
    "untagged": eth(0x0800, ipv4(6, TCP)),
    "tagged10": eth(0x0800, ipv4(17, UDP), tags=[(0x8100, 10)]),
    "tagged20_pcp5": eth(0x0800, ipv4(6, TCP), tags=[(0x8100, (5 << 13) | 20)]),
    "priority_tag": eth(0x0806, bytes(28), tags=[(0x8100, 0)]),
    "vid4095": eth(0x0800, bytes(46), tags=[(0x8100, 4095)]),
    "double_tagged_qinq": eth(0x0800, ipv4(6, TCP), tags=[(0x88A8, 20), (0x8100, 10)]),
    "double_tagged_8021q": eth(0x0800, ipv4(6, TCP), tags=[(0x8100, 10), (0x8100, 20)]),
    "runt": DST + SRC[:3],
    "header_only": DST + SRC + b"\x08\x00",
    "truncated_tag": DST + SRC + b"\x81\x00\x00",
    "lacp": eth(0x8809, LACPDU, dst=bytes.fromhex("0180c2000002")),
    "lacp_tagged": eth(0x8809, LACPDU, dst=bytes.fromhex("0180c2000002"), tags=[(0x8100, 10)]),
    "link_local_stp": eth(0x0027, bytes(39), dst=bytes.fromhex("0180c2000000")),
    "lldp": eth(0x88CC, bytes(40), dst=bytes.fromhex("0180c200000e")),
    "multicast_source": eth(0x0800, bytes(46), src=bytes.fromhex("010203040506")),
    "broadcast_source": eth(0x0800, bytes(46), src=b"\xff" * 6),
    "zero_source": eth(0x0800, bytes(46), src=bytes(6)),
    "broadcast_arp": eth(0x0806, bytes(28), dst=b"\xff" * 6),
    "jumbo": eth(0x0800, ipv4(17, UDP + bytes(8900))),
    "ipv4_options": eth(0x0800, ipv4(6, TCP, options=bytes([1] * 40))),
    "ipv4_fragment": eth(0x0800, ipv4(17, UDP, frag=0x2000 | 10)),
    "ipv4_bad_ihl": eth(0x0800, bytes([0x4F]) + bytes(30)),
    "ipv6_tcp": eth(0x86DD, ipv6(6, TCP)),
    "ipv6_truncated": eth(0x86DD, ipv6(17, UDP)[:30]),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, frame in KINDS.items():
        for port in range(7):  # every kind of port of the fuzzer's table
            with open(os.path.join(out, f"{name}-p{port}"), "wb") as f:
                f.write(bytes([port]) + frame)


if __name__ == "__main__":
    main()
