// The FDB: an open-addressing hash table keyed by <vlan, mac>, living in a
// BPF_F_MMAPABLE array map so that the hot loops (through mmap), the control
// plane (through this class) and the XDP program (bpf/xsk_steer.bpf.c, as a
// map) all read the same memory without a syscall. The slot layout, the flags
// and the hash are bpf/include/vswitchd_shared.h's.
//
// One writer (the control plane's thread). Readers never block the writer and
// never see a half-written entry: each slot carries a sequence number that is
// odd while the writer is inside it (a per-slot seqlock); a reader that loses
// the race treats the lookup as a miss, which only means the frame floods.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "vswitchd_shared.h"

namespace vswitchd {

constexpr uint16_t kFdbStatic = VSW_FDB_STATIC;        // never aged, never moved (FDB_FLAG_STATIC in types.ts)
constexpr uint16_t kFdbTombstone = VSW_FDB_TOMBSTONE;  // deleted slot: probing continues past it
constexpr uint64_t kLastSeenRefreshMs = VSW_LAST_SEEN_REFRESH_MS;

// One slot of the table (struct fdb_slot; the XDP program reads the same layout).
using FdbSlot = ::fdb_slot;

struct FdbHit {
  uint16_t port;
  uint16_t flags;
  uint32_t index;          // slot index, to refresh last_seen without a second lookup
};

inline uint64_t fdbKey(uint16_t vlan, const uint8_t* mac) { return vsw_fdb_key(vlan, mac); }

// The first slot probed for a key (the XDP program's fdb_lookup starts there too).
inline uint32_t fdbHash(uint64_t key, uint32_t mask) { return vsw_fdb_hash(key, mask); }

inline uint32_t loadAcquire(const uint32_t* p) {
  return std::atomic_ref<const uint32_t>(*p).load(std::memory_order_acquire);
}

// Read-only view used by the hot loops; safe against the concurrent writer.
class FdbView {
 public:
  FdbView() = default;
  FdbView(FdbSlot* slots, uint32_t capacity) : slots_(slots), mask_(capacity - 1) {}

  bool lookup(uint16_t vlan, const uint8_t* mac, FdbHit* hit) const {
    const uint64_t want = fdbKey(vlan, mac);
    uint32_t i = fdbHash(want, mask_);
    for (uint32_t probes = 0; probes <= mask_; probes++, i = (i + 1) & mask_) {
      const FdbSlot& s = slots_[i];
      const uint32_t seq = loadAcquire(&s.seq);
      uint16_t sv = std::atomic_ref<const uint16_t>(s.vlan).load(std::memory_order_relaxed);
      uint16_t flags = std::atomic_ref<const uint16_t>(s.flags).load(std::memory_order_relaxed);
      uint16_t port = std::atomic_ref<const uint16_t>(s.port).load(std::memory_order_relaxed);
      uint8_t m[6];
      std::memcpy(m, s.mac, 6);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((seq & 1) || loadAcquire(&s.seq) != seq) return false;  // being written: miss
      if (sv == 0 && !(flags & kFdbTombstone)) return false;      // empty: end of chain
      if (sv == 0) continue;                                       // tombstone
      if (fdbKey(sv, m) == want) {
        hit->port = port;
        hit->flags = flags;
        hit->index = i;
        return true;
      }
    }
    return false;
  }

  void touch(uint32_t index, uint64_t now_ms) const {
    auto ref = std::atomic_ref<__u64>(slots_[index].last_seen_ms);
    // Write only when the second changes: keeps the cache line shared between cores.
    if (now_ms - ref.load(std::memory_order_relaxed) >= kLastSeenRefreshMs) ref.store(now_ms, std::memory_order_relaxed);
  }

 private:
  FdbSlot* slots_ = nullptr;
  uint32_t mask_ = 0;
};

struct FdbRecord {
  uint16_t vlan;
  uint8_t mac[6];
  uint16_t port;
  uint16_t flags;
  uint64_t last_seen_ms;
};

// The single writer. Owns the BPF map and its mapping.
class FdbTable {
 public:
  // adopt_fd >= 0: the FDB map a running datapath left (a restart): taken over
  // with its entries, which must have this capacity and slot size.
  explicit FdbTable(uint32_t capacity, int adopt_fd = -1);  // throws std::runtime_error
  ~FdbTable();
  FdbTable(const FdbTable&) = delete;
  FdbTable& operator=(const FdbTable&) = delete;

  FdbView view() const { return FdbView(slots_, capacity_); }
  int mapFd() const { return map_fd_; }
  uint32_t capacity() const { return capacity_; }
  uint32_t size() const { return live_; }

  // false when the table is at its load limit (3/4 of the slots).
  bool put(uint16_t vlan, const uint8_t* mac, uint16_t port, uint16_t flags, uint64_t now_ms);
  bool remove(uint16_t vlan, const uint8_t* mac);
  bool get(uint16_t vlan, const uint8_t* mac, FdbRecord* out) const;
  std::vector<FdbRecord> entries() const;
  // Non-static entries last seen before cutoff_ms (a scan of the slots, no allocation per live entry).
  std::vector<FdbRecord> expired(uint64_t cutoff_ms) const;
  uint32_t clear();

 private:
  int64_t find(uint64_t key) const;
  void write(uint32_t index, uint16_t vlan, const uint8_t* mac, uint16_t port, uint16_t flags, uint64_t last_seen);
  void rebuild();

  FdbSlot* slots_ = nullptr;
  size_t map_bytes_ = 0;
  int map_fd_ = -1;
  uint32_t capacity_ = 0;
  uint32_t live_ = 0;
  uint32_t tombstones_ = 0;
};

}  // namespace vswitchd
