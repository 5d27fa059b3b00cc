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

// Map layouts, flags, limits and the per-frame rules shared with native/.
#include "vswitchd_shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VSW_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// The FDB; the daemon creates it (size set at run time) and shares it.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, VSW_FDB_DEFAULT_SLOTS);
	__type(key, __u32);
	__type(value, struct fdb_slot);
} vswitchd_fdb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct fast_port);
} vswitchd_ports SEC(".maps");

// The port this copy of the program is attached to, set by the daemon before
// loading (one program per port): a constant, not a per-frame map lookup.
const volatile __u32 vswitchd_port_index = VSW_MAX_PORTS;

// port index -> egress device
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} vswitchd_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct fast_counters);
} vswitchd_fast_stats SEC(".maps");

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

// Linear probing over the shared table, as native/fdb/fdb_table.h FdbView::lookup
// does (with atomics; this is its second body, which the shared vectors check),
// but at most VSW_FDB_MAX_PROBES slots. A slot being written (odd sequence) or
// changed under us reads as a miss.
static __always_inline struct fdb_slot *fdb_lookup(__u32 mask, __u16 vlan, const __u8 *mac, __u16 *port, __u16 *flags)
{
	__u64 want = vsw_fdb_key(vlan, mac);
	__u32 i = vsw_fdb_hash(want, mask);

	for (int probe = 0; probe < VSW_FDB_MAX_PROBES; probe++, i = (i + 1) & mask) {
		__u32 key = i;
		struct fdb_slot *s = bpf_map_lookup_elem(&vswitchd_fdb, &key);
		if (!s)
			return 0;
		__u32 seq = *(volatile __u32 *)&s->seq;
		__u16 sv = *(volatile __u16 *)&s->vlan;
		__u16 sf = *(volatile __u16 *)&s->flags;
		__u16 sp = *(volatile __u16 *)&s->port;
		__u64 key_found = vsw_fdb_key(sv, s->mac);
		if ((seq & 1) || *(volatile __u32 *)&s->seq != seq)
			return 0;
		if (sv == 0 && !(sf & VSW_FDB_TOMBSTONE))
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

	// The VLAN, by the rules of src/switch/l2/vlan-rules.ts ingressVlan (the hot loop's
	// function too); a frame the hot loop would drop takes the slow path.
	__u16 ethertype = bpf_ntohs(*(__u16 *)(eth + 12));
	int tagged = ethertype == ETH_P_8021Q;
	__u16 tci = tagged ? bpf_ntohs(*(__u16 *)(eth + 14)) : 0;
	__u16 vid = tci & 0x0fff;
	__u16 vlan = 0;
	if (vsw_port_ingress_vlan(ip, tagged, vid, &vlan) != VSW_INGRESS_OK)
		return slow_path(ctx);
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
	if (!op || !vsw_port_carries_vlan(op, vlan))
		return slow_path(ctx);
	// The tag the egress wants follows the logical port (the bond), the device its leg.
	int want_tag = op->trunk && vlan != op->native_vlan;
	__u32 tx_port = out;
	if (op->is_bond) {
		__u8 bucket = op->bond_hash != VSW_BOND_HASH_NONE
				      ? vsw_flow_bucket(data, data_end, op->bond_hash == VSW_BOND_HASH_L3L4)
				      : 0;
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
	if (now_ms > src->last_seen_ms && now_ms - src->last_seen_ms >= VSW_LAST_SEEN_REFRESH_MS)
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
