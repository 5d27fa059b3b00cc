// The per-frame work of one worker (hot_loop.cc): one pass over the queues it
// owns. Datapath::run (datapath.cc) drives it: picks up Views, sleeps, and
// returns to JavaScript.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "datapath/datapath.h"

namespace vswitchd {

struct Worker;

class HotLoop {
 public:
  // learn_full: per port, set while the port is at its MAC limit (Datapath::setLearnFull).
  // policies, buckets: every port's policy and token buckets (FastPath::policies/buckets).
  HotLoop(Worker& w, uint8_t* umem, uint32_t frames_per_worker, std::vector<std::unique_ptr<Worker>>& all, FdbView fdb,
          const std::atomic<uint8_t>* learn_full, const PortPolicy* policies, PortBuckets* buckets);
  ~HotLoop();
  HotLoop(const HotLoop&) = delete;
  HotLoop& operator=(const HotLoop&) = delete;

  // Takes a View: the queues to poll, fill targets; acknowledges it in Worker::seen_gen.
  void adoptView(View* v);
  // One pass over everything this worker owns; returns frames handled.
  uint32_t iterate(uint64_t now_ms);
  // Frames on a TX ring not yet taken by the kernel (the loop must come back).
  bool txBacklog() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Work another thread left for this worker (hand-offs, returned frames, reclaims, injections).
bool peerWorkPending(const Worker& w);

}  // namespace vswitchd
