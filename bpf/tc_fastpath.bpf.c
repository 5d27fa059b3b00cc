// SPDX-License-Identifier: GPL-2.0
// The tc (tcx ingress) program on the switch side of every veth and tap port:
// the fast path for ordinary skbs, which keeps their offload state. A frame a
// container or guest hands over with a partial checksum and GSO stays that
// way: known unicast is redirected as the same skb (bpf_redirect_peer into a
// container's veth, bpf_redirect to a tap or a peer in this netns), so the
// other side's stack (or the guest's virtio) finishes the offloads, as over
// the Linux bridge. Semantics are those of the XDP program (same maps, same
// rules from vswitchd_shared.h): the source must be learned on this port, the
// destination known unicast on another port that carries the VLAN.
//
// Everything else goes to the slow path: this port's punt veth pair, whose
// near end has tx checksum and tx VLAN offload off, so the kernel segments
// GSO skbs, fills in checksums and puts the tag back in the frame on transmit
// (validate_xmit_skb); its far end runs the XDP program into the hot loop's
// AF_XDP socket. Nothing goes to the host stack: it must not speak on a
// switch port.
//
// At tc ingress an 802.1Q tag is already out of the frame (skb_vlan_untag):
// it is read from __sk_buff.vlan_present/vlan_tci, and pop/push only flip the
// skb's tag. 802.1ad tags and a second tag take the slow path.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vswitchd_maps.bpf.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

// Bytes the bond hash may read: Ethernet + IPv4 with options + L4 ports.
#define HASH_BYTES (14 + 60 + 4)
// Bytes the port security rules may read: Ethernet + IPv6 + hop-by-hop + NA + options.
#define POLICY_BYTES 160

// No punt pair to hand the frame to (the port is going away): lost, counted.
static __always_inline int slow_path(void)
{
	__u32 me = vswitchd_port_index;
	struct tc_port *tp = bpf_map_lookup_elem(&vswitchd_tc_ports, &me);
	if (!tp || !tp->punt_ifindex) {
		struct fast_counters *c = bpf_map_lookup_elem(&vswitchd_fast_stats, &me);
		if (c)
			c->redirect_failed++;
		return TC_ACT_SHOT;
	}
	return bpf_redirect(tp->punt_ifindex, 0);
}

SEC("tc")
int vswitchd_tc_fast(struct __sk_buff *skb)
{
#ifdef VSW_TEST_UPGRADE
	/* The upgrade test's "newer build": the same program with one instruction more. */
	asm volatile("r2 = 0" ::: "r2");
#endif
	__u32 zero = 0;
	struct fast_config *cfg = bpf_map_lookup_elem(&vswitchd_config, &zero);
	if (!cfg)
		return slow_path();

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *eth = data;
	if (data + 14 > data_end)
		return slow_path();

	int tagged = 0;
	__u16 tci = 0;
	if (skb->vlan_present) {
		if (skb->vlan_proto != bpf_htons(ETH_P_8021Q))
			return slow_path();
		tagged = 1;
		tci = (__u16)skb->vlan_tci;
	}
	__u16 inner = *(__u16 *)(eth + 12);
	if (inner == bpf_htons(ETH_P_8021Q) || inner == bpf_htons(ETH_P_8021AD))
		return slow_path();

	__u32 in = vswitchd_port_index;
	struct fast_port *ip = bpf_map_lookup_elem(&vswitchd_ports, &in);
	if (!ip || !ip->active)
		return slow_path();
	int fast_in = ip->fast_in;
	__u32 leg_in = in;  // the device it arrived on, for the counters
	if (ip->bond >= 0) {
		if (!ip->leg_rx)
			return slow_path();
		in = (__u32)ip->bond;
		ip = bpf_map_lookup_elem(&vswitchd_ports, &in);
		if (!ip || !ip->active)
			return slow_path();
	}

	__u16 vid = tci & 0x0fff;
	__u16 vlan = 0;
	if (vsw_port_ingress_vlan(ip, tagged, vid, &vlan) != VSW_INGRESS_OK)
		return slow_path();
	// Port security, storm control, policing: before the punt pair (fast_path off too).
	struct port_policy *pol = bpf_map_lookup_elem(&vswitchd_policy, &in);
	if (pol && pol->flags) {
		// The rules read the headers from linear data: pull them in if they are not.
		__u32 need = skb->len < POLICY_BYTES ? skb->len : POLICY_BYTES;
		if ((__u32)(data_end - data) < need) {
			if (bpf_skb_pull_data(skb, need))
				return TC_ACT_SHOT;
			data = (void *)(long)skb->data;
			data_end = (void *)(long)skb->data_end;
			eth = data;
			if (data + 14 > data_end)
				return slow_path();
		}
		int why = port_policy_verdict(pol, in, data, data_end, skb->len + (skb->vlan_present ? 4 : 0), skb->gso_segs ? skb->gso_segs : 1,
					      vlan, cfg->fdb_mask);
		if (why == VSW_POLICY_LEARN)
			return slow_path();  // a MAC the port may learn: the control plane admits it first
		if (why != VSW_POLICY_OK)
			return TC_ACT_SHOT;
	}
	if (eth[6] & 1)
		return slow_path();

	__u32 mask = cfg->fdb_mask;
	__u16 src_port = 0, src_flags = 0, dst_port, dst_flags;
	struct fdb_slot *src = fdb_lookup(mask, vlan, eth + 6, &src_port, &src_flags);
	// A port at its MAC limit (a MAC flood): refused here, before the punt pair, the
	// AF_XDP copy and the hot loop, with fast_path off too. Control frames still go up.
	if (vsw_mac_limit_refuses(ip->learn_full, src != 0, src_port, src_flags, in) && !vsw_link_local(eth)) {
		struct fast_counters *c = bpf_map_lookup_elem(&vswitchd_fast_stats, &in);
		if (c) {  // received, as the hot loop counts the frames it drops
			c->rx_packets++;
			c->rx_bytes += skb->len + (skb->vlan_present ? 4 : 0);
			c->mac_limit++;
		}
		return TC_ACT_SHOT;
	}
	if (!cfg->enabled || !fast_in)
		return slow_path();
	if (eth[0] & 1)
		return slow_path();  // broadcast, multicast, link-local control frames
	if (!src || src_port != in)
		return slow_path();  // new or moved source: the control plane learns it
	struct fdb_slot *dst = fdb_lookup(mask, vlan, eth, &dst_port, &dst_flags);
	if (!dst || dst_port == in)
		return slow_path();
	__u32 out = dst_port;
	struct fast_port *op = bpf_map_lookup_elem(&vswitchd_ports, &out);
	if (!op || !vsw_port_carries_vlan(op, vlan))
		return slow_path();
	int want_tag = op->trunk && vlan != op->native_vlan;
	__u32 tx_port = out;
	struct fast_port *txp = op;  // the device's entry: a bond's MTU is its legs'
	if (op->is_bond) {
		__u8 bucket = 0;
		if (op->bond_hash != VSW_BOND_HASH_NONE) {
			// The hash reads linear data: pull the headers in if they are not.
			__u32 need = skb->len < HASH_BYTES ? skb->len : HASH_BYTES;
			if ((__u32)(data_end - data) < need) {
				if (bpf_skb_pull_data(skb, need))
					return slow_path();
				data = (void *)(long)skb->data;
				data_end = (void *)(long)skb->data_end;
			}
			bucket = vsw_flow_bucket(data, data_end, op->bond_hash == VSW_BOND_HASH_L3L4);
		}
		__s16 leg = op->buckets[bucket];
		if (leg < 0)
			return slow_path();
		tx_port = (__u32)leg;
		txp = bpf_map_lookup_elem(&vswitchd_ports, &tx_port);
		if (!txp)
			return slow_path();
	}
	struct tc_port *tp = bpf_map_lookup_elem(&vswitchd_tc_ports, &tx_port);
	if (!tp || !tp->ifindex || !(tp->flags & VSW_TC_OUT))
		return slow_path();
	__u32 tx_ifindex = tp->ifindex;
	__u32 tx_peer = tp->flags & VSW_TC_PEER_NETNS;
	// Larger than the egress device takes (GSO skbs: their segments): the slow
	// path counts it instead of the kernel dropping it silently after the redirect.
	// An ordinary skb against the port table's MTU, as the XDP program does (the
	// helper's device lookup was ~2 % of a 64-byte frame's CPU); a GSO skb, or a
	// device whose MTU the table lacks, through bpf_check_mtu, which sizes segments.
	// skb->len has the Ethernet header and not the tag (at tc it is metadata).
	if (skb->gso_size || !txp->mtu) {
		__u32 mtu_len = 0;
		if (bpf_check_mtu(skb, tx_ifindex, &mtu_len, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
			return slow_path();
	} else if (vsw_exceeds_mtu(skb->len, 0, txp->mtu)) {
		return slow_path();
	}

	__u64 rx_len = skb->len + (skb->vlan_present ? 4 : 0);
	__u32 segs = skb->gso_segs ? skb->gso_segs : 1;
	// Policed: a GSO skb the bucket cannot take whole goes to the slow path, whose punt
	// pair segments it and whose hot loop polices it segment by segment.
	if (pol && (pol->flags & VSW_POL_POLICE) && police_forward(pol, in, rx_len) != VSW_POLICY_OK) {
		if (segs > 1)
			return slow_path();
		count_policy_drop(in, VSW_POLICY_POLICED, rx_len, 1);
		return TC_ACT_SHOT;
	}

	fdb_refresh(src, cfg);

	// Pop first: a push onto a tagged skb would make the old tag an inner one.
	__u16 new_tci = (__u16)(tci & 0xe000) | vlan;
	int keep = tagged && want_tag && tci == new_tci;
	if (tagged && !keep && bpf_skb_vlan_pop(skb))
		return slow_path();
	if (want_tag && !keep && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), new_tci))
		return slow_path();

	__u64 tx_len = skb->len + (want_tag ? 4 : 0);
	struct fast_counters *ic = bpf_map_lookup_elem(&vswitchd_fast_stats, &leg_in);
	if (ic) {
		ic->rx_packets += segs;
		ic->rx_bytes += rx_len;
	}
	struct fast_counters *oc = bpf_map_lookup_elem(&vswitchd_fast_stats, &tx_port);
	if (oc) {
		oc->tx_packets += segs;
		oc->tx_bytes += tx_len;
	}
	if (tx_peer)
		return bpf_redirect_peer(tx_ifindex, 0);
	return bpf_redirect(tx_ifindex, 0);
}

char _license[] SEC("license") = "GPL";
