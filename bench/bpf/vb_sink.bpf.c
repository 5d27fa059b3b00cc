// SPDX-License-Identifier: GPL-2.0
// Benchmark sink: attached (native XDP) to the sink host's veth inside the sink
// namespace. Counts and drops IPv4/UDP frames to the benchmark port; everything
// else (ARP, ICMP, TCP for ping and iperf3) passes to the stack.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef VB_PORT
#define VB_PORT 47474
#endif

struct vb_count {
  __u64 packets;
  __u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vb_count);
} vb_count SEC(".maps");

SEC("xdp")
int vb_sink(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5) return XDP_PASS;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end || udp->dest != bpf_htons(VB_PORT)) return XDP_PASS;
  __u32 key = 0;
  struct vb_count *c = bpf_map_lookup_elem(&vb_count, &key);
  if (c) {
    c->packets++;
    c->bytes += (__u64)(end - data);
  }
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
