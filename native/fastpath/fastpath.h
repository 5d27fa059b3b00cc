// The XDP fast path's kernel side, as one unit: the maps every port's program
// shares (port table, devmap, per-CPU counters, config with the coarse clock;
// the FDB map is the FDB table's own), loading a port's copy of the program
// and attaching it to the device. The datapath decides what goes in the port
// table (from its View) and which ports may take the fast path; this unit only
// knows how to put it in the kernel. Layouts: bpf/include/vswitchd_shared.h.
#pragma once

#include <cstdint>
#include <string>

#include "vswitchd_shared.h"

struct bpf_object;

namespace vswitchd {

using FastPort = ::fast_port;          // an entry of the port table
using FastCounters = ::fast_counters;  // per port, summed over CPUs by counters()
using FastConfig = ::fast_config;      // mmapped: the workers store the clock with a plain write
using TcPort = ::tc_port;              // a port's devices for the tc program
using PortPolicy = ::port_policy;      // port security, storm control, policing of a port
using PortBuckets = ::port_buckets;    // its token buckets (mmapped: the hot loop updates them too)

// A port's copy of the XDP program (bpf/xsk_steer.bpf.o), attached to its device.
struct XdpAttachment {
  bpf_object* obj = nullptr;
  int link_fd = -1;       // the XDP link: closing it detaches the program
  std::string dev_name;
  int ifindex = 0;
  std::string mode;       // "native" | "generic"
  int xsks_map_fd = -1;   // the program's own XSKMAP: queue -> AF_XDP socket
  bool kept = false;      // the program a restart left running (no obj; xsks_map_fd is ours to close)
};

// A port's copy of the tc program (bpf/tc_fastpath.bpf.o) on its device's tcx ingress.
struct TcAttachment {
  bpf_object* obj = nullptr;
  std::string dev_name;
  int ifindex = 0;
  int link_fd = -1;       // the tcx link: closing it detaches the program
};

// The shared maps by the names they are handed over with across a restart
// (src/switch/daemon/handover.ts); -1: none (create it).
struct FastMapFds {
  int ports = -1, tx = -1, stats = -1, config = -1, tc_ports = -1, policy = -1, buckets = -1;
};

class FastPath {
 public:
  // fdb_map_fd: the FDB table's map, shared with every program. enabled: datapath.fast_path.
  // bpf_object: the XDP program; tc_object: the tc program. adopt: maps a running
  // datapath left (a restart), checked against this build's layouts and taken over.
  FastPath(const std::string& bpf_object, const std::string& tc_object, int fdb_map_fd, uint32_t fdb_capacity, bool enabled,
           const FastMapFds& adopt = FastMapFds{});  // throws
  FastMapFds mapFds() const {
    return {ports_map_fd_, tx_map_fd_, stats_map_fd_, config_map_fd_, tc_ports_map_fd_, policy_map_fd_, buckets_map_fd_};
  }
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  bool enabled() const { return enabled_; }

  // Loads a copy of the program for port `index` (its port index a load-time
  // constant, the shared maps reused) and attaches it to `ifindex`:
  // xdp_mode "native", "generic", or anything else for native with a generic fallback.
  // index VSW_MAX_PORTS: a program that takes no fast path (a punt pair's far end).
  // keep: adopt_link_fd's program is this build's (a restart, not an upgrade): it
  // stays as it runs, nothing is loaded (its XSKMAP is found through the program).
  XdpAttachment attach(uint32_t index, const std::string& dev_name, int ifindex, const std::string& xdp_mode,
                       int adopt_link_fd = -1, bool keep = false);  // throws
  void detach(XdpAttachment& a);  // no-op when not attached
  // Frames of `queue` that take the slow path go to this AF_XDP socket.
  void bindQueue(const XdpAttachment& a, uint32_t queue, int xsk_fd);  // throws

  // Loads a copy of the tc program for port `index` and attaches it to the
  // device's tcx ingress. adopt_link_fd >= 0: the port's tcx link from before a
  // restart: the new program replaces the running one in it atomically
  // (bpf_link_update: no moment without a program). detachTc detaches the link
  // (a copy of the fd may sit in systemd's fd store) and closes it.
  // keep: as for attach(), the running program stays in the link.
  TcAttachment attachTc(uint16_t index, const std::string& dev_name, int ifindex, int adopt_link_fd = -1, bool keep = false);  // throws
  void detachTc(TcAttachment& a);  // no-op when not attached
  // The tc device table (written with the port table).
  void writeTcPort(uint16_t index, const TcPort& port);

  // The port table (written with the View the workers get, so XDP follows them).
  void writePort(uint16_t index, const FastPort& port);
  // The port's learn_full flag in the port table, at once (between commits too).
  void setLearnFull(uint16_t index, bool full);
  // The devmap: the device a port's frames are redirected to.
  void setDevice(uint16_t index, const std::string& dev_name, int ifindex);  // throws
  // A port's device going away: out of the devmap and the tc device table. Its
  // counters stay: the port counts on when its device comes back.
  void removePort(uint16_t index);
  // A port index taken by a new port: its counters start from 0.
  void zeroCounters(uint16_t index);
  FastCounters counters(uint16_t index) const;

  // A port's policy (read by its programs at once; the hot loop reads it through
  // policies()). Its buckets start full again.
  void writePolicy(uint16_t index, const PortPolicy& policy);
  // The mmapped policy and bucket maps (VSW_MAX_PORTS entries each), for the hot loop.
  const PortPolicy* policies() const { return policies_; }
  PortBuckets* buckets() const { return buckets_; }

  // The coarse clock the program stamps last_seen with (workers, every pass;
  // stored only when it moved VSW_FAST_CLOCK_STEP_MS, so the cache line the
  // program reads per frame is not bounced between CPUs).
  void tickClock(uint64_t now_ms);

 private:
  void closeAll();
  void shareMaps(bpf_object* obj, const std::string& path);
  void setProgramPort(bpf_object* obj, const std::string& path, uint32_t index);

  std::string bpf_object_;
  std::string tc_object_;
  int fdb_map_fd_;
  bool enabled_;
  int ports_map_fd_ = -1, tx_map_fd_ = -1, stats_map_fd_ = -1, config_map_fd_ = -1, tc_ports_map_fd_ = -1;
  FastConfig* config_ = nullptr;
  int policy_map_fd_ = -1, buckets_map_fd_ = -1;
  PortPolicy* policies_ = nullptr;
  PortBuckets* buckets_ = nullptr;
  int ncpus_ = 1;
};

}  // namespace vswitchd
