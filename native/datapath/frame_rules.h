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

inline bool isMulticast(const uint8_t* mac) { return mac[0] & 1; }
inline bool isZeroMac(const uint8_t* mac) { return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]); }

constexpr uint16_t kEthSlowProtocols = 0x8809;

// What the hot loop makes of a received frame before it looks at the FDB: the
// pure part of HotLoop::process (hot_loop.cc), apart so that the fuzzer
// (native/fuzz/) runs the very code the hot loop runs. No state, no writes.
struct FrameClass {
  DropReason drop = kDropCount;  // kDropCount: not dropped
  bool punt = false;             // a LACPDU: to the control plane, with the port it arrived on
  uint16_t in = 0;               // the port it counts on (a bond leg's frames: the bond, once resolved)
  uint16_t vlan = 0;
  FrameTag tag;
};
// len: the whole frame; head: the bytes at eth (a multi-chunk frame's first chunk, which
// holds every header the rules read).
inline FrameClass classifyFrame(const PortView* ports, uint16_t in, const uint8_t* eth, uint32_t len, uint32_t head,
                                uint32_t max_len) {
  FrameClass c;
  c.in = in;
  const PortView& pv = ports[in];
  auto dropped = [&c](DropReason why) {
    c.drop = why;
    return c;
  };
  if (!pv.active) return dropped(kDropPortDown);
  if (len < kEthHeader) return dropped(kDropRunt);
  if (len > max_len) return dropped(kDropTooBig);
  if (DropReason why = parseTag(eth, head, &c.tag); why != kDropCount) return dropped(why);
  // 01:80:c2:00:00:0x are link-local control frames (802.1D): never forwarded.
  // LACPDUs (slow protocols, untagged) go to the control plane.
  if (vsw_link_local(eth)) {
    if (eth[5] == 0x02 && !c.tag.tagged && be16(eth + 12) == kEthSlowProtocols) {
      c.punt = true;
      return c;
    }
    return dropped(kDropLinkLocal);
  }
  const PortView* ingress = &pv;
  if (pv.bond >= 0) {
    // A bond leg: the frame arrives on the bond, as far as VLANs and learning go.
    if (!pv.leg_rx) return dropped(kDropBondInactiveLeg);
    c.in = static_cast<uint16_t>(pv.bond);
    ingress = &ports[c.in];
  }
  // Which VLAN the frame belongs to (the rules of src/switch/l2/vlan-rules.ts ingressVlan).
  if (DropReason why = ingressVlan(*ingress, c.tag, &c.vlan); why != kDropCount) return dropped(why);
  // Never a station (the Linux bridge's is_valid_ether_addr): multicast, broadcast, all-zero.
  if (isMulticast(eth + 6) || isZeroMac(eth + 6)) return dropped(kDropMulticastSource);
  return c;
}

// The bond flow bucket of a frame (src/switch/bond/flow-hash.ts hashFlow).
inline uint8_t flowBucket(const uint8_t* frame, uint32_t len, bool l3l4) {
  return vsw_flow_bucket(frame, frame + len, l3l4);
}

}  // namespace vswitchd
