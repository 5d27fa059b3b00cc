// A port's security, storm control and policing settings: from its config to what the
// datapath takes, and back to what `vswitchctl port show` prints.
import type { PortConfig, PortSecurityConfig } from '../config/config.js';
import type { NativePortPolicy } from '../datapath/native.js';

/** The drop reasons of a port's policy (kDropSpoofedMac.. kDropPoliced, then kDropMacLearning, in native/datapath/datapath.h). */
export const POLICY_DROP_REASONS = [
  'spoofed_mac', 'spoofed_ip', 'spoofed_arp', 'spoofed_nd',
  'storm_broadcast', 'storm_multicast', 'storm_unknown_unicast', 'policed',
  'mac_learning',
] as const;

export const STORM_REASONS = ['storm_broadcast', 'storm_multicast', 'storm_unknown_unicast'] as const;

/**
 * The datapath's form of a port's policy: rates in bytes/s and bytes (kilobits are 1000 bits,
 * as OVS's). learned: the MACs security.learn admitted so far, allowed beside the listed ones.
 */
export function nativePolicy(cfg: PortConfig, learned: readonly string[] = []): NativePortPolicy {
  const out: NativePortPolicy = {};
  const sec = cfg.security;
  if (sec?.learn !== undefined) {
    out.macs = [...(sec.macs ?? []), ...learned.slice(0, sec.learn)];
    if (learned.length < sec.learn) out.learn = true;
  } else if (sec?.macs) {
    out.macs = sec.macs;
  }
  if (cfg.security?.ips) out.ips = cfg.security.ips;
  const s = cfg.storm_control;
  if (s && (s.broadcast || s.multicast || s.unknown_unicast)) out.storm = [s.broadcast ?? 0, s.multicast ?? 0, s.unknown_unicast ?? 0];
  if (cfg.policing) {
    out.policeRate = (cfg.policing.rate_kbps * 1000) / 8;
    out.policeBurst = (cfg.policing.burst_kb * 1000) / 8;
  }
  return out;
}

/**
 * What a source MAC reported from a port means for security.learn: allowed already (or the
 * port does not learn), admitted now (one more of its N places), or refused (locked).
 */
export function admission(sec: PortSecurityConfig | undefined, learned: readonly string[], mac: string): 'allowed' | 'admitted' | 'refused' {
  if (sec?.learn === undefined || sec.macs?.includes(mac) || learned.includes(mac)) return 'allowed';
  return learned.length < sec.learn ? 'admitted' : 'refused';
}

/** Whether two port configs differ in their policy keys. */
export function samePolicy(a: PortConfig, b: PortConfig): boolean {
  return JSON.stringify([a.security, a.storm_control, a.policing]) === JSON.stringify([b.security, b.storm_control, b.policing]);
}

/** A port's policy settings as shown to users, with their drop counts; undefined: none set. */
export function hasPolicy(cfg: PortConfig): boolean {
  return !!(cfg.security || cfg.storm_control || cfg.policing);
}

export function policyView(cfg: PortConfig, drops: Record<string, number> = {}, learned: readonly string[] = []) {
  if (!hasPolicy(cfg)) return undefined;
  const sec = cfg.security;
  return {
    ...(sec ? { security: sec.learn === undefined ? sec : { ...sec, learned: [...learned], locked: learned.length >= sec.learn } } : {}),
    ...(cfg.storm_control ? { storm_control: cfg.storm_control } : {}),
    ...(cfg.policing ? { policing: cfg.policing } : {}),
    drops: Object.fromEntries(POLICY_DROP_REASONS.map((r) => [r, drops[r] ?? 0])),
  };
}
