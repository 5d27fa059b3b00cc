// SPDX-License-Identifier: GPL-2.0
// Benchmark generator: run through BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and
// ctx_in.ingress_ifindex = the generator host's veth. XDP_TX there is turned into a
// redirect to that veth, whose ndo_xdp_xmit hands the frame to its peer: the switch port.
//
// With flows > 1 (set by vbxdpgen before loading) each frame gets the next destination
// MAC of 02:fd:00:00:00:00 .. flows-1, the static FDB entries `npm run bench --
// --fdb-entries N --flows N` writes, so every frame looks up a different FDB slot.
// With random_src each frame gets a random locally administered unicast source MAC
// (a MAC flood, `npm run bench:flood`).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// The only constant in .rodata; vbxdpgen sets it before loading.
const volatile struct {
  __u32 flows;
  __u32 random_src;
} gen_config = {1, 0};
__u32 next_flow;  // one generator CPU runs this program: no atomics needed

SEC("xdp")
int vb_gen(struct xdp_md *ctx) {
  __u32 flows = gen_config.flows;
  if (gen_config.random_src) {
    __u8 *d = (void *)(long)ctx->data;
    if ((void *)(d + 12) > (void *)(long)ctx->data_end) return XDP_TX;
    __u32 r = bpf_get_prandom_u32();
    d[6] = 0x02;
    d[7] = 0xf1;
    d[8] = r >> 24;
    d[9] = r >> 16;
    d[10] = r >> 8;
    d[11] = r;
  }
  if (flows > 1) {
    __u8 *d = (void *)(long)ctx->data;
    if ((void *)(d + 6) > (void *)(long)ctx->data_end) return XDP_TX;
    __u32 i = next_flow;
    next_flow = i + 1 >= flows ? 0 : i + 1;
    d[0] = 0x02;
    d[1] = 0xfd;
    d[2] = i >> 24;
    d[3] = i >> 16;
    d[4] = i >> 8;
    d[5] = i;
  }
  return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
