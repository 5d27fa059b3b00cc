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
//
// A frags program (SEC("xdp.frags")): a veth with it takes an MTU above 3506,
// and a jumbo frame arrives as a multi-buffer xdp_buff (the headers in its
// linear part), which goes to a socket bound with XDP_USE_SG as several
// descriptors. A punt pair's far end runs this program too (no port index).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>

// Map layouts, flags, limits and the per-frame rules shared with native/,
// and the maps and FDB lookup shared with the tc program.
#include "vswitchd_maps.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VSW_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// port index -> egress device
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} vswitchd_tx SEC(".maps");

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(vswitchd_steer);

// A frame a redirect could not take is lost to the switch: count it on the port.
static __always_inline void count_redirect_failed(void)
{
	__u32 me = vswitchd_port_index;
	struct fast_counters *c = bpf_map_lookup_elem(&vswitchd_fast_stats, &me);
	if (c)
		c->redirect_failed++;
}

// No socket on the queue (between attach and bind, or a queue the switch does
// not serve): XDP_PASS, the host stack of a switch port drops it.
static __always_inline int slow_path(struct xdp_md *ctx)
{
	int act = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	if (act != XDP_REDIRECT)
		count_redirect_failed();
	return act;
}

SEC("xdp.frags")
int vswitchd_steer(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fast_config *cfg = bpf_map_lookup_elem(&vswitchd_config, &zero);
	if (!cfg)
		return slow_path(ctx);

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *eth = data;
	__u64 rx_len = bpf_xdp_get_buff_len(ctx);  // all fragments
	if (data + 18 > data_end)
		return slow_path(ctx);

	__u32 in = vswitchd_port_index;
	struct fast_port *ip = bpf_map_lookup_elem(&vswitchd_ports, &in);
	if (!ip || !ip->active)
		return slow_path(ctx);
	int fast_in = ip->fast_in;
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
	// Port security, storm control, policing: before the AF_XDP copy (fast_path off too).
	struct port_policy *pol = bpf_map_lookup_elem(&vswitchd_policy, &in);
	if (pol && pol->flags) {
		int why = port_policy_verdict(pol, in, data, data_end, rx_len, 1, vlan, cfg->fdb_mask);
		if (why == VSW_POLICY_LEARN)
			return slow_path(ctx);  // a MAC the port may learn: the control plane admits it first
		if (why != VSW_POLICY_OK)
			return XDP_DROP;
	}
	if (eth[6] & 1)
		return slow_path(ctx);

	__u32 mask = cfg->fdb_mask;
	__u16 src_port = 0, src_flags = 0, dst_port, dst_flags;
	struct fdb_slot *src = fdb_lookup(mask, vlan, eth + 6, &src_port, &src_flags);
	// A port at its MAC limit (a MAC flood): refused here, before the AF_XDP copy and
	// the hot loop, with fast_path off too. Control frames still go up.
	if (vsw_mac_limit_refuses(ip->learn_full, src != 0, src_port, src_flags, in) && !vsw_link_local(eth)) {
		struct fast_counters *c = bpf_map_lookup_elem(&vswitchd_fast_stats, &in);
		if (c) {  // received, as the hot loop counts the frames it drops
			c->rx_packets++;
			c->rx_bytes += rx_len;
			c->mac_limit++;
		}
		return XDP_DROP;
	}
	// Multicast and broadcast destinations flood; link-local frames are control.
	if (!cfg->enabled || !fast_in || (eth[0] & 1))
		return slow_path(ctx);
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
	struct fast_port *txp = op;
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
		txp = lp;
	} else if (!op->fast_out) {
		return slow_path(ctx);
	}
	// A multi-buffer frame only to a device whose XDP transmit takes one (a
	// tap's drops it); the slow path carries it to the others.
	if (rx_len > (__u64)(data_end - data) && !txp->fast_out_mb)
		return slow_path(ctx);
	// Larger than the egress device's MTU: the slow path drops and counts it
	// (mtu_exceeded); a redirect would lose it without a trace.
	__u32 tx_len = (__u32)rx_len + (want_tag ? VSW_VLAN_HLEN : 0) - (tagged ? VSW_VLAN_HLEN : 0);
	if (vsw_exceeds_mtu(tx_len, want_tag, txp->mtu))
		return slow_path(ctx);

	if (pol && (pol->flags & VSW_POL_POLICE) && police_forward(pol, in, rx_len) != VSW_POLICY_OK) {
		count_policy_drop(in, VSW_POLICY_POLICED, rx_len, 1);
		return XDP_DROP;
	}

	fdb_refresh(src, cfg);

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

	// The egress port has no device in the devmap (going away): the frame was
	// already re-tagged, so it cannot take the slow path any more.
	int act = bpf_redirect_map(&vswitchd_tx, tx_port, XDP_DROP);
	if (act != XDP_REDIRECT) {
		count_redirect_failed();
		return XDP_DROP;
	}
	__u64 len = bpf_xdp_get_buff_len(ctx);  // all fragments
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
	return act;
}

char _license[] SEC("license") = "GPL";
