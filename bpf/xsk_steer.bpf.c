// SPDX-License-Identifier: GPL-2.0
// The XDP program on every switch port. Two paths:
//
//  - fast path (datapath.fast_path: auto): known unicast is switched here, in
//    the kernel. The program reads the same FDB the hot loops read (a
//    BPF_F_MMAPABLE array the control plane writes), checks that the source is
//    already learned on this port, pushes/pops the VLAN tag the egress port
//    needs and redirects through a DEVMAP_HASH.
//  - slow path: everything else (broadcast, multicast, unknown unicast, new or
//    moved sources, control frames, bonds, odd frames) goes to the AF_XDP
//    socket of the queue it arrived on, as before.
//
// One copy of this program is loaded per port, each with its own XSKMAP; the
// other maps are created once by the daemon and shared (bpf_map__reuse_fd).
// Anything unexpected takes the slow path, which counts drops and reasons.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>

#define MAX_QUEUES 64
#define MAX_PORTS 256
#define FDB_STATIC 1
#define FDB_TOMBSTONE 0x8000
#define MAX_PROBES 32

// Layout shared with native/fdb_table.h (FdbSlot) and native/datapath.h (FastPort).
struct fdb_slot {
	__u32 seq;
	__u16 vlan;
	__u8 mac[6];
	__u16 port;
	__u16 flags;
	__u32 reserved;
	__u64 last_seen_ms;
};

struct fast_port {
	__u8 active;      // attached and carrying traffic
	__u8 trunk;
	__u8 fast_in;     // frames arriving here may be switched in XDP
	__u8 fast_out;    // frames for this port may be redirected to it
	__u16 access_vlan;
	__u16 native_vlan;
	__u64 allowed[64];
	// Bonds (a bond is a port with no device; see src/switch/bond.ts):
	__s16 bond;       // a leg: its bond's port index, else -1
	__u8 leg_rx;      // a leg: frames arriving on it are taken
	__u8 is_bond;
	__u8 bond_hash;   // a bond: 0 one leg for all, 1 l2, 2 l3l4
	__u8 pad;
	__s16 buckets[256]; // a bond: flow bucket -> leg port index, -1 none
};

struct fast_counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// The FDB; the daemon creates it (size set at run time) and shares it.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fdb_slot);
} vswitchd_fdb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct fast_port);
} vswitchd_ports SEC(".maps");

// The port this copy of the program is attached to, set by the daemon before
// loading (one program per port): a constant, not a per-frame map lookup.
const volatile __u32 vswitchd_port_index = MAX_PORTS;

// port index -> egress device
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} vswitchd_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct fast_counters);
} vswitchd_fast_stats SEC(".maps");

struct fast_config {
	__u32 fdb_mask;   // FDB slots - 1
	__u32 enabled;    // datapath.fast_path
	__u64 now_ms;     // CLOCK_MONOTONIC ms, stored by the workers at least every 250 ms
};

// Mapped by the daemon: the workers store the clock with a plain write, and the
// program reads it instead of calling bpf_ktime_get_ns() per frame (a TSC read
// that was 6% of the switch CPU in a pinned fast-path profile).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fast_config);
} vswitchd_config SEC(".maps");

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(vswitchd_steer);

static __always_inline int slow_path(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

static __always_inline __u64 mac_key(const __u8 *mac, __u16 vlan)
{
	__u64 k = 0;
	__builtin_memcpy(&k, mac, 6);
	return k | ((__u64)vlan << 48);
}

static __always_inline int carries(const struct fast_port *p, __u16 vlan)
{
	if (!p->active)
		return 0;
	if (!p->trunk)
		return p->access_vlan == vlan;
	if (vlan == p->native_vlan)
		return 1;
	return (p->allowed[(vlan / 64) & 63] >> (vlan % 64)) & 1;
}

static __always_inline __u32 fnv1a(__u32 h, const __u8 *p, int n)
{
	for (int i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193;
	return h;
}

// The bond flow hash of src/switch/bond.ts hashFlow, byte for byte (also in
// native/hot_loop.cc): a flow takes the same leg on either path.
static __always_inline __u8 flow_bucket(void *data, void *data_end, int l3l4)
{
	__u8 *f = data;
	__u32 h = 0x811c9dc5;
	if (data + 14 > data_end)
		return h ^ h >> 8 ^ h >> 16 ^ h >> 24;
	int et_off = (data + 18 <= data_end && f[12] == 0x81 && f[13] == 0x00) ? 16 : 12;
	__u8 *l3 = f + et_off + 2;
	__u16 ethertype = et_off == 16 ? ((__u16)f[16] << 8 | f[17]) : ((__u16)f[12] << 8 | f[13]);
	if (l3l4 && ethertype == 0x0800 && (void *)(l3 + 20) <= data_end) {
		__u32 ihl = (l3[0] & 0x0f) * 4;
		if ((l3[0] >> 4) == 4 && ihl >= 20 && ihl <= 60 && (void *)(l3 + ihl) <= data_end) {
			__u8 proto = l3[9];
			int fragment = (((__u16)l3[6] << 8 | l3[7]) & 0x3fff) != 0;
			h = fnv1a(h, l3 + 12, 8);
			__u8 *l4 = l3 + ihl;
			if ((proto == 6 || proto == 17) && !fragment && (void *)(l4 + 4) <= data_end)
				h = fnv1a(h, l4, 4);
			return h ^ h >> 8 ^ h >> 16 ^ h >> 24;
		}
	}
	if (l3l4 && ethertype == 0x86dd && (void *)(l3 + 40) <= data_end && (l3[0] >> 4) == 6) {
		__u8 next = l3[6];
		h = fnv1a(h, l3 + 8, 32);
		if ((next == 6 || next == 17) && (void *)(l3 + 44) <= data_end)
			h = fnv1a(h, l3 + 40, 4);
		return h ^ h >> 8 ^ h >> 16 ^ h >> 24;
	}
	h = fnv1a(h, f, 12);
	if (et_off == 16)
		h = fnv1a(h, f + 16, 2);
	else
		h = fnv1a(h, f + 12, 2);
	return h ^ h >> 8 ^ h >> 16 ^ h >> 24;
}

// Linear probing over the shared table, as native/fdb_table.h does. A slot
// being written (odd sequence) or changed under us reads as a miss.
static __always_inline struct fdb_slot *fdb_lookup(__u32 mask, __u16 vlan, const __u8 *mac, __u16 *port, __u16 *flags)
{
	__u64 want = mac_key(mac, vlan);
	__u32 i = (__u32)((want * 0x9E3779B97F4A7C15ull) >> 32) & mask;

	for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & mask) {
		__u32 key = i;
		struct fdb_slot *s = bpf_map_lookup_elem(&vswitchd_fdb, &key);
		if (!s)
			return 0;
		__u32 seq = *(volatile __u32 *)&s->seq;
		__u16 sv = *(volatile __u16 *)&s->vlan;
		__u16 sf = *(volatile __u16 *)&s->flags;
		__u16 sp = *(volatile __u16 *)&s->port;
		__u64 key_found = mac_key(s->mac, sv);
		if ((seq & 1) || *(volatile __u32 *)&s->seq != seq)
			return 0;
		if (sv == 0 && !(sf & FDB_TOMBSTONE))
			return 0;
		if (sv != 0 && key_found == want) {
			*port = sp;
			*flags = sf;
			return s;
		}
	}
	return 0;
}

SEC("xdp")
int vswitchd_steer(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fast_config *cfg = bpf_map_lookup_elem(&vswitchd_config, &zero);
	if (!cfg || !cfg->enabled)
		return slow_path(ctx);

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *eth = data;
	__u64 rx_len = (__u64)(data_end - data);
	if (data + 18 > data_end)
		return slow_path(ctx);
	// Multicast and broadcast destinations flood; link-local frames are control.
	if (eth[0] & 1)
		return slow_path(ctx);

	__u32 in = vswitchd_port_index;
	struct fast_port *ip = bpf_map_lookup_elem(&vswitchd_ports, &in);
	if (!ip || !ip->active || !ip->fast_in)
		return slow_path(ctx);
	__u32 leg_in = in;  // the device it arrived on, for the counters
	if (ip->bond >= 0) {
		// A bond leg: the frame arrives on the bond.
		if (!ip->leg_rx)
			return slow_path(ctx);
		in = (__u32)ip->bond;
		ip = bpf_map_lookup_elem(&vswitchd_ports, &in);
		if (!ip || !ip->active)
			return slow_path(ctx);
	}

	// The VLAN, by the rules of src/switch/flood.ts ingressVlan.
	__u16 ethertype = bpf_ntohs(*(__u16 *)(eth + 12));
	int tagged = ethertype == ETH_P_8021Q;
	__u16 tci = tagged ? bpf_ntohs(*(__u16 *)(eth + 14)) : 0;
	__u16 vid = tci & 0x0fff;
	__u16 vlan;
	if (!ip->trunk) {
		if (tagged && vid != 0)
			return slow_path(ctx);
		vlan = ip->access_vlan;
	} else if (tagged && vid != 0) {
		if (!carries(ip, vid))
			return slow_path(ctx);
		vlan = vid;
	} else {
		if (!ip->native_vlan)
			return slow_path(ctx);
		vlan = ip->native_vlan;
	}
	if (eth[6] & 1)
		return slow_path(ctx);

	__u32 mask = cfg->fdb_mask;
	__u16 src_port, src_flags, dst_port, dst_flags;
	struct fdb_slot *src = fdb_lookup(mask, vlan, eth + 6, &src_port, &src_flags);
	if (!src || src_port != in)
		return slow_path(ctx);  // new or moved source: the control plane learns it
	struct fdb_slot *dst = fdb_lookup(mask, vlan, eth, &dst_port, &dst_flags);
	if (!dst || dst_port == in)
		return slow_path(ctx);
	__u32 out = dst_port;
	struct fast_port *op = bpf_map_lookup_elem(&vswitchd_ports, &out);
	if (!op || !carries(op, vlan))
		return slow_path(ctx);
	// The tag the egress wants follows the logical port (the bond), the device its leg.
	int want_tag = op->trunk && vlan != op->native_vlan;
	__u32 tx_port = out;
	if (op->is_bond) {
		__u8 bucket = op->bond_hash ? flow_bucket(data, data_end, op->bond_hash == 2) : 0;
		__s16 leg = op->buckets[bucket];
		if (leg < 0)
			return slow_path(ctx);
		tx_port = (__u32)leg;
		struct fast_port *lp = bpf_map_lookup_elem(&vswitchd_ports, &tx_port);
		if (!lp || !lp->fast_out)
			return slow_path(ctx);
	} else if (!op->fast_out) {
		return slow_path(ctx);
	}

	// Keep the source alive for aging (once a second, like the hot loop).
	__u64 now_ms = cfg->now_ms;
	if (now_ms > src->last_seen_ms && now_ms - src->last_seen_ms >= 1000)
		src->last_seen_ms = now_ms;

	__u8 pcp = tci >> 13;
	// Pop the 4-byte tag (+4) or make room for one (-4): move the head, then
	// put the MACs back in front. The tag itself is written below.
	int move = tagged == want_tag ? 0 : tagged ? 4 : -4;
	if (move) {
		__u8 macs[12];
		__builtin_memcpy(macs, eth, 12);
		if (bpf_xdp_adjust_head(ctx, move))
			return slow_path(ctx);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + 14 > data_end)
			return XDP_DROP;
		__builtin_memcpy(data, macs, 12);
	}
	if (want_tag) {
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + 18 > data_end)
			return XDP_DROP;
		*(__u16 *)(data + 12) = bpf_htons(ETH_P_8021Q);
		*(__u16 *)(data + 14) = bpf_htons((__u16)(pcp << 13) | vlan);
	}

	__u64 len = (__u64)((long)ctx->data_end - (long)ctx->data);
	struct fast_counters *ic = bpf_map_lookup_elem(&vswitchd_fast_stats, &leg_in);
	if (ic) {
		ic->rx_packets++;
		ic->rx_bytes += rx_len;
	}
	struct fast_counters *oc = bpf_map_lookup_elem(&vswitchd_fast_stats, &tx_port);
	if (oc) {
		oc->tx_packets++;
		oc->tx_bytes += len;
	}
	return bpf_redirect_map(&vswitchd_tx, tx_port, 0);
}

char _license[] SEC("license") = "GPL";
