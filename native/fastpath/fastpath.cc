#include "fastpath/fastpath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

namespace vswitchd {

namespace {

std::string errText(int err) { return std::strerror(err < 0 ? -err : err); }

int libxdpPrint(enum libxdp_print_level level, const char* fmt, va_list args) {
  // The multi-program dispatcher fails to load without CAP_SYS_RESOURCE and
  // libxdp then attaches the program alone; its notices about that, and about
  // devices with no dispatcher, are noise. Failures reach us as error codes.
  if (!getenv("VSWITCHD_DEBUG_LIBBPF")) return 0;
  fprintf(stderr, "libxdp: ");
  return vfprintf(stderr, fmt, args);
}

// libbpf reports, among others, the expected EPERM of the dispatcher load on
// every attach; errors that matter reach the caller as error codes anyway.
int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!getenv("VSWITCHD_DEBUG_LIBBPF")) return 0;
  return vfprintf(stderr, fmt, args);
}

// A crashed earlier run may have left our program on the device: take it off.
void detachStaleProgram(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return;
  xdp_program* main = xdp_multiprog__main_prog(mp);
  if (main && std::strcmp(xdp_program__name(main), "vswitchd_steer") == 0) xdp_multiprog__detach(mp);
  xdp_multiprog__close(mp);
}

// libxdp first tries its multi-program dispatcher on every attach; where that
// cannot load (no CAP_SYS_RESOURCE, as here) every attach pays for a failed
// load before the plain attach. Once one attach has shown that, skip it.
void rememberDispatcherOutcome(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return;
  if (xdp_multiprog__is_legacy(mp)) setenv("LIBXDP_SKIP_DISPATCHER", "1", 0);
  xdp_multiprog__close(mp);
}

}  // namespace

FastPath::FastPath(const std::string& bpf_object, const std::string& tc_object, int fdb_map_fd, uint32_t fdb_capacity, bool enabled)
    : bpf_object_(bpf_object), tc_object_(tc_object), fdb_map_fd_(fdb_map_fd), enabled_(enabled) {
  static std::once_flag print_once;
  std::call_once(print_once, [] {
    libxdp_set_print(libxdpPrint);
    libbpf_set_print(libbpfPrint);
  });
  auto create = [this](bpf_map_type type, const char* name, uint32_t key, uint32_t value, uint32_t entries) {
    const int fd = bpf_map_create(type, name, key, value, entries, nullptr);
    if (fd < 0) {
      closeAll();  // what was created so far
      throw std::runtime_error(std::string("creating BPF map ") + name + ": " + errText(fd));
    }
    return fd;
  };
  ports_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_ports", 4, sizeof(FastPort), VSW_MAX_PORTS);
  tx_map_fd_ = create(BPF_MAP_TYPE_DEVMAP_HASH, "vswitchd_tx", 4, 4, VSW_MAX_PORTS);
  stats_map_fd_ = create(BPF_MAP_TYPE_PERCPU_ARRAY, "vswitchd_fstats", 4, sizeof(FastCounters), VSW_MAX_PORTS);
  tc_ports_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_tc_ports", 4, sizeof(TcPort), VSW_MAX_PORTS);
  LIBBPF_OPTS(bpf_map_create_opts, mmapable, .map_flags = BPF_F_MMAPABLE);
  config_map_fd_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vswitchd_config", 4, sizeof(FastConfig), 1, &mmapable);
  if (config_map_fd_ < 0) {
    const int err = config_map_fd_;
    closeAll();
    throw std::runtime_error("creating BPF map vswitchd_config: " + errText(err));
  }
  void* mapped = mmap(nullptr, sizeof(FastConfig), PROT_READ | PROT_WRITE, MAP_SHARED, config_map_fd_, 0);
  if (mapped == MAP_FAILED) {
    const int err = errno;
    closeAll();
    throw std::runtime_error("mapping the fast path config map: " + errText(err));
  }
  config_ = static_cast<FastConfig*>(mapped);
  config_->fdb_mask = fdb_capacity - 1;
  config_->enabled = enabled ? 1 : 0;
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ < 1) ncpus_ = 1;
}

FastPath::~FastPath() { closeAll(); }

void FastPath::closeAll() {
  if (config_) munmap(config_, sizeof(FastConfig));
  config_ = nullptr;
  for (int* fd : {&ports_map_fd_, &tx_map_fd_, &stats_map_fd_, &config_map_fd_, &tc_ports_map_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

// Every port's programs (XDP and tc) read the same FDB, port table, counters,
// config and tc device table; the XDP program also the devmap.
void FastPath::shareMaps(bpf_object* obj, const std::string& path) {
  const std::pair<const char*, int> shared[] = {
      {"vswitchd_fdb", fdb_map_fd_},           {"vswitchd_ports", ports_map_fd_},       {"vswitchd_tx", tx_map_fd_},
      {"vswitchd_fast_stats", stats_map_fd_}, {"vswitchd_config", config_map_fd_},     {"vswitchd_tc_ports", tc_ports_map_fd_},
  };
  for (const auto& [name, fd] : shared) {
    bpf_map* map = bpf_object__find_map_by_name(obj, name);
    if (!map) {
      if (std::strcmp(name, "vswitchd_tx") == 0) continue;  // the tc program has no devmap
      throw std::runtime_error(path + " has no map " + name);
    }
    if (int err = bpf_map__reuse_fd(map, fd)) throw std::runtime_error(std::string("sharing map ") + name + ": " + errText(err));
  }
}

// Each port's copy of a program knows its port index as a load-time constant
// (VSW_MAX_PORTS: no port, every frame to the slow path).
void FastPath::setProgramPort(bpf_object* obj, const std::string& path, uint32_t index) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    const size_t len = std::strlen(name);
    if (len >= 7 && std::strcmp(name + len - 7, ".rodata") == 0) break;
  }
  size_t size = 0;
  const void* initial = map ? bpf_map__initial_value(map, &size) : nullptr;
  if (!initial || size < sizeof(uint32_t)) throw std::runtime_error(path + " has no vswitchd_port_index constant");
  std::vector<uint8_t> rodata(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + size);
  std::memcpy(rodata.data(), &index, sizeof(index));  // the only constant in .rodata
  if (int err = bpf_map__set_initial_value(map, rodata.data(), rodata.size()))
    throw std::runtime_error("setting the program's port index: " + errText(err));
}

TcAttachment FastPath::attachTc(uint16_t index, const std::string& dev_name, int ifindex) {
  TcAttachment a;
  a.dev_name = dev_name;
  a.ifindex = ifindex;
  a.obj = bpf_object__open_file(tc_object_.c_str(), nullptr);
  if (int err = libbpf_get_error(a.obj)) {
    a.obj = nullptr;
    throw std::runtime_error("opening " + tc_object_ + ": " + errText(err));
  }
  try {
    shareMaps(a.obj, tc_object_);
    setProgramPort(a.obj, tc_object_, index);
    if (int err = bpf_object__load(a.obj)) throw std::runtime_error("loading " + tc_object_ + ": " + errText(err));
    bpf_program* prog = bpf_object__find_program_by_name(a.obj, "vswitchd_tc_fast");
    if (!prog) throw std::runtime_error(tc_object_ + " has no program vswitchd_tc_fast");
    // A tcx link (kernel >= 6.6): it goes with its fd, so a killed daemon leaves
    // nothing attached. libbpf 1.1 has no bpf_program__attach_tcx; the link call
    // is the same thing.
    a.link_fd = bpf_link_create(bpf_program__fd(prog), ifindex, static_cast<bpf_attach_type>(46 /* BPF_TCX_INGRESS */), nullptr);
    if (a.link_fd < 0) throw std::runtime_error(dev_name + ": attaching the tc program (tcx ingress): " + errText(a.link_fd));
  } catch (...) {
    bpf_object__close(a.obj);
    throw;
  }
  return a;
}

void FastPath::detachTc(TcAttachment& a) {
  if (a.link_fd >= 0) close(a.link_fd);
  a.link_fd = -1;
  if (a.obj) bpf_object__close(a.obj);
  a.obj = nullptr;
}

void FastPath::writeTcPort(uint16_t index, const TcPort& port) {
  const uint32_t key = index;
  bpf_map_update_elem(tc_ports_map_fd_, &key, &port, 0);
}

XdpAttachment FastPath::attach(uint32_t index, const std::string& dev_name, int ifindex, const std::string& xdp_mode) {
  detachStaleProgram(ifindex);
  XdpAttachment a;
  a.dev_name = dev_name;
  a.ifindex = ifindex;
  a.prog = xdp_program__open_file(bpf_object_.c_str(), "xdp.frags", nullptr);
  if (int err = libxdp_get_error(a.prog)) throw std::runtime_error("opening " + bpf_object_ + ": " + errText(err));
  try {
    shareMaps(xdp_program__bpf_obj(a.prog), bpf_object_);
    setProgramPort(xdp_program__bpf_obj(a.prog), bpf_object_, index);
  } catch (...) {
    xdp_program__close(a.prog);
    throw;
  }
  int err = -1;
  if (xdp_mode != "generic") {
    err = xdp_program__attach(a.prog, ifindex, XDP_MODE_NATIVE, 0);
    if (!err) a.mode = "native";
  }
  if (!err) rememberDispatcherOutcome(ifindex);
  if (err && xdp_mode != "native") {
    err = xdp_program__attach(a.prog, ifindex, XDP_MODE_SKB, 0);
    if (!err) a.mode = "generic";
  }
  if (err) {
    xdp_program__close(a.prog);
    throw std::runtime_error(dev_name + ": attaching the XDP program in " + xdp_mode + " mode: " + errText(err));
  }
  a.xsks_map_fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(a.prog), "xsks_map");
  if (a.xsks_map_fd < 0) {
    detach(a);
    throw std::runtime_error(dev_name + ": the XDP program has no xsks_map");
  }
  return a;
}

void FastPath::detach(XdpAttachment& a) {
  if (!a.prog) return;
  const enum xdp_attach_mode mode = a.mode == "native" ? XDP_MODE_NATIVE : XDP_MODE_SKB;
  xdp_program__detach(a.prog, a.ifindex, mode, 0);
  xdp_program__close(a.prog);
  a.prog = nullptr;
  a.xsks_map_fd = -1;
}

void FastPath::bindQueue(const XdpAttachment& a, uint32_t queue, int xsk_fd) {
  if (bpf_map_update_elem(a.xsks_map_fd, &queue, &xsk_fd, 0) != 0)
    throw std::runtime_error(a.dev_name + ": adding queue " + std::to_string(queue) + " to the XSKMAP: " + errText(errno));
}

void FastPath::writePort(uint16_t index, const FastPort& port) {
  const uint32_t key = index;
  bpf_map_update_elem(ports_map_fd_, &key, &port, 0);
}

void FastPath::setDevice(uint16_t index, const std::string& dev_name, int ifindex) {
  const uint32_t key = index, value = static_cast<uint32_t>(ifindex);
  if (bpf_map_update_elem(tx_map_fd_, &key, &value, 0) != 0)
    throw std::runtime_error(dev_name + ": registering the port with the fast path: " + errText(errno));
}

void FastPath::removePort(uint16_t index) {
  const uint32_t key = index;
  bpf_map_delete_elem(tx_map_fd_, &key);  // ENOENT for ports without a device: fine
  const TcPort none{};
  bpf_map_update_elem(tc_ports_map_fd_, &key, &none, 0);
  std::vector<FastCounters> zeros(static_cast<size_t>(ncpus_), FastCounters{});
  bpf_map_update_elem(stats_map_fd_, &key, zeros.data(), 0);
}

FastCounters FastPath::counters(uint16_t index) const {
  std::vector<FastCounters> per_cpu(static_cast<size_t>(ncpus_));
  FastCounters sum{};
  const uint32_t key = index;
  if (bpf_map_lookup_elem(stats_map_fd_, &key, per_cpu.data()) != 0) return sum;
  for (const FastCounters& c : per_cpu) {
    sum.rx_packets += c.rx_packets;
    sum.rx_bytes += c.rx_bytes;
    sum.tx_packets += c.tx_packets;
    sum.tx_bytes += c.tx_bytes;
  }
  return sum;
}

void FastPath::tickClock(uint64_t now) {
  if (!config_) return;
  auto clock = std::atomic_ref<__u64>(config_->now_ms);
  if (now >= clock.load(std::memory_order_relaxed) + VSW_FAST_CLOCK_STEP_MS) clock.store(now, std::memory_order_relaxed);
}

}  // namespace vswitchd
