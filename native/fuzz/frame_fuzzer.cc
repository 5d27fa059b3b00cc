// libFuzzer target for the per-frame code of the hot loop: classifyFrame
// (datapath/frame_rules.h: length checks, the 802.1Q parser, link-local and
// LACP, bond legs, the VLAN ingress rules, source checks) and the bond flow
// bucket (the L3/L4 parser of bpf/include/vswitchd_shared.h), over a table of
// ports of every kind. The input's first byte picks the ingress port, the
// rest is the frame, exactly as long as the input says (so ASan sees any read
// past its end). Besides the sanitizers it checks what a verdict promises.
// Built and run by scripts/fuzz.sh (`npm run fuzz -- --seconds N`).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "datapath/frame_rules.h"

using namespace vswitchd;

namespace {

enum : uint16_t { kAccess10, kTrunkNative1, kTrunkNoNative, kDown, kLegActive, kLegInactive, kBond, kPorts };

PortView* buildPorts() {
  static PortView ports[kMaxPorts];
  auto trunk = [](PortView& p, uint16_t native, std::initializer_list<uint16_t> vlans) {
    p.active = 1;
    p.trunk = 1;
    p.native_vlan = native;
    for (uint16_t v : vlans) p.allowed[v / 64] |= 1ull << (v % 64);
  };
  ports[kAccess10].active = 1;
  ports[kAccess10].access_vlan = 10;
  trunk(ports[kTrunkNative1], 1, {1, 10, 20, 4094});
  trunk(ports[kTrunkNoNative], 0, {10, 20});
  ports[kDown].access_vlan = 10;  // not active
  ports[kBond].active = 1;
  ports[kBond].is_bond = 1;
  ports[kBond].access_vlan = 20;
  for (uint16_t leg : {kLegActive, kLegInactive}) {
    ports[leg].active = 1;
    ports[leg].bond = kBond;
    ports[leg].leg_rx = leg == kLegActive;
  }
  return ports;
}

const PortView* const kPortTable = buildPorts();

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "frame_fuzzer: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint16_t in = data[0] % kPorts;
  const uint8_t* frame = data + 1;
  const uint32_t len = static_cast<uint32_t>(size - 1);
  const FrameClass c = classifyFrame(kPortTable, in, frame, len, len, kMaxJumboLen);

  if (c.punt && (c.drop != kDropCount || len < kEthHeader || frame[0] != 0x01 || be16(frame + 12) != kEthSlowProtocols))
    broken("punted something that is not an untagged LACPDU");
  if (c.drop == kDropCount && !c.punt) {
    // A frame let through belongs to a VLAN its (logical) ingress port carries,
    // from a station address, and a bond leg's frames count on the bond.
    if (c.vlan == 0 || c.vlan >= kVidReserved) broken("VLAN out of range");
    if (!carriesVlan(kPortTable[c.in], c.vlan)) broken("VLAN the ingress port does not carry");
    if (in == kAccess10 && (c.vlan != 10 || c.tag.tagged && c.tag.vid != 0)) broken("access port leaked a tag");
    if (in == kLegInactive) broken("frame from an inactive bond leg");
    if (c.in != (in == kLegActive ? kBond : in)) broken("frame counted on the wrong port (a bond leg's: on its bond)");
    if (isMulticast(frame + 6) || isZeroMac(frame + 6)) broken("frame from a non-station source");
    // Egress to a bond hashes the frame's L3/L4 headers.
    const uint8_t bucket = flowBucket(frame, len, true) ^ flowBucket(frame, len, false);
    (void)bucket;
  }
  if (c.drop == kDropPortDown && in != kDown) broken("active port called down");
  return 0;
}
