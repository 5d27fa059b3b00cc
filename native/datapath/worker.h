// Per-worker state. Everything here is touched by its worker thread only,
// except the atomics (counters the main thread reads, the view handshake, the
// wake-up flag) and the rings and reclaim list, which have one owner per side.
#pragma once

#include <poll.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "datapath/datapath.h"

namespace vswitchd {

struct RecentLearn {
  uint64_t key;
  uint16_t port;
  uint64_t at_ms;
  uint64_t view_gen;  // the View it was sent under: a port going down and up (its MACs flushed) publishes another
};

struct Worker {
  uint32_t id = 0;
  uint64_t first_frame = 0;  // this worker owns frames [first_frame, first_frame + frame_count)
  uint64_t frame_count = 0;
  int event_fd = -1;         // written by other threads to end this worker's poll()

  std::vector<uint64_t> pool;  // free frame addresses (chunk starts)
  std::vector<std::unique_ptr<SpscRing<Handoff>>> handoff_in;  // [source worker]: frames to transmit
  std::vector<std::unique_ptr<SpscRing<uint64_t>>> return_in;  // [source worker]: our frames coming home

  std::mutex inject_mu;                 // frames from the control plane to transmit
  std::vector<PuntRecord> inject;
  std::atomic<bool> inject_pending{false};

  std::mutex reclaim_mu;                // frames harvested from closed sockets
  std::vector<uint64_t> reclaim;
  std::atomic<bool> reclaim_pending{false};

  // The View handshake (Datapath::commit and Datapath::run explain it): in_run
  // and Datapath::live_ are seq_cst on both sides; seen_gen acknowledges a View
  // by generation, because a freed View's address can come back for a new one.
  std::atomic<uint64_t> seen_gen{0};    // generation of the newest View this worker has adopted
  std::atomic<bool> in_run{false};      // inside Datapath::run: commit() must wait for seen_gen
  std::atomic<bool> sleeping{false};

  std::atomic<uint64_t> port_counters[kMaxPorts][kPortCounterCount] = {};
  std::atomic<uint64_t> counters[kWorkerCounterCount] = {};
  std::atomic<uint64_t> mirror_counters[kMaxMirrors][kMirrorCounterCount] = {};

  // Hot-loop state.
  View* view = nullptr;
  std::vector<pollfd> pfds;
  RecentLearn recent[kLearnCacheSize] = {};  // indexed by fdbHash(key, kLearnCacheMask)
  std::vector<LearnRecord> learned;
  std::vector<PuntRecord> punted;
  bool wake_peer[kMaxWorkers] = {};
};

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  // Single writer: a plain load and store is enough and avoids a locked add per frame.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace vswitchd
