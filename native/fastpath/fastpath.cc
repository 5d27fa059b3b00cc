#include "fastpath/fastpath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

namespace vswitchd {

namespace {

std::string errText(int err) { return std::strerror(err < 0 ? -err : err); }

// libbpf reports, among others, every failed probe; errors that matter reach
// the caller as error codes anyway.
int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!getenv("VSWITCHD_DEBUG_LIBBPF")) return 0;
  return vfprintf(stderr, fmt, args);
}

// The id of the program attached to one device in driver (native) mode, 0 if none.
// libbpf's bpf_xdp_query_id dumps every link on the host and picks one: with the
// few hundred veths and taps of a busy host that took 5-10 ms per port of the
// early start after a restart (issue 13); this asks the kernel for the one device.
// Falls back to libbpf if the answer cannot be read.
__u32 driverProgramId(int ifindex) {
  auto viaLibbpf = [ifindex]() {
    __u32 id = 0;
    return bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id) == 0 ? id : 0u;
  };
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return viaLibbpf();
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = ifindex;
  alignas(nlmsghdr) static thread_local char buf[32768];
  bool read = false;
  __u32 id = 0;
  if (send(fd, &req, req.nh.nlmsg_len, 0) == static_cast<ssize_t>(req.nh.nlmsg_len)) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    auto* nh = reinterpret_cast<nlmsghdr*>(buf);
    if (n > 0 && NLMSG_OK(nh, static_cast<__u32>(n)) && nh->nlmsg_type == RTM_NEWLINK) {
      read = true;
      auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(nh));
      int len = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
      for (auto* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if ((a->rta_type & NLA_TYPE_MASK) != IFLA_XDP) continue;
        int xlen = static_cast<int>(RTA_PAYLOAD(a));
        for (auto* x = static_cast<rtattr*>(RTA_DATA(a)); RTA_OK(x, xlen); x = RTA_NEXT(x, xlen)) {
          if (x->rta_type == IFLA_XDP_DRV_PROG_ID && RTA_PAYLOAD(x) >= sizeof(__u32)) std::memcpy(&id, RTA_DATA(x), sizeof(id));
        }
      }
    }
  }
  close(fd);
  return read ? id : viaLibbpf();
}

// A run of an older version (which attached through netlink, not a link) may
// have left our program on the device: take it off. A program attached by a
// bpf_link goes with the daemon's fd; anything else on the device is not ours
// and makes the attach fail with EBUSY, which is reported.
void detachStaleProgram(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return;
  for (const auto& [id, flags] : {std::pair{q.drv_prog_id, XDP_FLAGS_DRV_MODE}, std::pair{q.skb_prog_id, XDP_FLAGS_SKB_MODE}}) {
    if (!id) continue;
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    const bool ours = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strcmp(info.name, "vswitchd_steer") == 0;
    close(fd);
    if (ours) bpf_xdp_detach(ifindex, flags, nullptr);  // fails harmlessly when it is a link's
  }
}

// Swaps the program in a link a restart handed over (no moment without a program).
// false, with that link detached and closed, when the link cannot take it (the
// port's hook changed, its device is another one): the caller attaches afresh.
bool replaceInAdoptedLink(int link_fd, int prog_fd) {
  if (bpf_link_update(link_fd, prog_fd, nullptr) == 0) return true;
  bpf_link_detach(link_fd);
  close(link_fd);
  return false;
}

// The program a handed-over link runs, when it is the one named `name` (this
// build's, by the caller's word) and the link is of `link_type`: its fd, else -1.
int keptProgram(int link_fd, __u32 link_type, const char* name) {
  bpf_link_info link{};
  __u32 len = sizeof(link);
  if (bpf_obj_get_info_by_fd(link_fd, &link, &len) != 0 || link.type != link_type) return -1;
  const int prog_fd = bpf_prog_get_fd_by_id(link.prog_id);
  if (prog_fd < 0) return -1;
  bpf_prog_info info{};
  len = sizeof(info);
  // The kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a name ("vswitchd_tc_fas").
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0 || std::strncmp(info.name, name, BPF_OBJ_NAME_LEN - 1) != 0) {
    close(prog_fd);
    return -1;
  }
  return prog_fd;
}

// The XSKMAP a running XDP program redirects into (its own map: each port's copy has one).
int programXsksMap(int prog_fd) {
  __u32 ids[16] = {};
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  info.nr_map_ids = 16;
  info.map_ids = reinterpret_cast<__u64>(ids);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return -1;
  for (__u32 i = 0; i < std::min<__u32>(info.nr_map_ids, 16); i++) {
    const int fd = bpf_map_get_fd_by_id(ids[i]);
    if (fd < 0) continue;
    bpf_map_info m{};
    __u32 mlen = sizeof(m);
    if (bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0 && m.type == BPF_MAP_TYPE_XSKMAP) return fd;
    close(fd);
  }
  return -1;
}

constexpr __u32 kLinkTypeTcx = 11;  // BPF_LINK_TYPE_TCX (kernel 6.6; newer than these headers)

}  // namespace

FastPath::FastPath(const std::string& bpf_object, const std::string& tc_object, int fdb_map_fd, uint32_t fdb_capacity, bool enabled,
                   const FastMapFds& adopt)
    : bpf_object_(bpf_object), tc_object_(tc_object), fdb_map_fd_(fdb_map_fd), enabled_(enabled) {
  static std::once_flag print_once;
  std::call_once(print_once, [] {
    libbpf_set_print(libbpfPrint);
  });
  auto create = [this](bpf_map_type type, const char* name, uint32_t key, uint32_t value, uint32_t entries, int adopted = -1,
                       uint32_t flags = 0) {
    if (adopted >= 0) {
      // A map a running datapath left: only with this build's layout.
      bpf_map_info info{};
      __u32 len = sizeof(info);
      const bool same = bpf_obj_get_info_by_fd(adopted, &info, &len) == 0 && info.type == static_cast<__u32>(type) &&
                        info.key_size == key && info.value_size == value && info.max_entries == entries &&
                        (info.map_flags & ~BPF_F_RDONLY_PROG) == flags;  // the kernel adds that one to a devmap
      if (same) return adopted;
      closeAll();
      throw std::runtime_error(std::string("the adopted BPF map ") + name + " has another layout");
    }
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
    const int fd = bpf_map_create(type, name, key, value, entries, &opts);
    if (fd < 0) {
      closeAll();  // what was created so far
      throw std::runtime_error(std::string("creating BPF map ") + name + ": " + errText(fd));
    }
    return fd;
  };
  ports_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_ports", 4, sizeof(FastPort), VSW_MAX_PORTS, adopt.ports);
  tx_map_fd_ = create(BPF_MAP_TYPE_DEVMAP_HASH, "vswitchd_tx", 4, 4, VSW_MAX_PORTS, adopt.tx);
  stats_map_fd_ = create(BPF_MAP_TYPE_PERCPU_ARRAY, "vswitchd_fstats", 4, sizeof(FastCounters), VSW_MAX_PORTS, adopt.stats);
  tc_ports_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_tc_ports", 4, sizeof(TcPort), VSW_MAX_PORTS, adopt.tc_ports);
  config_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_config", 4, sizeof(FastConfig), 1, adopt.config, BPF_F_MMAPABLE);
  void* mapped = mmap(nullptr, sizeof(FastConfig), PROT_READ | PROT_WRITE, MAP_SHARED, config_map_fd_, 0);
  if (mapped == MAP_FAILED) {
    const int err = errno;
    closeAll();
    throw std::runtime_error("mapping the fast path config map: " + errText(err));
  }
  config_ = static_cast<FastConfig*>(mapped);
  // Handed over like the others: a restart of the same build keeps its programs as they
  // run, and they read these very maps (the control plane writes every port's policy again
  // as it claims the port; the buckets go on).
  policy_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_policy", 4, sizeof(PortPolicy), VSW_MAX_PORTS, adopt.policy, BPF_F_MMAPABLE);
  buckets_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_buckets", 4, sizeof(PortBuckets), VSW_MAX_PORTS, adopt.buckets, BPF_F_MMAPABLE);
  for (auto [fd, size, out] : {std::tuple{policy_map_fd_, sizeof(PortPolicy), reinterpret_cast<void**>(&policies_)},
                               std::tuple{buckets_map_fd_, sizeof(PortBuckets), reinterpret_cast<void**>(&buckets_)}}) {
    void* m = mmap(nullptr, size * VSW_MAX_PORTS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      closeAll();
      throw std::runtime_error("mapping the port policy maps: " + errText(err));
    }
    *out = m;
  }
  config_->fdb_mask = fdb_capacity - 1;
  config_->enabled = enabled ? 1 : 0;
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ < 1) ncpus_ = 1;
}

FastPath::~FastPath() { closeAll(); }

void FastPath::closeAll() {
  if (config_) munmap(config_, sizeof(FastConfig));
  config_ = nullptr;
  if (policies_) munmap(policies_, sizeof(PortPolicy) * VSW_MAX_PORTS);
  if (buckets_) munmap(buckets_, sizeof(PortBuckets) * VSW_MAX_PORTS);
  policies_ = nullptr;
  buckets_ = nullptr;
  for (int* fd : {&ports_map_fd_, &tx_map_fd_, &stats_map_fd_, &config_map_fd_, &tc_ports_map_fd_, &policy_map_fd_, &buckets_map_fd_}) {
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
      {"vswitchd_policy", policy_map_fd_},     {"vswitchd_buckets", buckets_map_fd_},
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

TcAttachment FastPath::attachTc(uint16_t index, const std::string& dev_name, int ifindex, int adopt_link_fd, bool keep) {
  TcAttachment a;
  a.dev_name = dev_name;
  a.ifindex = ifindex;
  if (keep && adopt_link_fd >= 0) {
    // The same build restarted: the program in the link is what would be loaded (same
    // object, same port index), so it stays; loading it again cost ~50 ms per port.
    const int prog_fd = keptProgram(adopt_link_fd, kLinkTypeTcx, "vswitchd_tc_fast");
    if (prog_fd >= 0) {
      close(prog_fd);
      a.link_fd = adopt_link_fd;
      return a;
    }
  }
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
    // A tcx link (kernel >= 6.6): it goes with its last fd, so a killed daemon leaves
    // nothing attached, unless systemd's fd store holds a copy (a restart keeps it). libbpf 1.1 has no bpf_program__attach_tcx; the link call
    // is the same thing.
    if (adopt_link_fd >= 0 && replaceInAdoptedLink(adopt_link_fd, bpf_program__fd(prog))) {
      a.link_fd = adopt_link_fd;
    } else {
      a.link_fd = bpf_link_create(bpf_program__fd(prog), ifindex, static_cast<bpf_attach_type>(46 /* BPF_TCX_INGRESS */), nullptr);
      if (a.link_fd < 0) throw std::runtime_error(dev_name + ": attaching the tc program (tcx ingress): " + errText(a.link_fd));
    }
  } catch (...) {
    bpf_object__close(a.obj);
    throw;
  }
  return a;
}

void FastPath::detachTc(TcAttachment& a) {
  if (a.link_fd >= 0) {
    bpf_link_detach(a.link_fd);  // a copy of the fd in systemd's fd store would keep it attached
    close(a.link_fd);
  }
  a.link_fd = -1;
  if (a.obj) bpf_object__close(a.obj);
  a.obj = nullptr;
}

void FastPath::writeTcPort(uint16_t index, const TcPort& port) {
  const uint32_t key = index;
  bpf_map_update_elem(tc_ports_map_fd_, &key, &port, 0);
}

// Loaded with libbpf and attached by a bpf_link, like the tc program: the
// link goes with its fd (a killed daemon leaves nothing attached), and
// detach() closes everything attach() opened. libxdp's attach and detach are
// not used: in libxdp 1.3.1 (Debian 12) every look at a device's program
// (xdp_multiprog__get_from_ifindex, which its attach and detach both call)
// leaks a program fd (fixed upstream in 1.4.1, 48ad94b), so each port add and
// remove left programs loaded for good; and its dispatcher cannot load here
// (no CAP_SYS_RESOURCE), so it only ever attached one program anyway.
XdpAttachment FastPath::attach(uint32_t index, const std::string& dev_name, int ifindex, const std::string& xdp_mode,
                              int adopt_link_fd, bool keep) {
  if (adopt_link_fd < 0) detachStaleProgram(ifindex);
  XdpAttachment a;
  a.dev_name = dev_name;
  a.ifindex = ifindex;
  if (keep && adopt_link_fd >= 0) {
    // The same build restarted (see attachTc): the running program and its XSKMAP stay.
    const int prog_fd = keptProgram(adopt_link_fd, BPF_LINK_TYPE_XDP, "vswitchd_steer");
    const int xsks = prog_fd >= 0 ? programXsksMap(prog_fd) : -1;
    if (xsks >= 0) {
      bpf_prog_info info{};
      __u32 len = sizeof(info);
      const __u32 native_id = driverProgramId(ifindex);
      const bool native = native_id != 0 && bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0 && native_id == info.id;
      close(prog_fd);
      a.link_fd = adopt_link_fd;
      a.xsks_map_fd = xsks;
      a.kept = true;
      a.mode = native ? "native" : "generic";
      return a;
    }
    if (prog_fd >= 0) close(prog_fd);
  }
  a.obj = bpf_object__open_file(bpf_object_.c_str(), nullptr);
  if (int err = libbpf_get_error(a.obj)) {
    a.obj = nullptr;
    throw std::runtime_error("opening " + bpf_object_ + ": " + errText(err));
  }
  try {
    shareMaps(a.obj, bpf_object_);
    setProgramPort(a.obj, bpf_object_, index);
    if (int err = bpf_object__load(a.obj)) throw std::runtime_error("loading " + bpf_object_ + ": " + errText(err));
    bpf_program* prog = bpf_object__find_program_by_name(a.obj, "vswitchd_steer");
    if (!prog) throw std::runtime_error(bpf_object_ + " has no program vswitchd_steer");
    int err = -1;
    auto link = [&](__u32 flags) {
      LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
      const int fd = bpf_link_create(bpf_program__fd(prog), ifindex, BPF_XDP, &opts);
      if (fd < 0) err = fd;
      return fd;
    };
    if (adopt_link_fd >= 0 && replaceInAdoptedLink(adopt_link_fd, bpf_program__fd(prog))) {
      // A restart: the link keeps the mode it was made in.
      a.link_fd = adopt_link_fd;
      bpf_prog_info info{};
      __u32 len = sizeof(info);
      const __u32 native_id = driverProgramId(ifindex);
      const bool native = native_id != 0 && bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0 && native_id == info.id;
      a.mode = native ? "native" : "generic";
    }
    if (a.link_fd < 0 && xdp_mode != "generic" && (a.link_fd = link(XDP_FLAGS_DRV_MODE)) >= 0) a.mode = "native";
    if (a.link_fd < 0 && xdp_mode != "native" && (a.link_fd = link(XDP_FLAGS_SKB_MODE)) >= 0) a.mode = "generic";
    if (a.link_fd < 0) throw std::runtime_error(dev_name + ": attaching the XDP program in " + xdp_mode + " mode: " + errText(err));
    a.xsks_map_fd = bpf_object__find_map_fd_by_name(a.obj, "xsks_map");
    if (a.xsks_map_fd < 0) throw std::runtime_error(dev_name + ": the XDP program has no xsks_map");
  } catch (...) {
    detach(a);
    throw;
  }
  return a;
}

void FastPath::detach(XdpAttachment& a) {
  if (a.link_fd >= 0) {
    bpf_link_detach(a.link_fd);  // a copy of the fd in systemd's fd store would keep it attached
    close(a.link_fd);
  }
  a.link_fd = -1;
  if (a.obj) bpf_object__close(a.obj);  // the program's and its own maps' fds
  a.obj = nullptr;
  if (a.kept && a.xsks_map_fd >= 0) close(a.xsks_map_fd);  // a kept program's map, found by id
  a.kept = false;
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

void FastPath::setLearnFull(uint16_t index, bool full) {
  const uint32_t key = index;
  FastPort fp{};
  if (bpf_map_lookup_elem(ports_map_fd_, &key, &fp) != 0) return;
  fp.learn_full = full ? 1 : 0;
  bpf_map_update_elem(ports_map_fd_, &key, &fp, 0);
}

void FastPath::setDevice(uint16_t index, const std::string& dev_name, int ifindex) {
  const uint32_t key = index, value = static_cast<uint32_t>(ifindex);
  if (bpf_map_update_elem(tx_map_fd_, &key, &value, 0) != 0)
    throw std::runtime_error(dev_name + ": registering the port with the fast path: " + errText(errno));
}

void FastPath::removePort(uint16_t index) {
  const uint32_t key = index;
  writePolicy(index, PortPolicy{});
  bpf_map_delete_elem(tx_map_fd_, &key);  // ENOENT for ports without a device: fine
  const TcPort none{};
  bpf_map_update_elem(tc_ports_map_fd_, &key, &none, 0);
}

void FastPath::zeroCounters(uint16_t index) {
  const uint32_t key = index;
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
    sum.redirect_failed += c.redirect_failed;
    sum.mac_limit += c.mac_limit;
    for (int i = 0; i < VSW_POLICY_REASONS; i++) sum.policy_drops[i] += c.policy_drops[i];
  }
  return sum;
}

// The new policy is the current one with MACs appended (a learning port admitting one),
// its flags at most losing VSW_POL_LEARN.
static bool onlyAppendsMacs(const PortPolicy& now, const PortPolicy& next) {
  if (next.n_macs < now.n_macs || ((now.flags ^ next.flags) & ~static_cast<__u32>(VSW_POL_LEARN)) != 0) return false;
  PortPolicy a = now, b = next;
  a.flags = b.flags = 0;
  a.n_macs = b.n_macs = 0;
  std::memset(&b.macs[now.n_macs], 0, sizeof(b.macs[0]) * (VSW_POLICY_MACS - now.n_macs));
  std::memset(&a.macs[now.n_macs], 0, sizeof(a.macs[0]) * (VSW_POLICY_MACS - now.n_macs));
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

static bool sameLimits(const PortPolicy& a, const PortPolicy& b) {
  return std::memcmp(a.storm_pps, b.storm_pps, sizeof(a.storm_pps)) == 0 && a.police_rate == b.police_rate &&
         a.police_burst == b.police_burst;
}

void FastPath::writePolicy(uint16_t index, const PortPolicy& policy) {
  if (!policies_ || index >= VSW_MAX_PORTS) return;
  PortPolicy& live = policies_[index];
  if (std::memcmp(&live, &policy, sizeof(policy)) == 0) return;  // a reload that kept it: buckets keep their state
  if (live.flags != 0 && onlyAppendsMacs(live, policy)) {
    // Admitting a learned MAC: the new MAC, then the count, then the flags, so a frame sees
    // the old list or the new one and the checks never pause (a learning port stays locked
    // to what it has) and the buckets keep their state.
    for (int i = live.n_macs; i < policy.n_macs; i++) std::memcpy(live.macs[i], policy.macs[i], sizeof(live.macs[i]));
    std::atomic_ref<__u8>(live.n_macs).store(policy.n_macs, std::memory_order_release);
    std::atomic_ref<__u32>(live.flags).store(policy.flags, std::memory_order_release);
    return;
  }
  const bool keep_buckets = live.flags != 0 && sameLimits(live, policy);
  // Off first, the new settings, then the flags: a frame never sees half of each.
  std::atomic_ref<__u32>(policies_[index].flags).store(0, std::memory_order_release);
  PortPolicy p = policy;
  const __u32 flags = p.flags;
  p.flags = 0;
  std::memcpy(&policies_[index], &p, sizeof(p));
  if (!keep_buckets) std::memset(&buckets_[index], 0, sizeof(PortBuckets));
  std::atomic_ref<__u32>(policies_[index].flags).store(flags, std::memory_order_release);
}

void FastPath::tickClock(uint64_t now) {
  if (!config_) return;
  auto clock = std::atomic_ref<__u64>(config_->now_ms);
  if (now >= clock.load(std::memory_order_relaxed) + VSW_FAST_CLOCK_STEP_MS) clock.store(now, std::memory_order_relaxed);
}

}  // namespace vswitchd
