#!/usr/bin/env python3
"""Raw Ethernet frames for the integration tests (stdlib only, run as root).

  send    --dev D [--ns NS] --dst MAC --src MAC [--vlan VID [--pcp P]] [--ethertype 0x0800]
          [--count N] [--payload-len L] [--interval S] | --dev D --raw HEX [--count N]
  capture --dev D [--ns NS] --seconds S [--count N] [--all]
  flood   --dev D [--ns NS] --count N [--dst MAC] [--vlan VID]   (a random unicast source each)
  storm   --dev D [--ns NS] --count N [--seed S]   (mixed malformed and hostile frames)
  vm      --tap NAME [--mac MAC --ip A.B.C.D] [--seconds S]
          [--send-count N --dst MAC [--ethertype T] [--payload-len L]]

capture and vm print one JSON line per received frame:
  {"dst", "src", "vlan" (or null), "pcp" (or null), "ethertype", "len"}
plus "arp": {"op", "sha", "spa", "tha", "tpa"} for ARP and "ip": {"src", "dst",
"proto"} for IPv4 (with "l4": {"sport", "dport"} for unfragmented TCP and
UDP). vm adds "replied": "arp" | "icmp" when it answered a frame.
"ready" is written to stderr once the socket is open, so a caller can wait for
it before it sends anything. `--ns NS` runs it again under `ip netns exec NS`.
"""

import argparse
import fcntl
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


def ip_str(b):
    return socket.inet_ntoa(bytes(b))


def build_frame(dst, src, ethertype, payload_len, vlan=None, pcp=0):
    hdr = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        hdr += struct.pack("!HH", ETH_P_8021Q, ((pcp & 7) << 13) | (vlan & 0xFFF))
    hdr += struct.pack("!H", ethertype)
    payload = bytes(i & 0xFF for i in range(payload_len))
    return hdr + payload


def describe(frame, tag=None):
    """JSON-able summary of a frame. tag = (tpid, tci) when the kernel stripped the tag."""
    out = {"dst": mac_str(frame[0:6]), "src": mac_str(frame[6:12]),
           "vlan": None, "pcp": None, "ethertype": None, "len": len(frame)}
    if len(frame) < 14:
        out["runt"] = True
        return out
    off = 12
    ethertype = struct.unpack_from("!H", frame, off)[0]
    if tag is not None:
        out["vlan"], out["pcp"] = tag[1] & 0xFFF, tag[1] >> 13
        out["len"] += 4
    elif ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= 18:
        tci = struct.unpack_from("!H", frame, off + 2)[0]
        out["vlan"], out["pcp"] = tci & 0xFFF, tci >> 13
        off += 4
        ethertype = struct.unpack_from("!H", frame, off)[0]
    out["ethertype"] = ethertype
    body = frame[off + 2:]
    if ethertype == ETH_P_ARP and len(body) >= 28:
        out["arp"] = {"op": struct.unpack_from("!H", body, 6)[0],
                      "sha": mac_str(body[8:14]), "spa": ip_str(body[14:18]),
                      "tha": mac_str(body[18:24]), "tpa": ip_str(body[24:28])}
    elif ethertype == ETH_P_IP and len(body) >= 20:
        out["ip"] = {"src": ip_str(body[12:16]), "dst": ip_str(body[16:20]), "proto": body[9]}
        ihl = (body[0] & 0xF) * 4
        fragment = struct.unpack_from("!H", body, 6)[0] & 0x3FFF
        if body[9] in (6, 17) and not fragment and len(body) >= ihl + 4:
            out["l4"] = {"sport": struct.unpack_from("!H", body, ihl)[0],
                         "dport": struct.unpack_from("!H", body, ihl + 2)[0]}
    return out


def emit(obj):
    print(json.dumps(obj), flush=True)


def ready():
    print("ready", file=sys.stderr, flush=True)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet_socket(dev):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, ETH_P_ALL))
    return s


def frames_from_args(a):
    if a.raw is not None:
        return bytes.fromhex(a.raw.replace(":", "").replace(" ", ""))
    if not a.dst or not a.src:
        sys.exit("send: --dst and --src are needed unless --raw is given")
    return build_frame(a.dst, a.src, int(a.ethertype, 0), a.payload_len, a.vlan, a.pcp)


def cmd_send(a):
    frame = frames_from_args(a)
    s = packet_socket(a.dev)
    for i in range(a.count):
        s.send(frame)
        if a.interval and i + 1 < a.count:
            time.sleep(a.interval)
    emit({"sent": a.count, "len": len(frame)})


def random_station(rnd):
    """A random locally administered unicast MAC (a source a switch would learn)."""
    return bytes([0x02]) + rnd.randbytes(5)


def cmd_flood(a):
    """A MAC flood: every frame from another random source (as macof sends them)."""
    import random
    rnd = random.Random(a.seed)
    s = packet_socket(a.dev)
    dst = mac_bytes(a.dst)
    tag = struct.pack("!HH", ETH_P_8021Q, a.vlan) if a.vlan is not None else b""
    tail = tag + struct.pack("!H", ETH_P_IP) + bytes(46)
    sent = 0
    for _ in range(a.count):
        try:
            s.send(dst + random_station(rnd) + tail)
            sent += 1
        except BlockingIOError:
            pass
    emit({"sent": sent})


# The kinds of frame a storm mixes; each builder takes a Random and returns bytes.
STORM_KINDS = {
    # 802.1Q tag cut short: the ethertype says a tag follows, the frame ends.
    "truncated_tag": lambda r: bytes(6) + random_station(r) + struct.pack("!H", ETH_P_8021Q) + r.randbytes(r.randint(0, 1)),
    # Header only, no payload.
    "header_only": lambda r: r.randbytes(6) + random_station(r) + r.randbytes(2),
    # Tagged into other VLANs (an access port takes none), VID 0, 4095 and random ones.
    "foreign_tag": lambda r: b"\xff" * 6 + random_station(r)
        + struct.pack("!HH", ETH_P_8021Q, r.choice([0, 20, 4095, r.randint(1, 4094)]) | (r.randint(0, 7) << 13))
        + struct.pack("!H", ETH_P_IP) + r.randbytes(r.randint(0, 60)),
    # 802.1ad outer tag, 802.1Q inner (QinQ), or two 802.1Q tags.
    "double_tag": lambda r: b"\xff" * 6 + random_station(r)
        + struct.pack("!HHHH", r.choice([ETH_P_8021AD, ETH_P_8021Q]), 20, ETH_P_8021Q, 20) + r.randbytes(r.randint(0, 50)),
    # Link-local control frames (01:80:c2:00:00:0x), LACPDUs among them.
    "link_local": lambda r: bytes([1, 0x80, 0xC2, 0, 0, r.randint(0, 15)]) + random_station(r)
        + struct.pack("!H", r.choice([0x8809, 0x88CC, 0x0027])) + r.randbytes(r.randint(0, 110)),
    # Multicast, broadcast and all-zero sources.
    "bad_source": lambda r: b"\xff" * 6 + r.choice([b"\xff" * 6, bytes(6), bytes([1]) + r.randbytes(5)])
        + struct.pack("!H", ETH_P_IP) + r.randbytes(46),
    # Anything at all, of any length a veth takes.
    "garbage": lambda r: r.randbytes(r.randint(14, 1514)),
}


def cmd_storm(a):
    """A storm of malformed and hostile frames, the kinds mixed at random."""
    import random
    rnd = random.Random(a.seed)
    s = packet_socket(a.dev)
    kinds = list(STORM_KINDS.items())
    sent = {name: 0 for name, _ in kinds}
    # 802.1Q frames shorter than 20 bytes: a kernel receiving them on an skb path
    # (tc) drops them in skb_vlan_untag, before any hook and with no device counter.
    short_tagged = 0
    for _ in range(a.count):
        name, build = rnd.choice(kinds)
        frame = build(rnd)
        try:
            s.send(frame)
            sent[name] += 1
            short_tagged += frame[12:14] == b"\x81\x00" and len(frame) < 20
        except (BlockingIOError, OSError):
            pass
    emit({"sent": sum(sent.values()), "kinds": sent, "short_8021q": short_tagged})


def cmd_capture(a):
    s = packet_socket(a.dev)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    ready()
    deadline = time.monotonic() + a.seconds
    seen = 0
    while seen < a.count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
        if addr[2] == PACKET_OUTGOING and not a.all:
            continue
        tag = None
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= AUXDATA.size:
                status, _l, _sl, _mac, _net, tci, tpid = AUXDATA.unpack_from(cdata)
                if status & TP_STATUS_VLAN_VALID:
                    tag = (tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q, tci)
        out = describe(data, tag)
        if a.all:
            out["outgoing"] = addr[2] == PACKET_OUTGOING
        emit(out)
        seen += 1


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    for flags in (IFF_TAP | IFF_NO_PI, IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE):
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
            return fd
        except OSError as e:  # EINVAL: the tap was made multi-queue
            err = e
    os.close(fd)
    raise err


def vm_reply(frame, mac, ip):
    """The answer a VM with this MAC/IP gives to frame, as (kind, bytes), or None."""
    if len(frame) < 14 or not mac:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    me, myip = mac_bytes(mac), socket.inet_aton(ip) if ip else None
    if ethertype == ETH_P_ARP and len(frame) >= 42 and myip:
        arp = frame[14:42]
        if struct.unpack_from("!H", arp, 6)[0] == 1 and arp[24:28] == myip:
            sha, spa = arp[8:14], arp[14:18]
            body = arp[0:6] + struct.pack("!H", 2) + me + myip + sha + spa
            return "arp", sha + me + struct.pack("!H", ETH_P_ARP) + body + bytes(18)
    if ethertype == ETH_P_IP and len(frame) >= 34 and myip and frame[0:6] == me:
        ihl = (frame[14] & 0xF) * 4
        ip_hdr = frame[14:14 + ihl]
        total = struct.unpack_from("!H", ip_hdr, 2)[0]
        icmp = frame[14 + ihl:14 + total]
        if ip_hdr[9] == 1 and ip_hdr[16:20] == myip and len(icmp) >= 8 and icmp[0] == 8:
            # swapping source and destination keeps the IPv4 header checksum valid
            new_ip = ip_hdr[0:12] + ip_hdr[16:20] + ip_hdr[12:16] + ip_hdr[20:]
            new_icmp = bytes([0, 0]) + b"\0\0" + icmp[4:]
            new_icmp = new_icmp[0:2] + struct.pack("!H", checksum(new_icmp)) + new_icmp[4:]
            return "icmp", frame[6:12] + me + struct.pack("!H", ETH_P_IP) + new_ip + new_icmp
    return None


def cmd_vm(a):
    fd = open_tap(a.tap)
    ready()
    if a.send_count:
        if not a.dst or not a.mac:
            sys.exit("vm: --send-count needs --dst and --mac")
        frame = build_frame(a.dst, a.mac, int(a.ethertype, 0), a.payload_len)
        for _ in range(a.send_count):
            os.write(fd, frame)
        emit({"sent": a.send_count, "len": len(frame)})
    deadline = time.monotonic() + a.seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        frame = os.read(fd, 65535)
        out = describe(frame)
        reply = vm_reply(frame, a.mac, a.ip)
        if reply:
            os.write(fd, reply[1])
            out["replied"] = reply[0]
        emit(out)


def cmd_relay(a):
    """A host stack behind a tap port: frames the switch sends on the port's tap
    go to a second tap (--inner, which the caller moves into a namespace and
    gives an address), and back. The inner tap has no offloads (no vnet header),
    so its stack sends complete checksums, as a VM's NIC without offloads."""
    outer = open_tap(a.tap)
    inner = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(inner, TUNSETIFF, struct.pack("16sH", a.inner.encode(), IFF_TAP | IFF_NO_PI))
    ready()
    peer = {outer: inner, inner: outer}
    while True:
        for fd in select.select([outer, inner], [], [])[0]:
            try:
                os.write(peer[fd], os.read(fd, 65535))
            except OSError:  # the other tap is down or full: the frame is lost, as on a wire
                pass


def reexec_in_netns():
    """`--ns NS` anywhere on the command line: run again under `ip netns exec NS`."""
    argv = sys.argv[1:]
    if "--ns" not in argv:
        return
    i = argv.index("--ns")
    ns, rest = argv[i + 1], argv[:i] + argv[i + 2:]
    os.execvp("ip", ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__)] + rest)


def main():
    reexec_in_netns()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("send")
    s.add_argument("--dev", required=True)
    s.add_argument("--dst")
    s.add_argument("--src")
    s.add_argument("--vlan", type=int)
    s.add_argument("--pcp", type=int, default=0)
    s.add_argument("--ethertype", default="0x0800")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--payload-len", type=int, default=46)
    s.add_argument("--interval", type=float, default=0.0)
    s.add_argument("--raw", help="hex bytes sent as they are (for malformed frames)")

    c = sub.add_parser("capture")
    c.add_argument("--dev", required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--count", type=int, default=1 << 30)
    c.add_argument("--all", action="store_true", help="also frames the host sends")

    f = sub.add_parser("flood")
    f.add_argument("--dev", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--dst", default="ff:ff:ff:ff:ff:ff")
    f.add_argument("--vlan", type=int)
    f.add_argument("--seed", type=int)

    st = sub.add_parser("storm")
    st.add_argument("--dev", required=True)
    st.add_argument("--count", type=int, required=True)
    st.add_argument("--seed", type=int, default=12)

    v = sub.add_parser("vm")
    v.add_argument("--tap", required=True)
    v.add_argument("--mac")
    v.add_argument("--ip")
    v.add_argument("--seconds", type=float, default=10.0)
    v.add_argument("--send-count", type=int, default=0)
    v.add_argument("--dst")
    v.add_argument("--ethertype", default="0x0800")
    v.add_argument("--payload-len", type=int, default=46)

    r = sub.add_parser("relay")
    r.add_argument("--tap", required=True, help="the switch's tap port")
    r.add_argument("--inner", required=True, help="the tap to create for the host stack")

    a = p.parse_args()
    {"send": cmd_send, "flood": cmd_flood, "storm": cmd_storm, "capture": cmd_capture, "vm": cmd_vm, "relay": cmd_relay}[a.cmd](a)


if __name__ == "__main__":
    main()
