// SPDX-License-Identifier: GPL-2.0
// Benchmark generator: run through BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and
// ctx_in.ingress_ifindex = the generator host's veth. XDP_TX there is turned into a
// redirect to that veth, whose ndo_xdp_xmit hands the frame to its peer: the switch port.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int vb_gen(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
