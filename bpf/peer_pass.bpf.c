// SPDX-License-Identifier: GPL-2.0
// Attached (fast path only) to the far end of a switch port's veth. A frame
// the fast path redirects into a veth is dropped unless the peer runs NAPI,
// and an XDP program is what turns NAPI on without GRO (GRO would hand
// aggregated super-frames to whatever reads the peer, e.g. a packet socket).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// A frags program: with a non-frags one the port's own device could not take an MTU above 3506.
SEC("xdp.frags")
int vswitchd_peer_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
