// vbxdpgen: a fast frame source. Loads build/vb_gen.bpf.o (a program that returns
// XDP_TX) and runs it with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES, ctx_in
// ingress_ifindex = --dev: every run transmits the frame on that veth, which hands it
// to its peer (the switch port). Run it inside the generator namespace, pinned with
// taskset; it sends flat out, in chunks of --chunk frames, until told to stop.
//
//   ip netns exec vbg taskset -c 0 vbxdpgen --dev vbg0 --obj build/vb_gen.bpf.o
//       --frame HEX --seconds 30 [--batch 64] [--chunk 32768] [--flows N]
//
// --flows N: the program rewrites the destination MAC of each frame to the next of N
// (02:fd:00:00:00:00 onwards; see bench/bpf/vb_gen.bpf.c). --random-src: each frame
// from a random source MAC. --rate PPS: chunks of PPS/20 frames, each sent flat out,
// paced to PPS on average (bursts of 50 ms' worth of frames).
// Prints "ready". A line "q" or EOF on stdin, SIGINT/SIGTERM, or --seconds elapsing
// stops it: the signal interrupts the BPF_PROG_RUN in progress (the kernel checks for
// pending signals between batches). It then prints "done <frames in completed chunks>
// <ns> <errors>". Each BPF_PROG_RUN call costs tens of ms of set-up and tear-down here
// (page pool, RCU), so chunks are large and the benchmark counts what was offered from
// the veth's own counters (ethtool -S: tx_queue_N_xdp_xmit and _xdp_xmit_errors).
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

static _Atomic uint64_t sent_frames;
static _Atomic uint64_t sent_at_ns;
static volatile sig_atomic_t stop_flag;
static pthread_t main_thread;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_stop(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_WARN) return vfprintf(stderr, fmt, ap);
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *stdin_thread(void *arg) {
  (void)arg;
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (line[0] == 'q') break;
  }
  stop_flag = 1;
  pthread_kill(main_thread, SIGUSR1);  // interrupts the BPF_PROG_RUN in progress
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void usage(void) {
  fprintf(stderr, "usage: vbxdpgen --dev IFNAME --obj vb_gen.bpf.o --frame HEX [--seconds S] [--batch N] [--chunk N] [--flows N] [--random-src] [--rate PPS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *dev = NULL, *obj_path = NULL, *hex = NULL;
  double seconds = 30;
  unsigned batch = 64, chunk = 1u << 24, flows = 1, random_src = 0;
  double rate = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dev") && i + 1 < argc) dev = argv[++i];
    else if (!strcmp(argv[i], "--obj") && i + 1 < argc) obj_path = argv[++i];
    else if (!strcmp(argv[i], "--frame") && i + 1 < argc) hex = argv[++i];
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--flows") && i + 1 < argc) flows = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--random-src")) random_src = 1;
    else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = strtod(argv[++i], NULL);
    else usage();
  }
  if (!dev || !obj_path || !hex || batch == 0 || chunk == 0 || flows == 0) usage();
  if (rate > 0 && chunk > rate / 20 + 1) chunk = (unsigned)(rate / 20) + 1;
  size_t hlen = strlen(hex);
  if (hlen % 2 || hlen < 28 || hlen > 2 * 3000) {
    fprintf(stderr, "vbxdpgen: --frame must be 14..3000 bytes of hex\n");
    return 2;
  }
  size_t flen = hlen / 2;
  unsigned char *frame = malloc(flen);
  for (size_t i = 0; i < flen; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      fprintf(stderr, "vbxdpgen: bad hex in --frame\n");
      return 2;
    }
    frame[i] = (unsigned char)(hi << 4 | lo);
  }
  libbpf_set_print(quiet_print);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;  // no SA_RESTART: the syscall returns EINTR
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  main_thread = pthread_self();

  unsigned ifindex = if_nametoindex(dev);
  if (!ifindex) {
    fprintf(stderr, "vbxdpgen: no device %s: %s\n", dev, strerror(errno));
    return 1;
  }
  struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
  if (!obj) {
    fprintf(stderr, "vbxdpgen: open %s: %s\n", obj_path, strerror(errno));
    return 1;
  }
  struct bpf_map *map, *rodata = NULL;
  bpf_object__for_each_map(map, obj) {
    const char *name = bpf_map__name(map);
    size_t n = strlen(name);
    if (n >= 7 && !strcmp(name + n - 7, ".rodata")) rodata = map;
  }
  size_t rodata_size = 0;
  const void *initial = rodata ? bpf_map__initial_value(rodata, &rodata_size) : NULL;
  if (!initial || rodata_size < sizeof(flows)) {
    fprintf(stderr, "vbxdpgen: %s has no flows constant\n", obj_path);
    return 1;
  }
  unsigned char *consts = malloc(rodata_size);
  memcpy(consts, initial, rodata_size);
  uint32_t gen_config[2] = {flows, random_src};  // the only constant in .rodata
  if (rodata_size < sizeof(gen_config)) {
    fprintf(stderr, "vbxdpgen: %s has no gen_config constant\n", obj_path);
    return 1;
  }
  memcpy(consts, gen_config, sizeof(gen_config));
  if (bpf_map__set_initial_value(rodata, consts, rodata_size) || bpf_object__load(obj)) {
    fprintf(stderr, "vbxdpgen: load %s: %s\n", obj_path, strerror(errno));
    return 1;
  }
  struct bpf_program *prog = bpf_object__find_program_by_name(obj, "vb_gen");
  if (!prog) {
    fprintf(stderr, "vbxdpgen: no program vb_gen in %s\n", obj_path);
    return 1;
  }
  int prog_fd = bpf_program__fd(prog);

  struct xdp_md ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.data = 0;
  ctx.data_end = (uint32_t)flen;
  ctx.ingress_ifindex = ifindex;
  ctx.rx_queue_index = 0;

  pthread_t th;
  // The stdin thread must not take the stop signals: they have to interrupt this thread's syscall.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  pthread_create(&th, NULL, stdin_thread, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_lock(&out_lock);
  printf("ready\n");
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);

  uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
  atomic_store(&sent_at_ns, start);
  alarm((unsigned)(seconds + 0.999));
  uint64_t errors = 0;
  int last_err = 0;
  while (!stop_flag && now_ns() < deadline) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)flen, .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = chunk, .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
                .batch_size = batch);
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    if (err) {
      last_err = errno;
      if (stop_flag) break;
      if (++errors > 100) {
        fprintf(stderr, "vbxdpgen: BPF_PROG_RUN failed: %s\n", strerror(last_err));
        break;
      }
      continue;
    }
    uint64_t t = now_ns();
    atomic_store(&sent_frames, atomic_load(&sent_frames) + chunk);
    atomic_store(&sent_at_ns, t);
    if (rate > 0) {  // wait until the frames sent so far are due
      uint64_t due = start + (uint64_t)(atomic_load(&sent_frames) / rate * 1e9);
      while (!stop_flag && (t = now_ns()) < due && due < deadline) {
        struct timespec ts = {(time_t)((due - t) / 1000000000ull), (long)((due - t) % 1000000000ull)};
        nanosleep(&ts, NULL);
      }
    }
  }
  pthread_mutex_lock(&out_lock);
  printf("done %llu %llu %llu\n", (unsigned long long)atomic_load(&sent_frames),
         (unsigned long long)(atomic_load(&sent_at_ns) - start), (unsigned long long)errors);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  bpf_object__close(obj);
  return errors > 100 ? 1 : 0;
}
