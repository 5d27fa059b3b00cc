#include "fdb/fdb_table.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace vswitchd {

namespace {

void storeRelease(uint32_t* p, uint32_t v) { std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_release); }

std::string errnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

FdbTable::FdbTable(uint32_t capacity, int adopt_fd) : capacity_(capacity) {
  if (capacity < 16 || (capacity & (capacity - 1)) != 0)
    throw std::runtime_error("FDB capacity must be a power of two >= 16, got " + std::to_string(capacity));
  if (adopt_fd >= 0) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(adopt_fd, &info, &len) != 0) throw std::runtime_error(errnoText("reading the adopted FDB map", errno));
    if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(FdbSlot) || info.max_entries != capacity || !(info.map_flags & BPF_F_MMAPABLE))
      throw std::runtime_error("the adopted FDB map has another layout (" + std::to_string(info.max_entries) + " slots of " +
                               std::to_string(info.value_size) + " bytes; want " + std::to_string(capacity) + " of " + std::to_string(sizeof(FdbSlot)) + ")");
    map_fd_ = adopt_fd;
  } else {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
    map_fd_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vswitchd_fdb", sizeof(uint32_t), sizeof(FdbSlot), capacity, &opts);
    if (map_fd_ < 0) throw std::runtime_error(errnoText("creating the FDB map (BPF_F_MMAPABLE array)", -map_fd_));
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  map_bytes_ = (static_cast<size_t>(capacity) * sizeof(FdbSlot) + page - 1) / page * page;
  void* mem = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd_, 0);
  if (mem == MAP_FAILED) {
    const int err = errno;
    close(map_fd_);
    throw std::runtime_error(errnoText("mmap of the FDB map", err));
  }
  slots_ = static_cast<FdbSlot*>(mem);
  // An adopted table: count what it holds (the writer's bookkeeping).
  for (uint32_t i = 0; i < capacity_; i++) {
    if (slots_[i].vlan != 0) live_++;
    else if (slots_[i].flags & kFdbTombstone) tombstones_++;
  }
}

FdbTable::~FdbTable() {
  if (slots_) munmap(slots_, map_bytes_);
  if (map_fd_ >= 0) close(map_fd_);
}

int64_t FdbTable::find(uint64_t key) const {
  const uint32_t mask = capacity_ - 1;
  uint32_t i = fdbHash(key, mask);
  for (uint32_t probes = 0; probes < capacity_; probes++, i = (i + 1) & mask) {
    const FdbSlot& s = slots_[i];
    if (s.vlan == 0 && !(s.flags & kFdbTombstone)) return -1;
    if (s.vlan != 0 && fdbKey(s.vlan, s.mac) == key) return i;
  }
  return -1;
}

void FdbTable::write(uint32_t index, uint16_t vlan, const uint8_t* mac, uint16_t port, uint16_t flags,
                     uint64_t last_seen) {
  FdbSlot& s = slots_[index];
  const uint32_t seq = s.seq;
  storeRelease(&s.seq, seq + 1);  // odd: readers treat the slot as busy
  std::atomic_thread_fence(std::memory_order_release);
  s.vlan = vlan;
  std::memcpy(s.mac, mac, 6);
  s.port = port;
  s.flags = flags;
  std::atomic_ref<__u64>(s.last_seen_ms).store(last_seen, std::memory_order_relaxed);
  storeRelease(&s.seq, seq + 2);
}

bool FdbTable::put(uint16_t vlan, const uint8_t* mac, uint16_t port, uint16_t flags, uint64_t now_ms) {
  const uint64_t key = fdbKey(vlan, mac);
  const int64_t existing = find(key);
  if (existing >= 0) {
    write(static_cast<uint32_t>(existing), vlan, mac, port, flags, now_ms);
    return true;
  }
  if ((live_ + 1) * 4 > capacity_ * 3) return false;
  if ((live_ + tombstones_ + 1) * 8 > capacity_ * 7) rebuild();
  const uint32_t mask = capacity_ - 1;
  uint32_t i = fdbHash(key, mask);
  while (slots_[i].vlan != 0) i = (i + 1) & mask;  // the first empty or tombstone slot
  if (slots_[i].flags & kFdbTombstone) tombstones_--;
  write(i, vlan, mac, port, flags, now_ms);
  live_++;
  return true;
}

bool FdbTable::remove(uint16_t vlan, const uint8_t* mac) {
  const int64_t i = find(fdbKey(vlan, mac));
  if (i < 0) return false;
  static const uint8_t zero[6] = {};
  write(static_cast<uint32_t>(i), 0, zero, 0, kFdbTombstone, 0);
  live_--;
  tombstones_++;
  return true;
}

bool FdbTable::get(uint16_t vlan, const uint8_t* mac, FdbRecord* out) const {
  const int64_t i = find(fdbKey(vlan, mac));
  if (i < 0) return false;
  const FdbSlot& s = slots_[i];
  *out = FdbRecord{s.vlan, {}, s.port, s.flags,
                   std::atomic_ref<__u64>(const_cast<__u64&>(s.last_seen_ms)).load(std::memory_order_relaxed)};
  std::memcpy(out->mac, s.mac, 6);
  return true;
}

std::vector<FdbRecord> FdbTable::entries() const {
  std::vector<FdbRecord> out;
  out.reserve(live_);
  for (uint32_t i = 0; i < capacity_; i++) {
    const FdbSlot& s = slots_[i];
    if (s.vlan == 0) continue;
    FdbRecord r{s.vlan, {}, s.port, s.flags,
                std::atomic_ref<__u64>(const_cast<__u64&>(s.last_seen_ms)).load(std::memory_order_relaxed)};
    std::memcpy(r.mac, s.mac, 6);
    out.push_back(r);
  }
  return out;
}

std::vector<FdbRecord> FdbTable::expired(uint64_t cutoff_ms) const {
  std::vector<FdbRecord> out;
  for (uint32_t i = 0; i < capacity_; i++) {
    const FdbSlot& s = slots_[i];
    if (s.vlan == 0 || (s.flags & kFdbStatic)) continue;
    const uint64_t seen = std::atomic_ref<__u64>(const_cast<__u64&>(s.last_seen_ms)).load(std::memory_order_relaxed);
    if (seen >= cutoff_ms) continue;
    FdbRecord r{s.vlan, {}, s.port, s.flags, seen};
    std::memcpy(r.mac, s.mac, 6);
    out.push_back(r);
  }
  return out;
}

uint32_t FdbTable::clear() {
  const uint32_t removed = live_;
  static const uint8_t zero[6] = {};
  for (uint32_t i = 0; i < capacity_; i++)
    if (slots_[i].vlan != 0 || slots_[i].flags != 0) write(i, 0, zero, 0, 0, 0);
  live_ = 0;
  tombstones_ = 0;
  return removed;
}

// Too many tombstones make misses walk long chains: reinsert the live entries.
// Readers may miss an entry while this runs; a miss only floods the frame.
void FdbTable::rebuild() {
  std::vector<FdbRecord> live = entries();
  clear();
  for (const FdbRecord& r : live) put(r.vlan, r.mac, r.port, r.flags, r.last_seen_ms);
}

}  // namespace vswitchd
