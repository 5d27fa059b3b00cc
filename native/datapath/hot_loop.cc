// The per-worker hot loop: receive a burst on each owned queue, classify each
// frame into a VLAN, learn its source, look up <vlan, dst mac>, and transmit by
// passing the descriptor (no copy) to the egress queue: a local socket's TX
// ring, or another worker's hand-off ring when that worker owns the egress
// port. Only a flood copies, once per extra egress port. A jumbo frame spans
// several chunks (multi-buffer AF_XDP): it is parsed in its first chunk and
// carried as a list of chunks, each sent as one descriptor.
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "datapath/hot_loop.h"

#include "datapath/frame_rules.h"
#include "datapath/worker.h"

#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)  // linux/if_xdp.h of 6.6: more descriptors of this frame follow
#endif

namespace vswitchd {

namespace {

// A chunk of a frame that spans several (after the first).
struct Chunk {
  uint64_t addr;
  uint32_t len;
};

// A frame in the UMEM and what we know of it. Most frames are one chunk
// (more == 0, head == len); a jumbo frame's headers are all in its first chunk.
struct Frame {
  uint64_t addr;   // start of data (of the first chunk)
  uint32_t len;    // the whole frame
  bool tagged;
  uint32_t head;   // bytes in the first chunk
  uint8_t more = 0;           // chunks after the first...
  const Chunk* rest = nullptr;  // ...and where they are (valid while the frame is being forwarded)
};

}  // namespace

class HotLoop::Impl {
 public:
  Impl(Worker& w, uint8_t* umem, uint32_t frames_per_worker, std::vector<std::unique_ptr<Worker>>& all, FdbView fdb,
       const std::atomic<uint8_t>* learn_full, const PortPolicy* policies, PortBuckets* buckets)
      : w_(w), umem_(umem), frames_per_worker_(frames_per_worker), all_(all), fdb_(fdb), learn_full_(learn_full),
        policies_(policies), buckets_(buckets) {}

  void adoptView(View* v) {
    w_.view = v;
    w_.pfds.clear();
    const auto& queues = v->worker_queues[w_.id];
    // Only sockets frames arrive on get fill frames (a tc port's device sockets transmit only).
    const uint32_t xsks = static_cast<uint32_t>(std::count_if(queues.begin(), queues.end(), [](const Queue* q) { return q->rx; }));
    for (Queue* q : queues) {
      w_.pfds.push_back(pollfd{q->fd, POLLIN, 0});
      q->fill_target = q->rx && xsks ? std::clamp<uint32_t>(frames_per_worker_ / (2 * xsks), 1, kFillTargetMax) : 0;
    }
    w_.pfds.push_back(pollfd{w_.event_fd, POLLIN, 0});
    w_.seen_gen.store(v->gen, std::memory_order_release);
  }

  // One pass over everything this worker owns; returns frames handled.
  uint32_t iterate(uint64_t now_ms) {
    now_ms_ = now_ms;
    uint32_t work = reclaimFrames();
    const auto& queues = w_.view->worker_queues[w_.id];
    for (Queue* q : queues) {
      if (q->kind == Queue::kXsk) {
        work += complete(q);
        if (q->rx) {
          refill(q);
          work += receiveXsk(q);
        }
      } else {
        work += receiveTap(q);
      }
    }
    work += drainHandoffs();
    if (w_.inject_pending.load(std::memory_order_acquire)) work += drainInjected();
    for (Queue* q : queues)
      if (q->tx_pending) kick(q);
    wakePeers();
    return work;
  }

  bool txBacklog() const {
    for (Queue* q : w_.view->worker_queues[w_.id])
      if (q->tx_pending) return true;
    return false;
  }

 private:
  uint8_t* data(uint64_t addr) { return umem_ + addr; }

  void freeFrame(uint64_t addr) {
    const uint64_t chunk = chunkOf(addr);
    const uint64_t owner = chunk / kFrameSize / frames_per_worker_;
    if (owner == w_.id) {
      w_.pool.push_back(chunk);
    } else {
      all_[owner]->return_in[w_.id]->push(chunk);
      w_.wake_peer[owner] = true;
    }
  }

  // Every chunk of a frame goes back to its owner.
  void release(const Frame& f) {
    freeFrame(f.addr);
    for (uint32_t i = 0; i < f.more; i++) freeFrame(f.rest[i].addr);
  }

  uint32_t reclaimFrames() {
    uint32_t n = 0;
    uint64_t addr;
    for (auto& ring : w_.return_in)
      if (ring)
        while (ring->pop(&addr)) w_.pool.push_back(addr), n++;
    if (w_.reclaim_pending.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(w_.reclaim_mu);
      for (uint64_t a : w_.reclaim) w_.pool.push_back(a);
      w_.reclaim.clear();
      w_.reclaim_pending.store(false, std::memory_order_relaxed);
    }
    return n;
  }

  uint32_t complete(Queue* q) {
    uint32_t idx;
    const uint32_t n = xsk_ring_cons__peek(&q->xsk->comp, kBurst * 4, &idx);
    for (uint32_t i = 0; i < n; i++) freeFrame(*xsk_ring_cons__comp_addr(&q->xsk->comp, idx + i));
    if (n) xsk_ring_cons__release(&q->xsk->comp, n);
    return n;
  }

  void refill(Queue* q) {
    uint32_t& outstanding = q->rx_outstanding;
    if (outstanding >= q->fill_target) return;
    uint32_t want = std::min<uint32_t>(q->fill_target - outstanding, static_cast<uint32_t>(w_.pool.size()));
    uint32_t idx;
    want = xsk_ring_prod__reserve(&q->xsk->fill, want, &idx);
    for (uint32_t i = 0; i < want; i++) {
      *xsk_ring_prod__fill_addr(&q->xsk->fill, idx + i) = w_.pool.back();
      w_.pool.pop_back();
    }
    if (!want) return;
    xsk_ring_prod__submit(&q->xsk->fill, want);
    outstanding += want;
    if (xsk_ring_prod__needs_wakeup(&q->xsk->fill)) recvfrom(q->fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
  }

  uint32_t receiveXsk(Queue* q) {
    uint32_t idx;
    const uint32_t n = xsk_ring_cons__peek(&q->xsk->rx, kBurst, &idx);
    if (!n) return 0;
    Frame frames[kBurst];
    Chunk rest[kBurst];  // the later chunks of multi-chunk frames
    uint32_t nframes = 0, nrest = 0, used = 0;
    while (used < n) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&q->xsk->rx, idx + used);
      Frame& f = frames[nframes];
      f = Frame{xsk_umem__add_offset_to_addr(d->addr), d->len, false, d->len};
      if (!(d->options & XDP_PKT_CONTD)) {
        nframes++;
        used++;
        continue;
      }
      // A frame of several descriptors: all of them, or wait for the next pass.
      uint32_t last = used + 1;
      while (last < n && (xsk_ring_cons__rx_desc(&q->xsk->rx, idx + last)->options & XDP_PKT_CONTD)) last++;
      if (last == n) {
        if (used > 0) break;  // its end is past this burst: the next pass takes it whole
        // Longer than a burst (no port MTU we carry comes near): drop what we have.
        for (uint32_t i = 0; i < n; i++) freeFrame(xsk_ring_cons__rx_desc(&q->xsk->rx, idx + i)->addr);
        bump(w_.port_counters[q->port][kDropBase + static_cast<int>(kDropTooBig)]);
        used = n;
        break;
      }
      f.rest = &rest[nrest];
      for (uint32_t i = used + 1; i <= last; i++) {
        const xdp_desc* c = xsk_ring_cons__rx_desc(&q->xsk->rx, idx + i);
        rest[nrest++] = Chunk{xsk_umem__add_offset_to_addr(c->addr), c->len};
        f.len += c->len;
      }
      f.more = static_cast<uint8_t>(last - used);
      nframes++;
      used = last + 1;
    }
    if (used < n) xsk_ring_cons__cancel(&q->xsk->rx, n - used);
    if (!used) return 0;
    xsk_ring_cons__release(&q->xsk->rx, used);
    q->rx_outstanding -= used;
    if (nframes) countBatch(nframes);
    for (uint32_t i = 0; i < nframes; i++) process(q->port, frames[i]);
    return used;
  }

  // The internal port: one readv() per frame into as many chunks as a jumbo
  // frame needs; the chunks it did not fill stay in the pool.
  uint32_t receiveTap(Queue* q) {
    uint32_t n = 0;
    while (n < kBurst && w_.pool.size() >= kMaxChunks) {
      iovec iov[kMaxChunks];
      const size_t top = w_.pool.size() - 1;
      for (int i = 0; i < kMaxChunks; i++) iov[i] = iovec{data(w_.pool[top - i] + kFrameHeadroom), kChunkData};
      const ssize_t got = readv(q->fd, iov, kMaxChunks);
      if (got <= 0) break;  // EAGAIN: nothing more; errors: the port is going away
      const uint32_t len = static_cast<uint32_t>(got);
      const uint32_t chunks = (len + kChunkData - 1) / kChunkData;
      Chunk rest[kMaxChunks];
      Frame f{w_.pool[top] + kFrameHeadroom, len, false, std::min(len, kChunkData)};
      for (uint32_t i = 1; i < chunks; i++)
        rest[i - 1] = Chunk{w_.pool[top - i] + kFrameHeadroom, std::min(len - i * kChunkData, kChunkData)};
      f.more = static_cast<uint8_t>(chunks - 1);
      f.rest = rest;
      w_.pool.resize(w_.pool.size() - chunks);
      n++;
      process(q->port, f, true);
    }
    if (n) countBatch(n);
    return n;
  }

  void countBatch(uint32_t n) {
    bump(w_.counters[kRxBatches]);
    bump(w_.counters[kRxFrames], n);
  }

  void drop(uint16_t port, DropReason why, const Frame& f) {
    bump(w_.port_counters[port][kDropBase + static_cast<int>(why)]);
    release(f);
  }
  DropReason dropped(uint16_t port, DropReason why, const Frame& f) {
    drop(port, why, f);
    return why;
  }

  // Forwarding decision for one received frame. unguarded: no tc or XDP program saw it
  // (the internal port's tap): the port policy's buckets are applied here.
  void process(uint16_t in, Frame f, bool unguarded = false) {  // in: the port it arrived on (a leg until resolved to its bond)
    auto& ctr = w_.port_counters[in];
    bump(ctr[kRxPackets]);
    bump(ctr[kRxBytes], f.len);
    // A mirror's output only receives copies: whatever it sends goes nowhere.
    if (w_.view->ports[in].mirror_out) return drop(in, kDropMirrorOutput, f);
    const uint8_t* eth = data(f.addr);
    // The headers are all in the first chunk (f.head bytes); the length checks take the whole frame.
    const FrameClass c = classifyFrame(w_.view->ports, in, eth, f.len, f.head, kMaxJumboLen);
    if (c.punt) {
      w_.punted.push_back(PuntRecord{in, std::vector<uint8_t>(eth, eth + f.head)});
      return release(f);
    }
    if (c.drop != kDropCount) return drop(c.in, c.drop, f);
    in = c.in;
    f.tagged = c.tag.tagged;
    const uint8_t pcp = c.tag.pcp;
    const uint16_t vlan = c.vlan;
    const uint8_t* dst = eth;
    const uint8_t* src = eth + 6;
    if (const PortPolicy* pol = &policies_[in]; std::atomic_ref<const __u32>(pol->flags).load(std::memory_order_acquire)) {
      if (DropReason why = policyVerdict(*pol, in, eth, f, vlan, unguarded); why != kDropCount) return drop(in, why, f);
    }
    // Mirrors selecting the frame as it entered (copied whatever happens to it next; a frame
    // its port's policy refused is not copied, as the tc and XDP programs drop it before
    // the slow path).
    const uint32_t mirrored_in = w_.view->mirror_count ? w_.view->ports[in].mirror_in | w_.view->mirror_any : 0;
    if (!learn(vlan, src, in)) {
      mirror(mirrored_in, f, vlan, pcp);
      return drop(in, kDropMacLimit, f);
    }

    FdbHit hit;
    if (!isMulticast(dst) && fdb_.lookup(vlan, dst, &hit)) {
      if (hit.port == in) {
        mirror(mirrored_in, f, vlan, pcp);
        return drop(in, kDropSamePort, f);
      }
      if (hit.port < kMaxPorts && carriesVlan(w_.view->ports[hit.port], vlan)) {
        mirror(mirrored_in | w_.view->ports[hit.port].mirror_eg, f, vlan, pcp);
        emit(hit.port, f, vlan, pcp, false);
        return;
      }
      // Learned on a port that no longer carries the VLAN: flood as unknown.
    }
    flood(in, f, vlan, pcp, mirrored_in);
  }

  // One copy of the frame for each mirror in `mirrors` (a bitmask of View::mirrors) that
  // selects its VLAN, to the mirror's output; made before the frame itself is sent (its
  // tag may change in place). Each selected frame is copied once per mirror, however many
  // of the mirror's ports it enters and leaves by.
  void mirror(uint32_t mirrors, const Frame& f, uint16_t vlan, uint8_t pcp) {
    while (mirrors) {
      const int m = __builtin_ctz(mirrors);
      mirrors &= mirrors - 1;
      const MirrorView& mv = w_.view->mirrors[m];
      if (!((mv.vlans[vlan / 64] >> (vlan % 64)) & 1)) continue;
      auto& mc = w_.mirror_counters[m];
      Frame copy;
      Chunk rest[kMaxChunks];
      if (!copyFrame(f, &copy, rest)) {
        bump(w_.port_counters[mv.out][kDropBase + static_cast<int>(kDropNoBuffer)]);
        bump(mc[kMirrorLostBase + static_cast<int>(kDropNoBuffer)]);
        continue;
      }
      const bool tag = egressTagged(w_.view->ports[mv.out], vlan);
      const uint32_t len = f.len + (tag && !f.tagged ? 4 : 0) - (!tag && f.tagged ? 4 : 0);
      const DropReason lost = emit(mv.out, copy, vlan, pcp, false);
      if (lost != kDropCount) {
        bump(mc[kMirrorLostBase + static_cast<int>(lost)]);
        continue;
      }
      bump(mc[kMirrorFrames]);
      bump(mc[kMirrorBytes], len);
    }
  }

  // A copy of f in free chunks (rest: room for its later chunks); false: not enough free frames.
  bool copyFrame(const Frame& f, Frame* copy, Chunk* rest) {
    if (w_.pool.size() < 1u + f.more) return false;
    *copy = Frame{takeChunk(), f.len, f.tagged, f.head};
    std::memcpy(data(copy->addr), data(f.addr), f.head);
    for (uint32_t c = 0; c < f.more; c++) {
      rest[c] = Chunk{takeChunk(), f.rest[c].len};
      std::memcpy(data(rest[c].addr), data(f.rest[c].addr), f.rest[c].len);
    }
    copy->more = f.more;
    copy->rest = rest;
    return true;
  }

  // The port's policy (bpf/include/vswitchd_shared.h): the source rules for every frame
  // (the port's program applied them already to the frames it could read; this catches
  // those it passed up unread, such as a second VLAN tag); storm control for frames no
  // program saw (the internal port's: a program counted the others already); the policer
  // for every frame that reaches the hot loop (programs charge only what they forward).
  DropReason policyVerdict(const PortPolicy& pol, uint16_t in, const uint8_t* eth, const Frame& f, uint16_t vlan,
                           bool unguarded) {
    int why = vsw_source_verdict(&pol, eth, eth + f.head);
    if (why == VSW_POLICY_LEARN) {
      // Learning, and this MAC is not admitted yet: the control plane admits it (or not,
      // when another took the last place); the frame goes nowhere before that.
      reportLearn(vlan, eth + 6, in);
      return kDropMacLearning;
    }
    const bool storm = unguarded && (pol.flags & VSW_POL_STORM);
    if (why != VSW_POLICY_OK || !(storm || (pol.flags & VSW_POL_POLICE))) return policyDrop(why);
    if (storm) {
      int cls = vsw_storm_class(eth);
      FdbHit hit;
      if (cls == VSW_STORM_NONE && pol.storm_pps[VSW_STORM_UNKNOWN_UNICAST] && !fdb_.lookup(vlan, eth, &hit))
        cls = VSW_STORM_UNKNOWN_UNICAST;
      if (cls != VSW_STORM_NONE) why = vsw_storm_verdict(&pol, &buckets_[in], monotonicNs(), 1, cls);
    }
    // The policer: this worker's credit first (as each CPU's in the programs), the clock
    // and the shared bucket only when it runs out.
    const __u64 rate = pol.police_rate, burst = pol.police_burst;
    if (why == VSW_POLICY_OK && rate && !vsw_credit_spend(&credit_[in], rate, burst, f.len) &&
        !vsw_credit_take(&credit_[in], &buckets_[in].police, monotonicNs(), rate, burst, f.len))
      why = VSW_POLICY_POLICED;
    return policyDrop(why);
  }

  static uint64_t monotonicNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns's clock
    return static_cast<uint64_t>(ts.tv_sec) * VSW_NS_PER_S + static_cast<uint64_t>(ts.tv_nsec);
  }

  static DropReason policyDrop(int why) {
    return why == VSW_POLICY_OK ? kDropCount : static_cast<DropReason>(kDropSpoofedMac + why - 1);
  }

  // False: the source is new (or moves) here and the port is at its MAC limit,
  // which the control plane would refuse: the frame is dropped, not reported.
  // Port security's "restrict" rather than the Linux bridge's forward-unlearned
  // (docs/ARCHITECTURE.md says why).
  bool learn(uint16_t vlan, const uint8_t* mac, uint16_t port) {
    FdbHit hit;
    const bool found = fdb_.lookup(vlan, mac, &hit);
    if (found && (hit.port == port || (hit.flags & kFdbStatic))) {
      if (hit.port == port) fdb_.touch(hit.index, now_ms_);
      return true;  // known here, or pinned by a static entry
    }
    if (vsw_mac_limit_refuses(learn_full_[port].load(std::memory_order_relaxed), found, hit.port, hit.flags, port)) return false;
    reportLearn(vlan, mac, port);
    return true;
  }

  // New or moved: tell the control plane, once a second at most per <vlan, mac, port>,
  // and again at once after the ports changed (a port that went down and came back
  // had its MACs flushed: a VM that answers once must be learned again now).
  void reportLearn(uint16_t vlan, const uint8_t* mac, uint16_t port) {
    const uint64_t key = fdbKey(vlan, mac);
    RecentLearn& r = w_.recent[fdbHash(key, kLearnCacheMask)];
    if (r.key == key && r.port == port && r.view_gen == w_.view->gen && now_ms_ - r.at_ms < kLearnRepeatMs) return;
    r = RecentLearn{key, port, now_ms_, w_.view->gen};
    LearnRecord rec{vlan, port, {}};
    std::memcpy(rec.mac, mac, 6);
    w_.learned.push_back(rec);
    bump(w_.counters[kLearnEvents]);
  }

  void flood(uint16_t in, Frame f, uint16_t vlan, uint8_t pcp, uint32_t mirrors) {
    const uint64_t* members = w_.view->flood[vlan];
    int targets[kMaxPorts];
    int n = 0;
    for (int word = 0; word < w_.view->flood_words; word++) {
      uint64_t bits = members[word];
      while (bits) {
        const int p = word * 64 + __builtin_ctzll(bits);
        bits &= bits - 1;
        if (p != in && carriesVlan(w_.view->ports[p], vlan)) {
          targets[n++] = p;
          mirrors |= w_.view->ports[p].mirror_eg;
        }
      }
    }
    if (mirrors) mirror(mirrors, f, vlan, pcp);
    if (n == 0) return release(f);
    for (int i = 0; i < n - 1; i++) {
      Frame copy;
      Chunk rest[kMaxChunks];
      if (!copyFrame(f, &copy, rest)) {
        bump(w_.port_counters[targets[i]][kDropBase + static_cast<int>(kDropNoBuffer)]);
        continue;
      }
      emit(static_cast<uint16_t>(targets[i]), copy, vlan, pcp, true);
    }
    emit(static_cast<uint16_t>(targets[n - 1]), f, vlan, pcp, true);
  }

  // A free chunk, at the offset frames we build start at.
  uint64_t takeChunk() {
    const uint64_t chunk = w_.pool.back();
    w_.pool.pop_back();
    return chunk + kFrameHeadroom;
  }

  // Give the frame the tag the egress port wants, in place (the UMEM headroom
  // takes a pushed tag), and queue it for transmission. Returns why it was
  // dropped (counted on the port), kDropCount when it was sent or handed over.
  DropReason emit(uint16_t out, Frame f, uint16_t vlan, uint8_t pcp, bool flooded) {
    const PortView& pv = w_.view->ports[out];
    const bool want = egressTagged(pv, vlan);
    if (f.tagged && !want) {
      std::memmove(data(f.addr + 4), data(f.addr), 12);
      f.addr += 4;
      f.len -= 4;
      f.head -= 4;
    } else if (!f.tagged && want) {
      if (f.addr - chunkOf(f.addr) < 4) {  // no headroom: move the first chunk to the usual offset
        const uint64_t moved = chunkOf(f.addr) + kFrameHeadroom;
        std::memmove(data(moved), data(f.addr), f.head);
        f.addr = moved;
      }
      f.addr -= 4;
      f.len += 4;
      f.head += 4;
      std::memmove(data(f.addr), data(f.addr + 4), 12);
    }
    if (want) {
      uint8_t* tag = data(f.addr + 12);
      const uint16_t tci = static_cast<uint16_t>(pcp << 13 | vlan);
      tag[0] = kEthVlan >> 8;
      tag[1] = kEthVlan & 0xff;
      tag[2] = static_cast<uint8_t>(tci >> 8);
      tag[3] = static_cast<uint8_t>(tci);
    }
    if (flooded) bump(w_.port_counters[out][kFloodPackets]);
    const PortView* tx = &pv;
    if (pv.is_bond) {
      const int16_t leg = pv.buckets[pv.bond_hash ? flowBucket(data(f.addr), f.head, pv.bond_hash == 2) : 0];
      if (leg < 0 || !w_.view->ports[leg].active) return dropped(out, kDropBondNoLeg, f);
      out = static_cast<uint16_t>(leg);
      tx = &w_.view->ports[leg];
    }
    if (vsw_exceeds_mtu(f.len, want, tx->mtu)) return dropped(out, kDropMtuExceeded, f);
    if (Queue* q = tx->tx_queue[w_.id]) return transmit(q, f);
    const int16_t owner = tx->tx_worker;
    if (owner < 0) return dropped(out, kDropPortDown, f);
    if (!handOff(*all_[owner]->handoff_in[w_.id], f, out)) return dropped(out, kDropHandoffFull, f);
    bump(w_.counters[kHandoffs]);
    w_.wake_peer[owner] = true;
    return kDropCount;
  }

  bool handOff(SpscRing<Handoff>& ring, const Frame& f, uint16_t out) {
    if (!f.more) return ring.push(Handoff{f.addr, f.len, out, 0});
    Handoff chunks[kMaxChunks];
    chunks[0] = Handoff{f.addr, f.head, out, f.more};
    for (uint32_t i = 0; i < f.more; i++) chunks[i + 1] = Handoff{f.rest[i].addr, f.rest[i].len, out, 0};
    return ring.pushAll(chunks, 1u + f.more);
  }

  DropReason transmit(Queue* q, const Frame& f) {
    auto& ctr = w_.port_counters[q->port];
    if (q->kind == Queue::kTapFd) {
      // The internal port: hand the frame to the host stack through the tap.
      iovec iov[kMaxChunks];
      iov[0] = iovec{data(f.addr), f.head};
      for (uint32_t i = 0; i < f.more; i++) iov[i + 1] = iovec{data(f.rest[i].addr), f.rest[i].len};
      if (writev(q->fd, iov, 1 + f.more) == static_cast<ssize_t>(f.len)) {
        bump(ctr[kTxPackets]);
        bump(ctr[kTxBytes], f.len);
        release(f);
        return kDropCount;
      }
      return dropped(q->port, kDropTxFull, f);
    }
    uint32_t idx;
    const uint32_t descs = 1u + f.more;
    if (xsk_ring_prod__reserve(&q->xsk->tx, descs, &idx) != descs) return dropped(q->port, kDropTxFull, f);
    xdp_desc* d = xsk_ring_prod__tx_desc(&q->xsk->tx, idx);
    d->addr = f.addr;
    d->len = f.head;
    d->options = f.more ? XDP_PKT_CONTD : 0;
    for (uint32_t i = 0; i < f.more; i++) {  // multi-buffer: every chunk but the last says more follow
      d = xsk_ring_prod__tx_desc(&q->xsk->tx, idx + 1 + i);
      d->addr = f.rest[i].addr;
      d->len = f.rest[i].len;
      d->options = i + 1 < f.more ? XDP_PKT_CONTD : 0;
    }
    xsk_ring_prod__submit(&q->xsk->tx, descs);
    q->tx_pending = true;
    bump(ctr[kTxPackets]);
    bump(ctr[kTxBytes], f.len);
    return kDropCount;
  }

  // Frames the control plane built (LACPDUs, gratuitous RARPs) for ports whose queue we own.
  uint32_t drainInjected() {
    std::vector<PuntRecord> frames;
    {
      std::lock_guard<std::mutex> lock(w_.inject_mu);
      frames.swap(w_.inject);
      w_.inject_pending.store(false, std::memory_order_relaxed);
    }
    for (const PuntRecord& r : frames) {
      Queue* q = w_.view->ports[r.port].tx_queue[w_.id];
      if (!q || w_.pool.empty()) {
        bump(w_.port_counters[r.port][kDropBase + static_cast<int>(q ? kDropNoBuffer : kDropPortDown)]);
        continue;
      }
      const uint64_t chunk = w_.pool.back();
      w_.pool.pop_back();
      std::memcpy(data(chunk + kFrameHeadroom), r.frame.data(), r.frame.size());
      const uint32_t len = static_cast<uint32_t>(r.frame.size());
      transmit(q, Frame{chunk + kFrameHeadroom, len, false, len});
    }
    return static_cast<uint32_t>(frames.size());
  }

  uint32_t drainHandoffs() {
    uint32_t n = 0;
    Handoff h{};
    for (auto& ring : w_.handoff_in) {
      if (!ring) continue;
      while (const Handoff* next = ring->front()) {
        const PortView& pv = w_.view->ports[next->port];
        Queue* q = pv.active ? pv.tx_queue[w_.id] : nullptr;
        const uint32_t descs = 1u + next->more;
        // A full TX ring: leave the rest queued (back-pressure) rather than drop it.
        if (q && q->kind == Queue::kXsk && xsk_prod_nb_free(&q->xsk->tx, descs) < descs) {
          kick(q);
          if (xsk_prod_nb_free(&q->xsk->tx, descs) < descs) break;
        }
        ring->pop(&h);
        Frame f{h.addr, h.len, false, h.len};
        Chunk rest[kMaxChunks];
        for (uint32_t i = 0; i < h.more; i++) {  // pushed together with the first: all there
          Handoff c{};
          ring->pop(&c);
          rest[i] = Chunk{c.addr, c.len};
          f.len += c.len;
        }
        f.more = h.more;
        f.rest = rest;
        n++;
        if (!q) {
          drop(h.port, kDropPortDown, f);
          continue;
        }
        transmit(q, f);
      }
    }
    return n;
  }

  // Copy-mode AF_XDP sends at most 32 frames per sendto() and answers EAGAIN
  // when more are queued, so EAGAIN alone does not mean "busy": kick again as
  // long as the kernel keeps taking frames, and stop when it takes none (come
  // back on the next pass) or the ring is empty.
  void kick(Queue* q) {
    for (int tries = 0; tries < kKickTries; tries++) {
      const uint32_t before = __atomic_load_n(q->xsk->tx.consumer, __ATOMIC_ACQUIRE);
      if (before == q->xsk->tx.cached_prod) {
        q->tx_pending = false;
        return;
      }
      bump(w_.counters[kTxKicks]);
      const int err = sendto(q->fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 ? errno : 0;
      complete(q);
      if (err && err != EAGAIN && err != EBUSY && err != ENOBUFS) return;  // ENETDOWN: wait for the device
      if (__atomic_load_n(q->xsk->tx.consumer, __ATOMIC_ACQUIRE) == before) return;  // no progress
    }
  }

  void wakePeers() {
    const uint64_t one = 1;
    for (uint32_t p = 0; p < all_.size(); p++) {
      if (!w_.wake_peer[p]) continue;
      w_.wake_peer[p] = false;
      if (all_[p]->sleeping.load(std::memory_order_seq_cst) && write(all_[p]->event_fd, &one, sizeof(one)) < 0) {
      }
    }
  }

  Worker& w_;
  uint8_t* umem_;
  uint32_t frames_per_worker_;
  std::vector<std::unique_ptr<Worker>>& all_;
  FdbView fdb_;
  const std::atomic<uint8_t>* learn_full_;
  const PortPolicy* policies_;
  PortBuckets* buckets_;
  std::vector<vsw_credit> credit_ = std::vector<vsw_credit>(kMaxPorts);  // this worker's policer credit per port
  uint64_t now_ms_ = 0;
};

HotLoop::HotLoop(Worker& w, uint8_t* umem, uint32_t frames_per_worker, std::vector<std::unique_ptr<Worker>>& all,
                 FdbView fdb, const std::atomic<uint8_t>* learn_full, const PortPolicy* policies, PortBuckets* buckets)
    : impl_(std::make_unique<Impl>(w, umem, frames_per_worker, all, fdb, learn_full, policies, buckets)) {}
HotLoop::~HotLoop() = default;
void HotLoop::adoptView(View* v) { impl_->adoptView(v); }
uint32_t HotLoop::iterate(uint64_t now_ms) { return impl_->iterate(now_ms); }
bool HotLoop::txBacklog() const { return impl_->txBacklog(); }

bool peerWorkPending(const Worker& w) {
  for (auto& r : w.handoff_in)
    if (r && !r->empty()) return true;
  for (auto& r : w.return_in)
    if (r && !r->empty()) return true;
  return w.reclaim_pending.load(std::memory_order_acquire) || w.inject_pending.load(std::memory_order_acquire);
}
}  // namespace vswitchd
