#include "afxdp/xsk.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>
#include <stdexcept>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4)  // linux/if_xdp.h of 6.6; the headers here are older
#endif

namespace vswitchd {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void setRingSize(int fd, int opt, uint32_t size, const char* name) {
  if (setsockopt(fd, SOL_XDP, opt, &size, sizeof(size)) != 0) fail(std::string("setsockopt ") + name);
}

xdp_mmap_offsets mmapOffsets(int fd) {
  xdp_mmap_offsets off{};
  socklen_t len = sizeof(off);
  if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) != 0) fail("getsockopt XDP_MMAP_OFFSETS");
  return off;
}

void* mapRing(int fd, off_t pgoff, size_t len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
  if (p == MAP_FAILED) fail("mmap of an AF_XDP ring");
  return p;
}

// Maps one ring of fd at pgoff and points ring at it; records the mapping in *map/*len.
// A producer ring's cached_cons runs one ring ahead (the free-slot arithmetic of
// xsk_prod_nb_free), a consumer ring's does not.
template <class Ring>
void mapOneRing(int fd, off_t pgoff, const xdp_ring_offset& o, uint32_t size, size_t entry, bool producer, Ring* ring,
                void** map, size_t* len) {
  *len = o.desc + size * entry;
  *map = mapRing(fd, pgoff, *len);
  auto* r = static_cast<uint8_t*>(*map);
  ring->mask = size - 1;
  ring->size = size;
  ring->producer = reinterpret_cast<uint32_t*>(r + o.producer);
  ring->consumer = reinterpret_cast<uint32_t*>(r + o.consumer);
  ring->flags = reinterpret_cast<uint32_t*>(r + o.flags);
  ring->ring = r + o.desc;
  ring->cached_prod = *ring->producer;
  ring->cached_cons = *ring->consumer + (producer ? size : 0);
}

// Maps the fill and completion rings of fd into fill/comp; records the mappings.
void mapUmemRings(int fd, const xdp_mmap_offsets& off, uint32_t fill_size, uint32_t comp_size, xsk_ring_prod* fill,
                  xsk_ring_cons* comp, void** maps, size_t* lens) {
  mapOneRing(fd, XDP_UMEM_PGOFF_FILL_RING, off.fr, fill_size, sizeof(uint64_t), true, fill, &maps[0], &lens[0]);
  mapOneRing(fd, XDP_UMEM_PGOFF_COMPLETION_RING, off.cr, comp_size, sizeof(uint64_t), false, comp, &maps[1], &lens[1]);
}

// EBUSY: the queue's socket from before a restart that was not adopted is still bound;
// it goes once the fd store's copy is closed, which the daemon asked for (FDSTOREREMOVE)
// and systemd does a moment later. False with errno set on any other failure.
bool bindWaitingForQueue(int fd, const sockaddr_xdp& sxdp) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (bind(fd, reinterpret_cast<const sockaddr*>(&sxdp), sizeof(sxdp)) != 0) {
    if (errno != EBUSY || std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace

Umem::Umem(uint32_t frames, const std::string& anchor_device, int adopt_memfd, int adopt_anchor_fd) : frames_(frames) {
  bytes_ = static_cast<size_t>(frames) * kFrameSize;
  if (adopt_memfd >= 0) {
    // A restart's UMEM: the kernel still has it registered (the handed-over sockets
    // hold it) with its pages pinned; mapping the memfd again shows the same pages.
    memfd_ = adopt_memfd;
    anchor_fd_ = adopt_anchor_fd;
    struct stat st{};
    if (fstat(memfd_, &st) != 0) fail("fstat of the handed-over UMEM");
    if (static_cast<size_t>(st.st_size) != bytes_) {
      close(memfd_);
      if (anchor_fd_ >= 0) close(anchor_fd_);
      memfd_ = anchor_fd_ = -1;
      throw std::runtime_error("the handed-over UMEM is " + std::to_string(st.st_size) + " bytes, this datapath's " + std::to_string(bytes_));
    }
    void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
    if (mem == MAP_FAILED) fail("mapping the handed-over UMEM");
    area_ = static_cast<uint8_t*>(mem);
    adopted_ = true;
    return;
  }
  memfd_ = memfd_create("vswitchd-umem", MFD_CLOEXEC);
  if (memfd_ < 0) fail("memfd_create for the UMEM");
  if (ftruncate(memfd_, static_cast<off_t>(bytes_)) != 0) fail("sizing the UMEM");
  void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (mem == MAP_FAILED) fail("allocating the UMEM");
  area_ = static_cast<uint8_t*>(mem);

  anchor_fd_ = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (anchor_fd_ < 0) fail("socket(AF_XDP)");
  xdp_umem_reg reg{};
  reg.addr = reinterpret_cast<uint64_t>(area_);
  reg.len = bytes_;
  reg.chunk_size = kFrameSize;
  reg.headroom = 0;
  if (setsockopt(anchor_fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0) fail("registering the UMEM");
  // The kernel only lets sockets share a UMEM through a bound socket, and every
  // bound socket needs fill and completion rings. The anchor is bound to a
  // device that never redirects a frame to it (the daemon uses the internal
  // port's tap, which has no XDP program and lives as long as the process;
  // lo would do too, but only one socket per host can bind lo's one queue):
  // it exists so that every real port's socket can come and go on its own.
  setRingSize(anchor_fd_, XDP_UMEM_FILL_RING, 64, "XDP_UMEM_FILL_RING");
  setRingSize(anchor_fd_, XDP_UMEM_COMPLETION_RING, 64, "XDP_UMEM_COMPLETION_RING");
  setRingSize(anchor_fd_, XDP_RX_RING, 64, "XDP_RX_RING");
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  mapUmemRings(anchor_fd_, mmapOffsets(anchor_fd_), 64, 64, &fill, &comp, anchor_maps_, anchor_map_len_);
  sockaddr_xdp sxdp{};
  sxdp.sxdp_family = AF_XDP;
  sxdp.sxdp_ifindex = if_nametoindex(anchor_device.c_str());
  sxdp.sxdp_queue_id = 0;
  // XDP_USE_SG: frames longer than a chunk arrive (and are sent) as several
  // descriptors. Sockets sharing the UMEM inherit it (and copy mode, need_wakeup).
  sxdp.sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP | XDP_USE_SG;
  if (sxdp.sxdp_ifindex == 0 || !bindWaitingForQueue(anchor_fd_, sxdp))
    fail("binding the UMEM anchor socket to " + anchor_device);
}

Umem::~Umem() {
  for (int i = 0; i < 2; i++)
    if (anchor_maps_[i]) munmap(anchor_maps_[i], anchor_map_len_[i]);
  if (anchor_fd_ >= 0) close(anchor_fd_);  // the kernel releases the UMEM after the last socket goes
  if (area_) munmap(area_, bytes_);
  if (memfd_ >= 0) close(memfd_);
}

void XskSocket::mapRings(const RingSizes& sizes) {
  const xdp_mmap_offsets off = mmapOffsets(fd_);
  mapUmemRings(fd_, off, sizes.fill, sizes.comp, &fill, &comp, maps_, map_len_);

  mapOneRing(fd_, XDP_PGOFF_RX_RING, off.rx, sizes.rx, sizeof(xdp_desc), false, &rx, &maps_[2], &map_len_[2]);
  mapOneRing(fd_, XDP_PGOFF_TX_RING, off.tx, sizes.tx, sizeof(xdp_desc), true, &tx, &maps_[3], &map_len_[3]);
}

XskSocket::XskSocket(const Umem& umem, int ifindex, uint32_t queue, const RingSizes& sizes) {
  fd_ = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("socket(AF_XDP)");
  try {
    setRingSize(fd_, XDP_RX_RING, sizes.rx, "XDP_RX_RING");
    setRingSize(fd_, XDP_TX_RING, sizes.tx, "XDP_TX_RING");
    setRingSize(fd_, XDP_UMEM_FILL_RING, sizes.fill, "XDP_UMEM_FILL_RING");
    setRingSize(fd_, XDP_UMEM_COMPLETION_RING, sizes.comp, "XDP_UMEM_COMPLETION_RING");
    mapRings(sizes);
    sockaddr_xdp sxdp{};
    sxdp.sxdp_family = AF_XDP;
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = queue;
    sxdp.sxdp_flags = XDP_SHARED_UMEM;  // mode, need_wakeup and SG come from the anchor
    sxdp.sxdp_shared_umem_fd = umem.anchorFd();
    if (!bindWaitingForQueue(fd_, sxdp))
      fail("binding AF_XDP socket to ifindex " + std::to_string(ifindex) + " queue " + std::to_string(queue));
  } catch (...) {
    unmapAll();
    close(fd_);
    throw;
  }
}

XskSocket::XskSocket(int adopted_fd, const RingSizes& sizes) {
  fd_ = adopted_fd;
  try {
    // An unbound socket (its device went away) answers ENXIO; a bound one 0.
    if (recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr) < 0 && errno == ENXIO)
      throw std::runtime_error("the socket is no longer bound to a device");
    // A ring smaller than this build's sizes fails to map (EINVAL).
    mapRings(sizes);
  } catch (...) {
    unmapAll();
    close(fd_);
    fd_ = -1;
    throw;
  }
}

void XskSocket::unmapAll() {
  for (int i = 0; i < 4; i++) {
    if (maps_[i]) munmap(maps_[i], map_len_[i]);
    maps_[i] = nullptr;
  }
}

XskStats& XskStats::operator+=(const XskStats& o) {
  rx_dropped += o.rx_dropped;
  rx_invalid_descs += o.rx_invalid_descs;
  tx_invalid_descs += o.tx_invalid_descs;
  rx_ring_full += o.rx_ring_full;
  rx_fill_ring_empty += o.rx_fill_ring_empty;
  tx_ring_empty += o.tx_ring_empty;
  return *this;
}

XskStats XskSocket::statistics() const {
  XskStats out;
  xdp_statistics st{};
  socklen_t len = sizeof(st);
  if (fd_ < 0 || getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &st, &len) != 0) return out;
  out.rx_dropped = st.rx_dropped;
  out.rx_invalid_descs = st.rx_invalid_descs;
  out.tx_invalid_descs = st.tx_invalid_descs;
  if (len >= sizeof(st)) {  // the ring counters came with kernel 5.9
    out.rx_ring_full = st.rx_ring_full;
    out.rx_fill_ring_empty = st.rx_fill_ring_empty_descs;
    out.tx_ring_empty = st.tx_ring_empty_descs;
  }
  return out;
}

std::vector<uint64_t> XskSocket::closeAndHarvest() {
  std::vector<uint64_t> addrs;
  if (fd_ < 0) return addrs;
  close(fd_);  // unbinds; the ring pages stay readable until munmap
  fd_ = -1;
  const uint32_t fp = __atomic_load_n(fill.producer, __ATOMIC_ACQUIRE), fc = *fill.consumer;
  for (uint32_t i = fc; i != fp; i++) addrs.push_back(*xsk_ring_prod__fill_addr(&fill, i));
  const uint32_t rp = __atomic_load_n(rx.producer, __ATOMIC_ACQUIRE);
  for (uint32_t i = rx.cached_cons; i != rp; i++) addrs.push_back(xsk_ring_cons__rx_desc(&rx, i)->addr);
  const uint32_t tp = tx.cached_prod, tc = *tx.consumer;
  for (uint32_t i = tc; i != tp; i++) addrs.push_back(xsk_ring_prod__tx_desc(&tx, i)->addr);
  const uint32_t cp = __atomic_load_n(comp.producer, __ATOMIC_ACQUIRE);
  for (uint32_t i = comp.cached_cons; i != cp; i++) addrs.push_back(*xsk_ring_cons__comp_addr(&comp, i));
  unmapAll();
  return addrs;
}

XskSocket::~XskSocket() {
  unmapAll();
  if (fd_ >= 0) close(fd_);
}

int openTap(const std::string& name, bool persist, std::string* error) {
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *error = std::string("open /dev/net/tun: ") + std::strerror(errno);
    return -1;
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0 || (persist && ioctl(fd, TUNSETPERSIST, 1) != 0)) {
    *error = "creating tap " + name + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

bool setTapPersist(const std::string& name, bool persist, std::string* error) {
  const int fd = openTap(name, false, error);
  if (fd < 0) return false;
  const bool ok = ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) == 0;
  if (!ok) *error = "TUNSETPERSIST on " + name + ": " + std::strerror(errno);
  close(fd);
  return ok;
}

}  // namespace vswitchd
