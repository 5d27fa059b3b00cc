// Node-API glue: thin wrappers over the C++ datapath; errors become JS
// exceptions with the context the C++ side gave them. The addon is
// context-aware: it loads in the main thread (control plane) and in every
// worker thread (hot loops), which reach the one process-wide Datapath.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <napi.h>
#include <sys/mman.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "datapath/datapath.h"
#include "afxdp/xsk.h"
#include "system/sd_notify.h"

namespace vswitchd {

namespace {

bool parseMac(const std::string& s, uint8_t out[6]) {
  unsigned b[6];
  char tail;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    return false;
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(b[i]);
  return true;
}

std::string formatMac(const uint8_t* m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

uint16_t argU16(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const int64_t v = info[i].As<Napi::Number>().Int64Value();
  if (v < 0 || v > 0xffff) throw Napi::RangeError::New(info.Env(), std::string(name) + " out of range");
  return static_cast<uint16_t>(v);
}

void argMac(const Napi::CallbackInfo& info, size_t i, uint8_t out[6]) {
  if (!info[i].IsString() || !parseMac(info[i].As<Napi::String>().Utf8Value(), out))
    throw Napi::TypeError::New(info.Env(), "mac must be a string like 02:00:00:00:00:01");
}

std::vector<uint16_t> argPorts(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "expected an array of numbers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<uint16_t> out;
  for (uint32_t k = 0; k < arr.Length(); k++) out.push_back(static_cast<uint16_t>(arr.Get(k).As<Napi::Number>().Uint32Value()));
  return out;
}

Napi::Object fdbRecordToJs(Napi::Env env, const FdbRecord& r) {
  auto o = Napi::Object::New(env);
  o.Set("vlan", r.vlan);
  o.Set("mac", formatMac(r.mac));
  o.Set("port", r.port);
  o.Set("flags", r.flags);
  o.Set("lastSeenMs", static_cast<double>(r.last_seen_ms));
  return o;
}

// Runs f, turning C++ exceptions into JS ones.
template <typename F>
auto guarded(Napi::Env env, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

class DatapathWrap : public Napi::ObjectWrap<DatapathWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Datapath",
                       {
                           InstanceMethod<&DatapathWrap::AddPort>("addPort"),
                           InstanceMethod<&DatapathWrap::RemovePort>("removePort"),
                           InstanceMethod<&DatapathWrap::SetPortVlan>("setPortVlan"),
                           InstanceMethod<&DatapathWrap::SetPortActive>("setPortActive"),
                           InstanceMethod<&DatapathWrap::SetPortMtu>("setPortMtu"),
                           InstanceMethod<&DatapathWrap::SetFloodSet>("setFloodSet"),
                           InstanceMethod<&DatapathWrap::SetMirrors>("setMirrors"),
                           InstanceMethod<&DatapathWrap::MirrorCounters>("mirrorCounters"),
                           InstanceMethod<&DatapathWrap::Commit>("commit"),
                           InstanceMethod<&DatapathWrap::PortCounters>("portCounters"),
                           InstanceMethod<&DatapathWrap::WorkerCounters>("workerCounters"),
                           InstanceMethod<&DatapathWrap::FdbPut>("fdbPut"),
                           InstanceMethod<&DatapathWrap::FdbDelete>("fdbDelete"),
                           InstanceMethod<&DatapathWrap::FdbGet>("fdbGet"),
                           InstanceMethod<&DatapathWrap::FdbEntries>("fdbEntries"),
                           InstanceMethod<&DatapathWrap::FdbClear>("fdbClear"),
                           InstanceMethod<&DatapathWrap::FdbExpired>("fdbExpired"),
                           InstanceMethod<&DatapathWrap::FdbInfo>("fdbInfo"),
                           InstanceMethod<&DatapathWrap::Close>("close"),
                           InstanceMethod<&DatapathWrap::AddBond>("addBond"),
                           InstanceMethod<&DatapathWrap::SetPortFast>("setPortFast"),
                           InstanceMethod<&DatapathWrap::SetBondBuckets>("setBondBuckets"),
                           InstanceMethod<&DatapathWrap::SetLeg>("setLeg"),
                           InstanceMethod<&DatapathWrap::SendFrame>("sendFrame"),
                           InstanceMethod<&DatapathWrap::HandoverFds>("handoverFds"),
                           InstanceMethod<&DatapathWrap::HookLinkFd>("hookLinkFd"),
                           InstanceMethod<&DatapathWrap::PuntLinkFd>("puntLinkFd"),
                           InstanceMethod<&DatapathWrap::QuiesceForRestart>("quiesceForRestart"),
                           InstanceMethod<&DatapathWrap::XskFds>("xskFds"),
                           InstanceMethod<&DatapathWrap::XskAdoptFailures>("xskAdoptFailures"),
                           InstanceMethod<&DatapathWrap::ReleaseFastPorts>("releaseFastPorts"),
                           InstanceMethod<&DatapathWrap::ResetPortIndex>("resetPortIndex"),
                           InstanceMethod<&DatapathWrap::SetLearnFull>("setLearnFull"),
                           InstanceMethod<&DatapathWrap::SetPortPolicy>("setPortPolicy"),
                       });
  }

  explicit DatapathWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DatapathWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "new Datapath({ workers, framesPerWorker, fdbCapacity, bpfObject })");
    auto o = info[0].As<Napi::Object>();
    Datapath::Options opts{o.Get("workers").As<Napi::Number>().Uint32Value(),
                           o.Get("framesPerWorker").As<Napi::Number>().Uint32Value(),
                           o.Get("fdbCapacity").As<Napi::Number>().Uint32Value(),
                           o.Get("bpfObject").As<Napi::String>().Utf8Value(),
                           o.Get("fastPath").ToBoolean().Value(),
                           o.Get("anchorDevice").IsString() ? o.Get("anchorDevice").As<Napi::String>().Utf8Value() : "lo"};
    if (o.Get("tcObject").IsString()) opts.tc_object = o.Get("tcObject").As<Napi::String>().Utf8Value();
    if (o.Get("adopt").IsObject()) {
      const Napi::Object a = o.Get("adopt").As<Napi::Object>();
      auto fd = [&](const char* name) { return a.Get(name).IsNumber() ? a.Get(name).As<Napi::Number>().Int32Value() : -1; };
      opts.adopt_fdb_fd = fd("fdb");
      opts.adopt_maps = FastMapFds{fd("ports"), fd("tx"), fd("fstats"), fd("config"), fd("tc_ports"), fd("policy"), fd("buckets")};
    }
    // adoptXsk: { umem, anchor, sockets: { name: fd } } (a restart's AF_XDP side).
    if (o.Get("adoptXsk").IsObject()) {
      const Napi::Object x = o.Get("adoptXsk").As<Napi::Object>();
      opts.adopt_umem_fd = x.Get("umem").As<Napi::Number>().Int32Value();
      opts.adopt_anchor_fd = x.Get("anchor").As<Napi::Number>().Int32Value();
      if (x.Get("sockets").IsObject()) {
        const Napi::Object socks = x.Get("sockets").As<Napi::Object>();
        const Napi::Array names = socks.GetPropertyNames();
        for (uint32_t i = 0; i < names.Length(); i++) {
          const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
          opts.adopt_xsks.emplace_back(name, socks.Get(name).As<Napi::Number>().Int32Value());
        }
      }
    }
    if (Datapath::current()) throw Napi::Error::New(env, "a datapath already exists in this process");
    dp_ = guarded(env, [&] { return std::make_shared<Datapath>(opts); });
    Datapath::setCurrent(dp_);
  }

 private:
  Datapath& dp(Napi::Env env) {
    if (!dp_) throw Napi::Error::New(env, "datapath is closed");
    return *dp_;
  }

  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint16_t index = argU16(info, 0, "index");
    const std::string name = info[1].As<Napi::String>().Utf8Value();
    const int queues = info[2].As<Napi::Number>().Int32Value();
    const std::string mode = info[3].As<Napi::String>().Utf8Value();
    const int tap_fd = info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : -1;
    PortHook hook;
    if (info.Length() > 5 && info[5].IsObject()) {
      const Napi::Object h = info[5].As<Napi::Object>();
      hook.tc = h.Get("hook").IsString() && h.Get("hook").As<Napi::String>().Utf8Value() == "tc";
      if (hook.tc) {
        if (!h.Get("puntNear").IsString() || !h.Get("puntFar").IsString())
          throw Napi::TypeError::New(env, "a tc port needs puntNear and puntFar device names");
        hook.punt_near = h.Get("puntNear").As<Napi::String>().Utf8Value();
        hook.punt_far = h.Get("puntFar").As<Napi::String>().Utf8Value();
      }
      hook.peer_netns = h.Get("peerNetns").ToBoolean();
      if (h.Get("adoptLinkFd").IsNumber()) hook.adopt_link_fd = h.Get("adoptLinkFd").As<Napi::Number>().Int32Value();
      if (h.Get("adoptPuntLinkFd").IsNumber()) hook.adopt_punt_link_fd = h.Get("adoptPuntLinkFd").As<Napi::Number>().Int32Value();
      hook.keep_programs = h.Get("keepPrograms").ToBoolean();
      hook.early = h.Get("early").ToBoolean();
      if (h.Get("adoptXsks").IsArray()) {
        const Napi::Array names = h.Get("adoptXsks").As<Napi::Array>();
        for (uint32_t i = 0; i < names.Length(); i++)
          hook.adopt_xsks.push_back(names.Get(i).IsString() ? names.Get(i).As<Napi::String>().Utf8Value() : std::string());
      }
      if (h.Get("adoptPuntXsk").IsString()) hook.adopt_punt_xsk = h.Get("adoptPuntXsk").As<Napi::String>().Utf8Value();
    }
    auto r = guarded(env, [&] { return dp(env).addPort(index, name, queues, mode, tap_fd, hook); });
    auto o = Napi::Object::New(env);
    o.Set("xdpMode", r.xdp_mode);
    o.Set("hook", r.hook);
    auto owners = Napi::Array::New(env, r.owners.size());
    for (uint32_t i = 0; i < r.owners.size(); i++) owners.Set(i, r.owners[i]);
    o.Set("owners", owners);
    return o;
  }

  void RemovePort(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { dp(info.Env()).removePort(argU16(info, 0, "index")); });
  }

  void SetPortVlan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint16_t index = argU16(info, 0, "index");
    auto o = info[1].As<Napi::Object>();
    const bool trunk = o.Get("trunk").ToBoolean();
    const uint16_t access = static_cast<uint16_t>(o.Get("accessVlan").ToNumber().Uint32Value());
    const uint16_t native = static_cast<uint16_t>(o.Get("nativeVlan").ToNumber().Uint32Value());
    std::vector<uint16_t> trunks;
    if (o.Get("trunks").IsArray()) {
      auto arr = o.Get("trunks").As<Napi::Array>();
      for (uint32_t k = 0; k < arr.Length(); k++) trunks.push_back(static_cast<uint16_t>(arr.Get(k).As<Napi::Number>().Uint32Value()));
    }
    guarded(env, [&] { dp(env).setPortVlan(index, trunk, access, native, trunks); });
  }

  void SetPortMtu(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { dp(info.Env()).setPortMtu(argU16(info, 0, "index"), info[1].As<Napi::Number>().Uint32Value()); });
  }
  void SetPortActive(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { dp(info.Env()).setPortActive(argU16(info, 0, "index"), info[1].ToBoolean()); });
  }

  void SetFloodSet(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { dp(info.Env()).setFloodSet(argU16(info, 0, "vlan"), argPorts(info, 1)); });
  }

  // setMirrors([{ out, ingress: [..], egress: [..], vlans: [..], anyPort }]): slot i is entry i.
  void SetMirrors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "expected an array of mirrors");
    auto arr = info[0].As<Napi::Array>();
    std::vector<MirrorSpec> mirrors;
    auto list = [&](const Napi::Object& o, const char* key) {
      std::vector<uint16_t> out;
      if (!o.Get(key).IsArray()) return out;
      auto a = o.Get(key).As<Napi::Array>();
      for (uint32_t k = 0; k < a.Length(); k++) out.push_back(static_cast<uint16_t>(a.Get(k).As<Napi::Number>().Uint32Value()));
      return out;
    };
    for (uint32_t i = 0; i < arr.Length(); i++) {
      auto o = arr.Get(i).As<Napi::Object>();
      MirrorSpec m;
      m.used = o.Get("out").IsNumber();
      m.out = static_cast<uint16_t>(o.Get("out").ToNumber().Uint32Value());
      m.ingress = list(o, "ingress");
      m.egress = list(o, "egress");
      m.vlans = list(o, "vlans");
      m.any_port = o.Get("anyPort").ToBoolean();
      mirrors.push_back(std::move(m));
    }
    guarded(env, [&] { dp(env).setMirrors(mirrors); });
  }

  // mirrorCounters(slot): { frames, bytes, lost: { reason: n } } since the datapath started.
  Napi::Value MirrorCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int slot = static_cast<int>(info[0].ToNumber().Int32Value());
    if (slot < 0 || slot >= kMaxMirrors) throw Napi::RangeError::New(env, "mirror slot out of range");
    Datapath& d = dp(env);
    auto o = Napi::Object::New(env);
    o.Set("frames", static_cast<double>(d.mirrorCounter(slot, kMirrorFrames)));
    o.Set("bytes", static_cast<double>(d.mirrorCounter(slot, kMirrorBytes)));
    auto lost = Napi::Object::New(env);
    for (int r = 0; r < kDropCount; r++) {
      const uint64_t n = d.mirrorCounter(slot, kMirrorLostBase + r);
      if (n) lost.Set(kDropReasonNames[r], static_cast<double>(n));
    }
    o.Set("lost", lost);
    return o;
  }

  void Commit(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { dp(info.Env()).commit(); });
  }

  Napi::Value PortCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint16_t port = argU16(info, 0, "index");
    if (port >= kMaxPorts) throw Napi::RangeError::New(env, "port index out of range");
    Datapath& d = dp(env);
    auto o = Napi::Object::New(env);
    o.Set("rx_packets", static_cast<double>(d.counter(port, kRxPackets)));
    o.Set("rx_bytes", static_cast<double>(d.counter(port, kRxBytes)));
    o.Set("tx_packets", static_cast<double>(d.counter(port, kTxPackets)));
    o.Set("tx_bytes", static_cast<double>(d.counter(port, kTxBytes)));
    o.Set("flood_packets", static_cast<double>(d.counter(port, kFloodPackets)));
    auto drops = Napi::Object::New(env);
    for (int r = 0; r < kDropCount; r++) drops.Set(kDropReasonNames[r], static_cast<double>(d.counter(port, kDropBase + r)));
    o.Set("drops", drops);
    const FastCounters fc = d.fastCounters(port);
    auto fast = Napi::Object::New(env);
    fast.Set("rx_packets", static_cast<double>(fc.rx_packets));
    fast.Set("rx_bytes", static_cast<double>(fc.rx_bytes));
    fast.Set("tx_packets", static_cast<double>(fc.tx_packets));
    fast.Set("tx_bytes", static_cast<double>(fc.tx_bytes));
    fast.Set("redirect_failed", static_cast<double>(fc.redirect_failed));
    fast.Set("mac_limit", static_cast<double>(fc.mac_limit));
    auto policy = Napi::Object::New(env);  // the port policy's drops in its programs, by reason
    for (int i = 0; i < VSW_POLICY_REASONS; i++)
      policy.Set(kDropReasonNames[kDropSpoofedMac + i], static_cast<double>(fc.policy_drops[i]));
    fast.Set("policy", policy);
    o.Set("fast", fast);
    auto xskObject = [&](const XskStats& xs) {
      auto xsk = Napi::Object::New(env);
      xsk.Set("rx_dropped", static_cast<double>(xs.rx_dropped));
      xsk.Set("rx_invalid_descs", static_cast<double>(xs.rx_invalid_descs));
      xsk.Set("tx_invalid_descs", static_cast<double>(xs.tx_invalid_descs));
      xsk.Set("rx_ring_full", static_cast<double>(xs.rx_ring_full));
      xsk.Set("rx_fill_ring_empty_descs", static_cast<double>(xs.rx_fill_ring_empty));
      xsk.Set("tx_ring_empty_descs", static_cast<double>(xs.tx_ring_empty));
      return xsk;
    };
    o.Set("xsk", xskObject(d.xskStats(port)));
    o.Set("xskLive", xskObject(d.xskLiveStats(port)));
    return o;
  }

  // setPortPolicy(index, { macs: ["52:54:00:12:34:56"], learn: true (macs may grow: not locked yet), ips: ["10.0.0.5", "fd00::5"],
  //   storm: [broadcast, multicast, unknown_unicast] (frames/s, 0: none), policeRate, policeBurst (bytes/s, bytes) })
  // An empty object: no policy. The control plane validated it (src/switch/config/config.ts).
  void SetPortPolicy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint16_t index = argU16(info, 0, "index");
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "setPortPolicy(index, policy)");
    auto o = info[1].As<Napi::Object>();
    PortPolicy p{};
    auto list = [&](const char* key) {
      std::vector<std::string> out;
      if (!o.Get(key).IsArray()) return out;
      auto arr = o.Get(key).As<Napi::Array>();
      for (uint32_t k = 0; k < arr.Length(); k++) out.push_back(arr.Get(k).ToString().Utf8Value());
      return out;
    };
    if (o.Get("macs").IsArray()) {
      p.flags |= VSW_POL_MACS;
      for (const std::string& m : list("macs")) {
        unsigned b[6];
        if (p.n_macs >= VSW_POLICY_MACS || std::sscanf(m.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
          throw Napi::RangeError::New(env, "bad or too many MACs in the port policy: " + m);
        for (int i = 0; i < 6; i++) p.macs[p.n_macs][i] = static_cast<uint8_t>(b[i]);
        p.n_macs++;
      }
      // security.learn before the port is locked: other MACs go up to be admitted.
      if (o.Get("learn").ToBoolean()) p.flags |= VSW_POL_LEARN;
    }
    if (o.Get("ips").IsArray()) {
      p.flags |= VSW_POL_IPS;
      for (const std::string& a : list("ips")) {
        if (p.n_ipv4 < VSW_POLICY_IPS && inet_pton(AF_INET, a.c_str(), &p.ipv4[p.n_ipv4]) == 1) p.n_ipv4++;
        else if (p.n_ipv6 < VSW_POLICY_IPS && inet_pton(AF_INET6, a.c_str(), p.ipv6[p.n_ipv6]) == 1) p.n_ipv6++;
        else throw Napi::RangeError::New(env, "bad or too many addresses in the port policy: " + a);
      }
    }
    if (o.Get("storm").IsArray()) {
      auto arr = o.Get("storm").As<Napi::Array>();
      for (uint32_t k = 0; k < 3 && k < arr.Length(); k++) p.storm_pps[k] = arr.Get(k).ToNumber().Uint32Value();
      if (p.storm_pps[0] || p.storm_pps[1] || p.storm_pps[2]) p.flags |= VSW_POL_STORM;
    }
    if (o.Get("policeRate").IsNumber()) {
      p.police_rate = static_cast<uint64_t>(o.Get("policeRate").ToNumber().DoubleValue());
      p.police_burst = static_cast<uint64_t>(o.Get("policeBurst").ToNumber().DoubleValue());
      if (p.police_rate > VSW_POLICE_MAX_RATE) throw Napi::RangeError::New(env, "policing rate too high");
      if (p.police_rate) p.flags |= VSW_POL_POLICE;
    }
    guarded(env, [&] { dp(env).setPortPolicy(index, p); });
  }

  void SetLearnFull(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    guarded(env, [&] { dp(env).setLearnFull(argU16(info, 0, "index"), info[1].ToBoolean()); });
  }

  void SetPortFast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    guarded(env, [&] { dp(env).setPortFast(argU16(info, 0, "index"), info[1].ToBoolean(), info[2].ToBoolean(), info[3].ToBoolean(),
                                              info[4].ToBoolean()); });
  }

  Napi::Value WorkerCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint32_t w = info[0].As<Napi::Number>().Uint32Value();
    Datapath& d = dp(env);
    if (w >= d.workers()) throw Napi::RangeError::New(env, "worker out of range");
    static const char* const names[kWorkerCounterCount] = {"loops",    "rx_batches", "rx_frames", "wakeups", "busy_ns",
                                                           "total_ns", "learn_events", "tx_kicks", "handoffs"};
    auto o = Napi::Object::New(env);
    for (int i = 0; i < kWorkerCounterCount; i++) o.Set(names[i], static_cast<double>(d.workerCounter(w, i)));
    return o;
  }

  Napi::Value FdbPut(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t mac[6];
    argMac(info, 1, mac);
    const uint16_t vlan = argU16(info, 0, "vlan");
    const uint16_t port = argU16(info, 2, "port");
    const uint16_t flags = info[3].IsNumber() ? argU16(info, 3, "flags") : 0;
    if (vlan == 0 || vlan > 4094) throw Napi::RangeError::New(env, "vlan must be in 1..4094");
    return Napi::Boolean::New(env, dp(env).fdb().put(vlan, mac, port, flags, monotonicMs()));
  }

  Napi::Value FdbDelete(const Napi::CallbackInfo& info) {
    uint8_t mac[6];
    argMac(info, 1, mac);
    return Napi::Boolean::New(info.Env(), dp(info.Env()).fdb().remove(argU16(info, 0, "vlan"), mac));
  }

  Napi::Value FdbGet(const Napi::CallbackInfo& info) {
    uint8_t mac[6];
    argMac(info, 1, mac);
    FdbRecord r;
    if (!dp(info.Env()).fdb().get(argU16(info, 0, "vlan"), mac, &r)) return info.Env().Undefined();
    return fdbRecordToJs(info.Env(), r);
  }

  Napi::Value FdbEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto records = dp(env).fdb().entries();
    auto arr = Napi::Array::New(env, records.size());
    for (uint32_t i = 0; i < records.size(); i++) arr.Set(i, fdbRecordToJs(env, records[i]));
    return arr;
  }

  Napi::Value FdbExpired(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const double cutoff = info[0].As<Napi::Number>().DoubleValue();
    const auto records = dp(env).fdb().expired(cutoff > 0 ? static_cast<uint64_t>(cutoff) : 0);
    auto arr = Napi::Array::New(env, records.size());
    for (uint32_t i = 0; i < records.size(); i++) arr.Set(i, fdbRecordToJs(env, records[i]));
    return arr;
  }

  Napi::Value FdbClear(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), dp(info.Env()).fdb().clear());
  }

  Napi::Value FdbInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("size", dp(env).fdb().size());
    o.Set("capacity", dp(env).fdb().capacity());
    o.Set("mapFd", dp(env).fdb().mapFd());
    return o;
  }

  void AddBond(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    guarded(env, [&] { dp(env).addBond(argU16(info, 0, "index"), info[1].As<Napi::String>().Utf8Value()); });
  }

  void SetBondBuckets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int16_array)
      throw Napi::TypeError::New(env, "buckets must be an Int16Array of 256 port indices");
    auto arr = info[2].As<Napi::Int16Array>();
    std::vector<int16_t> buckets(arr.Data(), arr.Data() + arr.ElementLength());
    const uint16_t hash = argU16(info, 1, "hash");
    guarded(env, [&] { dp(env).setBondBuckets(argU16(info, 0, "bond"), static_cast<uint8_t>(hash), buckets); });
  }

  void SetLeg(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int32_t bond = info[1].As<Napi::Number>().Int32Value();
    guarded(env, [&] { dp(env).setLeg(argU16(info, 0, "leg"), static_cast<int16_t>(bond), info[2].ToBoolean()); });
  }

  void SendFrame(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "frame must be a Buffer");
    auto buf = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> frame(buf.Data(), buf.Data() + buf.Length());
    guarded(env, [&] { dp(env).sendFrame(argU16(info, 0, "port"), frame); });
  }

  // The map fds a restart hands to the next daemon, by their handover names.
  Napi::Value HandoverFds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Datapath& d = dp(env);
    const FastMapFds m = d.fastMapFds();
    auto o = Napi::Object::New(env);
    o.Set("fdb", d.fdbMapFd());
    o.Set("ports", m.ports);
    o.Set("tx", m.tx);
    o.Set("fstats", m.stats);
    o.Set("config", m.config);
    o.Set("tc_ports", m.tc_ports);
    o.Set("policy", m.policy);
    o.Set("buckets", m.buckets);
    o.Set("umem", d.umemFd());
    o.Set("umem.anchor", d.umemAnchorFd());
    return o;
  }

  Napi::Value QuiesceForRestart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Napi::Number::New(env, static_cast<double>(guarded(env, [&] { return dp(env).quiesceForRestart(); })));
  }

  // A port's AF_XDP sockets (a restart hands them over): { device: [fd per queue], punt: fd | -1 }.
  Napi::Value XskFds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Datapath& d = dp(env);
    const uint16_t index = argU16(info, 0, "index");
    const std::vector<int> fds = d.deviceXskFds(index);
    auto device = Napi::Array::New(env, fds.size());
    for (uint32_t i = 0; i < fds.size(); i++) device.Set(i, fds[i]);
    auto o = Napi::Object::New(env);
    o.Set("device", device);
    o.Set("punt", d.puntXskFd(index));
    return o;
  }

  Napi::Value XskAdoptFailures(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& list = dp(env).xskAdoptFailures();
    auto a = Napi::Array::New(env, list.size());
    for (uint32_t i = 0; i < list.size(); i++) a.Set(i, list[i]);
    return a;
  }

  Napi::Value PuntLinkFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), dp(info.Env()).puntLinkFd(argU16(info, 0, "index")));
  }

  Napi::Value HookLinkFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), dp(info.Env()).hookLinkFd(argU16(info, 0, "index")));
  }

  // Returns the handover names of the handed-over sockets no port took (now closed).
  Napi::Value ReleaseFastPorts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<std::string> names = dp(env).releaseFastPorts();
    auto a = Napi::Array::New(env, names.size());
    for (uint32_t i = 0; i < names.size(); i++) a.Set(i, names[i]);
    return a;
  }

  void ResetPortIndex(const Napi::CallbackInfo& info) { dp(info.Env()).resetPortIndex(argU16(info, 0, "index")); }

  // Detaches every port and frees the UMEM once the workers have let go.
  void Close(const Napi::CallbackInfo&) {
    if (!dp_) return;
    Datapath::setCurrent(nullptr);
    dp_.reset();
  }

  std::shared_ptr<Datapath> dp_;
};

// Called by a worker thread: runs its hot loop for up to budget_ms.
Napi::Value WorkerRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t worker = info[0].As<Napi::Number>().Uint32Value();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "stop flag must be an Int32Array over a SharedArrayBuffer");
  const int32_t* stop = info[1].As<Napi::Int32Array>().Data();
  const uint32_t budget = info[2].As<Napi::Number>().Uint32Value();
  std::shared_ptr<Datapath> dp = Datapath::current();
  if (!dp) throw Napi::Error::New(env, "no datapath in this process");
  if (worker >= dp->workers()) throw Napi::RangeError::New(env, "worker id out of range");
  const RunResult r = guarded(env, [&] { return dp->run(worker, stop, budget); });
  auto learned = Napi::Array::New(env, r.learned.size());
  for (uint32_t i = 0; i < r.learned.size(); i++) {
    auto o = Napi::Object::New(env);
    o.Set("vlan", r.learned[i].vlan);
    o.Set("mac", formatMac(r.learned[i].mac));
    o.Set("port", r.learned[i].port);
    learned.Set(i, o);
  }
  auto punted = Napi::Array::New(env, r.punted.size());
  for (uint32_t i = 0; i < r.punted.size(); i++) {
    auto o = Napi::Object::New(env);
    o.Set("port", r.punted[i].port);
    o.Set("frame", Napi::Buffer<uint8_t>::Copy(env, r.punted[i].frame.data(), r.punted[i].frame.size()));
    punted.Set(i, o);
  }
  auto out = Napi::Object::New(env);
  out.Set("learned", learned);
  out.Set("punted", punted);
  return out;
}

Napi::Value MonotonicMs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(monotonicMs()));
}

Napi::Value OpenTap(const Napi::CallbackInfo& info) {
  std::string error;
  const int fd = openTap(info[0].As<Napi::String>().Utf8Value(), info[1].ToBoolean(), &error);
  if (fd < 0) throw Napi::Error::New(info.Env(), error);
  return Napi::Number::New(info.Env(), fd);
}

void SetTapPersist(const Napi::CallbackInfo& info) {
  std::string error;
  if (!setTapPersist(info[0].As<Napi::String>().Utf8Value(), info[1].ToBoolean(), &error))
    throw Napi::Error::New(info.Env(), error);
}

void CloseFd(const Napi::CallbackInfo& info) { close(info[0].As<Napi::Number>().Int32Value()); }

// A copy of an fd (close-on-exec): the early start gives the datapath copies, so the
// handed-over originals stay intact if it has to fall back (src/switch/daemon/early.ts).
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  const int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw Napi::Error::New(info.Env(), std::string("dup: ") + std::strerror(errno));
  return Napi::Number::New(info.Env(), fd);
}

std::vector<int> argFds(const Napi::Value& v) {
  std::vector<int> fds;
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  return fds;
}

std::vector<std::string> argStrings(const Napi::Value& v) {
  std::vector<std::string> out;
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

// sdNotify(state, fds?): fds go along with SCM_RIGHTS (FDSTORE=1).
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), sdNotifyWithFds(info[0].As<Napi::String>().Utf8Value(), argFds(info[1])));
}

// A file in memory (the handover state a restart leaves in the fd store).
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  const int fd = memfd_create(info[0].As<Napi::String>().Utf8Value().c_str(), MFD_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(info.Env(), std::string("memfd_create: ") + std::strerror(errno));
  return Napi::Number::New(info.Env(), fd);
}

// Leaves at once, without running any destructor: a restart must not detach
// or close what the next daemon adopts.
void ExitNow(const Napi::CallbackInfo& info) { _exit(info[0].As<Napi::Number>().Int32Value()); }

// A tcx link of a port that is gone from the config after a restart: off the device.
void DetachLink(const Napi::CallbackInfo& info) {
  const int fd = info[0].As<Napi::Number>().Int32Value();
  bpf_link_detach(fd);
  close(fd);
}

// The program running in a bpf_link (port list shows it: an upgrade changes it).
Napi::Value LinkProgId(const Napi::CallbackInfo& info) {
  bpf_link_info link{};
  __u32 len = sizeof(link);
  if (bpf_obj_get_info_by_fd(info[0].As<Napi::Number>().Int32Value(), &link, &len) != 0) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), link.prog_id);
}

// reexec(file, argv, fds, names): returns only on failure.
void Reexec(const Napi::CallbackInfo& info) {
  const int err = reexecWithFds(info[0].As<Napi::String>().Utf8Value(), argStrings(info[1]), argFds(info[2]), argStrings(info[3]));
  throw Napi::Error::New(info.Env(), std::string("re-exec: ") + std::strerror(-err));
}

// What a handed-over socket and UMEM must match to be adopted (the handover state carries it).
std::string xskLayout() {
  const RingSizes r;
  return "chunk " + std::to_string(kFrameSize) + ", rings rx/tx/fill/comp " + std::to_string(r.rx) + "/" + std::to_string(r.tx) + "/" +
         std::to_string(r.fill) + "/" + std::to_string(r.comp);
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    auto reasons = Napi::Array::New(env, kDropCount);
    for (int i = 0; i < kDropCount; i++) reasons.Set(i, kDropReasonNames[i]);
    DefineAddon(exports, {
                             InstanceValue("Datapath", DatapathWrap::Define(env)),
                             InstanceValue("dropReasons", reasons),
                             InstanceValue("maxPorts", Napi::Number::New(env, kMaxPorts)),
                             InstanceValue("maxMirrors", Napi::Number::New(env, kMaxMirrors)),
                             InstanceMethod<&Addon::Run>("workerRun"),
                             InstanceMethod<&Addon::Now>("monotonicMs"),
                             InstanceMethod<&Addon::Tap>("openTap"),
                             InstanceMethod<&Addon::Persist>("setTapPersist"),
                             InstanceMethod<&Addon::Close>("closeFd"),
                             InstanceMethod<&Addon::Dup>("dupFd"),
                             InstanceMethod<&Addon::Notify>("sdNotify"),
                             InstanceMethod<&Addon::Memfd>("memfdCreate"),
                             InstanceMethod<&Addon::Exit>("exitNow"),
                             InstanceMethod<&Addon::Exec>("reexec"),
                             InstanceMethod<&Addon::Detach>("detachLink"),
                             InstanceMethod<&Addon::ProgId>("linkProgId"),
                             InstanceValue("layoutVersion", Napi::Number::New(env, VSW_LAYOUT_VERSION)),
                             InstanceValue("xskLayout", Napi::String::New(env, xskLayout())),
                         });
  }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info) { return WorkerRun(info); }
  Napi::Value Now(const Napi::CallbackInfo& info) { return MonotonicMs(info); }
  Napi::Value Tap(const Napi::CallbackInfo& info) { return OpenTap(info); }
  void Persist(const Napi::CallbackInfo& info) { SetTapPersist(info); }
  void Close(const Napi::CallbackInfo& info) { CloseFd(info); }
  Napi::Value Dup(const Napi::CallbackInfo& info) { return DupFd(info); }
  Napi::Value Notify(const Napi::CallbackInfo& info) { return SdNotify(info); }
  Napi::Value Memfd(const Napi::CallbackInfo& info) { return MemfdCreate(info); }
  void Exit(const Napi::CallbackInfo& info) { ExitNow(info); }
  void Exec(const Napi::CallbackInfo& info) { Reexec(info); }
  void Detach(const Napi::CallbackInfo& info) { DetachLink(info); }
  Napi::Value ProgId(const Napi::CallbackInfo& info) { return LinkProgId(info); }
};

}  // namespace

}  // namespace vswitchd

using VswitchdAddon = vswitchd::Addon;
NODE_API_ADDON(VswitchdAddon)
