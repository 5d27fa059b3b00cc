#include "datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "worker.h"

namespace vswitchd {

const char* const kDropReasonNames[kDropCount] = {
    "runt",         "malformed",        "too_big",     "multicast_source", "vlan_not_allowed",
    "untagged_no_native", "same_port",  "no_buffer",   "tx_full",          "port_down",
    "link_local",   "bond_inactive_leg", "bond_no_leg", "handoff_full",
};

namespace {

std::mutex g_current_mu;
std::shared_ptr<Datapath> g_current;

int libxdpPrint(enum libxdp_print_level level, const char* fmt, va_list args) {
  // The multi-program dispatcher fails to load without CAP_SYS_RESOURCE and
  // libxdp then attaches the program alone; its notices about that, and about
  // devices with no dispatcher, are noise. Failures reach us as error codes.
  if (!getenv("VSWITCHD_DEBUG_LIBBPF")) return 0;
  fprintf(stderr, "libxdp: ");
  return vfprintf(stderr, fmt, args);
}

std::string errText(int err) { return std::strerror(err < 0 ? -err : err); }

// A crashed earlier run may have left our program on the device: take it off.
void detachStaleProgram(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return;
  xdp_program* main = xdp_multiprog__main_prog(mp);
  if (main && std::strcmp(xdp_program__name(main), "vswitchd_steer") == 0) xdp_multiprog__detach(mp);
  xdp_multiprog__close(mp);
}

// libbpf reports, among others, the expected EPERM of the dispatcher load on
// every attach; errors that matter reach the caller as error codes anyway.
int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!getenv("VSWITCHD_DEBUG_LIBBPF")) return 0;
  return vfprintf(stderr, fmt, args);
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

uint64_t monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

std::shared_ptr<Datapath> Datapath::current() {
  std::lock_guard<std::mutex> lock(g_current_mu);
  return g_current;
}

void Datapath::setCurrent(std::shared_ptr<Datapath> dp) {
  std::lock_guard<std::mutex> lock(g_current_mu);
  g_current = std::move(dp);
}

Datapath::Datapath(const Options& opts) : opts_(opts) {
  if (opts.workers < 1 || opts.workers > kMaxWorkers)
    throw std::runtime_error("workers must be in 1.." + std::to_string(kMaxWorkers));
  libxdp_set_print(libxdpPrint);
  libbpf_set_print(libbpfPrint);
  umem_ = std::make_unique<Umem>(opts.workers * opts.frames_per_worker, opts.anchor_device);
  fdb_ = std::make_unique<FdbTable>(opts.fdb_capacity);
  createFastMaps();
  for (uint32_t w = 0; w < opts.workers; w++) {
    auto worker = std::make_unique<Worker>();
    worker->id = w;
    worker->first_frame = static_cast<uint64_t>(w) * opts.frames_per_worker;
    worker->frame_count = opts.frames_per_worker;
    worker->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (worker->event_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    worker->pool.reserve(opts.frames_per_worker);
    for (uint64_t f = 0; f < opts.frames_per_worker; f++)
      worker->pool.push_back((worker->first_frame + f) * kFrameSize);
    for (uint32_t src = 0; src < opts.workers; src++) {
      // A worker can never have more frames out than it owns, so return rings never overflow.
      worker->handoff_in.push_back(src == w ? nullptr : std::make_unique<SpscRing<Handoff>>(4096));
      worker->return_in.push_back(src == w ? nullptr : std::make_unique<SpscRing<uint64_t>>(opts.frames_per_worker));
    }
    workers_.push_back(std::move(worker));
  }
  commit();
}

void Datapath::createFastMaps() {
  auto create = [](bpf_map_type type, const char* name, uint32_t key, uint32_t value, uint32_t entries) {
    const int fd = bpf_map_create(type, name, key, value, entries, nullptr);
    if (fd < 0) throw std::runtime_error(std::string("creating BPF map ") + name + ": " + errText(fd));
    return fd;
  };
  ports_map_fd_ = create(BPF_MAP_TYPE_ARRAY, "vswitchd_ports", 4, sizeof(FastPort), kMaxPorts);
  tx_map_fd_ = create(BPF_MAP_TYPE_DEVMAP_HASH, "vswitchd_tx", 4, 4, kMaxPorts);
  stats_map_fd_ = create(BPF_MAP_TYPE_PERCPU_ARRAY, "vswitchd_fstats", 4, sizeof(FastCounters), kMaxPorts);
  LIBBPF_OPTS(bpf_map_create_opts, mmapable, .map_flags = BPF_F_MMAPABLE);
  config_map_fd_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vswitchd_config", 4, sizeof(FastConfig), 1, &mmapable);
  if (config_map_fd_ < 0) throw std::runtime_error("creating BPF map vswitchd_config: " + errText(config_map_fd_));
  void* mapped = mmap(nullptr, sizeof(FastConfig), PROT_READ | PROT_WRITE, MAP_SHARED, config_map_fd_, 0);
  if (mapped == MAP_FAILED) throw std::runtime_error("mapping the fast path config map: " + errText(errno));
  fast_config_ = static_cast<FastConfig*>(mapped);
  fast_config_->fdb_mask = opts_.fdb_capacity - 1;
  fast_config_->enabled = opts_.fast_path ? 1 : 0;
  tickFastClock(monotonicMs());
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ < 1) ncpus_ = 1;
}

// Every port's program reads the same FDB, port table and devmap.
void Datapath::shareMaps(xdp_program* prog) {
  bpf_object* obj = xdp_program__bpf_obj(prog);
  const std::pair<const char*, int> shared[] = {
      {"vswitchd_fdb", fdb_->mapFd()},         {"vswitchd_ports", ports_map_fd_},      {"vswitchd_tx", tx_map_fd_},
      {"vswitchd_fast_stats", stats_map_fd_}, {"vswitchd_config", config_map_fd_},
  };
  for (const auto& [name, fd] : shared) {
    bpf_map* map = bpf_object__find_map_by_name(obj, name);
    if (!map) throw std::runtime_error(opts_.bpf_object + " has no map " + name);
    if (int err = bpf_map__reuse_fd(map, fd)) throw std::runtime_error(std::string("sharing map ") + name + ": " + errText(err));
  }
}

// Each port's copy of the program knows its port index as a load-time constant.
void Datapath::setProgramPort(xdp_program* prog, uint16_t index) {
  bpf_object* obj = xdp_program__bpf_obj(prog);
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    const size_t len = std::strlen(name);
    if (len >= 7 && std::strcmp(name + len - 7, ".rodata") == 0) break;
  }
  size_t size = 0;
  const void* initial = map ? bpf_map__initial_value(map, &size) : nullptr;
  if (!initial || size < sizeof(uint32_t)) throw std::runtime_error(opts_.bpf_object + " has no vswitchd_port_index constant");
  std::vector<uint8_t> rodata(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + size);
  const uint32_t port = index;
  std::memcpy(rodata.data(), &port, sizeof(port));  // the only constant in .rodata
  if (int err = bpf_map__set_initial_value(map, rodata.data(), rodata.size()))
    throw std::runtime_error("setting the XDP program's port index: " + errText(err));
}

void Datapath::tickFastClock(uint64_t now) {
  if (!fast_config_) return;
  auto clock = std::atomic_ref<uint64_t>(fast_config_->now_ms);
  // Workers call this every pass; store only when it moved enough, so the
  // cache line the XDP program reads per frame is not bounced between CPUs.
  if (now >= clock.load(std::memory_order_relaxed) + 100) clock.store(now, std::memory_order_relaxed);
}

void Datapath::setPortFast(uint16_t index, bool fast_in, bool fast_out) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  fast_in_[index] = fast_in && opts_.fast_path;
  fast_out_[index] = fast_out && opts_.fast_path;
}

// Called with the view being published: what XDP sees follows what the workers see.
void Datapath::writeFastPorts(const View& v) {
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    const PortView& pv = v.ports[i];
    FastPort fp{};
    fp.active = pv.active;
    fp.trunk = pv.trunk;
    fp.fast_in = pv.active && fast_in_[i];
    fp.fast_out = pv.active && fast_out_[i];
    fp.access_vlan = pv.access_vlan;
    fp.native_vlan = pv.native_vlan;
    std::memcpy(fp.allowed, pv.allowed, sizeof(fp.allowed));
    fp.bond = pv.bond;
    fp.leg_rx = pv.leg_rx;
    fp.is_bond = pv.is_bond;
    fp.bond_hash = pv.bond_hash;
    if (pv.is_bond) std::memcpy(fp.buckets, pv.buckets, sizeof(fp.buckets));
    else std::fill(std::begin(fp.buckets), std::end(fp.buckets), -1);
    bpf_map_update_elem(ports_map_fd_, &i, &fp, 0);
  }
}

FastCounters Datapath::fastCounters(uint16_t port) const {
  std::vector<FastCounters> per_cpu(static_cast<size_t>(ncpus_));
  FastCounters sum{};
  const uint32_t key = port;
  if (bpf_map_lookup_elem(stats_map_fd_, &key, per_cpu.data()) != 0) return sum;
  for (const FastCounters& c : per_cpu) {
    sum.rx_packets += c.rx_packets;
    sum.rx_bytes += c.rx_bytes;
    sum.tx_packets += c.tx_packets;
    sum.tx_bytes += c.tx_bytes;
  }
  return sum;
}

Datapath::~Datapath() {
  for (int i = 0; i < kMaxPorts; i++) {
    if (ports_[i].name.empty()) continue;
    detachProgram(ports_[i]);
    for (auto& q : ports_[i].queues)
      if (q->xsk) q->xsk->closeAndHarvest();
  }
  for (auto& w : workers_)
    if (w->event_fd >= 0) close(w->event_fd);
  if (fast_config_) munmap(fast_config_, sizeof(FastConfig));
  for (int fd : {ports_map_fd_, tx_map_fd_, stats_map_fd_, config_map_fd_})
    if (fd >= 0) close(fd);
}

Datapath::PortResult Datapath::addPort(uint16_t index, const std::string& name, int queues,
                                       const std::string& xdp_mode, int tap_fd) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  PortInfo& p = ports_[index];
  if (!p.name.empty()) throw std::runtime_error("port index " + std::to_string(index) + " is in use by " + p.name);
  const uint32_t nworkers = workers();
  PortResult result;
  PortInfo fresh;
  fresh.name = name;
  if (tap_fd >= 0) {
    // The internal port: the host stack writes to this tap and we read its fd directly.
    fresh.tap_fd_port = true;
    fresh.tap_fd = tap_fd;
    fresh.xdp_mode = "none";
    auto q = std::make_unique<Queue>();
    q->kind = Queue::kTapFd;
    q->port = index;
    q->queue_id = 0;
    q->owner = static_cast<uint16_t>(index % nworkers);
    q->fd = tap_fd;
    fresh.queues.push_back(std::move(q));
  } else {
    if (queues < 1 || queues > 64) throw std::runtime_error(name + ": queue count must be in 1..64");
    fresh.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    if (fresh.ifindex == 0) throw std::runtime_error(name + ": no such device");
    detachStaleProgram(fresh.ifindex);
    fresh.prog = xdp_program__open_file(opts_.bpf_object.c_str(), "xdp", nullptr);
    if (int err = libxdp_get_error(fresh.prog)) {
      fresh.prog = nullptr;
      throw std::runtime_error("opening " + opts_.bpf_object + ": " + errText(err));
    }
    try {
      shareMaps(fresh.prog);
      setProgramPort(fresh.prog, index);
    } catch (...) {
      xdp_program__close(fresh.prog);
      throw;
    }
    int err = -1;
    if (xdp_mode != "generic") {
      err = xdp_program__attach(fresh.prog, fresh.ifindex, XDP_MODE_NATIVE, 0);
      if (!err) fresh.xdp_mode = "native";
    }
    if (!err) rememberDispatcherOutcome(fresh.ifindex);
    if (err && xdp_mode != "native") {
      err = xdp_program__attach(fresh.prog, fresh.ifindex, XDP_MODE_SKB, 0);
      if (!err) fresh.xdp_mode = "generic";
    }
    if (err) {
      xdp_program__close(fresh.prog);
      throw std::runtime_error(name + ": attaching the XDP program in " + xdp_mode + " mode: " + errText(err));
    }
    fresh.xsks_map_fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(fresh.prog), "xsks_map");
    try {
      if (fresh.xsks_map_fd < 0) throw std::runtime_error(name + ": the XDP program has no xsks_map");
      for (int qi = 0; qi < queues; qi++) {
        auto q = std::make_unique<Queue>();
        q->kind = Queue::kXsk;
        q->port = index;
        q->queue_id = static_cast<uint32_t>(qi);
        q->owner = static_cast<uint16_t>((index + qi) % nworkers);  // spread queues and single-queue ports
        q->xsk = std::make_unique<XskSocket>(*umem_, fresh.ifindex, qi, RingSizes{});
        q->fd = q->xsk->fd();
        uint32_t key = static_cast<uint32_t>(qi);
        int fd = q->fd;
        if (bpf_map_update_elem(fresh.xsks_map_fd, &key, &fd, 0) != 0)
          throw std::runtime_error(name + ": adding queue " + std::to_string(qi) + " to the XSKMAP: " + errText(errno));
        fresh.queues.push_back(std::move(q));
      }
      const uint32_t key = fresh.ifindex, port = index;
      if (bpf_map_update_elem(tx_map_fd_, &port, &key, 0) != 0)
        throw std::runtime_error(name + ": registering the port with the fast path: " + errText(errno));
    } catch (...) {
      detachProgram(fresh);
      for (auto& q : fresh.queues) q->xsk->closeAndHarvest();  // nothing was filled yet
      throw;
    }
  }
  p = std::move(fresh);
  PortView& pv = staged_.ports[index];
  pv = PortView{};
  for (auto& q : p.queues) {
    if (!pv.tx_queue[q->owner]) pv.tx_queue[q->owner] = q.get();
    if (pv.tx_worker < 0) pv.tx_worker = static_cast<int16_t>(q->owner);
    staged_.worker_queues[q->owner].push_back(q.get());
    result.owners.push_back(q->owner);
  }
  result.xdp_mode = p.xdp_mode;
  return result;
}

void Datapath::detachProgram(PortInfo& p) {
  if (!p.prog) return;
  const enum xdp_attach_mode mode = p.xdp_mode == "native" ? XDP_MODE_NATIVE : XDP_MODE_SKB;
  xdp_program__detach(p.prog, p.ifindex, mode, 0);
  xdp_program__close(p.prog);
  p.prog = nullptr;
}

void Datapath::removePort(uint16_t index) {
  std::unique_lock<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts || ports_[index].name.empty()) return;
  PortInfo& p = ports_[index];
  staged_.ports[index] = PortView{};
  for (auto& list : staged_.worker_queues)
    std::erase_if(list, [index](Queue* q) { return q->port == index; });
  for (auto& words : staged_.flood) words[index / 64] &= ~(1ull << (index % 64));
  lock.unlock();
  fast_in_[index] = fast_out_[index] = 0;
  commit();  // from here on no worker and no XDP program uses the port
  lock.lock();
  const uint32_t port = index;
  if (p.ifindex) bpf_map_delete_elem(tx_map_fd_, &port);
  const FastCounters zero{};
  std::vector<FastCounters> zeros(static_cast<size_t>(ncpus_), zero);
  bpf_map_update_elem(stats_map_fd_, &port, zeros.data(), 0);
  detachProgram(p);
  releaseQueues(p.queues);
  if (p.tap_fd >= 0) close(p.tap_fd);
  ports_[index] = PortInfo{};
}

void Datapath::releaseQueues(std::vector<std::unique_ptr<Queue>>& queues) {
  for (auto& q : queues) {
    if (!q->xsk) continue;
    for (uint64_t addr : q->xsk->closeAndHarvest()) {
      const uint64_t frame = addr / kFrameSize;
      Worker& owner = *workers_[frame / opts_.frames_per_worker];
      std::lock_guard<std::mutex> lock(owner.reclaim_mu);
      owner.reclaim.push_back(chunkOf(addr));
      owner.reclaim_pending.store(true, std::memory_order_release);
    }
  }
  queues.clear();
  wakeAll();
}

void Datapath::addBond(uint16_t index, const std::string& name) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  if (!ports_[index].name.empty()) throw std::runtime_error("port index " + std::to_string(index) + " is in use by " + ports_[index].name);
  ports_[index] = PortInfo{};
  ports_[index].name = name;
  ports_[index].xdp_mode = "bond";
  PortView& pv = staged_.ports[index];
  pv = PortView{};
  pv.is_bond = 1;
  std::fill(std::begin(pv.buckets), std::end(pv.buckets), -1);
}

void Datapath::setBondBuckets(uint16_t bond, uint8_t hash, const std::vector<int16_t>& buckets) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (bond >= kMaxPorts || !staged_.ports[bond].is_bond) throw std::runtime_error("not a bond: " + std::to_string(bond));
  if (buckets.size() != 256) throw std::runtime_error("a bond needs 256 buckets");
  PortView& pv = staged_.ports[bond];
  pv.bond_hash = hash;
  for (int i = 0; i < 256; i++) pv.buckets[i] = buckets[i] >= 0 && buckets[i] < kMaxPorts ? buckets[i] : -1;
}

void Datapath::setLeg(uint16_t leg, int16_t bond, bool rx_enabled) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (leg >= kMaxPorts) throw std::runtime_error("port index out of range");
  staged_.ports[leg].bond = bond;
  staged_.ports[leg].leg_rx = rx_enabled;
}

void Datapath::sendFrame(uint16_t port, const std::vector<uint8_t>& frame) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (port >= kMaxPorts || ports_[port].queues.empty()) throw std::runtime_error("port " + std::to_string(port) + " has no device to send on");
  if (frame.size() < 14 || frame.size() > kMaxFrameLen) throw std::runtime_error("frame length out of range");
  Worker& w = *workers_[ports_[port].queues.front()->owner];
  {
    std::lock_guard<std::mutex> ilock(w.inject_mu);
    w.inject.push_back(PuntRecord{port, frame});
    w.inject_pending.store(true, std::memory_order_release);
  }
  const uint64_t one = 1;
  if (write(w.event_fd, &one, sizeof(one)) < 0) { /* the worker is awake anyway */ }
}

void Datapath::setPortVlan(uint16_t index, bool trunk, uint16_t access_vlan, uint16_t native_vlan,
                           const std::vector<uint16_t>& trunks) {
  std::lock_guard<std::mutex> lock(control_mu_);
  PortView& pv = staged_.ports[index];
  pv.trunk = trunk;
  pv.access_vlan = trunk ? 0 : access_vlan;
  pv.native_vlan = trunk ? native_vlan : 0;
  std::memset(pv.allowed, 0, sizeof(pv.allowed));
  if (trunk)
    for (uint16_t v : trunks)
      if (v > 0 && v < 4095) pv.allowed[v / 64] |= 1ull << (v % 64);
}

void Datapath::setPortActive(uint16_t index, bool active) {
  std::lock_guard<std::mutex> lock(control_mu_);
  staged_.ports[index].active = active && !ports_[index].name.empty();
}

void Datapath::setFloodSet(uint16_t vlan, const std::vector<uint16_t>& ports) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (vlan == 0 || vlan >= 4095) throw std::runtime_error("VLAN out of range: " + std::to_string(vlan));
  auto& words = staged_.flood[vlan];
  std::memset(words, 0, sizeof(words));
  for (uint16_t p : ports)
    if (p < kMaxPorts) words[p / 64] |= 1ull << (p % 64);
}

void Datapath::wakeAll() {
  const uint64_t one = 1;
  for (auto& w : workers_)
    if (write(w->event_fd, &one, sizeof(one)) < 0) { /* counter saturated: the worker is awake anyway */ }
}

void Datapath::commit() {
  std::unique_ptr<View> next;
  {
    std::lock_guard<std::mutex> lock(control_mu_);
    next = std::make_unique<View>();
    std::memcpy(next->ports, staged_.ports, sizeof(staged_.ports));
    std::memcpy(next->flood, staged_.flood, sizeof(staged_.flood));
    for (int w = 0; w < kMaxWorkers; w++) next->worker_queues[w] = staged_.worker_queues[w];
    next->gen = next_gen_++;
  }
  const uint64_t gen = next->gen;
  writeFastPorts(*next);
  live_.store(next.get(), std::memory_order_seq_cst);
  views_.push_back(std::move(next));
  wakeAll();
  // Wait for every worker inside run() to adopt it; an idle one will read the newest on entry.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& w : workers_) {
    while (w->in_run.load(std::memory_order_seq_cst) && w->seen_gen.load(std::memory_order_acquire) < gen) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("worker " + std::to_string(w->id) + " did not take the new configuration in 5 s");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // Views older than the live one are no longer referenced.
  views_.erase(views_.begin(), views_.end() - 1);
}

uint64_t Datapath::counter(uint16_t port, int which) const {
  uint64_t sum = 0;
  for (auto& w : workers_) sum += w->port_counters[port][which].load(std::memory_order_relaxed);
  return sum;
}

uint64_t Datapath::workerCounter(uint32_t worker, int which) const {
  return workers_.at(worker)->counters[which].load(std::memory_order_relaxed);
}

}  // namespace vswitchd
