// The process-wide datapath: one UMEM, the ports and their sockets, the FDB,
// and one context per worker thread. The control plane (main thread) changes
// configuration by building a new immutable View and publishing it; each
// worker picks up the newest View between bursts and acknowledges it, so the
// hot loop never takes a lock and never sees a half-applied change.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "afxdp/xsk.h"
#include "datapath/spsc_ring.h"
#include "fastpath/fastpath.h"
#include "fdb/fdb_table.h"
#include "vswitchd_shared.h"

namespace vswitchd {

constexpr int kMaxPorts = VSW_MAX_PORTS;
constexpr int kMaxWorkers = 16;
constexpr int kBurst = 64;
constexpr int kPortWords = kMaxPorts / 64;
constexpr int kVlanIds = VSW_VLAN_IDS;
constexpr int kBondBuckets = VSW_BOND_BUCKETS;
constexpr uint16_t kVidReserved = VSW_VID_RESERVED;
constexpr int kMaxQueuesPerPort = VSW_MAX_QUEUES;  // the XDP program's XSKMAP

// Tuning of the worker loop, named here so each has one value.
constexpr uint32_t kHandoffRingSize = 4096;      // frames in flight from one worker to another's port
// Frames kept in a socket's fill ring: the worker's receiving sockets share half its
// frames (the rest carry floods and transmits), at most this many each and at least
// one. With many ports the share gets small: src/switch/daemon/switch.ts warns below 64.
constexpr uint32_t kFillTargetMax = 1024;
constexpr int kKickTries = 256;                  // sendto() kicks per TX flush while the kernel makes progress
constexpr uint32_t kLearnCacheSize = 4096;       // recent learn reports per worker (a power of two)
constexpr uint32_t kLearnCacheMask = kLearnCacheSize - 1;
constexpr uint64_t kLearnRepeatMs = 1000;        // the same <vlan, mac, port> is reported once per this at most

enum DropReason : int {
  kDropRunt = 0,          // shorter than an Ethernet header
  kDropMalformed,         // truncated 802.1Q tag
  kDropTooBig,            // longer than the datapath carries (kMaxJumboLen: VSW_MAX_MTU and two tags)
  kDropMulticastSource,   // multicast, broadcast or all-zero source MAC (no station sends from one)
  kDropVlanNotAllowed,    // tag not in the port's trunks, or a tagged frame on an access port
  kDropUntaggedNoNative,  // untagged frame on a trunk without native VLAN
  kDropSamePort,          // destination learned on the ingress port
  kDropNoBuffer,          // no free UMEM frame for a flood copy
  kDropTxFull,            // egress socket's TX ring full, or the internal port's tap write failed
  kDropPortDown,          // egress or ingress port inactive
  kDropLinkLocal,         // 01:80:c2:00:00:0x control frames a bridge must not forward
  kDropBondInactiveLeg,   // arrived on a bond leg that may not receive (backup, or LACP not collecting)
  kDropBondNoLeg,         // egress bond has no usable leg
  kDropHandoffFull,       // the worker that owns the egress port is behind: its hand-off ring is full
  kDropMacLimit,          // source not learned here and the port is at its MAC limit (fdb.max_per_port)
  kDropMtuExceeded,       // larger than the egress port's MTU (never truncated)
  kDropMirrorOutput,      // sent by a mirror's output port, which only receives copies
  // The port's policy (VSW_POLICY_* in vswitchd_shared.h, this order; its program counts
  // the frames it drops in fast_counters.policy_drops):
  kDropSpoofedMac,        // source MAC not one the port may send from
  kDropSpoofedIp,         // IPv4/IPv6 source address not bound to the port
  kDropSpoofedArp,        // ARP sender MAC or IP not the port's
  kDropSpoofedNd,         // Neighbor Solicitation/Advertisement target or link-layer address not the port's
  kDropStormBroadcast,    // over the port's broadcast frames/s cap
  kDropStormMulticast,    // over its multicast cap
  kDropStormUnknownUnicast,  // over its unknown-unicast cap
  kDropPoliced,           // over the port's ingress policing rate
  kDropMacLearning,       // from a source MAC a learning port (security.learn) had not admitted yet: reported, not forwarded
  kDropCount
};
// As the metrics and `vswitchctl` name them (and test/vectors/shared.json).
inline constexpr const char* kDropReasonNames[kDropCount] = {
    "runt",         "malformed",        "too_big",     "multicast_source", "vlan_not_allowed",
    "untagged_no_native", "same_port",  "no_buffer",   "tx_full",          "port_down",
    "link_local",   "bond_inactive_leg", "bond_no_leg", "handoff_full",
    "mac_limit",
    "mtu_exceeded",
    "mirror_output",
    "spoofed_mac", "spoofed_ip", "spoofed_arp", "spoofed_nd",
    "storm_broadcast", "storm_multicast", "storm_unknown_unicast", "policed",
    "mac_learning",
};
static_assert(kDropPoliced - kDropSpoofedMac + 1 == VSW_POLICY_REASONS, "policy drop reasons");

enum PortCounter : int {
  kRxPackets = 0,
  kRxBytes,
  kTxPackets,
  kTxBytes,
  kFloodPackets,  // frames this port sent as part of a flood
  kDropBase,      // followed by kDropCount drop counters
  kPortCounterCount = kDropBase + kDropCount
};

// Mirrors (SPAN): at most this many (a frame's selection is a bitmask of them).
constexpr int kMaxMirrors = 32;
enum MirrorCounter : int {
  kMirrorFrames = 0,  // copies handed to the output port
  kMirrorBytes,
  kMirrorLostBase,    // followed by kDropCount counters: copies lost, by the reason the copy was dropped
  kMirrorCounterCount = kMirrorLostBase + kDropCount
};

enum WorkerCounter : int {
  kLoops = 0,       // iterations of the loop
  kRxBatches,       // bursts that received at least one frame
  kRxFrames,        // frames received (rx_frames / rx_batches = mean batch)
  kWakeups,         // returns from poll() with something to do
  kBusyNs,          // time spent working (not in poll)
  kTotalNs,         // time inside run()
  kLearnEvents,     // source MACs reported to the control plane
  kTxKicks,         // sendto() calls
  kHandoffs,        // frames passed to another worker's port
  kWorkerCounterCount
};

// One socket (veth/tap queue) or one tap fd (the internal port), owned by one worker.
struct Queue {
  enum Kind : uint8_t { kXsk, kTapFd } kind;
  uint16_t port;
  uint32_t queue_id;
  uint16_t owner;
  int fd;                          // socket or tap fd, for poll()
  std::unique_ptr<XskSocket> xsk;  // kXsk only
  bool rx = true;                  // frames arrive on it (false: a tc port's device socket, for transmit only)
  bool tx = true;                  // frames may be sent on it (false: a punt pair's far end)
  uint32_t fill_target = 0;        // frames to keep in the fill ring
  uint32_t rx_outstanding = 0;     // frames given to the fill ring and not yet received
  bool tx_pending = false;         // frames on the TX ring not yet kicked
};

struct PortView {
  uint8_t active = 0;
  uint8_t trunk = 0;
  uint16_t access_vlan = 0;
  uint16_t native_vlan = 0;        // 0: untagged frames are dropped (trunk only)
  // Mirrors: bitmasks of the mirrors (View::mirrors) selecting frames entering from this
  // port and leaving through it; mirror_out: the output of a mirror (what it sends is dropped).
  uint8_t mirror_out = 0;
  uint8_t mirror_slow = 0;         // a mirror's source or output: never switched in the kernel (fast_in/fast_out off)
  uint32_t mirror_in = 0;
  uint32_t mirror_eg = 0;
  __u64 allowed[kVlanIds / 64] = {};     // trunk VLAN bitmap (the type of fast_port.allowed)
  Queue* tx_queue[kMaxWorkers] = {};  // the queue each worker transmits on, if it owns one
  int16_t tx_worker = -1;          // otherwise hand the frame to this worker
  // Bonds. A bond is a logical port (no device); its legs are ports whose
  // frames count as arriving on the bond, and egress to the bond picks a leg
  // from a kBondBuckets-bucket table the control plane writes (see src/switch/bond/policy.ts).
  int16_t bond = -1;               // leg: the bond it belongs to
  uint8_t leg_rx = 1;              // leg: may receive (active leg, or LACP collecting)
  uint8_t is_bond = 0;
  uint8_t bond_hash = 0;           // bond: 0 = no hashing (every bucket the same), 1 = l2, 2 = l3l4
  int16_t buckets[kBondBuckets];   // bond: bucket -> leg port index, -1 = none
  uint16_t mtu = 0;                // the device's MTU; 0 = not checked (see vsw_exceeds_mtu)
};

// One mirror as the hot loop applies it: its output port and the VLANs it selects.
struct MirrorView {
  uint16_t out = 0;
  __u64 vlans[kVlanIds / 64] = {};  // selected VLANs (every VLAN when the mirror names none)
};

struct View {
  uint64_t gen = 0;
  int mirror_count = 0;             // mirrors in use (0: the hot loop skips all mirror work)
  uint32_t mirror_any = 0;          // mirrors selecting by VLAN only: frames entering from any port
  MirrorView mirrors[kMaxMirrors];
  PortView ports[kMaxPorts];
  uint64_t flood[kVlanIds][kPortWords] = {};  // per VLAN: member ports
  int flood_words = 0;                         // words of flood[] that can have a bit set (ports in use)
  std::vector<Queue*> worker_queues[kMaxWorkers];
};

// One chunk of a frame for another worker to transmit. A frame of several
// chunks (jumbo) is pushed as consecutive entries at once (SpscRing::pushAll);
// the first says how many follow.
struct Handoff {
  uint64_t addr;
  uint32_t len;
  uint16_t port;
  uint8_t more;   // first chunk: chunks that follow it in the ring
};

// A frame the hot loop hands to the control plane (LACPDUs).
struct PuntRecord {
  uint16_t port;
  std::vector<uint8_t> frame;
};

// What one run() slice brings back to JavaScript.
struct RunResult {
  std::vector<struct LearnRecord> learned;
  std::vector<PuntRecord> punted;
};

struct LearnRecord {
  uint16_t vlan;
  uint16_t port;
  uint8_t mac[6];
};

struct Worker;

struct PortInfo {
  std::string name;
  int ifindex = 0;
  bool tap_fd_port = false;        // the internal port: the daemon holds its tap fd
  int tap_fd = -1;
  XdpAttachment xdp;               // xsk ports: the port's copy of the XDP program (a tc port: on its punt far end)
  TcAttachment tc;                 // a tc port: the tc program on its device
  std::string hook;                // where its frames enter the datapath: "xdp" | "tc" | "tap-fd" | "bond"
  int punt_ifindex = 0;            // a tc port: its punt pair's near end
  bool peer_netns = false;         // a veth whose peer is in another netns
  std::string xdp_mode;            // "native" | "generic" | "none" | "bond"
  std::vector<std::unique_ptr<Queue>> queues;
  bool early = false;              // added by the early start, not yet claimed (see PortHook::early)
};

// How a device port's frames enter the datapath. xdp: the XDP program on the
// device redirects them into a socket per queue. tc: the tc program on the
// device (offloads kept), its slow path through the punt veth pair
// (punt_near -> punt_far), whose far end runs the XDP program into one socket;
// the device's own sockets only transmit.
struct PortHook {
  bool tc = false;
  std::string punt_near, punt_far;
  bool peer_netns = false;       // the device is a veth whose peer is in another netns
  int adopt_link_fd = -1;        // the port's tcx or XDP link from before a restart (its program is replaced in it)
  int adopt_punt_link_fd = -1;   // a tc port: its punt far end's XDP link from before a restart
  bool keep_programs = false;    // the adopted links run this build's programs: keep them, load nothing
  bool early = false;            // added by the early start: the daemon's own addPort of it later takes it as it is
  // Sockets a restart handed over (Options::adopt_xsks), by handover name: the device's
  // queue i takes adopt_xsks[i], a tc port's punt socket adopt_punt_xsk ("": a new one).
  std::vector<std::string> adopt_xsks;
  std::string adopt_punt_xsk;
};

// A mirror as the control plane gives it (Datapath::setMirrors); ports by index.
struct MirrorSpec {
  uint16_t out = 0;
  std::vector<uint16_t> ingress;  // frames entering from these ports
  std::vector<uint16_t> egress;   // frames leaving through these ports
  std::vector<uint16_t> vlans;    // only frames of these VLANs; empty: every VLAN
  bool any_port = false;          // no ports named: every frame of its VLANs
  bool used = true;               // false: a free slot (selects nothing, no output)
};

class Datapath {
 public:
  struct Options {
    uint32_t workers;
    uint32_t frames_per_worker;
    uint32_t fdb_capacity;
    std::string bpf_object;  // path of xsk_steer.bpf.o
    bool fast_path;          // switch known unicast in XDP where ports allow it
    std::string anchor_device;  // where the UMEM's anchor socket binds (see xsk.h)
    std::string tc_object;      // path of tc_fastpath.bpf.o ("": beside bpf_object)
    // A restart: the maps the running datapath left, taken over with what they
    // hold. While adopting, the port table and tc device table the running
    // programs read are left as they are until releaseFastPorts() (the control
    // plane has reconciled its config with them), as OVS's flow-restore-wait.
    int adopt_fdb_fd = -1;
    FastMapFds adopt_maps;
    // A restart's AF_XDP side: the UMEM's memfd, the socket it is registered on, and
    // every port's sockets by handover name. The frames in the sockets' rings wait
    // there across the restart; which frames are free is read from the rings
    // (Datapath::adoptFrames). Sockets no port takes are closed at releaseFastPorts().
    int adopt_umem_fd = -1;
    int adopt_anchor_fd = -1;
    std::vector<std::pair<std::string, int>> adopt_xsks;
  };
  explicit Datapath(const Options& opts);  // throws
  ~Datapath();

  // The one instance of the process (created by the main thread).
  static std::shared_ptr<Datapath> current();
  static void setCurrent(std::shared_ptr<Datapath> dp);

  // --- control plane (main thread only) ---
  struct PortResult { std::string xdp_mode; std::string hook; std::vector<uint16_t> owners; };
  // Attaches the port's programs and binds its sockets (xsk port), or adopts a tap fd.
  PortResult addPort(uint16_t index, const std::string& name, int queues, const std::string& xdp_mode, int tap_fd,
                     const PortHook& hook = PortHook{});
  void removePort(uint16_t index);  // detaches and returns the port's frames to their workers
  void setPortVlan(uint16_t index, bool trunk, uint16_t access_vlan, uint16_t native_vlan,
                   const std::vector<uint16_t>& trunks);
  void setPortActive(uint16_t index, bool active);
  // The device's MTU: larger frames for it are dropped (mtu_exceeded), in the hot loop and the XDP program.
  void setPortMtu(uint16_t index, uint32_t mtu);
  void setFloodSet(uint16_t vlan, const std::vector<uint16_t>& ports);
  // The mirrors (slot i: mirrors[i]), staged for the next commit. A port that is a
  // mirror's source or output loses the kernel fast path (its frames, both ways, go
  // through the hot loop, which makes the copies); see docs/ARCHITECTURE.md.
  void setMirrors(const std::vector<MirrorSpec>& mirrors);
  uint64_t mirrorCounter(int slot, int which) const;  // summed over workers
  void commit();  // publish staged changes to the workers and wait for them to take them
  FdbTable& fdb() { return *fdb_; }
  uint64_t counter(uint16_t port, int which) const;  // summed over workers
  uint64_t workerCounter(uint32_t worker, int which) const;
  uint32_t workers() const { return static_cast<uint32_t>(workers_.size()); }
  void wakeAll();

  // --- worker threads ---
  // Runs the hot loop of one worker until budget_ms passes, *stop != 0, or
  // learn events or punted frames (LACPDUs) are waiting. Returns both.
  RunResult run(uint32_t worker, const int32_t* stop, uint32_t budget_ms);
  // Stores the coarse clock the XDP program stamps last_seen with (workers, every pass,
  // with the pass's own monotonicMs()).
  void tickFastClock(uint64_t now_ms);

  // Bonds (main thread): a bond is a port index with no device.
  void addBond(uint16_t index, const std::string& name);
  void setBondBuckets(uint16_t bond, uint8_t hash, const std::vector<int16_t>& buckets);
  void setLeg(uint16_t leg, int16_t bond, bool rx_enabled);
  // Transmits a frame built by the control plane (LACPDUs, gratuitous RARPs) on a port.
  void sendFrame(uint16_t port, const std::vector<uint8_t>& frame);

  // MAC limit (main thread): the control plane marks a port that holds as many
  // learned MACs as it may; the hot loops then drop (and count) frames from
  // sources not learned on it instead of reporting each to be refused.
  void setLearnFull(uint16_t index, bool full);

  // Port security, storm control and policing (main thread): at once, in the port's
  // programs and the hot loop; its token buckets start full.
  void setPortPolicy(uint16_t index, const PortPolicy& policy);

  // Fast path (main thread). fast_in: frames arriving on the port may be switched in
  // the kernel (by its XDP or tc program); fast_out: its device takes XDP_REDIRECT;
  // tc_out: frames may be redirected to its device from tc.
  // fast_out_mb: multi-buffer (jumbo) frames may be redirected to it too.
  void setPortFast(uint16_t index, bool fast_in, bool fast_out, bool tc_out, bool fast_out_mb = false);
  FastCounters fastCounters(uint16_t port) const;
  // The AF_XDP socket counts of a port's sockets, and of every socket it had
  // before (a port index keeps its counts across sockets, as its hot-loop
  // counters do), so they never go backwards.
  XskStats xskStats(uint16_t port);
  // Only the sockets it has now (after a restart that adopted them, they count on from
  // what the previous daemon already reported: the next daemon subtracts this from theirs).
  XskStats xskLiveStats(uint16_t port);

  // Restarts (main thread): the fds handed over to the next daemon.
  FastMapFds fastMapFds() const { return fast_->mapFds(); }
  int fdbMapFd() const { return fdb_->mapFd(); }
  // The link of the program on the port's device (tc, or XDP on an xdp-hook port; not a
  // tc port's punt far end): what a restart hands over. -1: none.
  int hookLinkFd(uint16_t index) const {
    if (index >= kMaxPorts) return -1;
    const PortInfo& p = ports_[index];
    return p.tc.link_fd >= 0 ? p.tc.link_fd : p.hook == "xdp" ? p.xdp.link_fd : -1;
  }
  // A tc port's punt far end's XDP link (a restart hands it over too). -1: none.
  int puntLinkFd(uint16_t index) const {
    if (index >= kMaxPorts) return -1;
    return ports_[index].hook == "tc" ? ports_[index].xdp.link_fd : -1;
  }
  bool adopting() const { return hold_fast_ports_; }
  // A restart's last step: the workers leave run() for good (the running programs'
  // tables are left as they are), so the rings are left whole for the next daemon,
  // which adopts the sockets (they are in the fd store, the UMEM a memfd there too);
  // the free frames go to the fill rings. Nothing is closed: frames keep arriving in
  // the rings meanwhile, as many as the fill rings hold.
  // Returns the frames it added to the fill rings.
  uint64_t quiesceForRestart();
  // Ends the adoption: the port table and tc device table follow the View again, and
  // handed-over sockets no port took are closed (their frames back in the pools).
  // Returns their handover names.
  std::vector<std::string> releaseFastPorts();
  // The UMEM's memfd and anchor socket, and a port's sockets: what a restart hands over.
  int umemFd() const { return umem_->memfd(); }
  int umemAnchorFd() const { return umem_->anchorFd(); }
  // The fds of the port's sockets on its device, by queue, and its punt socket (-1: none).
  std::vector<int> deviceXskFds(uint16_t index) const;
  int puntXskFd(uint16_t index) const;
  // Why handed-over sockets could not be adopted (name: reason); they are not used.
  const std::vector<std::string>& xskAdoptFailures() const { return xsk_adopt_failures_; }
  // A port index a new port takes, or an adopted index the config no longer has: out of
  // the devmap, and every count of the index zeroed (fast path, hot loop, closed
  // sockets'), so a new port starts from 0 while a port whose device comes and goes
  // counts on. No-op for an index in use.
  void resetPortIndex(uint16_t index);

 private:
  std::unique_ptr<View> buildView() const;
  void writeFastPorts(const View& v);
  void releaseQueues(uint16_t port, std::vector<std::unique_ptr<Queue>>& queues);
  void returnFrames(const std::vector<uint64_t>& addrs);
  // Builds the workers' pools after a restart: every frame not in a handed-over socket's
  // rings (fill, rx, tx, or sent and not yet completed) is free.
  void adoptFrames();
  std::unique_ptr<XskSocket> takeAdoptedXsk(const std::string& name);

  Options opts_;
  std::unique_ptr<Umem> umem_;
  std::unique_ptr<FdbTable> fdb_;
  std::vector<std::unique_ptr<Worker>> workers_;
  PortInfo ports_[kMaxPorts];
  View staged_;                         // the control plane's working copy
  std::atomic<View*> live_{nullptr};
  std::vector<std::unique_ptr<View>> views_;  // published, kept until no worker uses them
  uint64_t next_gen_ = 1;
  std::unique_ptr<FastPath> fast_;      // the XDP programs and the maps they share
  std::atomic<uint8_t> learn_full_[kMaxPorts] = {};  // setLearnFull; read by the hot loops
  uint8_t fast_in_[kMaxPorts] = {};     // setPortFast, applied by writeFastPorts
  uint8_t fast_out_[kMaxPorts] = {};
  uint8_t tc_out_[kMaxPorts] = {};
  // What the port and tc tables last got: a commit writes only the entries that changed
  // (all 4096 of both tables are 8192 map updates, ~10 ms of every port add or removal).
  std::unique_ptr<FastPort[]> written_ports_;
  std::unique_ptr<TcPort[]> written_tc_;
  std::unique_ptr<bool[]> written_;
  bool hold_fast_ports_ = false;        // adopting: leave the running programs' tables alone
  XskStats xsk_base_[kMaxPorts];        // counts of sockets already closed, per port
  uint8_t fast_out_mb_[kMaxPorts] = {};
  std::vector<std::pair<std::string, std::unique_ptr<XskSocket>>> adopted_xsks_;  // handed over, not yet taken by a port
  std::vector<std::string> xsk_adopt_failures_;
  std::atomic<bool> parked_{false};     // quiesceForRestart: workers stay out of run()
  std::mutex control_mu_;
};

uint64_t monotonicMs();

}  // namespace vswitchd
