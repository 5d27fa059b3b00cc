// What the operator-facing servers (control socket, /metrics) need of the
// switch. They depend on this interface, not on the Switch class, so the
// daemon can build them without an import circle, and tests could hand them a fake.
import type { BondReport } from '../bond/manager.js';
import type { PortConfig } from '../config/config.js';
import type { PortCounters, WorkerCounters } from '../datapath/native.js';
import type { FdbManager } from '../l2/fdb.js';
import type { Port } from '../ports/ports.js';
import type { MirrorConfig } from '../config/config.js';
import type { TunnelStatus } from '../tunnel/evpn.js';

export interface ReloadResult {
  changes: string[];
  needsRestart: string[];
}

export interface FdbRow {
  vlan: number;
  mac: string;
  port: string;
  static: boolean;
  age_s: number;
  /** On a tunnel port: the remote VTEP the MAC is behind ('unknown' when zebra has not named it). */
  vtep?: string;
}

export interface VlanRow {
  vlan: number;
  ports: { name: string; tagged: boolean }[];
}

export interface MirrorRow {
  name: string;
  select: MirrorConfig['select'];
  output: string;
  /** The output port is attached (copies can be sent). */
  output_up: boolean;
  frames: number;
  bytes: number;
  /** Copies lost, by the reason the copy was dropped (no_buffer, tx_full, port_down, ...). */
  lost: Record<string, number>;
}

export interface SwitchApi {
  readonly ports: { list(): Port[]; byName(name: string): Port | undefined };
  readonly fdb: Pick<FdbManager, 'size' | 'stats' | 'flush' | 'addStatic' | 'removeStatic'>;
  addPort(cfg: PortConfig): Promise<Port>;
  removePort(name: string): Promise<void>;
  /** security.learn: forgets the MACs the port learned (it learns its first N again). */
  unlockPort(name: string): { port: string; forgot: string[] };
  reload(): Promise<ReloadResult>;
  vlans(): VlanRow[];
  bondStatus(name?: string): BondReport[];
  fdbView(filter?: { vlan?: number; port?: string }): FdbRow[];
  portCounters(): Record<string, PortCounters>;
  workerCounters(): WorkerCounters[];
  /** Starts the daemon again in place, keeping the datapath (answered before it happens). */
  restart(): { restarting: true; pid: number };
  /** The mirrors with their selection, output and counters. */
  mirrors(): MirrorRow[];
  /** The port's part in the mirrors: their output, a source, or none. */
  mirrorRole(name: string): 'output' | 'source' | undefined;
  /** Times each datapath worker died and was started again. */
  workerRestarts(): number[];
  /** VXLAN VNIs, VTEPs and flood lists; undefined without a vxlan section. */
  tunnelStatus(): TunnelStatus | undefined;
}
