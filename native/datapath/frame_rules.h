// The per-frame rules the hot loop applies, as it calls them: thin C++ faces of
// the functions in bpf/include/vswitchd_shared.h, which the XDP program inlines
// too. native/test/shared_vectors.cc runs these over test/vectors/shared.json.
#pragma once

#include <cstdint>

#include "datapath/datapath.h"
#include "vswitchd_shared.h"

namespace vswitchd {

constexpr uint16_t kEthVlan = VSW_ETH_P_8021Q;
constexpr uint32_t kEthHeader = 14;

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

inline bool carriesVlan(const PortView& pv, uint16_t vlan) { return vsw_port_carries_vlan(&pv, vlan); }

inline bool egressTagged(const PortView& pv, uint16_t vlan) { return pv.trunk && vlan != pv.native_vlan; }

// The 802.1Q tag of a frame of at least kEthHeader bytes. kDropCount: fine.
struct FrameTag {
  bool tagged = false;
  uint16_t vid = 0;
  uint8_t pcp = 0;
};
inline DropReason parseTag(const uint8_t* eth, uint32_t len, FrameTag* tag) {
  if (be16(eth + 12) != kEthVlan) return kDropCount;
  if (len < kEthHeader + 4) return kDropMalformed;
  const uint16_t tci = be16(eth + 14);
  tag->tagged = true;
  tag->vid = tci & 0x0fff;
  tag->pcp = static_cast<uint8_t>(tci >> 13);
  return kDropCount;
}

// Which VLAN a frame arriving on `in` belongs to (src/switch/l2/vlan-rules.ts ingressVlan).
// kDropCount: it is *vlan; else why it is dropped.
inline DropReason ingressVlan(const PortView& in, const FrameTag& tag, uint16_t* vlan) {
  switch (vsw_port_ingress_vlan(&in, tag.tagged, tag.vid, vlan)) {
    case VSW_INGRESS_OK: return kDropCount;
    case VSW_INGRESS_UNTAGGED_NO_NATIVE: return kDropUntaggedNoNative;
    default: return kDropVlanNotAllowed;
  }
}

// The bond flow bucket of a frame (src/switch/bond/flow-hash.ts hashFlow).
inline uint8_t flowBucket(const uint8_t* frame, uint32_t len, bool l3l4) {
  return vsw_flow_bucket(frame, frame + len, l3l4);
}

}  // namespace vswitchd
