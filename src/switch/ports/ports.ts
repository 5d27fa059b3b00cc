// The switch's ports: bringing a device under the datapath and taking it off.
import { admission, nativePolicy } from './policy.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BondConfig, PortConfig, PortSecurityConfig } from '../config/config.js';
import { vlanMode } from '../l2/vlan-rules.js';
import * as hygiene from './hygiene.js';
import type { PeerChanges } from './hygiene.js';
import type { NativeAddon, NativeDatapath, PortHook } from '../datapath/native.js';
import type { FastPathMode } from '../config/config.js';
import type { PortKind, VlanMode } from '../types.js';

/** The port config a bond's logical port has: its name and VLAN keys. */
export function bondPortConfig(cfg: BondConfig): PortConfig {
  return {
    name: cfg.name,
    ...(cfg.vlan !== undefined ? { vlan: cfg.vlan } : {}),
    ...(cfg.trunks ? { trunks: cfg.trunks } : {}),
    ...(cfg.native_vlan !== undefined ? { native_vlan: cfg.native_vlan } : {}),
  };
}

export interface Port {
  index: number;
  name: string;
  kind: PortKind;
  vlan: VlanMode;
  /** The configuration it was added with (kept to re-attach when its device returns). */
  cfg: PortConfig;
  queues: number;
  xdpMode: string;
  /** Worker owning each queue. */
  owners: number[];
  /** Attached to the datapath: the device exists and the port carries traffic. */
  up: boolean;
  /** Why the port is down, when it is. */
  downReason?: string;
  /** We created the device and remove it when the port goes. */
  created: boolean;
  tapFd?: number;
  /** A bond leg: the bond it belongs to (its frames count as the bond's). */
  bond?: string;
  /** The device's MTU (frames larger than it are dropped towards the port: mtu_exceeded). */
  mtu?: number;
  /** Where its frames enter the datapath: the tc program (offloads kept), the XDP program, the internal tap's fd, or none (a bond). */
  hook?: PortHook;
  /** Whether known unicast from (in) and to (out) this port is switched in the kernel. */
  fastPath?: { in: boolean; out: boolean };
  /** A tc port's punt veth pair, removed with the port. */
  punt?: { near: string; far: string };
  /** What we changed on its veth peer (XDP hook only), put back when the port goes. */
  peerChanges?: PeerChanges;
  /** The id of the tc program running in its link (an upgrade changes it). */
  progId?: number;
  /** Taken over from the daemon that ran before a restart (its tc link, punt pair, index). */
  adopted?: boolean;
  /** How it was put in the datapath, for the next daemon's early start (src/switch/daemon/early.ts). */
  attached?: AttachedAs;
  /** security.learn: the MACs it learned and is locked to (in order; at most learn of them). */
  learned: string[];
}

/** A port's learned MACs as a restart hands them over, with the security settings they were learned under. */
export interface LearnedMacs {
  security: PortSecurityConfig;
  macs: string[];
}

/** What a restart's early start needs to put a port back in the datapath before the config is read. */
export interface AttachedAs {
  ifindex: number;
  peerNetns: boolean;
  /** setPortFast's fastIn, fastOut, tcOut, fastOutMb. */
  fast: [boolean, boolean, boolean, boolean];
}

/** What a port had before a restart, for add() to take over (src/switch/daemon/handover.ts). */
export interface AdoptedPort {
  index: number;
  /** Its tcx link: the new program replaces the running one in it. */
  linkFd?: number;
  /** A tc port's punt far end's XDP link. */
  puntLinkFd?: number;
  /** The links run this build's programs: they stay as they run, nothing is loaded. */
  keepPrograms?: boolean;
  peerChanges?: PeerChanges;
  /** Its AF_XDP sockets as the datapath holds them after a restart (handover names): by device queue, and the punt far end's. */
  xsks?: { device: string[]; punt: string };
}

/** What attach() takes over from before a restart. */
export type AdoptedLinks = Pick<AdoptedPort, 'linkFd' | 'puntLinkFd' | 'keepPrograms' | 'xsks'>;

/**
 * The devices vswitchd created (VM taps), kept in a file so that a run that
 * follows a crash still knows they are its own to remove on a clean stop.
 */
/** A device's MTU from sysfs (1500 if it cannot be read). */
export function readMtu(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim()) || 1500;
  } catch {
    return 1500;
  }
}

export class CreatedDevices {
  private readonly names: Set<string>;

  constructor(private readonly file: string) {
    let saved: unknown = [];
    try {
      saved = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      // no file: nothing was left behind
    }
    this.names = new Set(Array.isArray(saved) ? saved.filter((n): n is string => typeof n === 'string') : []);
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  add(name: string): void {
    this.names.add(name);
    this.save();
  }

  delete(name: string): void {
    if (this.names.delete(name)) this.save();
  }

  private save(): void {
    if (this.names.size === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileSync(this.file, JSON.stringify([...this.names]));
  }
}

export interface PortOptions {
  native: NativeAddon;
  created: CreatedDevices;
  datapath: NativeDatapath;
  xdpMode: 'auto' | 'native' | 'generic';
  /** datapath.fast_path */
  fastPath: FastPathMode;
  /** The bridge name: punt pairs are named after it (see hygiene.puntNames). */
  bridge: string;
  log: Logger;
  /** Device operations (ip link, ethtool, peer programs); tests inject fakes. */
  host?: HostOps;
  /** What the daemon before a restart had learned (security.learn), by port: kept where the settings are the same. */
  learned?: Record<string, LearnedMacs>;
}

export type HostOps = Pick<typeof hygiene, 'createPuntPair' | 'deleteLink' | 'linkInfo' | 'prepareDevice' | 'restorePeer' | 'setLinkUp' | 'puntPairExists'> & Partial<Pick<typeof hygiene, 'linkInfos'>>;

export class PortTable {
  private readonly byIndex = new Map<number, Port>();
  private readonly host: HostOps;

  constructor(private readonly opts: PortOptions) {
    this.host = opts.host ?? hygiene;
  }

  /** Link infos read beforehand for several ports at once (one `ip` run instead of one per port); each used once. */
  private linkInfos?: Map<string, hygiene.LinkInfo>;

  async preloadLinkInfo(names: string[]): Promise<void> {
    if (!this.host.linkInfos) return;
    this.linkInfos = await this.host.linkInfos(names).catch(() => undefined);
  }

  list(): Port[] {
    return [...this.byIndex.values()].sort((a, b) => a.index - b.index);
  }

  byName(name: string): Port | undefined {
    for (const p of this.byIndex.values()) if (p.name === name) return p;  // no sort: called per link event and per port added
    return undefined;
  }

  get(index: number): Port | undefined {
    return this.byIndex.get(index);
  }

  private reserved = new Set<number>();

  /** Indices only add() with an AdoptedPort of that index may take (until reserve(new Set())). */
  reserve(indices: Set<number>): void {
    this.reserved = indices;
  }

  private freeIndex(): number {
    for (let i = 0; i < this.opts.native.maxPorts; i++) if (!this.byIndex.has(i) && !this.reserved.has(i)) return i;
    throw new Error(`no free port slot (at most ${this.opts.native.maxPorts} ports)`);
  }

  /**
   * Adds a port; it carries traffic once the caller commits flood sets. A
   * missing device (other than a tap we may create) is not an error: the port
   * stays down until a device of that name appears (see attach()).
   */
  /**
   * isInternal: the host stack's leg. Its tap may be opened beforehand (the
   * datapath anchors its UMEM on it) and handed over as internalTapFd.
   */
  async add(cfg: PortConfig, isInternal: boolean, bond?: string, internalTapFd?: number, adopt?: AdoptedPort): Promise<Port> {
    if (this.byName(cfg.name)) throw new Error(`port ${cfg.name} already exists`);
    const index = adopt && !this.byIndex.has(adopt.index) ? adopt.index : this.freeIndex();
    const kind: PortKind = isInternal ? 'internal' : (cfg.type ?? 'veth');
    const port: Port = { index, name: cfg.name, kind, vlan: vlanMode(cfg), cfg, queues: 0, xdpMode: 'none', owners: [], up: false, created: false, learned: this.carriedLearned(cfg), ...(bond ? { bond } : {}) };
    if (isInternal) {
      // The host stack's leg: a tap whose fd we hold; it vanishes with the process.
      port.tapFd = internalTapFd ?? this.opts.native.openTap(cfg.name, false);
      port.created = true;
    } else if (cfg.type === 'tap' && !existsSync(`/sys/class/net/${cfg.name}`)) {
      this.opts.native.closeFd(this.opts.native.openTap(cfg.name, true));  // persistent: a VM opens it by name
      this.opts.created.add(cfg.name);
      port.created = true;
    } else {
      port.created = this.opts.created.has(cfg.name);  // created by us before a crash
    }
    if (adopt?.index === index) {
      port.adopted = true;
      if (adopt.peerChanges) port.peerChanges = adopt.peerChanges;
    }
    this.byIndex.set(index, port);
    try {
      await this.attach(port, port.adopted ? adopt : undefined);
    } catch (err) {
      this.byIndex.delete(index);
      if (port.tapFd !== undefined) this.opts.native.closeFd(port.tapFd);
      if (port.created && port.kind === 'tap') await this.deleteTap(port.name);
      throw err;
    }
    return port;
  }

  /** A bond's logical port: always up; its legs are added as ports of their own. */
  addBond(cfg: BondConfig): Port {
    if (this.byName(cfg.name)) throw new Error(`port ${cfg.name} already exists`);
    const index = this.freeIndex();
    const portCfg = bondPortConfig(cfg);
    this.opts.datapath.addBond(index, cfg.name);
    const port: Port = { index, name: cfg.name, kind: 'bond', vlan: vlanMode(portCfg), cfg: portCfg, queues: 0, xdpMode: 'bond', hook: 'bond', owners: [], up: true, created: false, learned: this.carriedLearned(portCfg) };
    this.byIndex.set(index, port);
    this.applyVlan(port);
    return port;
  }

  /**
   * Puts the port's device under the datapath, if it exists. adopt: its links from
   * before a restart, whose programs are replaced in place (or kept, when they are
   * this build's); its punt pair is kept if it is still there.
   */
  async attach(port: Port, adopt?: AdoptedLinks): Promise<void> {
    const adoptLinkFd = adopt?.linkFd;
    const { datapath, log } = this.opts;
    if (port.up) return;
    if (port.kind === 'internal') {
      port.tapFd ??= this.opts.native.openTap(port.name, false);
      await this.host.setLinkUp(port.name);
      const r = datapath.addPort(port.index, port.name, 1, 'none', port.tapFd);
      Object.assign(port, { queues: 1, xdpMode: r.xdpMode, hook: r.hook, owners: r.owners });
      delete port.mtu;  // the datapath's port entry is new
      this.setMtu(port, readMtu(port.name));
    } else {
      const info = this.linkInfos?.get(port.name) ?? await this.host.linkInfo(port.name);
      this.linkInfos?.delete(port.name);
      if (!info) {
        port.downReason = 'no such device';
        log.warn({ port: port.name }, 'port is down: no such device; waiting for it to appear');
        return;
      }
      const kind: PortKind = info.kind === 'tun' ? 'tap' : 'veth';
      if (port.cfg.type && port.cfg.type !== kind)
        throw new Error(`port ${port.name}: configured as ${port.cfg.type} but the device is a ${info.kind || 'NIC'}`);
      const mode = this.opts.fastPath;
      const enabled = mode !== 'off';
      // veth and tap ports enter through tc, which keeps the skb's offload state (partial
      // checksums, GSO) on both paths; XDP on NICs (raw buffers) and, when asked for
      // (fast_path: xdp), on veths, whose peers then lose tx checksum offload while they
      // are ports. A tap always takes tc: a guest's offloads cannot be turned off from here.
      const nic = info.kind !== 'veth' && info.kind !== 'tun';
      const hook: 'xdp' | 'tc' = (mode === 'xdp' && kind === 'veth') || (mode !== 'off' && mode !== 'tc' && nic) ? 'xdp' : 'tc';
      const { changes, warnings, peerTakesRedirect, peer } = await this.host.prepareDevice(port.name, info, hook, enabled);
      // After a restart the peer was changed already: what the first run changed is what goes back.
      if (peer) port.peerChanges = { ...peer, ...(port.peerChanges?.txOff ? { txOff: true } : {}), ...(port.peerChanges?.xdpPass ? { xdpPass: true } : {}) };
      if (changes.length) log.info({ port: port.name, changes }, 'prepared device');
      for (const w of warnings) log.warn({ port: port.name }, w);
      let r;
      if (hook === 'tc') {
        const punt = hygiene.puntNames(this.opts.bridge, port.index);
        // An adopted port keeps its pair: the running tc program punts into it.
        if (adoptLinkFd === undefined || !this.host.puntPairExists(punt.near, punt.far)) await this.host.createPuntPair(punt.near, punt.far);
        port.punt = { near: punt.near, far: punt.far };
        try {
          r = datapath.addPort(port.index, port.name, info.rxQueues, this.opts.xdpMode, undefined, {
            hook: 'tc',
            puntNear: punt.near,
            puntFar: punt.far,
            peerNetns: kind === 'veth' && info.peerNetnsId !== undefined,
            ...(adoptLinkFd !== undefined ? { adoptLinkFd } : {}),
            ...(adopt?.puntLinkFd !== undefined ? { adoptPuntLinkFd: adopt.puntLinkFd } : {}),
            ...(adopt?.keepPrograms ? { keepPrograms: true } : {}),
            ...(adopt?.xsks ? { adoptXsks: adopt.xsks.device, adoptPuntXsk: adopt.xsks.punt } : {}),
          });
        } catch (err) {
          await this.dropPunt(port);
          throw err;
        }
      } else {
        r = datapath.addPort(port.index, port.name, info.rxQueues, this.opts.xdpMode, undefined, {
          hook: 'xdp',
          ...(adoptLinkFd !== undefined ? { adoptLinkFd } : {}),
          ...(adopt?.keepPrograms ? { keepPrograms: true } : {}),
          ...(adopt?.xsks ? { adoptXsks: adopt.xsks.device } : {}),
        });
      }
      Object.assign(port, { kind, queues: info.rxQueues, xdpMode: r.xdpMode, hook: r.hook, owners: r.owners });
      const linkFd = datapath.hookLinkFd(port.index);
      const progId = linkFd >= 0 ? this.opts.native.linkProgId(linkFd) : undefined;
      if (progId !== undefined) port.progId = progId;
      delete port.mtu;  // the datapath's port entry is new
      this.setMtu(port, info.mtu);
      // In: known unicast arriving here is switched by the port's program (XDP only in native
      // mode). Out: an XDP program may redirect to it (a tap always; a veth whose peer has
      // NAPI, which the XDP pass program on the peer gives); a tc program may redirect to any device.
      const fastIn = enabled && (hook === 'tc' || r.xdpMode === 'native');
      const fastOut = enabled && (kind === 'tap' || peerTakesRedirect);
      datapath.setPortFast(port.index, fastIn, fastOut, enabled, fastOut && kind === 'veth');
      port.attached = { ifindex: info.ifindex, peerNetns: kind === 'veth' && info.peerNetnsId !== undefined, fast: [fastIn, fastOut, enabled, fastOut && kind === 'veth'] };
      port.fastPath = { in: fastIn, out: fastOut || (enabled && hook === 'tc') };
      if (enabled) log.info({ port: port.name, hook, fast_in: fastIn, fast_out: port.fastPath.out }, fastIn && port.fastPath.out ? 'port is fast-path capable' : 'port is partly or not fast-path capable');
    }
    port.up = true;
    delete port.downReason;
    this.applyVlan(port);
    log.info({ port: port.name, index: port.index, kind: port.kind, queues: port.queues, xdp_mode: port.xdpMode, mtu: port.mtu, workers: port.owners, vlan: port.vlan }, 'port up');
  }

  /**
   * The device's MTU, for the datapath's egress check (takes effect at the next
   * commit). One the switch cannot carry is logged: frames above MAX_MTU are
   * dropped as too_big wherever they come from.
   */
  setMtu(port: Port, mtu: number): boolean {
    if (port.mtu === mtu || port.kind === 'bond') return false;
    const before = port.mtu;
    port.mtu = mtu;
    this.opts.datapath.setPortMtu(port.index, mtu);
    if (mtu > hygiene.MAX_MTU)
      this.opts.log.warn({ port: port.name, mtu, max_mtu: hygiene.MAX_MTU }, `port MTU ${mtu} is above the ${hygiene.MAX_MTU} the switch carries: frames longer than that are dropped (too_big)`);
    else if (before !== undefined) this.opts.log.info({ port: port.name, mtu, was: before }, 'port MTU changed');
    return true;
  }

  /** The device went away (or is going): stop using it, keep the port configured. */
  async detach(port: Port, reason: string): Promise<void> {
    if (!port.up) return;
    this.takeOffDatapath(port);
    port.up = false;
    port.downReason = reason;
    port.owners = [];
    this.opts.log.warn({ port: port.name, reason }, 'port down');
    // Awaited: a device that comes back at once gets a punt pair of the same name,
    // which a removal still under way would take with it.
    await this.dropPunt(port);
  }

  /**
   * The datapath owns a tap fd once addPort took it and closes it in removePort:
   * forget the number here, or a second close could hit whatever reused it.
   */
  private takeOffDatapath(port: Port): void {
    this.opts.datapath.removePort(port.index);
    if (port.kind === 'internal') port.tapFd = undefined;
  }

  /** Deletes a tc port's punt pair (after the datapath let go of it). */
  private async dropPunt(port: Port): Promise<void> {
    if (!port.punt) return;
    const { near } = port.punt;
    delete port.punt;
    await this.host.deleteLink(near).catch(() => undefined);  // deleting one end deletes both
  }

  /** Changes the port's VLAN mode in place. */
  setVlan(port: Port, cfg: PortConfig): void {
    port.cfg = cfg;
    port.vlan = vlanMode(cfg);
    if (port.up) this.applyVlan(port);
  }

  private applyVlan(port: Port): void {
    const v = port.vlan;
    this.opts.datapath.setPortVlan(port.index, v.mode === 'access'
      ? { trunk: false, accessVlan: v.vlan, nativeVlan: 0, trunks: [] }
      : { trunk: true, accessVlan: 0, nativeVlan: v.nativeVlan ?? 0, trunks: v.trunks });
    this.opts.datapath.setPortActive(port.index, port.up);
    this.opts.datapath.setPortPolicy(port.index, nativePolicy(port.cfg, port.learned));
  }

  /**
   * Changes the port's security, storm control and policing in place (at once, buckets full).
   * New security settings unlock it (what it learned under the old ones is forgotten).
   */
  setPolicy(port: Port, cfg: PortConfig): void {
    if (JSON.stringify(port.cfg.security) !== JSON.stringify(cfg.security)) port.learned = [];
    port.cfg = cfg;
    if (port.up) this.opts.datapath.setPortPolicy(port.index, nativePolicy(cfg, port.learned));
  }

  /**
   * A source MAC the datapath reported from the port (security.learn): 'admitted' adds it to
   * the port's MACs in the datapath (the last place locks the port); 'refused': the port is
   * locked to others; 'allowed': listed or learned already, or the port does not learn.
   */
  admitMac(port: Port, mac: string): 'allowed' | 'admitted' | 'refused' {
    const result = admission(port.cfg.security, port.learned, mac);
    if (result !== 'admitted') return result;
    port.learned = [...port.learned, mac];
    if (port.up) this.opts.datapath.setPortPolicy(port.index, nativePolicy(port.cfg, port.learned));
    return result;
  }

  /** Forgets what the port learned: it learns its first N MACs again. False: it does not learn. */
  unlock(port: Port): boolean {
    if (port.cfg.security?.learn === undefined) return false;
    port.learned = [];
    if (port.up) this.opts.datapath.setPortPolicy(port.index, nativePolicy(port.cfg, port.learned));
    return true;
  }

  /** The learned MACs a restart handed over for this port, if learned under the same settings (taken once). */
  private carriedLearned(cfg: PortConfig): string[] {
    const carried = this.opts.learned?.[cfg.name];
    if (!carried) return [];
    delete this.opts.learned![cfg.name];
    const learn = cfg.security?.learn;
    if (learn === undefined || JSON.stringify(carried.security) !== JSON.stringify(cfg.security)) return [];
    return carried.macs.slice(0, learn);
  }

  /** Every port's learned MACs, for the next daemon (ports that learned none are left out). */
  learnedMacs(): Record<string, LearnedMacs> {
    return Object.fromEntries(this.list().filter((p) => p.learned.length && p.cfg.security).map((p) => [p.name, { security: p.cfg.security!, macs: p.learned }]));
  }

  /** Detaches the port and removes what we created. */
  async remove(index: number): Promise<void> {
    const port = this.byIndex.get(index);
    if (!port) return;
    if (port.up) this.takeOffDatapath(port);
    await this.dropPunt(port);
    if (port.peerChanges) {
      const restored = await this.host.restorePeer(port.peerChanges);
      if (restored.length) this.opts.log.info({ port: port.name, restored }, 'put the veth peer back as it was');
      delete port.peerChanges;
    }
    // Only a tap fd the datapath never took (a down internal port) is still ours to close.
    if (port.tapFd !== undefined) this.opts.native.closeFd(port.tapFd);
    this.byIndex.delete(index);
    if (port.created && port.kind === 'tap') await this.deleteTap(port.name);
    this.opts.log.info({ port: port.name, index }, 'port removed');
  }

  private async deleteTap(name: string): Promise<void> {
    try {
      this.opts.native.setTapPersist(name, false);
    } catch {
      await this.host.deleteLink(name).catch(() => undefined);
    }
    this.opts.created.delete(name);
  }
}
