// SPDX-License-Identifier: GPL-2.0
// Benchmark sink: attached (native XDP) to the sink host's veth inside the sink
// namespace. Counts and drops IPv4/UDP frames to the benchmark port; everything
// else (ARP, ICMP, TCP for ping and iperf3) passes to the stack. vb_sink_tc
// (tcx ingress) counts the frames that never pass the veth's XDP: those a tc
// program put straight into the sink's ingress (bpf_redirect_peer, vswitchd's tc hook).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
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

// 1: a benchmark frame, counted.
static __always_inline int count(void *data, void *end, __u64 len) {
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5) return 0;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end || udp->dest != bpf_htons(VB_PORT)) return 0;
  __u32 key = 0;
  struct vb_count *c = bpf_map_lookup_elem(&vb_count, &key);
  if (c) {
    c->packets++;
    c->bytes += len;
  }
  return 1;
}

SEC("xdp")
int vb_sink(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  return count(data, end, (__u64)(end - data)) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int vb_sink_tc(struct __sk_buff *skb) {
  // A packet socket's TX_RING frame (trafgen) keeps only the Ethernet header linear.
  const __u32 hdrs = sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr);
  if (skb->len >= hdrs && (void *)(long)skb->data + hdrs > (void *)(long)skb->data_end && bpf_skb_pull_data(skb, hdrs))
    return TC_ACT_OK;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  return count(data, end, skb->len) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
