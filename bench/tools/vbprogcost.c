// vbprogcost: what the port policy costs each fast-path program per frame, measured with
// BPF_PROG_RUN (repeat N) on one 64-byte known-unicast frame, no device or daemon involved.
// Loads the object (bpf/xsk_steer.bpf.o or bpf/tc_fastpath.bpf.o) with its own maps, makes
// port 1 (the frame's source, 02:00:00:00:00:01 / 10.0.0.1) and port 2 (its destination)
// access ports of VLAN 1 with both MACs learned, and times the program with port 1's
// policy set to each of: none, security (MAC + IP), policing (100 Gbit/s), both.
//
//   vbprogcost --obj bpf/xsk_steer.bpf.o [--repeat 5000000] [--rounds 5] [--cpu 1]
//
// Prints, per setting, the least over the rounds of the kernel's average ns per run (and
// the median), and what the setting adds to "none". The policer's bucket is reset before each round.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bpf/include/vswitchd_shared.h"

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_WARN) return vfprintf(stderr, fmt, ap);
  return 0;
}

static int map_fd(struct bpf_object *obj, const char *name) {
  struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
  if (!m) {
    fprintf(stderr, "vbprogcost: no map %s\n", name);
    exit(1);
  }
  return bpf_map__fd(m);
}

static void update(int fd, uint32_t key, const void *value) {
  if (bpf_map_update_elem(fd, &key, value, 0)) {
    perror("vbprogcost: bpf_map_update_elem");
    exit(1);
  }
}

// Sets the program's `const volatile __u32 vswitchd_port_index` before loading.
static void set_port_index(struct bpf_object *obj, uint32_t index) {
  struct bpf_map *ro = bpf_object__find_map_by_name(obj, ".rodata");
  struct btf *btf = bpf_object__btf(obj);
  int sec = ro && btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
  if (sec < 0) {
    fprintf(stderr, "vbprogcost: no .rodata\n");
    exit(1);
  }
  const struct btf_type *t = btf__type_by_id(btf, sec);
  const struct btf_var_secinfo *v = btf_var_secinfos(t);
  size_t size;
  const void *init = bpf_map__initial_value(ro, &size);
  uint8_t data[256];
  if (!init || size > sizeof(data)) {
    fprintf(stderr, "vbprogcost: .rodata of %zu bytes\n", size);
    exit(1);
  }
  memcpy(data, init, size);
  for (int i = 0; i < btf_vlen(t); i++, v++) {
    if (strcmp(btf__name_by_offset(btf, btf__type_by_id(btf, v->type)->name_off), "vswitchd_port_index") == 0) {
      memcpy(data + v->offset, &index, 4);
      bpf_map__set_initial_value(ro, data, size);
      return;
    }
  }
  fprintf(stderr, "vbprogcost: no vswitchd_port_index\n");
  exit(1);
}

static const uint8_t kSrcMac[6] = {2, 0, 0, 0, 0, 1};
static const uint8_t kDstMac[6] = {2, 0, 0, 0, 0, 2};

static void learn(int fdb_fd, uint32_t mask, const uint8_t *mac, uint16_t port) {
  struct fdb_slot s = {0};
  s.vlan = 1;
  memcpy(s.mac, mac, 6);
  s.port = port;
  s.flags = VSW_FDB_STATIC;
  uint32_t i = vsw_fdb_hash(vsw_fdb_key(1, mac), mask);
  struct fdb_slot cur;
  while (bpf_map_lookup_elem(fdb_fd, &i, &cur) == 0 && cur.vlan != 0) i = (i + 1) & mask;
  update(fdb_fd, i, &s);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *obj_path = NULL;
  uint32_t repeat = 5000000;
  int rounds = 5, cpu = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--obj") && i + 1 < argc) obj_path = argv[++i];
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) cpu = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: vbprogcost --obj PROG.bpf.o [--repeat N] [--rounds N] [--cpu N]\n");
      return 2;
    }
  }
  if (!obj_path || rounds < 1 || rounds > 99) {
    fprintf(stderr, "usage: vbprogcost --obj PROG.bpf.o [--repeat N] [--rounds N] [--cpu N]\n");
    return 2;
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
  }
  libbpf_set_print(quiet_print);
  struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
  if (!obj) {
    perror("vbprogcost: open");
    return 1;
  }
  struct bpf_program *prog = bpf_object__find_program_by_name(obj, "vswitchd_steer");
  const int xdp = prog != NULL;
  if (!prog) prog = bpf_object__find_program_by_name(obj, "vswitchd_tc_fast");
  if (!prog) {
    fprintf(stderr, "vbprogcost: neither vswitchd_steer nor vswitchd_tc_fast in %s\n", obj_path);
    return 1;
  }
  set_port_index(obj, 1);
  if (bpf_object__load(obj)) {
    perror("vbprogcost: load");
    return 1;
  }
  const uint32_t mask = VSW_FDB_DEFAULT_SLOTS - 1;
  struct fast_config cfg = {.fdb_mask = mask, .enabled = 1, .now_ms = 1};
  update(map_fd(obj, "vswitchd_config"), 0, &cfg);
  struct fast_port port = {0};
  port.active = 1;
  port.fast_in = 1;
  port.fast_out = 1;
  port.access_vlan = 1;
  port.bond = -1;
  port.fast_out_mb = 1;
  update(map_fd(obj, "vswitchd_ports"), 1, &port);
  update(map_fd(obj, "vswitchd_ports"), 2, &port);
  learn(map_fd(obj, "vswitchd_fdb"), mask, kSrcMac, 1);
  learn(map_fd(obj, "vswitchd_fdb"), mask, kDstMac, 2);
  const uint32_t lo = 1;  // the egress device: lo, which exists everywhere (nothing is sent)
  if (xdp) {
    update(map_fd(obj, "vswitchd_tx"), 2, &lo);
  } else {
    struct tc_port tp = {.ifindex = lo, .punt_ifindex = lo, .flags = VSW_TC_OUT};
    update(map_fd(obj, "vswitchd_tc_ports"), 1, &tp);
    update(map_fd(obj, "vswitchd_tc_ports"), 2, &tp);
  }

  // 60 bytes (64 with the FCS): Ethernet, IPv4 10.0.0.1 -> 10.0.0.2, UDP 9 -> 9.
  uint8_t frame[60] = {0};
  memcpy(frame, kDstMac, 6);
  memcpy(frame + 6, kSrcMac, 6);
  frame[12] = 0x08;
  uint8_t *ip = frame + 14;
  ip[0] = 0x45;
  ip[3] = 46;
  ip[8] = 64;
  ip[9] = 17;
  const uint8_t src_ip[4] = {10, 0, 0, 1}, dst_ip[4] = {10, 0, 0, 2};
  memcpy(ip + 12, src_ip, 4);
  memcpy(ip + 16, dst_ip, 4);
  ip[21] = 9;
  ip[23] = 9;
  ip[25] = 26;

  struct port_policy sec = {0};
  sec.n_macs = 1;
  memcpy(sec.macs[0], kSrcMac, 6);
  sec.n_ipv4 = 1;
  memcpy(&sec.ipv4[0], src_ip, 4);
  const uint64_t rate = 100000000000ull / 8, burst = 1000000000ull;  // the bench's 100 Gbit/s, 1 GB
  struct {
    const char *name;
    uint32_t flags;
  } settings[] = {
      {"none", 0},
      {"security", VSW_POL_MACS | VSW_POL_IPS},
      {"policing", VSW_POL_POLICE},
      {"both", VSW_POL_MACS | VSW_POL_IPS | VSW_POL_POLICE},
  };
  const int policy_fd = map_fd(obj, "vswitchd_policy"), buckets_fd = map_fd(obj, "vswitchd_buckets");
  const uint32_t want = xdp ? XDP_REDIRECT : TC_ACT_REDIRECT;
  uint32_t base = 0;
  printf("%s, %u runs x %d rounds, ns per run (least of the rounds):\n", xdp ? "xdp" : "tc", repeat, rounds);
  for (size_t s = 0; s < sizeof(settings) / sizeof(settings[0]); s++) {
    struct port_policy pol = sec;
    pol.flags = settings[s].flags;
    if (pol.flags & VSW_POL_POLICE) {
      pol.police_rate = rate;
      pol.police_burst = burst;
    }
    update(policy_fd, 1, &pol);
    uint32_t ns[99];
    for (int r = 0; r < rounds; r++) {
      struct port_buckets zero = {0};
      update(buckets_fd, 1, &zero);
      LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame), .repeat = repeat);
      if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts)) {
        perror("vbprogcost: BPF_PROG_RUN");
        return 1;
      }
      if (opts.retval != want) {
        fprintf(stderr, "vbprogcost: %s: the program returned %u, not %u (the fast path)\n", settings[s].name, opts.retval, want);
        return 1;
      }
      ns[r] = opts.duration;
    }
    qsort(ns, (size_t)rounds, sizeof(ns[0]), cmp_u32);
    const uint32_t least = ns[0];  // the least disturbed round: the machine is shared
    if (s == 0) base = least;
    printf("  %-9s %4u ns  (+%d; median %u)\n", settings[s].name, least, (int)least - (int)base, ns[rounds / 2]);
  }
  bpf_object__close(obj);
  return 0;
}
