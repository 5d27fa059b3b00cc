/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The one definition of everything the BPF programs (bpf/) and the C++
 * datapath (native/) must agree on: map layouts, flags, limits, and the pure
 * rules both apply to a frame (FDB hash, VLAN ingress, bond flow bucket).
 *
 * It compiles as BPF C (clang -target bpf) and as C++20 (g++): plain C, types
 * from <linux/types.h>, no libc. The functions are written for the verifier
 * (every packet read is preceded by a "pointer + constant <= end" check) and
 * serve the hot loop unchanged, which passes end = frame + len.
 *
 * The TypeScript control plane has its own copies of some of these
 * (src/switch/bond/flow-hash.ts hashFlow, src/switch/l2/vlan-rules.ts ingressVlan,
 * FDB_FLAG_STATIC in types.ts); test/vectors/shared.json pins all of them.
 */
#ifndef VSWITCHD_SHARED_H
#define VSWITCHD_SHARED_H

#include <linux/types.h>

#ifdef __cplusplus
#include <cstddef>
#define VSW_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define VSW_OFFSETOF(type, member) offsetof(type, member)
#else
#define VSW_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define VSW_OFFSETOF(type, member) __builtin_offsetof(type, member)
#endif

#define VSW_INLINE static inline __attribute__((always_inline))

/* ---- sizes and limits ---- */

/* Bumped whenever a map layout below (or what a field means) changes: a daemon
 * adopts the maps a running datapath left (restart, upgrade) only when the
 * version they were made with is its own (src/switch/daemon/handover.ts). */
#define VSW_LAYOUT_VERSION 2         /* 2: fast_counters.policy_drops (port security, storm control, policing) */
#define VSW_MAX_PORTS 4096         /* port indices 0..4095 (FDB port ids are 16-bit): port table, devmap, fast stats; src/switch/types.ts MAX_PORTS */
#define VSW_MAX_QUEUES 64          /* queues per device: the XSKMAP */
#define VSW_VLAN_IDS 4096          /* VLAN id space (0 = priority tag, 4095 reserved) */
#define VSW_VID_RESERVED 4095
#define VSW_BOND_BUCKETS 256       /* flow buckets of a bond (src/switch/bond/policy.ts BOND_BUCKETS) */
#define VSW_FDB_DEFAULT_SLOTS 1024 /* the FDB map's size in the object; the daemon sets the real one */
#define VSW_FDB_MAX_PROBES 32      /* slots the XDP lookup probes before it calls a key unknown */
#define VSW_MAX_MTU 9000           /* the largest port MTU the datapath carries (punt pairs have it) */
#define VSW_ETH_HLEN 14
#define VSW_VLAN_HLEN 4

/* FDB slot flags (FDB_FLAG_STATIC in src/switch/types.ts). */
#define VSW_FDB_STATIC 1           /* never aged, never moved */
#define VSW_FDB_TOMBSTONE 0x8000   /* deleted slot: probing continues past it */

/* A source's last_seen_ms is rewritten when it is this much older than now
 * (hot loop and XDP program alike; the control plane's aging counts on it). */
#define VSW_LAST_SEEN_REFRESH_MS 1000
/* fast_config.now_ms is stored by the workers when the clock moved this much. */
#define VSW_FAST_CLOCK_STEP_MS 100

/* The FDB hash: Fibonacci hashing of the 64-bit <vlan, mac> key. */
#define VSW_FDB_HASH_MULT 0x9E3779B97F4A7C15ull

/* FNV-1a, 32 bits: the bond flow hash (src/switch/bond/flow-hash.ts fnv1a32). */
#define VSW_FNV_OFFSET 0x811c9dc5u
#define VSW_FNV_PRIME 0x01000193u

#define VSW_ETH_P_8021Q 0x8100
#define VSW_ETH_P_IPV4 0x0800
#define VSW_ETH_P_IPV6 0x86dd

/* ---- map layouts ---- */

/* One FDB slot (BPF_F_MMAPABLE array "vswitchd_fdb"; native/fdb/fdb_table.h
 * writes it, the hot loops and the XDP program read it). */
struct fdb_slot {
	__u32 seq;            /* per-slot seqlock: odd while the writer is inside */
	__u16 vlan;           /* 0 = empty (or a tombstone if flags say so) */
	__u8 mac[6];
	__u16 port;
	__u16 flags;          /* VSW_FDB_* */
	__u32 reserved;
	__u64 last_seen_ms;   /* CLOCK_MONOTONIC ms */
};

/* One entry of the port table ("vswitchd_ports", indexed by port). */
struct fast_port {
	__u8 active;          /* attached and carrying traffic */
	__u8 trunk;
	__u8 fast_in;         /* frames arriving here may be switched in XDP */
	__u8 fast_out;        /* frames for this port may be redirected to it */
	__u16 access_vlan;
	__u16 native_vlan;    /* trunk: 0 = untagged frames are dropped */
	__u64 allowed[VSW_VLAN_IDS / 64]; /* trunk VLAN bitmap */
	/* Bonds (a bond is a port with no device; see src/switch/bond/policy.ts): */
	__s16 bond;           /* a leg: its bond's port index, else -1 */
	__u8 leg_rx;          /* a leg: frames arriving on it are taken */
	__u8 is_bond;
	__u8 bond_hash;       /* a bond: VSW_BOND_HASH_* */
	__u8 learn_full;      /* at its MAC limit: frames from sources new to it are dropped (mac_limit) */
	__s16 buckets[VSW_BOND_BUCKETS]; /* a bond: flow bucket -> leg port index, -1 none */
	__u16 mtu;            /* the device's MTU (payload bytes); 0: not checked (bonds: their legs are) */
	__u8 fast_out_mb;     /* fast_out, multi-buffer (jumbo) frames too: a veth, not a tap (tun has no XDP SG transmit) */
	__u8 reserved_end[7];
};

#define VSW_BOND_HASH_NONE 0  /* one leg for all: bucket 0 */
#define VSW_BOND_HASH_L2 1
#define VSW_BOND_HASH_L3L4 2

/* Per-CPU fast path counters ("vswitchd_fast_stats", indexed by port). */
struct fast_counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 redirect_failed;  /* frames arriving here that a redirect helper refused (no AF_XDP
	                           socket on the queue, no egress device): lost, counted */
	__u64 mac_limit;        /* frames dropped because the port is at its MAC limit (learn_full) */
	__u64 policy_drops[8];  /* frames dropped by the port's policy, by VSW_POLICY_* reason - 1 */
};

/* The fast path's settings and coarse clock ("vswitchd_config", one entry,
 * BPF_F_MMAPABLE: the daemon writes it through a mapping). */
struct fast_config {
	__u32 fdb_mask;       /* FDB slots - 1 */
	__u32 enabled;        /* datapath.fast_path */
	__u64 now_ms;         /* CLOCK_MONOTONIC ms, advanced in VSW_FAST_CLOCK_STEP_MS steps */
};

/* The devices of a port for the tc fast path ("vswitchd_tc_ports", indexed by
 * port): where its frames are redirected to, and where its own slow-path frames
 * go (the near end of its punt veth pair). */
struct tc_port {
	__u32 ifindex;        /* the port's device; 0: not a tc redirect target */
	__u32 punt_ifindex;   /* this port's punt pair, near end; 0: none */
	__u32 flags;          /* VSW_TC_* */
	__u32 reserved;
};

#define VSW_TC_OUT 1          /* frames may be redirected to this port from tc */
#define VSW_TC_PEER_NETNS 2   /* a veth whose peer is in another netns: bpf_redirect_peer */

/* 01:80:c2:00:00:0x: link-local control frames (802.1D), never forwarded; LACPDUs among them. */
VSW_INLINE int vsw_link_local(const __u8 *dst)
{
	return dst[0] == 0x01 && dst[1] == 0x80 && dst[2] == 0xc2 && dst[3] == 0 && dst[4] == 0 && dst[5] <= 0x0f;
}

/* A port at its MAC limit refuses a source unless it is learned on that very port or
 * pinned by a static entry: the frame is dropped where it arrives (mac_limit) instead
 * of being reported to the control plane to be refused. found: the source is in the FDB,
 * on src_port with src_flags. The hot loop, the tc and the XDP program all apply it. */
VSW_INLINE int vsw_mac_limit_refuses(int learn_full, int found, __u16 src_port, __u16 src_flags, __u32 in)
{
	if (!learn_full)
		return 0;
	return !(found && (src_port == in || (src_flags & VSW_FDB_STATIC)));
}

/* Offsets, not only sizes: both compilers check them against this list, and
 * native/test/shared_vectors.cc checks the built object's BTF against them. */
VSW_STATIC_ASSERT(sizeof(struct tc_port) == 16, "tc_port size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct tc_port, ifindex) == 0, "tc_port.ifindex");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct tc_port, punt_ifindex) == 4, "tc_port.punt_ifindex");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct tc_port, flags) == 8, "tc_port.flags");

VSW_STATIC_ASSERT(sizeof(struct fdb_slot) == 32, "fdb_slot size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, seq) == 0, "fdb_slot.seq");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, vlan) == 4, "fdb_slot.vlan");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, mac) == 6, "fdb_slot.mac");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, port) == 12, "fdb_slot.port");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, flags) == 14, "fdb_slot.flags");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, reserved) == 16, "fdb_slot.reserved");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fdb_slot, last_seen_ms) == 24, "fdb_slot.last_seen_ms");

VSW_STATIC_ASSERT(sizeof(struct fast_port) == 1048, "fast_port size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, active) == 0, "fast_port.active");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, trunk) == 1, "fast_port.trunk");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, fast_in) == 2, "fast_port.fast_in");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, fast_out) == 3, "fast_port.fast_out");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, access_vlan) == 4, "fast_port.access_vlan");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, native_vlan) == 6, "fast_port.native_vlan");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, allowed) == 8, "fast_port.allowed");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, bond) == 520, "fast_port.bond");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, leg_rx) == 522, "fast_port.leg_rx");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, is_bond) == 523, "fast_port.is_bond");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, bond_hash) == 524, "fast_port.bond_hash");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, learn_full) == 525, "fast_port.learn_full");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, buckets) == 526, "fast_port.buckets");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, mtu) == 1038, "fast_port.mtu");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_port, fast_out_mb) == 1040, "fast_port.fast_out_mb");

VSW_STATIC_ASSERT(sizeof(struct fast_counters) == 112, "fast_counters size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, rx_packets) == 0, "fast_counters.rx_packets");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, rx_bytes) == 8, "fast_counters.rx_bytes");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, tx_packets) == 16, "fast_counters.tx_packets");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, tx_bytes) == 24, "fast_counters.tx_bytes");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, redirect_failed) == 32, "fast_counters.redirect_failed");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, mac_limit) == 40, "fast_counters.mac_limit");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_counters, policy_drops) == 48, "fast_counters.policy_drops");

VSW_STATIC_ASSERT(sizeof(struct fast_config) == 16, "fast_config size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_config, fdb_mask) == 0, "fast_config.fdb_mask");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_config, enabled) == 4, "fast_config.enabled");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct fast_config, now_ms) == 8, "fast_config.now_ms");

/* ---- rules ---- */

/* The FDB key of <vlan, mac>: the MAC's 6 bytes as a little-endian integer, the VLAN above them. */
VSW_INLINE __u64 vsw_fdb_key(__u16 vlan, const __u8 *mac)
{
	__u64 k = 0;
	__builtin_memcpy(&k, mac, 6);
	return k | ((__u64)vlan << 48);
}

/* The first slot probed for a key; probing continues linearly ((i + 1) & mask). */
VSW_INLINE __u32 vsw_fdb_hash(__u64 key, __u32 mask)
{
	return (__u32)((key * VSW_FDB_HASH_MULT) >> 32) & mask;
}

/* Whether a frame of len bytes (Ethernet header and, if tagged, its tag
 * included) is larger than an egress port's MTU: such a frame is dropped
 * (mtu_exceeded), never truncated. mtu 0: no limit known. */
VSW_INLINE int vsw_exceeds_mtu(__u32 len, int tagged, __u16 mtu)
{
	return mtu && len > (__u32)mtu + VSW_ETH_HLEN + (tagged ? VSW_VLAN_HLEN : 0);
}

/* Whether a port carries a VLAN (the port's fields, from a fast_port or the hot loop's PortView). */
VSW_INLINE int vsw_carries_vlan(__u8 active, __u8 trunk, __u16 access_vlan, __u16 native_vlan,
				const __u64 *allowed, __u16 vlan)
{
	if (!active)
		return 0;
	if (!trunk)
		return access_vlan == vlan;
	if (vlan == native_vlan)
		return 1;
	return (allowed[(vlan / 64) & 63] >> (vlan % 64)) & 1;
}
#define vsw_port_carries_vlan(p, vlan) \
	vsw_carries_vlan((p)->active, (p)->trunk, (p)->access_vlan, (p)->native_vlan, (p)->allowed, (vlan))

/* The outcome of vsw_ingress_vlan; the hot loop counts the drops as kDropVlanNotAllowed / kDropUntaggedNoNative. */
#define VSW_INGRESS_OK 0
#define VSW_INGRESS_VLAN_NOT_ALLOWED 1
#define VSW_INGRESS_UNTAGGED_NO_NATIVE 2

/* The VLAN a frame arriving on a port belongs to (src/switch/l2/vlan-rules.ts ingressVlan):
 * access: untagged or priority-tagged (VID 0) -> its VLAN, any other tag -> drop;
 * trunk: a carried VID -> VID (4095 never), untagged / VID 0 -> native VLAN or drop. */
VSW_INLINE int vsw_ingress_vlan(__u8 active, __u8 trunk, __u16 access_vlan, __u16 native_vlan,
				const __u64 *allowed, int tagged, __u16 vid, __u16 *vlan)
{
	if (!trunk) {
		if (tagged && vid != 0)
			return VSW_INGRESS_VLAN_NOT_ALLOWED;
		*vlan = access_vlan;
		return VSW_INGRESS_OK;
	}
	if (tagged && vid != 0) {
		if (vid == VSW_VID_RESERVED ||
		    !vsw_carries_vlan(active, trunk, access_vlan, native_vlan, allowed, vid))
			return VSW_INGRESS_VLAN_NOT_ALLOWED;
		*vlan = vid;
		return VSW_INGRESS_OK;
	}
	if (!native_vlan)
		return VSW_INGRESS_UNTAGGED_NO_NATIVE;
	*vlan = native_vlan;
	return VSW_INGRESS_OK;
}
#define vsw_port_ingress_vlan(p, tagged, vid, vlan) \
	vsw_ingress_vlan((p)->active, (p)->trunk, (p)->access_vlan, (p)->native_vlan, (p)->allowed, (tagged), (vid), (vlan))

VSW_INLINE __u32 vsw_fnv1a(__u32 h, const __u8 *p, int n)
{
	for (int i = 0; i < n; i++)
		h = (h ^ p[i]) * VSW_FNV_PRIME;
	return h;
}

VSW_INLINE __u8 vsw_fold(__u32 h)
{
	return (__u8)(h ^ h >> 8 ^ h >> 16 ^ h >> 24);
}

/* The bond flow bucket of the frame [f, end), byte for byte src/switch/bond/policy.ts
 * hashFlow (its comment "Flow hash" is the specification): FNV-1a over the
 * IPv4/IPv6 addresses and TCP/UDP ports (l3l4), or the MACs and ethertype. */
VSW_INLINE __u8 vsw_flow_bucket(const __u8 *f, const __u8 *end, int l3l4)
{
	__u32 h = VSW_FNV_OFFSET;
	if (f + 14 > end)
		return vsw_fold(h);
	int et_off = (f + 18 <= end && f[12] == 0x81 && f[13] == 0x00) ? 16 : 12;
	const __u8 *l3 = f + et_off + 2;
	__u16 ethertype = et_off == 16 ? ((__u16)f[16] << 8 | f[17]) : ((__u16)f[12] << 8 | f[13]);
	if (l3l4 && ethertype == VSW_ETH_P_IPV4 && l3 + 20 <= end) {
		__u32 ihl = (l3[0] & 0x0f) * 4;
		if ((l3[0] >> 4) == 4 && ihl >= 20 && ihl <= 60 && l3 + ihl <= end) {
			__u8 proto = l3[9];
			int fragment = (((__u16)l3[6] << 8 | l3[7]) & 0x3fff) != 0;
			h = vsw_fnv1a(h, l3 + 12, 8);
			const __u8 *l4 = l3 + ihl;
			if ((proto == 6 || proto == 17) && !fragment && l4 + 4 <= end)
				h = vsw_fnv1a(h, l4, 4);
			return vsw_fold(h);
		}
	}
	if (l3l4 && ethertype == VSW_ETH_P_IPV6 && l3 + 40 <= end && (l3[0] >> 4) == 6) {
		__u8 next = l3[6];
		h = vsw_fnv1a(h, l3 + 8, 32);
		if ((next == 6 || next == 17) && l3 + 44 <= end)
			h = vsw_fnv1a(h, l3 + 40, 4);
		return vsw_fold(h);
	}
	h = vsw_fnv1a(h, f, 12);
	if (et_off == 16)
		h = vsw_fnv1a(h, f + 16, 2);
	else
		h = vsw_fnv1a(h, f + 12, 2);
	return vsw_fold(h);
}

/* ---- port policy: port security, storm control, ingress policing ---- */

#define VSW_POLICY_MACS 8          /* source MACs a port may be restricted to */
#define VSW_POLICY_IPS 8           /* IPv4 and IPv6 source addresses each */

/* port_policy.flags */
#define VSW_POL_MACS 1             /* source MACs (and ARP/ND link-layer addresses) restricted to macs[] */
#define VSW_POL_IPS 2              /* source IPs (and ARP sender / ND target) restricted to ipv4[] / ipv6[] */
#define VSW_POL_STORM 4            /* some storm_pps[] cap is set */
#define VSW_POL_POLICE 8           /* police_rate is set */
#define VSW_POL_LEARN 16           /* with VSW_POL_MACS: security.learn, not locked yet: a source MAC not in
				    * macs[] is VSW_POLICY_LEARN (to the slow path, to be admitted), not dropped */

/* Storm classes (port_policy.storm_pps[], port_buckets.storm[]). */
#define VSW_STORM_BROADCAST 0
#define VSW_STORM_MULTICAST 1
#define VSW_STORM_UNKNOWN_UNICAST 2
#define VSW_STORM_NONE -1

/* A port's policy ("vswitchd_policy", indexed by port, BPF_F_MMAPABLE: the
 * control plane writes it, the port's tc/XDP program and the hot loop read it). */
struct port_policy {
	__u32 flags;                      /* VSW_POL_*; 0: no policy (the one test a frame of another port costs) */
	__u8 n_macs, n_ipv4, n_ipv6, reserved0;
	__u8 macs[VSW_POLICY_MACS][6];
	__u32 ipv4[VSW_POLICY_IPS];       /* network byte order */
	__u8 ipv6[VSW_POLICY_IPS][16];
	__u32 storm_pps[3];               /* frames/s per VSW_STORM_* class entering from the port; 0: no cap */
	__u32 reserved1;
	__u64 police_rate;                /* bytes/s; 0: not policed */
	__u64 police_burst;               /* bytes */
};

/* A token bucket: tokens in units (frames or bytes) * 1e9, refilled by rate * elapsed ns.
 * Updated with atomic ops by every CPU's programs and by the hot loop alike. */
struct vsw_bucket {
	__s64 tokens;
	__u64 last_ns;                    /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the last refill */
};

/* A port's buckets ("vswitchd_buckets", indexed by port, BPF_F_MMAPABLE): one cache line. */
struct port_buckets {
	struct vsw_bucket storm[3];
	struct vsw_bucket police;
};

/* Why the port's policy drops a frame: fast_counters.policy_drops[reason - 1], and the
 * hot loop's kDropSpoofedMac.. kDropPoliced in the same order. */
#define VSW_POLICY_OK 0
#define VSW_POLICY_SPOOFED_MAC 1
#define VSW_POLICY_SPOOFED_IP 2
#define VSW_POLICY_SPOOFED_ARP 3
#define VSW_POLICY_SPOOFED_ND 4
#define VSW_POLICY_STORM_BROADCAST 5   /* + VSW_STORM_* class */
#define VSW_POLICY_STORM_MULTICAST 6
#define VSW_POLICY_STORM_UNKNOWN_UNICAST 7
#define VSW_POLICY_POLICED 8
#define VSW_POLICY_REASONS 8
/* Not a drop here: a source MAC a learning port (VSW_POL_LEARN) may still admit. The
 * programs send the frame to the slow path, whose hot loop reports it to the control
 * plane (which admits it) and drops it unforwarded (kDropMacLearning). */
#define VSW_POLICY_LEARN 255

#define VSW_NS_PER_S 1000000000ull
/* A bucket is refilled at most this often (ns): at millions of frames/s a compare-and-swap
 * per frame was most of the policer's cost; what 10 us adds at once is noise to any burst. */
#define VSW_BUCKET_REFILL_NS 10000ull
/* The largest policer rate (bytes/s): rate * 1 s of ns stays within 64 unsigned bits. */
#define VSW_POLICE_MAX_RATE 12500000000ull

VSW_STATIC_ASSERT(sizeof(struct port_policy) == 248, "port_policy size");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, flags) == 0, "port_policy.flags");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, n_macs) == 4, "port_policy.n_macs");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, macs) == 8, "port_policy.macs");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, ipv4) == 56, "port_policy.ipv4");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, ipv6) == 88, "port_policy.ipv6");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, storm_pps) == 216, "port_policy.storm_pps");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, police_rate) == 232, "port_policy.police_rate");
VSW_STATIC_ASSERT(VSW_OFFSETOF(struct port_policy, police_burst) == 240, "port_policy.police_burst");
VSW_STATIC_ASSERT(sizeof(struct port_buckets) == 64, "port_buckets size");

VSW_INLINE int vsw_mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

VSW_INLINE int vsw_policy_mac(const struct port_policy *p, const __u8 *mac)
{
	for (int i = 0; i < VSW_POLICY_MACS; i++) {
		if (i >= p->n_macs)
			break;
		if (vsw_mac_eq(p->macs[i], mac))
			return 1;
	}
	return 0;
}

/* An IPv4 address (4 bytes, as in the frame) bound to the port; 0.0.0.0 too when zero_ok. */
VSW_INLINE int vsw_policy_ipv4(const struct port_policy *p, const __u8 *a, int zero_ok)
{
	__u32 v;
	__builtin_memcpy(&v, a, 4);
	if (zero_ok && v == 0)
		return 1;
	for (int i = 0; i < VSW_POLICY_IPS; i++) {
		if (i >= p->n_ipv4)
			break;
		if (p->ipv4[i] == v)
			return 1;
	}
	return 0;
}

/* An IPv6 address bound to the port, or link-local (fe80::/10: a VM's own, which no list
 * can know), or :: (DAD and MLD before an address is assigned). */
VSW_INLINE int vsw_policy_ipv6(const struct port_policy *p, const __u8 *a)
{
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return 1;
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if ((hi | lo) == 0)
		return 1;
	for (int i = 0; i < VSW_POLICY_IPS; i++) {
		if (i >= p->n_ipv6)
			break;
		__u64 h2, l2;
		__builtin_memcpy(&h2, p->ipv6[i], 8);
		__builtin_memcpy(&l2, p->ipv6[i] + 8, 8);
		if (h2 == hi && l2 == lo)
			return 1;
	}
	return 0;
}

/* Neighbor Solicitation / Advertisement [icmp, end): the target (NA; NS from :: = DAD of
 * the sender's own address) must be the port's, the link-layer address options its MACs. */
VSW_INLINE int vsw_nd_verdict(const struct port_policy *p, const __u8 *icmp, const __u8 *end, int dad)
{
	if (icmp + 24 > end)
		return VSW_POLICY_SPOOFED_ND;
	if ((p->flags & VSW_POL_IPS) && (icmp[0] == 136 || dad) && !vsw_policy_ipv6(p, icmp + 8))
		return VSW_POLICY_SPOOFED_ND;
	if (!(p->flags & VSW_POL_MACS))
		return VSW_POLICY_OK;
	const __u8 *o = icmp + 24;
	for (int i = 0; i < 3; i++) {  /* Linux takes the first option of a type; NS/NA carry one or two */
		if (o + 8 > end)
			break;
		__u32 olen = (__u32)o[1] * 8;
		if (olen == 0)
			return VSW_POLICY_SPOOFED_ND;  /* invalid: receivers drop it too */
		if ((o[0] == 1 || o[0] == 2) && !vsw_policy_mac(p, o + 2))
			return VSW_POLICY_SPOOFED_ND;
		o += olen;
	}
	return VSW_POLICY_OK;
}

/* Port security: whether the frame [f, end) may come from this port (f: its Ethernet header,
 * with at most one 802.1Q tag in the frame). VSW_POLICY_OK, VSW_POLICY_SPOOFED_* or VSW_POLICY_LEARN.
 *  - source MAC in macs[] (VSW_POL_MACS; another one is VSW_POLICY_LEARN while the port
 *    learns, VSW_POL_LEARN); ARP sender MAC and ND link-layer options too;
 *  - IPv4 source in ipv4[], except a DHCP client's 0.0.0.0:68 -> :67; ARP sender IP in
 *    ipv4[] or 0.0.0.0 (a probe) (VSW_POL_IPS);
 *  - IPv6 source in ipv6[], link-local or ::; NA target (and a DAD NS's) likewise;
 *  - with VSW_POL_IPS, a frame whose headers cannot be read (truncated, a second VLAN
 *    tag) is refused: it could hide any of the above.
 * The tc program passes frames whose tag the kernel already took out; the XDP program and
 * the hot loop pass them as received. Pure: test/vectors/shared.json pins it. */
VSW_INLINE int vsw_source_verdict(const struct port_policy *p, const __u8 *f, const __u8 *end)
{
	if (f + 14 > end)
		return VSW_POLICY_SPOOFED_MAC;
	if ((p->flags & VSW_POL_MACS) && !vsw_policy_mac(p, f + 6))
		return (p->flags & VSW_POL_LEARN) ? VSW_POLICY_LEARN : VSW_POLICY_SPOOFED_MAC;
	const __u8 *l3 = f + 14;
	__u16 et = (__u16)f[12] << 8 | f[13];
	if (et == VSW_ETH_P_8021Q) {
		if (f + 18 > end)
			return (p->flags & VSW_POL_IPS) ? VSW_POLICY_SPOOFED_IP : VSW_POLICY_OK;
		et = (__u16)f[16] << 8 | f[17];
		l3 = f + 18;
	}
	if (et == 0x0806) {  /* ARP */
		if (!(p->flags & (VSW_POL_MACS | VSW_POL_IPS)))
			return VSW_POLICY_OK;
		if (l3 + 28 > end)
			return VSW_POLICY_SPOOFED_ARP;
		if ((p->flags & VSW_POL_MACS) && !vsw_policy_mac(p, l3 + 8))
			return VSW_POLICY_SPOOFED_ARP;
		if ((p->flags & VSW_POL_IPS) && !vsw_policy_ipv4(p, l3 + 14, 1))
			return VSW_POLICY_SPOOFED_ARP;
		return VSW_POLICY_OK;
	}
	if (et == VSW_ETH_P_IPV4) {
		if (!(p->flags & VSW_POL_IPS))
			return VSW_POLICY_OK;
		if (l3 + 20 > end)
			return VSW_POLICY_SPOOFED_IP;
		if (vsw_policy_ipv4(p, l3 + 12, 0))
			return VSW_POLICY_OK;
		/* A DHCP client before it has an address: 0.0.0.0, UDP 68 -> 67, not a fragment. */
		__u32 ihl = (l3[0] & 0x0f) * 4;
		const __u8 *l4 = l3 + ihl;
		if (ihl >= 20 && l4 + 4 <= end && l3[9] == 17 && (((__u16)l3[6] << 8 | l3[7]) & 0x3fff) == 0 &&
		    (l3[12] | l3[13] | l3[14] | l3[15]) == 0 && l4[0] == 0 && l4[1] == 68 && l4[2] == 0 && l4[3] == 67)
			return VSW_POLICY_OK;
		return VSW_POLICY_SPOOFED_IP;
	}
	if (et == VSW_ETH_P_IPV6) {
		if (!(p->flags & (VSW_POL_MACS | VSW_POL_IPS)))
			return VSW_POLICY_OK;
		if (l3 + 40 > end)
			return (p->flags & VSW_POL_IPS) ? VSW_POLICY_SPOOFED_IP : VSW_POLICY_OK;
		if ((p->flags & VSW_POL_IPS) && !vsw_policy_ipv6(p, l3 + 8))
			return VSW_POLICY_SPOOFED_IP;
		__u8 next = l3[6];
		const __u8 *l4 = l3 + 40;
		if (next == 0) {  /* hop-by-hop options: ND behind them is still ND to Linux */
			if (l4 + 8 > end)
				return VSW_POLICY_OK;
			next = l4[0];
			l4 += ((__u32)l4[1] + 1) * 8;
		}
		if (next != 58 || l4 + 1 > end || (l4[0] != 135 && l4[0] != 136))
			return VSW_POLICY_OK;
		__u8 zero = l3[8] | l3[9] | l3[10] | l3[11] | l3[12] | l3[13] | l3[14] | l3[15] | l3[16] | l3[17] |
			    l3[18] | l3[19] | l3[20] | l3[21] | l3[22] | l3[23];
		return vsw_nd_verdict(p, l4, end, l4[0] == 135 && zero == 0);
	}
	if (et == VSW_ETH_P_8021Q || et == 0x88a8)
		return (p->flags & VSW_POL_IPS) ? VSW_POLICY_SPOOFED_IP : VSW_POLICY_OK;
	return VSW_POLICY_OK;
}

/* The storm class of a destination: broadcast, multicast (link-local control frames are
 * not flooded, so none), or unicast (VSW_STORM_NONE: unknown unicast is the caller's FDB miss). */
VSW_INLINE int vsw_storm_class(const __u8 *dst)
{
	if (!(dst[0] & 1) || vsw_link_local(dst))
		return VSW_STORM_NONE;
	if ((dst[0] & dst[1] & dst[2] & dst[3] & dst[4] & dst[5]) == 0xff)
		return VSW_STORM_BROADCAST;
	return VSW_STORM_MULTICAST;
}

/* Takes cost units from a bucket of rate units/s holding at most burst units; 0 when it
 * has too few. Lock-free: one refill wins the last_ns exchange, takes are atomic adds. A
 * frame larger than the whole burst passes a full bucket (into debt) rather than never. */
VSW_INLINE int vsw_bucket_take(struct vsw_bucket *b, __u64 now_ns, __u64 rate, __u64 burst, __u64 cost)
{
	__u64 last = *(volatile __u64 *)&b->last_ns;
	__s64 cap = (__s64)(burst * VSW_NS_PER_S);
	if (now_ns >= last + VSW_BUCKET_REFILL_NS && __sync_val_compare_and_swap(&b->last_ns, last, now_ns) == last) {
		__u64 elapsed = now_ns - last;
		if (elapsed > VSW_NS_PER_S)
			elapsed = VSW_NS_PER_S;
		/* Unsigned until clamped: a second at VSW_POLICE_MAX_RATE is past what an __s64 holds
		 * (a 100 Gbit/s policer idle for 0.74 s went negative and dropped everything). */
		__u64 add = elapsed * rate;
		if (add > (__u64)cap)
			add = (__u64)cap;
		__s64 t = __sync_fetch_and_add(&b->tokens, (__s64)add) + (__s64)add;
		if (t > cap)
			__sync_fetch_and_add(&b->tokens, cap - t);
	}
	__s64 need = (__s64)(cost * VSW_NS_PER_S);
	if (*(volatile __s64 *)&b->tokens < (need < cap ? need : cap))
		return 0;
	__sync_fetch_and_add(&b->tokens, -need);
	return 1;
}

/* The policer's credit on one CPU (or one hot-loop worker): bytes * 1e9 taken from the port's
 * shared bucket in a chunk, spent frame by frame without a clock read or an atomic op. The
 * clock read (bpf_ktime_get_ns, ~35 ns here) was nearly all of what policing cost a frame;
 * the shared bucket still decides, exactly, how much is taken over time (docs/ARCHITECTURE.md).
 * Kept where only its user sees it: a per-CPU map of each program copy, the worker's memory.
 * rate/burst: the policy it was taken under; another (a reload) voids it. */
struct vsw_credit {
	__s64 tokens;
	__u64 rate;
	__u64 burst;
};

/* A chunk is at most 1/VSW_CREDIT_SHARE of the burst, 1 ms of the rate and VSW_CREDIT_MAX
 * bytes: what each CPU may hold beyond the bucket, so a burst is at most (CPUs / 16) larger
 * and a rate over a second off by (CPUs x 1 ms). Below 2 bytes no credit is kept. */
#define VSW_CREDIT_SHARE 16
#define VSW_CREDIT_MAX_NS 1000000ull
#define VSW_CREDIT_MAX 65536ull

VSW_STATIC_ASSERT(sizeof(struct vsw_credit) == 24, "vsw_credit size");

VSW_INLINE __u64 vsw_credit_chunk(__u64 rate, __u64 burst)
{
	__u64 c = burst / VSW_CREDIT_SHARE;
	__u64 r = rate / (VSW_NS_PER_S / VSW_CREDIT_MAX_NS);
	if (c > r)
		c = r;
	if (c > VSW_CREDIT_MAX)
		c = VSW_CREDIT_MAX;
	return c < 2 ? 0 : c;
}

/* Spends cost bytes from the credit: 1 when it covers them (the frame passes; no clock read,
 * no atomic), 0 when the caller must read the clock and call vsw_credit_take. */
VSW_INLINE int vsw_credit_spend(struct vsw_credit *c, __u64 rate, __u64 burst, __u64 cost)
{
	__s64 need = (__s64)(cost * VSW_NS_PER_S);
	if (c->rate != rate || c->burst != burst || c->tokens < need)
		return 0;
	c->tokens -= need;
	return 1;
}

/* The policer when the credit is short: what is left of it goes back to the bucket, then the
 * frame and a new chunk are taken together if the bucket holds both, else the frame alone
 * (vsw_bucket_take, exact per frame: so while the policer caps, the bucket runs near empty
 * and no CPU holds credit). 1: the frame passes. */
VSW_INLINE int vsw_credit_take(struct vsw_credit *c, struct vsw_bucket *b, __u64 now_ns, __u64 rate, __u64 burst, __u64 cost)
{
	if (c->tokens > 0 && c->rate == rate && c->burst == burst)
		__sync_fetch_and_add(&b->tokens, c->tokens);
	c->tokens = 0;
	c->rate = rate;
	c->burst = burst;
	__u64 chunk = vsw_credit_chunk(rate, burst);
	if (chunk && cost + chunk <= burst && vsw_bucket_take(b, now_ns, rate, burst, cost + chunk)) {
		c->tokens = (__s64)(chunk * VSW_NS_PER_S);
		return 1;
	}
	return vsw_bucket_take(b, now_ns, rate, burst, cost);
}

/* Storm control for a frame of storm class cls counting segs frames (a GSO skb):
 * VSW_POLICY_OK or VSW_POLICY_STORM_*. A cap's burst is one second of it. Applied where
 * the frame enters (the port's program; the hot loop for the internal port), before flooding. */
VSW_INLINE int vsw_storm_verdict(const struct port_policy *p, struct port_buckets *b, __u64 now_ns, __u32 segs, int cls)
{
	if (cls < 0 || cls > 2)
		return VSW_POLICY_OK;
	__u32 pps = p->storm_pps[cls];
	if (pps && !vsw_bucket_take(&b->storm[cls], now_ns, pps, pps, segs))
		return VSW_POLICY_STORM_BROADCAST + cls;
	return VSW_POLICY_OK;
}

/* The policer for a frame of bytes: VSW_POLICY_OK or VSW_POLICY_POLICED. Charged once,
 * by whichever forwards the frame: the port's program for what it switches itself, the
 * hot loop for everything that reaches it (so a GSO skb the program cannot pass whole
 * is punted, segmented by the punt pair and policed segment by segment, as on a wire:
 * TCP loses the tail of a burst, not 45 segments at once). */
VSW_INLINE int vsw_police_verdict(const struct port_policy *p, struct port_buckets *b, __u64 now_ns, __u64 bytes)
{
	if (p->police_rate && !vsw_bucket_take(&b->police, now_ns, p->police_rate, p->police_burst, bytes))
		return VSW_POLICY_POLICED;
	return VSW_POLICY_OK;
}

#endif /* VSWITCHD_SHARED_H */
