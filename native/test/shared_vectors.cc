// Runs test/vectors/shared.json (see its README) over
//  - the C++ rule functions the hot loop calls (datapath/frame_rules.h, the FDB
//    hash and FdbView::lookup), always;
//  - with --bpf OBJECT (root): the XDP program itself, through BPF_PROG_RUN on
//    its own maps, populated so that each vector's answer is visible in what
//    the program does: fast path (XDP_REDIRECT) or slow path (XDP_PASS: its
//    XSKMAP is empty), the fast-stats counter of the egress port it chose (a
//    bond's legs are ports 0..255, bucket b -> port b, so that counter is the
//    flow bucket), the tag of the frame it sends (the VLAN), and FDB entries
//    written at exactly the vector's slot index (a different hash misses them).
//    The object's BTF is also checked against the shared header's layouts.
//
// The programs are reached through FastPathProgram: the tc program of the
// datapath offload issue gets a second implementation (BPF_PROG_RUN on an skb,
// TC_ACT_REDIRECT / TC_ACT_OK) and runs the same checks.
//
// Usage: shared_vectors VECTORS.json [--bpf xsk_steer.bpf.o]
// Prints one line per failure and a summary; exits 1 when anything failed.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "datapath/frame_rules.h"
#include "fdb/fdb_table.h"
#include "json.h"
#include "vswitchd_shared.h"

using namespace vswitchd;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes fromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

Bytes parseMac(const std::string& text) {
  Bytes mac;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ':')) mac.push_back(static_cast<uint8_t>(std::stoi(part, nullptr, 16)));
  if (mac.size() != 6) throw std::runtime_error("bad MAC " + text);
  return mac;
}

// Pass/fail per section, printed at the end.
struct Report {
  std::vector<std::pair<std::string, std::pair<int, int>>> sections;  // name -> passed, failed
  int failed = 0;

  void section(const std::string& name) { sections.push_back({name, {0, 0}}); }
  void pass() { sections.back().second.first++; }
  void fail(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    printf("FAIL %s: %s\n", sections.back().first.c_str(), buf);
    sections.back().second.second++;
    failed++;
  }
  void check(bool ok, const char* fmt, ...) {
    if (ok) return pass();
    va_list args;
    va_start(args, fmt);
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    fail("%s", buf);
  }
};

// The port a vector describes, as the datapath's setPortVlan builds it.
PortView portFromVector(const json::Value& p) {
  PortView pv{};
  pv.active = 1;
  if (p["mode"].str() == "access") {
    pv.access_vlan = static_cast<uint16_t>(p["access_vlan"].num());
  } else {
    pv.trunk = 1;
    pv.native_vlan = static_cast<uint16_t>(p["native_vlan"].num());
    for (const json::Value& v : p["trunks"].a)
      if (v.num() > 0 && v.num() < kVidReserved) pv.allowed[v.num() / 64] |= 1ull << (v.num() % 64);
  }
  return pv;
}

// A vector's policy ({macs, ips}) as struct port_policy (the addon's setPortPolicy builds it so).
port_policy policyFromVector(const json::Value& p) {
  port_policy pol{};
  if (p.has("macs")) {
    pol.flags |= VSW_POL_MACS;
    for (const json::Value& m : p["macs"].a) {
      unsigned b[6];
      std::sscanf(m.str().c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
      for (int i = 0; i < 6; i++) pol.macs[pol.n_macs][i] = static_cast<uint8_t>(b[i]);
      pol.n_macs++;
    }
    if (p.has("learn") && p["learn"].b) pol.flags |= VSW_POL_LEARN;
  }
  if (p.has("ips")) {
    pol.flags |= VSW_POL_IPS;
    for (const json::Value& a : p["ips"].a) {
      if (inet_pton(AF_INET, a.str().c_str(), &pol.ipv4[pol.n_ipv4]) == 1) pol.n_ipv4++;
      else if (inet_pton(AF_INET6, a.str().c_str(), pol.ipv6[pol.n_ipv6]) == 1) pol.n_ipv6++;
    }
  }
  return pol;
}

// "learn": not dropped where it arrives, sent up for the control plane to admit.
std::string policyVerdictName(int why) {
  return why == VSW_POLICY_OK ? "ok" : why == VSW_POLICY_LEARN ? "learn" : kDropReasonNames[kDropSpoofedMac + why - 1];
}

// ---------------------------------------------------------------- C++

// Port security: the hot loop and both programs call vsw_source_verdict.
void cppPolicy(const json::Value& vectors, Report& r) {
  r.section("c++ port security (vsw_source_verdict)");
  for (const json::Value& v : vectors["policy"].a) {
    const port_policy pol = policyFromVector(v["policy"]);
    const Bytes f = fromHex(v["frame"].str());
    const std::string got = policyVerdictName(vsw_source_verdict(&pol, f.data(), f.data() + f.size()));
    r.check(got == v["verdict"].str(), "%s: %s, want %s", v["name"].str().c_str(), got.c_str(), v["verdict"].str().c_str());
  }
}

void cppConstants(const json::Value& vectors, Report& r) {
  r.section("c++ constants (vswitchd_shared.h)");
  const json::Value& c = vectors["constants"];
  auto hex = [&](const char* k) { return std::stoull(c[k].str(), nullptr, 16); };
  r.check(VSW_MAX_PORTS == c["max_ports"].num() && kMaxPorts == VSW_MAX_PORTS, "max_ports %d, want %ld", VSW_MAX_PORTS,
          c["max_ports"].num());
  r.check(VSW_BOND_BUCKETS == c["bond_buckets"].num(), "bond_buckets %d, want %ld", VSW_BOND_BUCKETS, c["bond_buckets"].num());
  r.check(kFdbStatic == c["fdb_flag_static"].num(), "fdb_flag_static %d, want %ld", kFdbStatic, c["fdb_flag_static"].num());
  r.check(kLastSeenRefreshMs == static_cast<uint64_t>(c["last_seen_refresh_ms"].num()), "last_seen_refresh_ms %llu, want %ld",
          static_cast<unsigned long long>(kLastSeenRefreshMs), c["last_seen_refresh_ms"].num());
  r.check(VSW_FDB_HASH_MULT == hex("fdb_hash_mult"), "fdb_hash_mult %llx, want %s", VSW_FDB_HASH_MULT, c["fdb_hash_mult"].str().c_str());
  r.check(VSW_FNV_OFFSET == hex("fnv_offset"), "fnv_offset %x, want %s", VSW_FNV_OFFSET, c["fnv_offset"].str().c_str());
  r.check(VSW_FNV_PRIME == hex("fnv_prime"), "fnv_prime %x, want %s", VSW_FNV_PRIME, c["fnv_prime"].str().c_str());
  r.check(VSW_MAX_MTU == c["max_mtu"].num(), "max_mtu %d, want %ld", VSW_MAX_MTU, c["max_mtu"].num());
}

// The egress MTU rule: the hot loop and the XDP program call this one function.
void cppMtu(const json::Value& vectors, Report& r) {
  r.section("c++ egress mtu (vsw_exceeds_mtu)");
  for (const json::Value& v : vectors["mtu"].a) {
    const bool got = vsw_exceeds_mtu(static_cast<__u32>(v["len"].num()), v["tagged"].b, static_cast<__u16>(v["mtu"].num()));
    r.check(got == v["exceeds"].b, "%s: exceeds %d, want %d", v["name"].str().c_str(), got, v["exceeds"].b);
  }
}

// The token bucket (vsw_bucket_take) at its limits: the largest rate with the largest
// burst, idle past a second, still takes a frame (the refill once overflowed an __s64
// and drained the bucket); a spent bucket refuses, and refills with time.
void cppBucket(Report& r) {
  r.section("c++ token bucket (vsw_bucket_take)");
  const __u64 rate = VSW_POLICE_MAX_RATE, burst = 125000000;  // 100 Gbit/s, 1 000 000 kbit
  vsw_bucket b{};
  __u64 now = 5 * VSW_NS_PER_S;
  r.check(vsw_bucket_take(&b, now, rate, burst, 60) == 1, "a new bucket at the largest rate takes a frame");
  now += 2 * VSW_NS_PER_S;
  r.check(vsw_bucket_take(&b, now, rate, burst, 60) == 1, "after 2 s idle at the largest rate it still takes one");
  r.check(vsw_bucket_take(&b, now, rate, burst, burst) == 0, "a full burst more than what is left: refused");
  vsw_bucket s{};
  now = 5 * VSW_NS_PER_S;
  int taken = 0;
  for (int i = 0; i < 20; i++) taken += vsw_bucket_take(&s, now, 10, 10, 1);  // 10 frames/s, burst 10
  r.check(taken == 10, "a burst of 10 takes 10 of 20 at once, took %d", taken);
  now += VSW_NS_PER_S / 2;
  taken = 0;
  for (int i = 0; i < 20; i++) taken += vsw_bucket_take(&s, now, 10, 10, 1);
  r.check(taken == 5, "half a second later 5 more, took %d", taken);
}

// The policer's per-CPU credit (vsw_credit_spend / vsw_credit_take): frames are paid from a
// chunk taken from the shared bucket, the bucket still bounds what passes over time (two
// CPUs taking in turn never get more than burst + rate x time), a reload voids the credit,
// and at the largest rate after a long idle the bucket (overflow) still lends a chunk.
void cppCredit(Report& r) {
  r.section("c++ policer credit (vsw_credit_spend, vsw_credit_take)");
  r.check(vsw_credit_chunk(12500000, 2500000) == 12500, "100 Mbit/s, burst 20000 kbit: a chunk of 1 ms, got %llu",
          static_cast<unsigned long long>(vsw_credit_chunk(12500000, 2500000)));
  r.check(vsw_credit_chunk(VSW_POLICE_MAX_RATE, 125000000) == VSW_CREDIT_MAX, "100 Gbit/s: at most VSW_CREDIT_MAX");
  r.check(vsw_credit_chunk(12500000, 12500) == 781, "a small burst: 1/16 of it, got %llu",
          static_cast<unsigned long long>(vsw_credit_chunk(12500000, 12500)));
  r.check(vsw_credit_chunk(1000, 1500) == 0, "8 kbit/s: no credit (exact per frame)");

  const __u64 rate = 12500000, burst = 2500000, chunk = vsw_credit_chunk(rate, burst);
  __u64 now = 5 * VSW_NS_PER_S;
  vsw_bucket b{};
  vsw_credit c{};
  r.check(vsw_credit_spend(&c, rate, burst, 1500) == 0, "no credit yet: the caller reads the clock");
  r.check(vsw_credit_take(&c, &b, now, rate, burst, 1500) == 1, "a full bucket lends the frame and a chunk");
  r.check(b.tokens == static_cast<__s64>((burst - 1500 - chunk) * VSW_NS_PER_S), "the bucket gave 1500 + a chunk");
  const __s64 bucket_after = b.tokens;
  int spent = 0;
  while (spent < 1000 && vsw_credit_spend(&c, rate, burst, 1500)) spent++;
  r.check(spent == static_cast<int>(chunk / 1500), "the chunk pays %d frames, paid %d", static_cast<int>(chunk / 1500), spent);
  r.check(b.tokens == bucket_after, "spending the credit leaves the shared bucket alone");
  const __s64 left = c.tokens;
  r.check(vsw_credit_take(&c, &b, now, rate, burst, 1500) == 1 && b.tokens == bucket_after + left - static_cast<__s64>((1500 + chunk) * VSW_NS_PER_S),
          "a short credit hands its rest back before the next chunk");
  r.check(vsw_credit_spend(&c, rate * 2, burst, 60) == 0, "another rate (a reload) voids the credit");

  // Two CPUs, 1500-byte frames offered at 1 Gbit/s (one every 12 us, alternately) for 2 s.
  vsw_bucket s{};
  vsw_credit cpu[2]{};
  now = 5 * VSW_NS_PER_S;
  __u64 passed = 0;
  for (int i = 0; i < 2 * 1000000 / 12; i++, now += 12000) {
    vsw_credit* k = &cpu[i & 1];
    if (vsw_credit_spend(k, rate, burst, 1500) || vsw_credit_take(k, &s, now, rate, burst, 1500)) passed += 1500;
  }
  const __u64 most = burst + 2 * rate;
  r.check(passed <= most && passed + 2 * chunk + 2 * 1500 >= most, "2 s through two CPUs' credit: %llu bytes, the bucket's bound %llu",
          static_cast<unsigned long long>(passed), static_cast<unsigned long long>(most));

  // The largest rate and burst (the bench's): after 2 s idle the refill must not overflow.
  vsw_bucket m{};
  vsw_credit mc{};
  now = 5 * VSW_NS_PER_S;
  r.check(vsw_credit_take(&mc, &m, now, VSW_POLICE_MAX_RATE, 125000000, 60) == 1, "the largest rate: a new bucket lends");
  for (int i = 0; i < 100000 && vsw_credit_spend(&mc, VSW_POLICE_MAX_RATE, 125000000, 60); i++) {
  }
  now += 2 * VSW_NS_PER_S;
  r.check(vsw_credit_take(&mc, &m, now, VSW_POLICE_MAX_RATE, 125000000, 60) == 1 && mc.tokens > 0,
          "after 2 s idle at the largest rate it still lends a chunk");
}

void cppFlow(const json::Value& vectors, Report& r) {
  r.section("c++ flow bucket (vsw_flow_bucket via flowBucket)");
  for (const json::Value& v : vectors["flow"].a) {
    const Bytes f = fromHex(v["frame"].str());
    const int got = flowBucket(f.data(), static_cast<uint32_t>(f.size()), v["hash"].str() == "l3l4");
    r.check(got == v["bucket"].num(), "%s (%s): bucket %d, want %ld", v["name"].str().c_str(), v["hash"].str().c_str(), got,
            v["bucket"].num());
  }
}

void cppVlan(const json::Value& vectors, Report& r) {
  r.section("c++ ingress vlan (parseTag + ingressVlan)");
  for (const json::Value& v : vectors["vlan"].a) {
    const PortView pv = portFromVector(v["port"]);
    const Bytes f = fromHex(v["frame"].str());
    FrameTag tag;
    uint16_t vlan = 0;
    DropReason why = f.size() < kEthHeader ? kDropRunt : parseTag(f.data(), static_cast<uint32_t>(f.size()), &tag);
    if (why == kDropCount) why = ingressVlan(pv, tag, &vlan);
    const std::string got = why == kDropCount ? "vlan " + std::to_string(vlan) : std::string("drop ") + kDropReasonNames[why];
    const std::string want = v.has("vlan") ? "vlan " + std::to_string(v["vlan"].num()) : "drop " + v["drop"].str();
    r.check(got == want, "%s: %s, want %s", v["name"].str().c_str(), got.c_str(), want.c_str());
  }
}

void cppFdb(const json::Value& vectors, Report& r) {
  r.section("c++ fdb slot (fdbHash + FdbView::lookup)");
  for (const json::Value& v : vectors["fdb"].a) {
    const uint32_t capacity = static_cast<uint32_t>(v["capacity"].num());
    const uint16_t vlan = static_cast<uint16_t>(v["vlan"].num());
    const Bytes mac = parseMac(v["mac"].str());
    const uint32_t slot = fdbHash(fdbKey(vlan, mac.data()), capacity - 1);
    // The hot loop's lookup over a table holding only this key, at the vector's slot.
    std::vector<FdbSlot> table(capacity);
    FdbSlot& s = table[static_cast<size_t>(v["slot"].num())];
    s.vlan = vlan;
    std::memcpy(s.mac, mac.data(), 6);
    s.port = 7;
    FdbHit hit{};
    const bool found = FdbView(table.data(), capacity).lookup(vlan, mac.data(), &hit);
    r.check(slot == v["slot"].num() && found && hit.index == v["slot"].num() && hit.port == 7,
            "vlan %d %s, %u slots: hash slot %u, lookup %s at %u; want slot %ld", vlan, v["mac"].str().c_str(), capacity, slot,
            found ? "hit" : "miss", hit.index, v["slot"].num());
  }
}

// ---------------------------------------------------------------- BPF

// What a fast path program did with one frame.
struct Outcome {
  enum Verdict { kFast, kSlow, kOther } verdict = kOther;
  int retval = -1;
  int tx_port = -1;  // the port whose tx fast-stats counter moved (fast path only)
  Bytes out;         // the frame as the program left it
  bool unrunnable = false;  // BPF_PROG_RUN refused to build an skb of it (a truncated IP header)
  int policy_reason = 0;    // VSW_POLICY_* whose policy_drops counter moved (0: none)
};

// A program under test and the maps it reads; the maps are its own (libbpf
// creates them at load), populated by the checks through these helpers.
class FastPathProgram {
 public:
  virtual ~FastPathProgram() = default;
  virtual std::string name() const = 0;
  virtual Outcome run(const Bytes& frame) = 0;

  uint32_t capacity() const { return capacity_; }

  void writePort(uint32_t index, const fast_port& p) {
    if (bpf_map_update_elem(ports_fd_, &index, &p, 0)) throw std::runtime_error("port table update failed");
  }
  // An FDB entry at exactly this slot.
  void putSlot(uint32_t index, uint16_t vlan, const uint8_t* mac, uint16_t port) {
    fdb_slot s{};
    s.vlan = vlan;
    std::memcpy(s.mac, mac, 6);
    s.port = port;
    if (bpf_map_update_elem(fdb_fd_, &index, &s, 0)) throw std::runtime_error("FDB update failed");
    used_.insert(index);
  }
  // An FDB entry where the shared hash and linear probing put it.
  void insert(uint16_t vlan, const uint8_t* mac, uint16_t port) {
    uint32_t i = vsw_fdb_hash(vsw_fdb_key(vlan, mac), capacity_ - 1);
    while (used_.count(i)) i = (i + 1) & (capacity_ - 1);
    putSlot(i, vlan, mac, port);
  }
  // The port's fast-path counters, summed over the CPUs.
  fast_counters counters(uint32_t port) {
    std::vector<fast_counters> per_cpu(static_cast<size_t>(ncpus_));
    fast_counters sum{};
    if (bpf_map_lookup_elem(stats_fd_, &port, per_cpu.data())) throw std::runtime_error("fast stats lookup failed");
    for (const fast_counters& c : per_cpu) {
      sum.tx_packets += c.tx_packets;
      for (int i = 0; i < VSW_POLICY_REASONS; i++) sum.policy_drops[i] += c.policy_drops[i];
    }
    return sum;
  }
  // The frame n times in one BPF_PROG_RUN (what it did: see the counters).
  void runRepeat(const Bytes& frame, int n) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = n);
    if (int err = bpf_prog_test_run_opts(progFd(), &opts)) throw std::runtime_error(std::string("BPF_PROG_RUN: ") + strerror(-err));
  }
  virtual int progFd() const = 0;
  void clearFdb() {
    const fdb_slot zero{};
    for (uint32_t i : used_) bpf_map_update_elem(fdb_fd_, &i, &zero, 0);
    used_.clear();
  }

 protected:
  // Maps by the names bpf/xsk_steer.bpf.c gives them; the tc program shares them.
  void findMaps(bpf_object* obj) {
    auto fd = [obj](const char* n) {
      const int f = bpf_object__find_map_fd_by_name(obj, n);
      if (f < 0) throw std::runtime_error(std::string("no map ") + n);
      return f;
    };
    fdb_fd_ = fd("vswitchd_fdb");
    ports_fd_ = fd("vswitchd_ports");
    tx_fd_ = bpf_object__find_map_fd_by_name(obj, "vswitchd_tx");  // the XDP program's devmap; tc has none
    tc_ports_fd_ = bpf_object__find_map_fd_by_name(obj, "vswitchd_tc_ports");
    stats_fd_ = fd("vswitchd_fast_stats");
    config_fd_ = fd("vswitchd_config");
    buckets_fd_ = fd("vswitchd_buckets");
    policy_fd_ = fd("vswitchd_policy");
    ncpus_ = libbpf_num_possible_cpus();
  }
  void configure() {
    const uint32_t zero = 0;
    fast_config cfg{};
    cfg.fdb_mask = capacity_ - 1;
    cfg.enabled = 1;
    if (bpf_map_update_elem(config_fd_, &zero, &cfg, 0)) throw std::runtime_error("config update failed");
    // Every port redirects to lo: BPF_PROG_RUN only reports the redirect.
    const uint32_t lo = if_nametoindex("lo");
    for (uint32_t p = 0; p < VSW_MAX_PORTS; p++) {
      if (tx_fd_ >= 0 && bpf_map_update_elem(tx_fd_, &p, &lo, 0))
        throw std::runtime_error("devmap update failed: " + std::string(strerror(errno)));
      const tc_port tp{lo, lo, VSW_TC_OUT, 0};
      if (tc_ports_fd_ >= 0 && bpf_map_update_elem(tc_ports_fd_, &p, &tp, 0))
        throw std::runtime_error("tc port table update failed: " + std::string(strerror(errno)));
    }
  }
  // The port whose tx counter moved since the last call (the counters are zeroed again).
  int takeTxPort() {
    std::vector<fast_counters> per_cpu(static_cast<size_t>(ncpus_));
    const std::vector<fast_counters> zeros(static_cast<size_t>(ncpus_));
    int found = -1;
    for (uint32_t p = 0; p < VSW_MAX_PORTS; p++) {
      if (bpf_map_lookup_elem(stats_fd_, &p, per_cpu.data())) continue;
      uint64_t tx = 0, rx = 0;
      for (const fast_counters& c : per_cpu) {
        tx += c.tx_packets, rx += c.rx_packets;
        for (int i = 0; i < VSW_POLICY_REASONS; i++)
          if (c.policy_drops[i]) last_policy_reason_ = i + 1;
      }
      if (tx) found = found < 0 ? static_cast<int>(p) : -2;  // -2: more than one
      if (tx || rx) bpf_map_update_elem(stats_fd_, &p, zeros.data(), 0);
    }
    return found;
  }

  uint32_t capacity_ = 0;
  int fdb_fd_ = -1, ports_fd_ = -1, tx_fd_ = -1, stats_fd_ = -1, config_fd_ = -1, tc_ports_fd_ = -1;
  int ncpus_ = 1;
  std::set<uint32_t> used_;

 public:
  int last_policy_reason_ = 0;
  int policy_fd_ = -1;
  int buckets_fd_ = -1;
  void writePolicy(uint32_t index, const port_policy& p) {
    if (bpf_map_update_elem(policy_fd_, &index, &p, 0)) throw std::runtime_error("policy update failed");
    const port_buckets zero{};  // as FastPath::writePolicy: the buckets start full again
    if (bpf_map_update_elem(buckets_fd_, &index, &zero, 0)) throw std::runtime_error("buckets update failed");
  }
};

// Opens and loads a program object as native/fastpath/ does for port `port_index`.
bpf_object* loadObject(const std::string& path, uint32_t capacity, uint32_t port_index) {
  bpf_object* obj_ = nullptr;
  {
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj_ || libbpf_get_error(obj_)) throw std::runtime_error("opening " + path);
    bpf_map* fdb = bpf_object__find_map_by_name(obj_, "vswitchd_fdb");
    if (!fdb || bpf_map__set_max_entries(fdb, capacity)) throw std::runtime_error("sizing the FDB map");
    // The port index constant, as FastPath::setProgramPort sets it.
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, obj_) {
      const char* n = bpf_map__name(map);
      const size_t len = std::strlen(n);
      if (len >= 7 && std::strcmp(n + len - 7, ".rodata") == 0) break;
    }
    size_t size = 0;
    const void* initial = map ? bpf_map__initial_value(map, &size) : nullptr;
    if (!initial || size < 4) throw std::runtime_error("no .rodata port index");
    Bytes rodata(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + size);
    std::memcpy(rodata.data(), &port_index, 4);
    if (bpf_map__set_initial_value(map, rodata.data(), rodata.size())) throw std::runtime_error("setting the port index");
    if (int err = bpf_object__load(obj_)) throw std::runtime_error("loading " + path + ": " + strerror(-err));
  }
  return obj_;
}

// bpf/xsk_steer.bpf.o's vswitchd_steer, as the daemon loads it for port `port_index`.
class XdpProgram : public FastPathProgram {
 public:
  XdpProgram(const std::string& path, uint32_t capacity, uint32_t port_index) {
    capacity_ = capacity;
    obj_ = loadObject(path, capacity, port_index);
    prog_fd_ = bpf_program__fd(bpf_object__find_program_by_name(obj_, "vswitchd_steer"));
    if (prog_fd_ < 0) throw std::runtime_error("no program vswitchd_steer");
    findMaps(obj_);
    configure();
  }
  ~XdpProgram() override { bpf_object__close(obj_); }
  std::string name() const override { return "xdp"; }
  int progFd() const override { return prog_fd_; }
  bpf_object* object() const { return obj_; }

  Outcome run(const Bytes& frame) override {
    Outcome o;
    o.out.resize(frame.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = o.out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .data_size_out = static_cast<uint32_t>(o.out.size()),
                .repeat = 1);
    if (int err = bpf_prog_test_run_opts(prog_fd_, &opts)) throw std::runtime_error(std::string("BPF_PROG_RUN: ") + strerror(-err));
    o.retval = static_cast<int>(opts.retval);
    o.out.resize(opts.data_size_out);
    o.verdict = o.retval == XDP_REDIRECT ? Outcome::kFast : o.retval == XDP_PASS ? Outcome::kSlow : Outcome::kOther;
    last_policy_reason_ = 0;
    o.tx_port = takeTxPort();
    o.policy_reason = last_policy_reason_;
    return o;
  }

 private:
  bpf_object* obj_ = nullptr;
  int prog_fd_ = -1;
};

// bpf/tc_fastpath.bpf.o's vswitchd_tc_fast. At tcx ingress a frame's 802.1Q tag is
// already out of the packet (skb->vlan_tci), which BPF_PROG_RUN cannot set: run()
// takes the tag off and makes its VID the ingress port's native VLAN for that frame,
// which classifies it into the same VLAN. The verdict comes from the counters: both
// paths redirect (the slow path to the punt pair), only the fast path counts.
class TcProgram : public FastPathProgram {
 public:
  TcProgram(const std::string& path, uint32_t capacity, uint32_t port_index) : port_index_(port_index) {
    capacity_ = capacity;
    obj_ = loadObject(path, capacity, port_index);
    prog_fd_ = bpf_program__fd(bpf_object__find_program_by_name(obj_, "vswitchd_tc_fast"));
    if (prog_fd_ < 0) throw std::runtime_error("no program vswitchd_tc_fast");
    findMaps(obj_);
    configure();
  }
  ~TcProgram() override { bpf_object__close(obj_); }
  std::string name() const override { return "tc"; }
  int progFd() const override { return prog_fd_; }
  bpf_object* object() const { return obj_; }

  Outcome run(const Bytes& frame) override {
    Bytes f = frame;
    fast_port saved{};
    const uint32_t in = port_index_;
    const bool tagged = f.size() >= 18 && f[12] == 0x81 && f[13] == 0;
    if (tagged) {
      const uint16_t vid = static_cast<uint16_t>((f[14] << 8 | f[15]) & 0x0fff);
      f.erase(f.begin() + 12, f.begin() + 16);
      if (bpf_map_lookup_elem(ports_fd_, &in, &saved)) throw std::runtime_error("port table lookup failed");
      fast_port untag = saved;
      if (vid) untag.native_vlan = vid;  // a priority tag (VID 0) is untagged for the VLAN rule
      writePort(in, untag);
    }
    Outcome o;
    o.out.resize(f.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.data(), .data_out = o.out.data(),
                .data_size_in = static_cast<uint32_t>(f.size()), .data_size_out = static_cast<uint32_t>(o.out.size()),
                .repeat = 1);
    const int err = bpf_prog_test_run_opts(prog_fd_, &opts);
    if (tagged) writePort(in, saved);
    if (err == -EINVAL) {
      o.unrunnable = true;  // an IPv4/IPv6 frame too short for its header: no skb of it to test
      takeTxPort();
      return o;
    }
    if (err) throw std::runtime_error(std::string("BPF_PROG_RUN (tc, ") + std::to_string(f.size()) + " bytes): " + strerror(-err));
    o.retval = static_cast<int>(opts.retval);
    o.out.resize(opts.data_size_out);
    last_policy_reason_ = 0;
    o.tx_port = takeTxPort();
    o.policy_reason = last_policy_reason_;
    o.verdict = o.tx_port >= 0 ? Outcome::kFast : o.retval == TC_ACT_REDIRECT ? Outcome::kSlow : Outcome::kOther;
    return o;
  }

 private:
  bpf_object* obj_ = nullptr;
  int prog_fd_ = -1;
  uint32_t port_index_;
};

constexpr uint32_t kIn = 1;    // the port the program is attached to
constexpr uint32_t kBond = 2;  // the bond of the flow checks
constexpr uint32_t kOut = 3;   // the egress trunk of the VLAN and FDB checks

void allowAll(fast_port& p) {
  for (uint32_t v = 1; v < VSW_VID_RESERVED; v++) p.allowed[v / 64] |= 1ull << (v % 64);
}

// An active trunk of every VLAN, a possible egress (fast_out), not a bond or a leg of one.
fast_port trunkOfAll() {
  fast_port p{};
  p.active = 1;
  p.trunk = 1;
  p.fast_out = 1;
  allowAll(p);
  p.bond = -1;
  p.leg_rx = 1;
  for (auto& b : p.buckets) b = -1;
  return p;
}

// Every port such a trunk; frames arriving on kIn may take the fast path.
void baseline(FastPathProgram& prog) {
  for (uint32_t i = 0; i < VSW_MAX_PORTS; i++) {
    fast_port p = trunkOfAll();
    if (i == kIn) p.fast_in = 1;
    prog.writePort(i, p);
  }
}

const char* verdictName(const Outcome& o) {
  return o.verdict == Outcome::kFast ? "fast path" : o.verdict == Outcome::kSlow ? "slow path" : "other verdict";
}

void bpfFlow(FastPathProgram& prog, const json::Value& vectors, Report& r) {
  r.section(prog.name() + " flow bucket (bond leg chosen)");
  baseline(prog);
  fast_port in = trunkOfAll();
  in.fast_in = 1;
  in.native_vlan = 1;
  prog.writePort(kIn, in);
  fast_port bond = in;
  bond.fast_in = 0;
  bond.is_bond = 1;
  for (int b = 0; b < VSW_BOND_BUCKETS; b++) bond.buckets[b] = static_cast<int16_t>(b);  // bucket b -> leg port b
  for (const json::Value& v : vectors["flow"].a) {
    const Bytes f = fromHex(v["frame"].str());
    if (f.size() < kEthHeader) continue;  // BPF_PROG_RUN takes no frame shorter than a header
    bond.bond_hash = v["hash"].str() == "l3l4" ? VSW_BOND_HASH_L3L4 : VSW_BOND_HASH_L2;
    prog.writePort(kBond, bond);
    const bool tagged = f.size() >= 18 && f[12] == 0x81 && f[13] == 0;
    const uint16_t vid = tagged ? static_cast<uint16_t>((f[14] << 8 | f[15]) & 0x0fff) : 0;
    const uint16_t vlan = vid ? vid : 1;
    prog.insert(vlan, f.data() + 6, kIn);
    prog.insert(vlan, f.data(), kBond);
    const Outcome o = prog.run(f);
    prog.clearFdb();
    if (o.unrunnable) continue;
    if (f.size() < 18 && prog.name() == "tc") continue;  // an skb that short has no in-band tag to speak of
    if (f.size() < 18) {  // the program sends frames this short to the slow path
      r.check(o.verdict == Outcome::kSlow, "%s (%s): %s, want slow path (short frame)", v["name"].str().c_str(),
              v["hash"].str().c_str(), verdictName(o));
      continue;
    }
    r.check(o.verdict == Outcome::kFast && o.tx_port == v["bucket"].num(), "%s (%s): %s, leg %d, want bucket %ld",
            v["name"].str().c_str(), v["hash"].str().c_str(), verdictName(o), o.tx_port, v["bucket"].num());
  }
}

// The egress MTU check (vsw_exceeds_mtu, fast_port.mtu): a frame that fits is
// redirected, a larger one goes to the slow path (which drops and counts it).
// An untagged frame in on an access port of VLAN 1, out to an access port (the
// frame leaves untagged) or a trunk (it leaves tagged, 4 bytes longer). Frames
// longer than a page run as multi-buffer frames (a frags program).
void bpfMtu(FastPathProgram& prog, const json::Value& vectors, Report& r) {
  r.section(prog.name() + " egress mtu (fast_port.mtu)");
  baseline(prog);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 1}, dst[6] = {0x02, 0, 0, 0, 0, 2};
  prog.insert(1, src, kIn);
  prog.insert(1, dst, kOut);
  fast_port in{};
  in.active = in.fast_in = 1;
  in.access_vlan = 1;
  in.bond = -1;
  in.leg_rx = 1;
  for (auto& b : in.buckets) b = -1;
  prog.writePort(kIn, in);
  for (const json::Value& v : vectors["mtu"].a) {
    const bool tagged = v["tagged"].b;
    fast_port out = in;
    out.fast_in = 0;
    out.fast_out = out.fast_out_mb = 1;
    out.trunk = tagged;
    out.access_vlan = tagged ? 0 : 1;
    if (tagged) out.allowed[0] = 1ull << 1;
    out.mtu = static_cast<__u16>(v["mtu"].num());
    prog.writePort(kOut, out);
    Bytes f(static_cast<size_t>(v["len"].num()) - (tagged ? 4 : 0), 0);
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    f[12] = 0x08;  // IPv4 (the payload is not read)
    const Outcome o = prog.run(f);
    const bool exceeds = v["exceeds"].b;
    r.check(o.verdict == (exceeds ? Outcome::kSlow : Outcome::kFast), "%s: %s, want %s", v["name"].str().c_str(), verdictName(o),
            exceeds ? "slow path" : "fast path");
  }
  prog.clearFdb();
}

// Port security in the program: a refused frame is dropped where it arrives (XDP_DROP,
// TC_ACT_SHOT) and counted by its reason; an allowed one goes on (here: to the slow path,
// its destination unknown). The port is a trunk of every VLAN, untagged frames in VLAN 1.
void bpfPolicy(FastPathProgram& prog, const json::Value& vectors, Report& r) {
  r.section(prog.name() + " port security (drop and reason)");
  baseline(prog);
  fast_port in = trunkOfAll();
  in.fast_in = 1;
  in.fast_out = 0;
  in.native_vlan = 1;
  prog.writePort(kIn, in);
  for (const json::Value& v : vectors["policy"].a) {
    prog.writePolicy(kIn, policyFromVector(v["policy"]));
    const Bytes f = fromHex(v["frame"].str());
    const Outcome o = prog.run(f);
    if (o.unrunnable) continue;
    const bool dropped = o.verdict == Outcome::kOther && (o.retval == XDP_DROP || o.retval == TC_ACT_SHOT);
    const std::string got = dropped ? policyVerdictName(o.policy_reason) : "ok";
    // The tc program takes a frame with a second tag (or an 802.1ad one) to the slow path
    // before it reads anything: the hot loop applies the rule to it (the c++ section).
    auto et = [&f](size_t at) { return f.size() >= at + 2 ? (f[at] << 8 | f[at + 1]) : 0; };
    const bool nested = et(12) == 0x88a8 || (et(12) == 0x8100 && (et(16) == 0x8100 || et(16) == 0x88a8));
    const std::string want = prog.name() == "tc" && nested ? "ok" : v["verdict"].str();
    if (want == "learn") {  // to the slow path, counted nowhere: the hot loop reports it
      r.check(o.verdict == Outcome::kSlow && o.policy_reason == 0, "%s: %s, reason %d, want slow path uncounted", v["name"].str().c_str(),
              verdictName(o), o.policy_reason);
      continue;
    }
    r.check(got == want, "%s: %s (retval %d), want %s", v["name"].str().c_str(), got.c_str(), o.retval, want.c_str());
  }
  prog.writePolicy(kIn, port_policy{});
}

// The program's policer (police_forward: each CPU's credit, then the shared bucket): a burst
// of 1000 frames' bytes at a rate of 100 kB/s passes its 1000 frames, plus what the rate
// adds while the test runs, and no more; the rest is dropped and counted as policed.
void bpfPolice(FastPathProgram& prog, Report& r) {
  r.section(prog.name() + " policer (credit and shared bucket)");
  baseline(prog);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 1}, dst[6] = {0x02, 0, 0, 0, 0, 2};
  prog.insert(1, src, kIn);
  prog.insert(1, dst, kOut);
  fast_port in{};
  in.active = in.fast_in = 1;
  in.access_vlan = 1;
  in.bond = -1;
  in.leg_rx = 1;
  for (auto& b : in.buckets) b = -1;
  prog.writePort(kIn, in);
  fast_port out = in;
  out.fast_in = 0;
  out.fast_out = out.fast_out_mb = 1;
  prog.writePort(kOut, out);
  Bytes f(60, 0);
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x08;  // IPv4 (the policer reads no payload)
  port_policy pol{};
  pol.flags = VSW_POL_POLICE;
  pol.police_rate = 100000;
  pol.police_burst = 60000;
  prog.writePolicy(kIn, pol);
  // 2000 runs in one BPF_PROG_RUN (well under a millisecond: the rate adds about a frame).
  const fast_counters before_out = prog.counters(kOut), before_in = prog.counters(kIn);
  const auto start = std::chrono::steady_clock::now();
  prog.runRepeat(f, 2000);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int passed = static_cast<int>(prog.counters(kOut).tx_packets - before_out.tx_packets);
  const int policed = static_cast<int>(prog.counters(kIn).policy_drops[VSW_POLICY_POLICED - 1] - before_in.policy_drops[VSW_POLICY_POLICED - 1]);
  const int most = 1000 + static_cast<int>(secs * 100000 / 60) + 1;
  r.check(passed >= 998 && passed <= most, "passed %d of 2000 in %.4f s, want 998..%d", passed, secs, most);
  r.check(policed == 2000 - passed, "the rest counted as policed: %d", policed);
  prog.writePolicy(kIn, port_policy{});
  prog.clearFdb();
}

void bpfVlan(FastPathProgram& prog, const json::Value& vectors, Report& r) {
  r.section(prog.name() + " ingress vlan (tag of the redirected frame)");
  baseline(prog);
  for (const json::Value& v : vectors["vlan"].a) {
    const PortView pv = portFromVector(v["port"]);
    fast_port in{};
    in.active = 1;
    in.fast_in = in.fast_out = 1;
    in.trunk = pv.trunk;
    in.access_vlan = pv.access_vlan;
    in.native_vlan = pv.native_vlan;
    std::memcpy(in.allowed, pv.allowed, sizeof(in.allowed));
    in.bond = -1;
    in.leg_rx = 1;
    for (auto& b : in.buckets) b = -1;
    prog.writePort(kIn, in);  // the egress kOut is a trunk of every VLAN, no native: it always tags
    const Bytes f = fromHex(v["frame"].str());
    const bool tagged = f.size() >= 18 && f[12] == 0x81 && f[13] == 0;
    const uint16_t vid = tagged ? static_cast<uint16_t>((f[14] << 8 | f[15]) & 0x0fff) : 0;
    const uint8_t pcp = tagged ? f[14] >> 5 : 0;
    // Expected VLAN: learned there. A drop: learned in every VLAN it could wrongly land in.
    std::set<uint16_t> vlans;
    if (v.has("vlan")) vlans.insert(static_cast<uint16_t>(v["vlan"].num()));
    else vlans = {1, 10, 20, 30, 99, 4094, pv.access_vlan, pv.native_vlan, vid};
    for (uint16_t vl : vlans) {
      if (vl == 0 || vl >= VSW_VID_RESERVED) continue;
      prog.insert(vl, f.data() + 6, kIn);
      prog.insert(vl, f.data(), kOut);
    }
    const Outcome o = prog.run(f);
    prog.clearFdb();
    if (!v.has("vlan")) {
      r.check(o.verdict == Outcome::kSlow, "%s: %s, want slow path (hot loop: drop %s)", v["name"].str().c_str(), verdictName(o),
              v["drop"].str().c_str());
      continue;
    }
    const bool out_tagged = o.out.size() == f.size() + (tagged ? 0 : 4) && o.out.size() >= 18 && o.out[12] == 0x81 && o.out[13] == 0;
    const int out_vid = out_tagged ? (o.out[14] << 8 | o.out[15]) & 0x0fff : -1;
    const int out_pcp = out_tagged ? o.out[14] >> 5 : -1;
    r.check(o.verdict == Outcome::kFast && o.tx_port == static_cast<int>(kOut) && out_vid == v["vlan"].num() && out_pcp == pcp,
            "%s: %s to port %d, out vid %d pcp %d; want vlan %ld pcp %d", v["name"].str().c_str(), verdictName(o), o.tx_port, out_vid,
            out_pcp, v["vlan"].num(), pcp);
  }
}

// One program per FDB capacity (the map's size is fixed at load).
void bpfFdb(const std::function<std::unique_ptr<FastPathProgram>(uint32_t capacity)>& load, const std::string& name,
            const json::Value& vectors, Report& r) {
  r.section(name + " fdb slot (entries at exactly the vector's slot)");
  std::map<uint32_t, std::map<uint16_t, std::vector<const json::Value*>>> groups;  // capacity -> vlan -> keys
  for (const json::Value& v : vectors["fdb"].a)
    groups[static_cast<uint32_t>(v["capacity"].num())][static_cast<uint16_t>(v["vlan"].num())].push_back(&v);
  for (const auto& [capacity, by_vlan] : groups) {
    std::unique_ptr<FastPathProgram> prog = load(capacity);
    baseline(*prog);
    for (const auto& [vlan, keys] : by_vlan) {
      for (size_t k = 0; k < keys.size(); k++) {
        // Source: this key, learned on the ingress port; destination: the next key of the VLAN.
        const json::Value& src = *keys[k];
        const json::Value& dst = *keys[(k + 1) % keys.size()];
        const Bytes smac = parseMac(src["mac"].str()), dmac = parseMac(dst["mac"].str());
        prog->putSlot(static_cast<uint32_t>(src["slot"].num()), vlan, smac.data(), kIn);
        prog->putSlot(static_cast<uint32_t>(dst["slot"].num()), vlan, dmac.data(), kOut);
        Bytes f(dmac);
        f.insert(f.end(), smac.begin(), smac.end());
        const uint8_t tag[] = {0x81, 0x00, static_cast<uint8_t>(vlan >> 8), static_cast<uint8_t>(vlan), 0x08, 0x00};
        f.insert(f.end(), tag, tag + sizeof(tag));
        f.resize(64, 0);
        const Outcome o = prog->run(f);
        prog->clearFdb();
        r.check(o.verdict == Outcome::kFast && o.tx_port == static_cast<int>(kOut),
                "vlan %d, %u slots: %s at slot %ld -> %s at slot %ld: %s (a miss: the program hashes elsewhere)", vlan, capacity,
                src["mac"].str().c_str(), src["slot"].num(), dst["mac"].str().c_str(), dst["slot"].num(), verdictName(o));
      }
    }
  }
}

// The object's BTF against the header this binary was built with: a stale or
// differently built object fails here rather than corrupting the maps.
void bpfLayout(bpf_object* obj, const std::string& name, Report& r) {
  r.section(name + " layouts (object BTF vs vswitchd_shared.h)");
  struct Field { const char* s; const char* m; size_t off; };
#define F(S, M) {#S, #M, offsetof(S, M)}
  const Field fields[] = {
      F(fdb_slot, seq), F(fdb_slot, vlan), F(fdb_slot, mac), F(fdb_slot, port), F(fdb_slot, flags), F(fdb_slot, reserved),
      F(fdb_slot, last_seen_ms), F(fast_port, active), F(fast_port, trunk), F(fast_port, fast_in), F(fast_port, fast_out),
      F(fast_port, access_vlan), F(fast_port, native_vlan), F(fast_port, allowed), F(fast_port, bond), F(fast_port, leg_rx),
      F(fast_port, is_bond), F(fast_port, bond_hash), F(fast_port, learn_full), F(fast_port, buckets), F(fast_port, mtu), F(fast_port, fast_out_mb), F(fast_port, reserved_end), F(fast_counters, rx_packets),
      F(fast_counters, rx_bytes), F(fast_counters, tx_packets), F(fast_counters, tx_bytes), F(fast_counters, redirect_failed), F(fast_counters, mac_limit), F(fast_counters, policy_drops), F(fast_config, fdb_mask),
      F(fast_config, enabled), F(fast_config, now_ms),
      F(port_policy, flags), F(port_policy, n_macs), F(port_policy, n_ipv4), F(port_policy, n_ipv6), F(port_policy, reserved0),
      F(port_policy, macs), F(port_policy, ipv4), F(port_policy, ipv6), F(port_policy, storm_pps), F(port_policy, reserved1),
      F(port_policy, police_rate), F(port_policy, police_burst), F(port_buckets, storm), F(port_buckets, police),
      F(vsw_bucket, tokens), F(vsw_bucket, last_ns), F(vsw_credit, tokens), F(vsw_credit, rate), F(vsw_credit, burst),
  };
#undef F
  const std::map<std::string, size_t> sizes = {{"fdb_slot", sizeof(fdb_slot)}, {"fast_port", sizeof(fast_port)},
                                               {"fast_counters", sizeof(fast_counters)}, {"fast_config", sizeof(fast_config)},
                                               {"port_policy", sizeof(port_policy)}, {"port_buckets", sizeof(port_buckets)},
                                               {"vsw_bucket", sizeof(vsw_bucket)}, {"vsw_credit", sizeof(vsw_credit)}};
  const btf* b = bpf_object__btf(obj);
  if (!b) return r.fail("the object has no BTF");
  for (const auto& [sname, size] : sizes) {
    const int id = btf__find_by_name_kind(b, sname.c_str(), BTF_KIND_STRUCT);
    if (id < 0) {
      r.fail("struct %s not in the object's BTF", sname.c_str());
      continue;
    }
    const btf_type* t = btf__type_by_id(b, id);
    r.check(t->size == size, "struct %s: %u bytes in the object, %zu in the header", sname.c_str(), t->size, size);
    std::map<std::string, size_t> members;
    const btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); i++) members[btf__name_by_offset(b, m[i].name_off)] = btf_member_bit_offset(t, i) / 8;
    size_t expected = 0;
    for (const Field& f : fields) {
      if (sname != f.s) continue;
      expected++;
      auto it = members.find(f.m);
      r.check(it != members.end() && it->second == f.off, "%s.%s: offset %ld in the object, %zu in the header", f.s, f.m,
              it == members.end() ? -1L : static_cast<long>(it->second), f.off);
    }
    r.check(members.size() == expected, "struct %s: %zu members in the object, %zu in the header", sname.c_str(), members.size(),
            expected);
  }
}

int libbpfQuiet(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s VECTORS.json [--bpf xsk_steer.bpf.o]\n", argv[0]);
    return 2;
  }
  std::string xdp_object, tc_object;
  for (int i = 2; i < argc; i++) {
    if (std::string(argv[i]) == "--bpf" && i + 1 < argc) xdp_object = argv[++i];
    else if (std::string(argv[i]) == "--tc" && i + 1 < argc) tc_object = argv[++i];
    else return fprintf(stderr, "unknown argument %s\n", argv[i]), 2;
  }
  Report r;
  try {
    std::ifstream in(argv[1]);
    if (!in) throw std::runtime_error(std::string("cannot read ") + argv[1]);
    std::stringstream text;
    text << in.rdbuf();
    const json::Value vectors = json::parse(text.str());
    cppConstants(vectors, r);
    cppFlow(vectors, r);
    cppVlan(vectors, r);
    cppFdb(vectors, r);
    cppMtu(vectors, r);
    cppPolicy(vectors, r);
    cppBucket(r);
    cppCredit(r);
    if (!xdp_object.empty()) {
      if (geteuid() != 0) throw std::runtime_error("--bpf needs root (BPF_PROG_RUN, map creation)");
      libbpf_set_print(libbpfQuiet);
      {
        XdpProgram xdp(xdp_object, VSW_FDB_DEFAULT_SLOTS, kIn);
        bpfLayout(xdp.object(), xdp.name(), r);
        bpfFlow(xdp, vectors, r);
        bpfVlan(xdp, vectors, r);
        bpfMtu(xdp, vectors, r);
        bpfPolicy(xdp, vectors, r);
        bpfPolice(xdp, r);
      }
      bpfFdb([&](uint32_t capacity) { return std::make_unique<XdpProgram>(xdp_object, capacity, kIn); }, "xdp", vectors, r);
      if (!tc_object.empty()) {
        // The tc program: layouts, flow buckets and FDB slots (its VLAN rule is the same
        // shared function, reached with the tag out of band; see TcProgram).
        {
          TcProgram tc(tc_object, VSW_FDB_DEFAULT_SLOTS, kIn);
          bpfLayout(tc.object(), tc.name(), r);
          bpfFlow(tc, vectors, r);
          bpfPolicy(tc, vectors, r);
          bpfPolice(tc, r);
        }
        bpfFdb([&](uint32_t capacity) { return std::make_unique<TcProgram>(tc_object, capacity, kIn); }, "tc", vectors, r);
      }
    }
  } catch (const std::exception& e) {
    printf("FAIL shared vectors: %s\n", e.what());
    r.failed++;
  }
  for (const auto& [name, counts] : r.sections)
    printf("  %-62s %4d passed, %d failed\n", name.c_str(), counts.first, counts.second);
  printf("native shared vectors: %s\n", r.failed ? "FAILED" : "passed");
  return r.failed ? 1 : 0;
}
