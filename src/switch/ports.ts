// The switch's ports: bringing a device under the datapath and taking it off.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PortConfig } from './config.js';
import { vlanMode } from './flood.js';
import { deleteLink, linkInfo, prepareDevice, setLinkUp } from './host.js';
import type { NativeAddon, NativeDatapath } from './native.js';
import type { PortKind, VlanMode } from './types.js';

export interface Port {
  index: number;
  name: string;
  kind: PortKind;
  vlan: VlanMode;
  queues: number;
  xdpMode: string;
  /** Worker owning each queue. */
  owners: number[];
  up: boolean;
  /** We created the device and remove it when the port goes. */
  created: boolean;
  tapFd?: number;
}

/**
 * The devices vswitchd created (VM taps), kept in a file so that a run that
 * follows a crash still knows they are its own to remove on a clean stop.
 */
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
  log: Logger;
}

export class PortTable {
  private readonly byIndex = new Map<number, Port>();

  constructor(private readonly opts: PortOptions) {}

  list(): Port[] {
    return [...this.byIndex.values()].sort((a, b) => a.index - b.index);
  }

  byName(name: string): Port | undefined {
    return this.list().find((p) => p.name === name);
  }

  get(index: number): Port | undefined {
    return this.byIndex.get(index);
  }

  private freeIndex(): number {
    for (let i = 0; i < this.opts.native.maxPorts; i++) if (!this.byIndex.has(i)) return i;
    throw new Error(`no free port slot (at most ${this.opts.native.maxPorts} ports)`);
  }

  /** Attaches a port; it carries traffic after the caller commits flood sets. */
  async add(cfg: PortConfig, isInternal: boolean): Promise<Port> {
    const { native, datapath, log } = this.opts;
    if (this.byName(cfg.name)) throw new Error(`port ${cfg.name} already exists`);
    const index = this.freeIndex();
    const vlan = vlanMode(cfg);
    let port: Port;
    if (isInternal) {
      // The host stack's leg: a tap whose fd we hold; it vanishes with the process.
      const tapFd = native.openTap(cfg.name, false);
      try {
        await setLinkUp(cfg.name);
        const r = datapath.addPort(index, cfg.name, 1, 'none', tapFd);
        port = { index, name: cfg.name, kind: 'internal', vlan, queues: 1, xdpMode: r.xdpMode, owners: r.owners, up: true, created: true, tapFd };
      } catch (err) {
        native.closeFd(tapFd);
        throw err;
      }
    } else {
      let info = await linkInfo(cfg.name);
      let created = info !== undefined && this.opts.created.has(cfg.name);
      if (!info && cfg.type === 'tap') {
        native.closeFd(native.openTap(cfg.name, true));  // persistent: a VM opens it by name
        this.opts.created.add(cfg.name);
        created = true;
        info = await linkInfo(cfg.name);
      }
      if (!info) throw new Error(`port ${cfg.name}: no such device${cfg.type ? '' : ' (set type: tap to have vswitchd create a tap)'}`);
      const kind: PortKind = info.kind === 'tun' ? 'tap' : 'veth';
      if (cfg.type && cfg.type !== kind) throw new Error(`port ${cfg.name}: configured as ${cfg.type} but the device is a ${info.kind || 'NIC'}`);
      try {
        const { changes, warnings } = await prepareDevice(cfg.name, info);
        if (changes.length) log.info({ port: cfg.name, changes }, 'prepared device for XDP');
        for (const w of warnings) log.warn({ port: cfg.name }, w);
        const r = datapath.addPort(index, cfg.name, info.rxQueues, this.opts.xdpMode);
        port = { index, name: cfg.name, kind, vlan, queues: info.rxQueues, xdpMode: r.xdpMode, owners: r.owners, up: true, created };
      } catch (err) {
        if (created) await this.deleteTap(cfg.name);
        throw err;
      }
    }
    this.applyVlan(port);
    this.byIndex.set(index, port);
    log.info({ port: port.name, index, kind: port.kind, queues: port.queues, xdp_mode: port.xdpMode, workers: port.owners, vlan: port.vlan }, 'port added');
    return port;
  }

  private applyVlan(port: Port): void {
    const v = port.vlan;
    this.opts.datapath.setPortVlan(port.index, v.mode === 'access'
      ? { trunk: false, accessVlan: v.vlan, nativeVlan: 0, trunks: [] }
      : { trunk: true, accessVlan: 0, nativeVlan: v.nativeVlan ?? 0, trunks: v.trunks });
    this.opts.datapath.setPortActive(port.index, port.up);
  }

  /** Detaches the port (the datapath first stops using it), then removes what we created. */
  async remove(index: number): Promise<void> {
    const port = this.byIndex.get(index);
    if (!port) return;
    this.opts.datapath.removePort(index);  // also closes the internal port's tap fd
    this.byIndex.delete(index);
    if (port.created && port.kind === 'tap') await this.deleteTap(port.name);
    this.opts.log.info({ port: port.name, index }, 'port removed');
  }

  private async deleteTap(name: string): Promise<void> {
    try {
      this.opts.native.setTapPersist(name, false);
    } catch {
      await deleteLink(name).catch(() => undefined);
    }
    this.opts.created.delete(name);
  }
}
