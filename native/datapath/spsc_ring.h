// A bounded single-producer single-consumer ring between two worker threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace vswitchd {

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(uint32_t size_pow2) : slots_(size_pow2), mask_(size_pow2 - 1) {}

  bool push(const T& v) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) > mask_) return false;
    slots_[h & mask_] = v;
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  // Pushes n elements, all or none, published together (the consumer never sees part of them).
  bool pushAll(const T* v, uint32_t n) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h + n - tail_.load(std::memory_order_acquire) > mask_ + 1) return false;
    for (uint32_t i = 0; i < n; i++) slots_[(h + i) & mask_] = v[i];
    head_.store(h + n, std::memory_order_release);
    return true;
  }

  bool pop(T* out) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return false;
    *out = slots_[t & mask_];
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // The oldest element, still in the ring (consumer side only); nullptr when empty.
  const T* front() const {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return nullptr;
    return &slots_[t & mask_];
  }

  bool empty() const { return tail_.load(std::memory_order_acquire) == head_.load(std::memory_order_acquire); }

 private:
  std::vector<T> slots_;
  uint32_t mask_;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
};

}  // namespace vswitchd
