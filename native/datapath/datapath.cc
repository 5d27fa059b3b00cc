#include "datapath/datapath.h"

#include <net/if.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "datapath/hot_loop.h"
#include "datapath/worker.h"

namespace vswitchd {

namespace {

std::mutex g_current_mu;
std::shared_ptr<Datapath> g_current;

}  // namespace

static uint64_t nowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

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

namespace {
// The tc program is built beside the XDP program (bpf/).
std::string siblingObject(const std::string& path, const char* name) {
  const size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + name;
}
}  // namespace

Datapath::Datapath(const Options& opts) : opts_(opts) {
  if (opts.workers < 1 || opts.workers > kMaxWorkers)
    throw std::runtime_error("workers must be in 1.." + std::to_string(kMaxWorkers));
  umem_ = std::make_unique<Umem>(opts.workers * opts.frames_per_worker, opts.anchor_device, opts.adopt_umem_fd,
                                 opts.adopt_umem_fd >= 0 ? opts.adopt_anchor_fd : -1);
  for (const auto& [name, fd] : opts.adopt_xsks) {
    if (!umem_->adopted()) {
      close(fd);
      continue;
    }
    try {
      adopted_xsks_.emplace_back(name, std::make_unique<XskSocket>(fd, RingSizes{}));
    } catch (const std::exception& e) {
      xsk_adopt_failures_.push_back(name + ": " + e.what());
    }
  }
  fdb_ = std::make_unique<FdbTable>(opts.fdb_capacity, opts.adopt_fdb_fd);
  fast_ = std::make_unique<FastPath>(opts.bpf_object, opts.tc_object.empty() ? siblingObject(opts.bpf_object, "tc_fastpath.bpf.o") : opts.tc_object,
                                     fdb_->mapFd(), opts.fdb_capacity, opts.fast_path, opts.adopt_maps);
  hold_fast_ports_ = opts.adopt_maps.ports >= 0;
  fast_->tickClock(monotonicMs());
  for (uint32_t w = 0; w < opts.workers; w++) {
    auto worker = std::make_unique<Worker>();
    worker->id = w;
    worker->first_frame = static_cast<uint64_t>(w) * opts.frames_per_worker;
    worker->frame_count = opts.frames_per_worker;
    worker->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (worker->event_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    worker->pool.reserve(opts.frames_per_worker);
    if (!umem_->adopted())
      for (uint64_t f = 0; f < opts.frames_per_worker; f++)
        worker->pool.push_back((worker->first_frame + f) * kFrameSize);
    for (uint32_t src = 0; src < opts.workers; src++) {
      // A worker can never have more frames out than it owns, so return rings never overflow.
      worker->handoff_in.push_back(src == w ? nullptr : std::make_unique<SpscRing<Handoff>>(kHandoffRingSize));
      worker->return_in.push_back(src == w ? nullptr : std::make_unique<SpscRing<uint64_t>>(opts.frames_per_worker));
    }
    workers_.push_back(std::move(worker));
  }
  if (umem_->adopted()) adoptFrames();
  commit();
}

void Datapath::adoptFrames() {
  const uint64_t frames = umem_->frames();
  // Each frame's state as the rings say; the kernel runs on while they are read, so a
  // frame it moves meanwhile may be seen twice: from the fill ring to the rx ring (both
  // say "not free": harmless), or from TX to completion (then it is free).
  enum : uint8_t { kFree = 0, kFilled, kSent, kReceived };
  std::vector<uint8_t> state(frames, kFree);
  auto frameOf = [](uint64_t addr) { return chunkOf(addr) / kFrameSize; };
  auto load = [](const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); };
  // The kernel's first: frames in the fill ring, on the TX ring, and sent but not yet
  // completed. Copy mode reserves a completion slot per TX descriptor it takes and
  // publishes it when the skb is freed, so tx_consumer - comp_producer (less refused
  // descriptors) frames are in flight; their descriptors are the last ones taken.
  // Frames sent but not completed are found by their TX descriptors, whose slots the old
  // daemon may have filled again (a nearly full TX ring): let the kernel complete what it
  // took first (copy mode sends only when kicked, so nothing new starts meanwhile).
  const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  for (auto& [name, x] : adopted_xsks_)
    while (load(x->tx.consumer) - load(x->comp.producer) - static_cast<uint32_t>(x->statistics().tx_invalid_descs) != 0 &&
           std::chrono::steady_clock::now() < settle)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  for (auto& [name, x] : adopted_xsks_) {
    for (uint32_t i = load(x->fill.consumer), p = load(x->fill.producer); i != p; i++) {
      const uint64_t f = frameOf(*xsk_ring_prod__fill_addr(&x->fill, i));
      if (f < frames) state[f] = kFilled;
    }
    const uint32_t tc = load(x->tx.consumer), tp = load(x->tx.producer);
    const uint32_t in_flight = tc - load(x->comp.producer) - static_cast<uint32_t>(x->statistics().tx_invalid_descs);
    for (uint32_t i = in_flight <= x->tx.size ? tc - in_flight : tc; i != tp; i++) {
      const uint64_t f = frameOf(xsk_ring_prod__tx_desc(&x->tx, i)->addr);
      if (f < frames) state[f] = kSent;
    }
  }
  // Received frames wait for the hot loop, unless one of them is also being sent: a
  // daemon killed in the middle of a burst had sent it on without releasing it; that
  // socket's received frames are then let go unprocessed (reported by xskAdoptFailures).
  for (auto& [name, x] : adopted_xsks_) {
    const uint32_t rc = load(x->rx.consumer), rp = load(x->rx.producer);
    bool clash = false;
    for (uint32_t i = rc; i != rp && !clash; i++) {
      const uint64_t f = frameOf(xsk_ring_cons__rx_desc(&x->rx, i)->addr);
      clash = f >= frames || state[f] == kSent || state[f] == kReceived;
    }
    if (clash) {
      __atomic_store_n(x->rx.consumer, rp, __ATOMIC_RELEASE);
      x->rx.cached_cons = x->rx.cached_prod = rp;
      xsk_adopt_failures_.push_back(name + ": " + std::to_string(rp - rc) + " received frames let go (the previous daemon died mid-burst)");
    } else {
      for (uint32_t i = rc; i != rp; i++) state[frameOf(xsk_ring_cons__rx_desc(&x->rx, i)->addr)] = kReceived;
    }
    // Completed frames are free: the completion ring is emptied here.
    const uint32_t cc = load(x->comp.consumer), cp = load(x->comp.producer);
    for (uint32_t i = cc; i != cp; i++) {
      const uint64_t f = frameOf(*xsk_ring_cons__comp_addr(&x->comp, i));
      if (f < frames && state[f] == kSent) state[f] = kFree;
    }
    __atomic_store_n(x->comp.consumer, cp, __ATOMIC_RELEASE);
    x->comp.cached_cons = x->comp.cached_prod = cp;
  }
  for (auto& w : workers_)
    for (uint64_t f = w->first_frame; f < w->first_frame + w->frame_count; f++)
      if (state[f] == kFree) w->pool.push_back(f * kFrameSize);
}

std::unique_ptr<XskSocket> Datapath::takeAdoptedXsk(const std::string& name) {
  if (name.empty()) return nullptr;
  for (auto it = adopted_xsks_.begin(); it != adopted_xsks_.end(); ++it) {
    if (it->first != name) continue;
    auto x = std::move(it->second);
    adopted_xsks_.erase(it);
    return x;
  }
  return nullptr;
}

std::vector<int> Datapath::deviceXskFds(uint16_t index) const {
  std::vector<int> fds;
  if (index >= kMaxPorts) return fds;
  for (const auto& q : ports_[index].queues)
    if (q->xsk && q->tx) fds.push_back(q->xsk->fd());
  return fds;
}

int Datapath::puntXskFd(uint16_t index) const {
  if (index >= kMaxPorts) return -1;
  for (const auto& q : ports_[index].queues)
    if (q->xsk && !q->tx) return q->xsk->fd();
  return -1;
}

void Datapath::tickFastClock(uint64_t now) { fast_->tickClock(now); }

void Datapath::setLearnFull(uint16_t index, bool full) {
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  std::lock_guard<std::mutex> lock(control_mu_);
  learn_full_[index].store(full ? 1 : 0, std::memory_order_relaxed);
  fast_->setLearnFull(index, full);  // the tc and XDP programs refuse such frames before the hot loop
}

void Datapath::setPortPolicy(uint16_t index, const PortPolicy& policy) {
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  std::lock_guard<std::mutex> lock(control_mu_);
  fast_->writePolicy(index, policy);
}

void Datapath::setPortFast(uint16_t index, bool fast_in, bool fast_out, bool tc_out, bool fast_out_mb) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  fast_in_[index] = fast_in && opts_.fast_path;
  fast_out_[index] = fast_out && opts_.fast_path;
  tc_out_[index] = tc_out && opts_.fast_path;
  fast_out_mb_[index] = fast_out_mb && fast_out_[index];
}

// Called with the view being published: what XDP sees follows what the workers see
// (except while adopting a running datapath: see Options).
void Datapath::writeFastPorts(const View& v) {
  if (hold_fast_ports_) return;
  if (!written_) {
    written_ports_ = std::make_unique<FastPort[]>(kMaxPorts);
    written_tc_ = std::make_unique<TcPort[]>(kMaxPorts);
    written_ = std::make_unique<bool[]>(kMaxPorts);  // false: never written, write it
  }
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    const PortView& pv = v.ports[i];
    FastPort fp{};
    fp.active = pv.active;
    fp.trunk = pv.trunk;
    // A mirror's source or output: every frame from or to it takes the slow path, where
    // the hot loop makes the copies (and drops what an output sends).
    const bool fast = pv.active && !pv.mirror_slow;
    fp.fast_in = fast && fast_in_[i];
    fp.fast_out = fast && fast_out_[i];
    fp.fast_out_mb = fast && fast_out_mb_[i];
    fp.access_vlan = pv.access_vlan;
    fp.native_vlan = pv.native_vlan;
    std::memcpy(fp.allowed, pv.allowed, sizeof(fp.allowed));
    fp.bond = pv.bond;
    fp.leg_rx = pv.leg_rx;
    fp.is_bond = pv.is_bond;
    fp.bond_hash = pv.bond_hash;
    fp.learn_full = learn_full_[i].load(std::memory_order_relaxed);
    fp.mtu = pv.mtu;
    if (pv.is_bond) std::memcpy(fp.buckets, pv.buckets, sizeof(fp.buckets));
    else std::fill(std::begin(fp.buckets), std::end(fp.buckets), -1);
    const PortInfo& info = ports_[i];
    TcPort tp{};
    if (info.hook == "tc" || info.hook == "xdp") {
      tp.ifindex = static_cast<__u32>(info.ifindex);
      tp.punt_ifindex = static_cast<__u32>(info.punt_ifindex);
      tp.flags = (fast && tc_out_[i] ? VSW_TC_OUT : 0) | (info.peer_netns ? VSW_TC_PEER_NETNS : 0);
    }
    // Both are plain structs filled field by field from zero ({}), so bytes compare.
    if (written_[i] && !std::memcmp(&written_ports_[i], &fp, sizeof(fp)) && !std::memcmp(&written_tc_[i], &tp, sizeof(tp))) continue;
    fast_->writePort(static_cast<uint16_t>(i), fp);
    fast_->writeTcPort(static_cast<uint16_t>(i), tp);
    written_ports_[i] = fp;
    written_tc_[i] = tp;
    written_[i] = true;
  }
}

FastCounters Datapath::fastCounters(uint16_t port) const { return fast_->counters(port); }

void Datapath::resetPortIndex(uint16_t index) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts || !ports_[index].name.empty()) return;
  fast_->removePort(index);
  fast_->zeroCounters(index);
  // No worker counts for an index no View has a port at.
  for (auto& w : workers_)
    for (auto& c : w->port_counters[index]) c.store(0, std::memory_order_relaxed);
  xsk_base_[index] = XskStats{};
}

uint64_t Datapath::quiesceForRestart() {
  hold_fast_ports_ = true;  // the next daemon adopts the tables as they are
  parked_.store(true, std::memory_order_seq_cst);
  wakeAll();
  // Every worker out of run() (and kept out: see run): the rings and pools are this thread's now.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (auto& w : workers_)
    while (w->in_run.load(std::memory_order_seq_cst)) {
      if (std::chrono::steady_clock::now() > deadline) return 0;  // the rings are still whole at each burst's end
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  // The free frames go to the receiving sockets' fill rings (a few kept for the next
  // daemon's first floods): frames that arrive until it runs wait in the rings, as many
  // as were given (at 10 k frames/s a socket's default 1024 last 0.1 s; this doubles it).
  std::lock_guard<std::mutex> lock(control_mu_);
  uint64_t given = 0;
  for (auto& w : workers_) {
    // Frames other workers sent home (a frame received by one worker and sent by another
    // comes back through these rings) are free too.
    uint64_t addr;
    for (auto& ring : w->return_in)
      if (ring)
        while (ring->pop(&addr)) w->pool.push_back(addr);
    std::vector<Queue*> rx;
    for (auto& p : ports_)
      for (auto& q : p.queues)
        if (q->xsk && q->rx && q->owner == w->id) rx.push_back(q.get());
    const size_t keep = w->frame_count / 16;
    if (rx.empty() || w->pool.size() <= keep) continue;
    const uint32_t each = static_cast<uint32_t>((w->pool.size() - keep) / rx.size());
    for (Queue* q : rx) {
      uint32_t idx;
      // reserve() takes all or nothing: ask for what fits.
      const uint32_t n = xsk_ring_prod__reserve(&q->xsk->fill, std::min(each, xsk_prod_nb_free(&q->xsk->fill, each)), &idx);
      for (uint32_t i = 0; i < n; i++) {
        *xsk_ring_prod__fill_addr(&q->xsk->fill, idx + i) = w->pool.back();
        w->pool.pop_back();
      }
      if (n) xsk_ring_prod__submit(&q->xsk->fill, n);
      given += n;
    }
  }
  return given;
}

std::vector<std::string> Datapath::releaseFastPorts() {
  hold_fast_ports_ = false;
  View* v = live_.load(std::memory_order_seq_cst);
  if (v) writeFastPorts(*v);
  std::lock_guard<std::mutex> lock(control_mu_);
  std::vector<std::string> names;
  for (auto& [name, x] : adopted_xsks_) {
    returnFrames(x->closeAndHarvest());
    names.push_back(name);
  }
  adopted_xsks_.clear();
  if (!names.empty()) wakeAll();
  return names;
}

XskStats Datapath::xskStats(uint16_t port) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (port >= kMaxPorts) return {};
  XskStats sum = xsk_base_[port];
  for (const auto& q : ports_[port].queues)
    if (q->xsk) sum += q->xsk->statistics();
  return sum;
}

XskStats Datapath::xskLiveStats(uint16_t port) {
  std::lock_guard<std::mutex> lock(control_mu_);
  XskStats sum;
  if (port >= kMaxPorts) return sum;
  for (const auto& q : ports_[port].queues)
    if (q->xsk) sum += q->xsk->statistics();
  return sum;
}

Datapath::~Datapath() {
  for (int i = 0; i < kMaxPorts; i++) {
    if (ports_[i].name.empty()) continue;
    fast_->detachTc(ports_[i].tc);
    fast_->detach(ports_[i].xdp);
    for (auto& q : ports_[i].queues)
      if (q->xsk) q->xsk->closeAndHarvest();
  }
  for (auto& w : workers_)
    if (w->event_fd >= 0) close(w->event_fd);
}

Datapath::PortResult Datapath::addPort(uint16_t index, const std::string& name, int queues,
                                       const std::string& xdp_mode, int tap_fd, const PortHook& hook) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  PortInfo& p = ports_[index];
  PortResult result;
  if (p.early && p.name == name) {
    // The early start served this port already (a restart): the daemon takes it as it runs.
    p.early = false;
    for (auto& q : p.queues)
      if (q->tx) result.owners.push_back(q->owner);
    result.xdp_mode = p.xdp_mode;
    result.hook = p.hook;
    return result;
  }
  if (!p.name.empty()) throw std::runtime_error("port index " + std::to_string(index) + " is in use by " + p.name);
  const uint32_t nworkers = workers();
  PortInfo fresh;
  fresh.name = name;
  auto newQueue = [&](uint32_t queue_id, uint16_t owner) {
    auto q = std::make_unique<Queue>();
    q->kind = Queue::kXsk;
    q->port = index;
    q->queue_id = queue_id;
    q->owner = owner;
    return q;
  };
  // The socket a restart handed over for it, as it is (frames may wait in its rings), or a new one.
  auto socketFor = [&](Queue& q, const std::string& adopt_name, int ifindex, uint32_t queue) {
    q.xsk = takeAdoptedXsk(adopt_name);
    if (q.xsk) {
      q.rx_outstanding = *q.xsk->fill.producer - *q.xsk->rx.consumer;  // filled, not yet taken by the hot loop
      q.tx_pending = true;  // what the previous daemon put on the TX ring may not have been kicked
    } else {
      q.xsk = std::make_unique<XskSocket>(*umem_, ifindex, queue, RingSizes{});
    }
    q.fd = q.xsk->fd();
  };
  auto adoptName = [&](int qi) { return qi < static_cast<int>(hook.adopt_xsks.size()) ? hook.adopt_xsks[qi] : std::string(); };
  if (tap_fd >= 0) {
    // The internal port: the host stack writes to this tap and we read its fd directly.
    fresh.tap_fd_port = true;
    fresh.tap_fd = tap_fd;
    fresh.hook = "tap-fd";
    fresh.xdp_mode = "none";
    auto q = newQueue(0, static_cast<uint16_t>(index % nworkers));
    q->kind = Queue::kTapFd;
    q->fd = tap_fd;
    fresh.queues.push_back(std::move(q));
  } else {
    if (queues < 1 || queues > kMaxQueuesPerPort)
      throw std::runtime_error(name + ": queue count must be in 1.." + std::to_string(kMaxQueuesPerPort));
    fresh.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    if (fresh.ifindex == 0) throw std::runtime_error(name + ": no such device");
    fresh.peer_netns = hook.peer_netns;
    try {
      if (hook.tc) {
        fresh.hook = "tc";
        fresh.punt_ifindex = static_cast<int>(if_nametoindex(hook.punt_near.c_str()));
        const int far = static_cast<int>(if_nametoindex(hook.punt_far.c_str()));
        if (!fresh.punt_ifindex || !far) throw std::runtime_error(name + ": its punt pair " + hook.punt_near + "/" + hook.punt_far + " does not exist");
        // The far end's program takes no fast path (no port index): it only
        // hands the punted frames to the socket, which belongs to this port.
        fresh.xdp = fast_->attach(VSW_MAX_PORTS, hook.punt_far, far, xdp_mode, hook.adopt_punt_link_fd, hook.keep_programs);
        fresh.xdp_mode = fresh.xdp.mode;
        // Transmit sockets on the device first: sendFrame and the View pick the first.
        for (int qi = 0; qi < queues; qi++) {
          auto q = newQueue(static_cast<uint32_t>(qi), static_cast<uint16_t>((index + qi) % nworkers));
          q->rx = false;
          socketFor(*q, adoptName(qi), fresh.ifindex, qi);
          fresh.queues.push_back(std::move(q));
        }
        auto punt = newQueue(0, static_cast<uint16_t>(index % nworkers));
        punt->tx = false;
        socketFor(*punt, hook.adopt_punt_xsk, far, 0);
        fast_->bindQueue(fresh.xdp, 0, punt->fd);
        fresh.queues.push_back(std::move(punt));
        fresh.tc = fast_->attachTc(index, name, fresh.ifindex, hook.adopt_link_fd, hook.keep_programs);
      } else {
        fresh.hook = "xdp";
        fresh.xdp = fast_->attach(index, name, fresh.ifindex, xdp_mode, hook.adopt_link_fd, hook.keep_programs);
        fresh.xdp_mode = fresh.xdp.mode;
        for (int qi = 0; qi < queues; qi++) {
          auto q = newQueue(static_cast<uint32_t>(qi), static_cast<uint16_t>((index + qi) % nworkers));  // spread queues and single-queue ports
          socketFor(*q, adoptName(qi), fresh.ifindex, qi);
          fast_->bindQueue(fresh.xdp, static_cast<uint32_t>(qi), q->fd);
          fresh.queues.push_back(std::move(q));
        }
      }
      fast_->setDevice(index, name, fresh.ifindex);
    } catch (...) {
      fast_->detachTc(fresh.tc);
      fast_->detach(fresh.xdp);
      for (auto& q : fresh.queues)
        if (q->xsk) returnFrames(q->xsk->closeAndHarvest());  // an adopted socket's frames
      throw;
    }
  }
  fresh.early = hook.early;
  p = std::move(fresh);
  PortView& pv = staged_.ports[index];
  pv = PortView{};
  for (auto& q : p.queues) {
    if (q->tx && !pv.tx_queue[q->owner]) pv.tx_queue[q->owner] = q.get();
    if (q->tx && pv.tx_worker < 0) pv.tx_worker = static_cast<int16_t>(q->owner);
    staged_.worker_queues[q->owner].push_back(q.get());
    if (q->tx) result.owners.push_back(q->owner);  // per device queue, as port list shows them
  }
  result.xdp_mode = p.xdp_mode;
  result.hook = p.hook;
  return result;
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
  fast_in_[index] = fast_out_[index] = tc_out_[index] = fast_out_mb_[index] = 0;
  commit();  // from here on no worker and no fast-path program uses the port
  lock.lock();
  fast_->removePort(index);
  if (written_) written_[index] = false;  // removePort wrote its tc entry
  fast_->detachTc(p.tc);
  fast_->detach(p.xdp);
  releaseQueues(index, p.queues);
  if (p.tap_fd >= 0) close(p.tap_fd);
  ports_[index] = PortInfo{};
}

void Datapath::returnFrames(const std::vector<uint64_t>& addrs) {
  for (uint64_t addr : addrs) {
    const uint64_t frame = addr / kFrameSize;
    if (frame >= umem_->frames()) continue;
    Worker& owner = *workers_[frame / opts_.frames_per_worker];
    std::lock_guard<std::mutex> lock(owner.reclaim_mu);
    owner.reclaim.push_back(chunkOf(addr));
    owner.reclaim_pending.store(true, std::memory_order_release);
  }
}

void Datapath::releaseQueues(uint16_t port, std::vector<std::unique_ptr<Queue>>& queues) {
  for (auto& q : queues) {
    if (!q->xsk) continue;
    xsk_base_[port] += q->xsk->statistics();
    returnFrames(q->xsk->closeAndHarvest());
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
  if (buckets.size() != kBondBuckets) throw std::runtime_error("a bond needs " + std::to_string(kBondBuckets) + " buckets");
  PortView& pv = staged_.ports[bond];
  pv.bond_hash = hash;
  for (int i = 0; i < kBondBuckets; i++) pv.buckets[i] = buckets[i] >= 0 && buckets[i] < kMaxPorts ? buckets[i] : -1;
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
      if (v > 0 && v < kVidReserved) pv.allowed[v / 64] |= 1ull << (v % 64);
}

void Datapath::setPortActive(uint16_t index, bool active) {
  std::lock_guard<std::mutex> lock(control_mu_);
  staged_.ports[index].active = active && !ports_[index].name.empty();
}

void Datapath::setPortMtu(uint16_t index, uint32_t mtu) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (index >= kMaxPorts) throw std::runtime_error("port index out of range");
  staged_.ports[index].mtu = static_cast<uint16_t>(std::min<uint32_t>(mtu, 0xffff));
}

void Datapath::setFloodSet(uint16_t vlan, const std::vector<uint16_t>& ports) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (vlan == 0 || vlan >= kVidReserved) throw std::runtime_error("VLAN out of range: " + std::to_string(vlan));
  auto& words = staged_.flood[vlan];
  std::memset(words, 0, sizeof(words));
  for (uint16_t p : ports)
    if (p < kMaxPorts) words[p / 64] |= 1ull << (p % 64);
}

void Datapath::setMirrors(const std::vector<MirrorSpec>& mirrors) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (mirrors.size() > static_cast<size_t>(kMaxMirrors)) throw std::runtime_error("at most " + std::to_string(kMaxMirrors) + " mirrors");
  for (PortView& pv : staged_.ports) pv.mirror_out = pv.mirror_slow = 0, pv.mirror_in = pv.mirror_eg = 0;
  staged_.mirror_count = static_cast<int>(mirrors.size());
  staged_.mirror_any = 0;
  for (size_t m = 0; m < mirrors.size(); m++) {
    const MirrorSpec& spec = mirrors[m];
    staged_.mirrors[m] = MirrorView{};  // no VLAN selected: a free slot copies nothing
    if (!spec.used) continue;
    if (spec.out >= kMaxPorts) throw std::runtime_error("mirror output port out of range");
    MirrorView& mv = staged_.mirrors[m];
    mv = MirrorView{};
    mv.out = spec.out;
    if (spec.vlans.empty()) std::memset(mv.vlans, 0xff, sizeof(mv.vlans));
    for (uint16_t v : spec.vlans)
      if (v < kVlanIds) mv.vlans[v / 64] |= 1ull << (v % 64);
    const uint32_t bit = 1u << m;
    staged_.ports[spec.out].mirror_out = staged_.ports[spec.out].mirror_slow = 1;
    for (uint16_t p : spec.ingress)
      if (p < kMaxPorts) staged_.ports[p].mirror_in |= bit, staged_.ports[p].mirror_slow = 1;
    for (uint16_t p : spec.egress)
      if (p < kMaxPorts) staged_.ports[p].mirror_eg |= bit, staged_.ports[p].mirror_slow = 1;
    if (!spec.any_port) continue;
    staged_.mirror_any |= bit;
    // Every port carrying one of its VLANs is a source both ways.
    for (PortView& pv : staged_.ports)
      for (uint16_t v : spec.vlans)
        if (vsw_port_carries_vlan(&pv, v)) pv.mirror_slow = 1;
  }
}

uint64_t Datapath::mirrorCounter(int slot, int which) const {
  uint64_t sum = 0;
  if (slot < 0 || slot >= kMaxMirrors) return 0;
  for (auto& w : workers_) sum += w->mirror_counters[slot][which].load(std::memory_order_relaxed);
  return sum;
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
    next->mirror_count = staged_.mirror_count;
    next->mirror_any = staged_.mirror_any;
    std::memcpy(next->mirrors, staged_.mirrors, sizeof(staged_.mirrors));
    for (int w = 0; w < kMaxWorkers; w++) next->worker_queues[w] = staged_.worker_queues[w];
    for (int i = kMaxPorts - 1; i >= 0 && !next->flood_words; i--)
      if (!ports_[i].name.empty()) next->flood_words = i / 64 + 1;
    next->gen = next_gen_++;
  }
  const uint64_t gen = next->gen;
  writeFastPorts(*next);
  // seq_cst store, then seq_cst loads of in_run below: with run()'s seq_cst
  // store of in_run before its load of live_, at least one side sees the other
  // (see Datapath::run). A worker outside run() may keep a pointer to a View
  // freed below; it re-reads live_ on entry and compares generations.
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

// --- worker threads ---

RunResult Datapath::run(uint32_t worker, const int32_t* stop, uint32_t budget_ms) {
  Worker& w = *workers_.at(worker);
  w.in_run.store(true, std::memory_order_seq_cst);
  if (parked_.load(std::memory_order_seq_cst)) {
    // A restart is under way (quiesceForRestart): touch nothing until the process goes.
    w.in_run.store(false, std::memory_order_seq_cst);
    std::this_thread::sleep_for(std::chrono::milliseconds(budget_ms));
    return {};
  }
  HotLoop loop(w, umem_->area(), opts_.frames_per_worker, workers_, fdb_->view(), learn_full_, fast_->policies(),
               fast_->buckets());
  const uint64_t start = nowNs();
  const uint64_t deadline = start + static_cast<uint64_t>(budget_ms) * 1000000;
  uint64_t busy = 0;
  auto stopped = [stop] { return std::atomic_ref<const int32_t>(*stop).load(std::memory_order_acquire) != 0; };
  while (!stopped() && !parked_.load(std::memory_order_seq_cst)) {
    // The View handshake with commit(), which frees every View but the live one
    // once each worker inside run() has acknowledged the live one (seen_gen):
    //  - in_run (stored above) and live_ are both seq_cst, and commit() stores
    //    live_ before it loads in_run: either commit() sees this worker in run()
    //    and waits for its acknowledgement, or this load sees the new View.
    //    Weaker orders would let both miss each other and free a View in use.
    //  - w.view may point at a View freed while this worker was out of run(),
    //    and a new View may since have been allocated at the same address; the
    //    pointer alone cannot tell, so the generation decides (v->gen is read
    //    from the live View, never through the stale pointer).
    View* v = live_.load(std::memory_order_seq_cst);
    if (v != w.view || v->gen != w.seen_gen.load(std::memory_order_relaxed)) loop.adoptView(v);
    const uint64_t t0 = nowNs();
    const uint64_t now_ms = monotonicMs();
    tickFastClock(now_ms);
    const uint32_t work = loop.iterate(now_ms);
    bump(w.counters[kLoops]);
    const uint64_t t1 = nowNs();
    if (work) busy += t1 - t0;
    if (!w.learned.empty() || !w.punted.empty() || t1 >= deadline) break;
    if (work || loop.txBacklog()) continue;
    // Idle: sleep until a socket has frames, a peer hands us work, or the budget ends.
    w.sleeping.store(true, std::memory_order_seq_cst);
    if (!peerWorkPending(w) && live_.load(std::memory_order_seq_cst) == w.view) {
      const int timeout = static_cast<int>((deadline - t1) / 1000000) + 1;
      const int ready = poll(w.pfds.data(), w.pfds.size(), timeout);
      if (ready > 0) {
        bump(w.counters[kWakeups]);
        uint64_t drained;
        if (w.pfds.back().revents & POLLIN) (void)!read(w.event_fd, &drained, sizeof(drained));
      }
    }
    w.sleeping.store(false, std::memory_order_relaxed);
  }
  bump(w.counters[kBusyNs], busy);
  bump(w.counters[kTotalNs], nowNs() - start);
  w.in_run.store(false, std::memory_order_seq_cst);
  RunResult out;
  out.learned.swap(w.learned);
  out.punted.swap(w.punted);
  return out;
}

}  // namespace vswitchd
