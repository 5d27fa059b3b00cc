// AF_XDP plumbing with raw syscalls: one UMEM for the whole process, and one
// socket per <port, queue> sharing it (XDP_SHARED_UMEM, each with its own fill
// and completion ring). libxdp's xsk.h supplies the ring accessors; its socket
// constructor is not used because it binds the UMEM's own fd to the first
// port, which would then outlive that port's removal.
#pragma once

#include <xdp/xsk.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vswitchd_shared.h"

namespace vswitchd {

constexpr uint32_t kFrameSize = 2048;       // UMEM chunk (at most a page: a larger one needs hugepages)
constexpr uint32_t kFrameHeadroom = 256;    // where frames we build start; room to push a VLAN tag
constexpr uint32_t kMaxFrameLen = kFrameSize - kFrameHeadroom - 4;  // a frame in one chunk
// A longer frame (jumbo) spans several chunks, one descriptor each, flagged
// XDP_PKT_CONTD on all but the last (multi-buffer AF_XDP, XDP_USE_SG). The
// kernel's copy fills kChunkData bytes per chunk (the chunk less
// XDP_PACKET_HEADROOM); frames we build use the same split.
constexpr uint32_t kChunkData = kFrameSize - kFrameHeadroom;
constexpr int kMaxChunks = 8;               // chunks of one frame: kMaxJumboLen fits
constexpr uint32_t kMaxJumboLen = VSW_MAX_MTU + 14 + 8;  // the largest frame carried: MTU + Ethernet + two tags
static_assert(kMaxJumboLen <= kMaxChunks * kChunkData - 4, "a jumbo frame (and a pushed tag) fits in kMaxChunks");

inline uint64_t chunkOf(uint64_t addr) { return addr & ~static_cast<uint64_t>(kFrameSize - 1); }

// The UMEM's memory is a memfd, so that it outlives the process: a restart hands the
// memfd and the sockets to the next daemon (systemd's fd store, or a re-exec), which
// maps the same pages again and goes on with the frames waiting in the rings.
class Umem {
 public:
  // frames: total chunks, split evenly between workers by address range.
  // anchor_device: a device no XDP program redirects from (see Umem::Umem).
  // adopt_memfd/adopt_anchor_fd: a restart's UMEM (its memory, and the bound socket it
  // is registered on): mapped again, not registered; the fds are the Umem's from here.
  Umem(uint32_t frames, const std::string& anchor_device, int adopt_memfd = -1, int adopt_anchor_fd = -1);  // throws std::runtime_error
  ~Umem();
  Umem(const Umem&) = delete;
  Umem& operator=(const Umem&) = delete;

  uint8_t* area() const { return area_; }
  uint32_t frames() const { return frames_; }
  int anchorFd() const { return anchor_fd_; }
  int memfd() const { return memfd_; }
  bool adopted() const { return adopted_; }

 private:
  uint8_t* area_ = nullptr;
  size_t bytes_ = 0;
  uint32_t frames_ = 0;
  int memfd_ = -1;
  bool adopted_ = false;
  int anchor_fd_ = -1;
  void* anchor_maps_[2] = {};
  size_t anchor_map_len_[2] = {};
};

// The kernel's counts of one socket (getsockopt XDP_STATISTICS); they start at
// 0 with each socket, so whoever reports them keeps a base across sockets.
struct XskStats {
  uint64_t rx_dropped = 0;          // frames the socket could not take: no fill frame, too long
  uint64_t rx_invalid_descs = 0;
  uint64_t tx_invalid_descs = 0;    // descriptors we put on the TX ring that the kernel refused
  uint64_t rx_ring_full = 0;        // the RX ring was full: the hot loop was behind
  uint64_t rx_fill_ring_empty = 0;  // no frame in the fill ring (also counted in rx_dropped)
  uint64_t tx_ring_empty = 0;       // the kernel found the TX ring empty (not a loss)
  XskStats& operator+=(const XskStats& o);
};

struct RingSizes {
  uint32_t rx = 2048, tx = 2048, fill = 2048, comp = 2048;
};

// One AF_XDP socket bound to <ifindex, queue>, sharing the process UMEM.
class XskSocket {
 public:
  XskSocket(const Umem& umem, int ifindex, uint32_t queue, const RingSizes& sizes);  // throws
  // A socket a restart handed over (bound, sharing the adopted UMEM): its rings are
  // mapped again as they are; the fd is the socket's from here (closed if this throws).
  XskSocket(int adopted_fd, const RingSizes& sizes);  // throws
  ~XskSocket();
  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;

  int fd() const { return fd_; }
  XskStats statistics() const;  // zeros once closed
  // Closes the socket and returns every frame address the rings still held
  // (fill, rx, unsent tx, unread completions) so no UMEM frame is lost.
  std::vector<uint64_t> closeAndHarvest();

  xsk_ring_cons rx{};
  xsk_ring_prod tx{};
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};

 private:
  void mapRings(const RingSizes& sizes);
  void unmapAll();
  int fd_ = -1;
  void* maps_[4] = {};
  size_t map_len_[4] = {};
};

// Creates a tap device (IFF_TAP | IFF_NO_PI). persist: keep it after the fd closes
// (VM taps, which QEMU opens by name); otherwise the device lives as long as the fd.
int openTap(const std::string& name, bool persist, std::string* error);
bool setTapPersist(const std::string& name, bool persist, std::string* error);

}  // namespace vswitchd
