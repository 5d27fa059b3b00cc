#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int min_tc(struct __sk_buff *skb) {
#ifdef PEER
  return bpf_redirect_peer(OUT_IFINDEX, 0);
#else
  return bpf_redirect(OUT_IFINDEX, 0);
#endif
}
SEC("xdp")
int min_xdp(struct xdp_md *ctx) {
#ifdef PASS
  return XDP_PASS;
#else
  return bpf_redirect(OUT_IFINDEX, 0);
#endif
}
char _license[] SEC("license") = "GPL";
