// vbsink: attach the benchmark sink XDP program (build/vb_sink.bpf.o) to a device
// through a bpf_link (so it goes away with this process) and answer counter queries.
//
//   ip netns exec vbk vbsink --dev vbk0 --obj build/vb_sink.bpf.o
//
// Prints "ready <mode>" once attached. Then each line read on stdin is answered with
// "<packets> <bytes> <monotonic ns>" (sum over CPUs of the per-CPU counter).
// EOF on stdin (or SIGTERM/SIGINT) detaches and exits.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vb_count {
  uint64_t packets;
  uint64_t bytes;
};

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_WARN) return vfprintf(stderr, fmt, ap);
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr, "usage: vbsink --dev IFNAME --obj vb_sink.bpf.o [--generic]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *dev = NULL, *obj_path = NULL;
  int generic = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dev") && i + 1 < argc) dev = argv[++i];
    else if (!strcmp(argv[i], "--obj") && i + 1 < argc) obj_path = argv[++i];
    else if (!strcmp(argv[i], "--generic")) generic = 1;
    else usage();
  }
  if (!dev || !obj_path) usage();
  libbpf_set_print(quiet_print);
  signal(SIGPIPE, SIG_IGN);

  unsigned ifindex = if_nametoindex(dev);
  if (!ifindex) {
    fprintf(stderr, "vbsink: no device %s: %s\n", dev, strerror(errno));
    return 1;
  }
  struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
  if (!obj) {
    fprintf(stderr, "vbsink: open %s: %s\n", obj_path, strerror(errno));
    return 1;
  }
  if (bpf_object__load(obj)) {
    fprintf(stderr, "vbsink: load %s: %s\n", obj_path, strerror(errno));
    return 1;
  }
  struct bpf_program *prog = bpf_object__find_program_by_name(obj, "vb_sink");
  struct bpf_program *tc_prog = bpf_object__find_program_by_name(obj, "vb_sink_tc");
  struct bpf_map *map = bpf_object__find_map_by_name(obj, "vb_count");
  if (!prog || !tc_prog || !map) {
    fprintf(stderr, "vbsink: program or map missing in %s\n", obj_path);
    return 1;
  }
  int map_fd = bpf_map__fd(map);
  const char *mode = generic ? "generic" : "native";
  int link_fd = -1;
  if (!generic) {
    // A bpf_link detaches by itself when this process ends, however it ends.
    LIBBPF_OPTS(bpf_link_create_opts, lopts);
    link_fd = bpf_link_create(bpf_program__fd(prog), ifindex, BPF_XDP, &lopts);
  }
  if (link_fd < 0) {
    int flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    if (bpf_xdp_attach(ifindex, bpf_program__fd(prog), flags, NULL)) {
      fprintf(stderr, "vbsink: attach to %s: %s\n", dev, strerror(errno));
      return 1;
    }
  }
  // tcx ingress too (kernel >= 6.6; BPF_TCX_INGRESS = 46, libbpf 1.1 has no name for it):
  // frames a tc program redirects into this device's ingress never pass its XDP.
  int tc_link = bpf_link_create(bpf_program__fd(tc_prog), ifindex, (enum bpf_attach_type)46, NULL);
  if (tc_link < 0) {
    fprintf(stderr, "vbsink: attaching the tc counter to %s: %s\n", dev, strerror(errno));
    return 1;
  }
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus < 1) ncpus = 1;
  struct vb_count *vals = calloc((size_t)ncpus, sizeof(*vals));
  printf("ready %s\n", mode);
  fflush(stdout);

  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    uint32_t key = 0;
    memset(vals, 0, (size_t)ncpus * sizeof(*vals));
    uint64_t p = 0, b = 0;
    if (bpf_map_lookup_elem(map_fd, &key, vals) == 0) {
      for (int c = 0; c < ncpus; c++) {
        p += vals[c].packets;
        b += vals[c].bytes;
      }
    }
    printf("%llu %llu %llu\n", (unsigned long long)p, (unsigned long long)b, (unsigned long long)now_ns());
    fflush(stdout);
  }
  close(tc_link);
  if (link_fd >= 0) close(link_fd);
  else bpf_xdp_detach(ifindex, generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE, NULL);
  bpf_object__close(obj);
  return 0;
}
