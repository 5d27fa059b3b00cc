// SPDX-License-Identifier: GPL-2.0
// BPF only: the maps every fast-path program shares, and the FDB lookup they
// all run. Included by the XDP program (xsk_steer.bpf.c) and the tc program
// (tc_fastpath.bpf.c); the daemon creates the maps once (native/fastpath/)
// and hands them to every copy with bpf_map__reuse_fd. Layouts and rules:
// vswitchd_shared.h.
#ifndef VSWITCHD_MAPS_BPF_H
#define VSWITCHD_MAPS_BPF_H

#include "vswitchd_shared.h"

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct fast_counters);
} vswitchd_fast_stats SEC(".maps");

// Mapped by the daemon: the workers store the clock with a plain write, and the
// programs read it instead of calling bpf_ktime_get_ns() per frame (a TSC read
// that was 6% of the switch CPU in a pinned fast-path profile).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fast_config);
} vswitchd_config SEC(".maps");

// port index -> its devices for the tc fast path (struct tc_port).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct tc_port);
} vswitchd_tc_ports SEC(".maps");

// The port this copy of the program is attached to, set by the daemon before
// loading (one program per port): a constant, not a per-frame map lookup.
// VSW_MAX_PORTS (no port): every frame takes the slow path.
const volatile __u32 vswitchd_port_index = VSW_MAX_PORTS;

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

// Keep a source alive for aging (once a second, like the hot loop).
static __always_inline void fdb_refresh(struct fdb_slot *src, const struct fast_config *cfg)
{
	__u64 now_ms = cfg->now_ms;
	if (now_ms > src->last_seen_ms && now_ms - src->last_seen_ms >= VSW_LAST_SEEN_REFRESH_MS)
		src->last_seen_ms = now_ms;
}

// Port security, storm control and policing: the control plane's settings per port and the
// token buckets the programs (every CPU) and the hot loop update with atomic ops.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct port_policy);
} vswitchd_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, VSW_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct port_buckets);
} vswitchd_buckets SEC(".maps");

static __always_inline void count_policy_drop(__u32 in, int why, __u64 bytes, __u32 segs)
{
	struct fast_counters *c = bpf_map_lookup_elem(&vswitchd_fast_stats, &in);
	if (c) {  // received, as the hot loop counts the frames it drops
		c->rx_packets += segs;
		c->rx_bytes += bytes;
		c->policy_drops[(why - 1) & (VSW_POLICY_REASONS - 1)]++;
	}
}

// Port security and storm control of port `in` for a frame [f, end) (f: its Ethernet
// header) of bytes (segs frames) in VLAN vlan: VSW_POLICY_OK, or the reason it is
// dropped, counted here (or VSW_POLICY_LEARN: the caller takes it to the slow path,
// uncounted). Called by the tc and XDP programs before anything else can see
// the frame, with fast_path off too. The policer is charged where a frame is forwarded
// (police_forward, or the hot loop).
static __always_inline int port_policy_verdict(const struct port_policy *pol, __u32 in, const __u8 *f, const __u8 *end,
					       __u64 bytes, __u32 segs, __u16 vlan, __u32 fdb_mask)
{
	int why = vsw_source_verdict(pol, f, end);
	if (why == VSW_POLICY_OK && (pol->flags & VSW_POL_STORM)) {
		int cls = vsw_storm_class(f);
		if (cls == VSW_STORM_NONE && pol->storm_pps[VSW_STORM_UNKNOWN_UNICAST]) {
			__u16 p, fl;
			if (!fdb_lookup(fdb_mask, vlan, f, &p, &fl))
				cls = VSW_STORM_UNKNOWN_UNICAST;
		}
		struct port_buckets *b = cls == VSW_STORM_NONE ? 0 : bpf_map_lookup_elem(&vswitchd_buckets, &in);
		if (b)
			why = vsw_storm_verdict(pol, b, bpf_ktime_get_ns(), segs, cls);
	}
	if (why != VSW_POLICY_OK && why != VSW_POLICY_LEARN)
		count_policy_drop(in, why, bytes, segs);
	return why;
}

// This program copy's policer credit on each CPU (struct vsw_credit): one entry, as a copy
// polices one port (a bond leg's, its bond). Not shared with the daemon: libbpf makes one
// per copy; a new copy (a restart that replaces the programs) starts with none.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vsw_credit);
} vswitchd_credit SEC(".maps");

// The policer of port `in` for a frame the program is about to forward itself:
// VSW_POLICY_OK or VSW_POLICY_POLICED (the caller counts it, or punts it). The CPU's
// credit pays for most frames; the clock is read and the shared bucket touched only
// when it runs out.
static __always_inline int police_forward(const struct port_policy *pol, __u32 in, __u64 bytes)
{
	__u32 zero = 0;
	__u64 rate = pol->police_rate, burst = pol->police_burst;
	struct vsw_credit *c = bpf_map_lookup_elem(&vswitchd_credit, &zero);
	if (!rate || (c && vsw_credit_spend(c, rate, burst, bytes)))
		return VSW_POLICY_OK;
	struct port_buckets *b = bpf_map_lookup_elem(&vswitchd_buckets, &in);
	if (!b)
		return VSW_POLICY_OK;
	__u64 now = bpf_ktime_get_ns();
	if (c ? vsw_credit_take(c, &b->police, now, rate, burst, bytes) : vsw_bucket_take(&b->police, now, rate, burst, bytes))
		return VSW_POLICY_OK;
	return VSW_POLICY_POLICED;
}

#endif
