// SPDX-License-Identifier: GPL-2.0
// Steers every frame of a switch port into the AF_XDP socket bound to the
// queue it arrived on. One copy of this program is attached per port; each copy
// has its own XSKMAP (key: rx queue index, value: socket). A queue with no
// socket yet passes frames to the kernel stack rather than dropping them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#define MAX_QUEUES 64

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(vswitchd_steer);

SEC("xdp")
int vswitchd_steer(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
