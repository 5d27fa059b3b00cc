// A port's security, storm control and policing settings: from its config to what the
// datapath takes, and back to what `vswitchctl port show` prints.
import type { PortConfig } from '../config/config.js';
import type { NativePortPolicy } from '../datapath/native.js';

/** The drop reasons of a port's policy (kDropSpoofedMac.. kDropPoliced in native/datapath/datapath.h). */
export const POLICY_DROP_REASONS = [
  'spoofed_mac', 'spoofed_ip', 'spoofed_arp', 'spoofed_nd',
  'storm_broadcast', 'storm_multicast', 'storm_unknown_unicast', 'policed',
] as const;

export const STORM_REASONS = ['storm_broadcast', 'storm_multicast', 'storm_unknown_unicast'] as const;

/** The datapath's form of a port's policy: rates in bytes/s and bytes (kilobits are 1000 bits, as OVS's). */
export function nativePolicy(cfg: PortConfig): NativePortPolicy {
  const out: NativePortPolicy = {};
  if (cfg.security?.macs) out.macs = cfg.security.macs;
  if (cfg.security?.ips) out.ips = cfg.security.ips;
  const s = cfg.storm_control;
  if (s && (s.broadcast || s.multicast || s.unknown_unicast)) out.storm = [s.broadcast ?? 0, s.multicast ?? 0, s.unknown_unicast ?? 0];
  if (cfg.policing) {
    out.policeRate = (cfg.policing.rate_kbps * 1000) / 8;
    out.policeBurst = (cfg.policing.burst_kb * 1000) / 8;
  }
  return out;
}

/** Whether two port configs differ in their policy keys. */
export function samePolicy(a: PortConfig, b: PortConfig): boolean {
  return JSON.stringify([a.security, a.storm_control, a.policing]) === JSON.stringify([b.security, b.storm_control, b.policing]);
}

/** A port's policy settings as shown to users, with their drop counts; undefined: none set. */
export function hasPolicy(cfg: PortConfig): boolean {
  return !!(cfg.security || cfg.storm_control || cfg.policing);
}

export function policyView(cfg: PortConfig, drops: Record<string, number> = {}) {
  if (!hasPolicy(cfg)) return undefined;
  return {
    ...(cfg.security ? { security: cfg.security } : {}),
    ...(cfg.storm_control ? { storm_control: cfg.storm_control } : {}),
    ...(cfg.policing ? { policing: cfg.policing } : {}),
    drops: Object.fromEntries(POLICY_DROP_REASONS.map((r) => [r, drops[r] ?? 0])),
  };
}
