// Frames the kernel lost on a port's way into or out of the switch, as drop
// reasons beside the hot loop's own: the AF_XDP sockets' counts (XDP_STATISTICS),
// the rx/tx drop counters of the port's devices, and the redirects the BPF
// programs could not make. Every reason counts a frame once: a frame an AF_XDP
// socket refused is also in the receiving device's rx_dropped (veth counts a
// failed XDP redirect), so the device's reason is what the sockets do not explain.
//
// None of them may go backwards: a device deleted and created again (a VM
// restarted) starts its counters at 0, and so does each new socket (the native
// side keeps a base for the sockets; this class for the devices).

import type { XskCounters } from '../datapath/native.js';

/** The kernel counters of one device, as read now. */
export interface DeviceCounters {
  /** Identifies the device: a device of the same name created again has another ifindex. */
  ifindex: number;
  rxDropped: number;
  txDropped: number;
}

/** The drop reasons this module adds (README, metrics table). */
export const KERNEL_DROP_REASONS = [
  'xsk_rx_ring_full',
  'xsk_fill_ring_empty',
  'xsk_rx_dropped',
  'xsk_rx_invalid',
  'xsk_tx_invalid',
  'kernel_rx_dropped',
  'kernel_tx_dropped',
  'punt_dropped',
  'redirect_failed',
  'tunnel_dropped',
] as const;
export type KernelDropReason = (typeof KERNEL_DROP_REASONS)[number];

interface Tracked {
  ifindex: number;
  /** The device's counters when we first saw it: drops before it was a port are not ours. */
  start: { rx: number; tx: number };
  last: { rx: number; tx: number };
}

/**
 * The devices of a port whose drops count as the port's: its own device (receive and
 * transmit), and a tc port's punt pair: the near end's transmit (frames the tc program
 * punted that the pair could not take, e.g. larger than its MTU) and the far end's
 * receive (where the slow path's socket takes them). undefined: no such device now.
 */
export interface PortDevices {
  port?: DeviceCounters;
  puntNear?: DeviceCounters;
  puntFar?: DeviceCounters;
  /** A VXLAN tunnel port's far side: the bridge's end of its pair (receive) and the VXLAN device (transmit: no VTEP for the MAC). */
  tunnelAdv?: DeviceCounters;
  tunnelVxlan?: DeviceCounters;
}

/** One instance per switch; ports are known by index, as their other counters are. */
export class KernelDrops {
  /** Per port index and device role: what was counted on devices that are gone. */
  private readonly base = new Map<string, { rx: number; tx: number }>();
  private readonly tracked = new Map<string, Tracked>();
  /** The last value reported per port and reason, so a sum that dips (counters read apart) never shows. */
  private readonly reported = new Map<string, number>();

  /** Counts of `role`'s device of port `index` since it was first seen, over every device it had. */
  private device(index: number, role: string, now: DeviceCounters | undefined): { rx: number; tx: number } {
    const key = `${index}/${role}`;
    const base = this.base.get(key) ?? { rx: 0, tx: 0 };
    let t = this.tracked.get(key);
    if (t && (!now || now.ifindex !== t.ifindex)) {
      // That device is gone: what it counted stays.
      base.rx += t.last.rx - t.start.rx;
      base.tx += t.last.tx - t.start.tx;
      this.base.set(key, base);
      this.tracked.delete(key);
      t = undefined;
    }
    if (!now) return base;
    if (!t) {
      t = { ifindex: now.ifindex, start: { rx: now.rxDropped, tx: now.txDropped }, last: { rx: now.rxDropped, tx: now.txDropped } };
      this.tracked.set(key, t);
    }
    t.last = { rx: Math.max(t.last.rx, now.rxDropped), tx: Math.max(t.last.tx, now.txDropped) };
    return { rx: base.rx + t.last.rx - t.start.rx, tx: base.tx + t.last.tx - t.start.tx };
  }

  /** The port of this index is gone: a later one starts from 0. */
  forget(index: number): void {
    for (const map of [this.base, this.tracked, this.reported])
      for (const key of [...map.keys()]) if (key.startsWith(`${index}/`)) map.delete(key);
  }

  /** Starts counting the port's devices now (at attach), so drops before are not taken as ours. */
  track(index: number, devices: PortDevices): void {
    this.device(index, 'port', devices.port);
    this.device(index, 'puntNear', devices.puntNear);
    this.device(index, 'puntFar', devices.puntFar);
    this.device(index, 'tunnelAdv', devices.tunnelAdv);
    this.device(index, 'tunnelVxlan', devices.tunnelVxlan);
  }

  /** The port's kernel drop reasons; xsk and redirectFailed come from the datapath. */
  reasons(index: number, xsk: XskCounters, redirectFailed: number, devices: PortDevices): Record<KernelDropReason, number> {
    const port = this.device(index, 'port', devices.port);
    const near = this.device(index, 'puntNear', devices.puntNear);
    const far = this.device(index, 'puntFar', devices.puntFar);
    const adv = this.device(index, 'tunnelAdv', devices.tunnelAdv);
    const vxlan = this.device(index, 'tunnelVxlan', devices.tunnelVxlan);
    const rx = port.rx + far.rx;
    const fillEmpty = xsk.rx_fill_ring_empty_descs;
    const socketRx = xsk.rx_dropped + xsk.rx_ring_full;  // rx_dropped includes the fill-ring-empty ones
    const out: Record<KernelDropReason, number> = {
      xsk_rx_ring_full: xsk.rx_ring_full,
      xsk_fill_ring_empty: fillEmpty,
      xsk_rx_dropped: Math.max(0, xsk.rx_dropped - fillEmpty),
      xsk_rx_invalid: xsk.rx_invalid_descs,
      xsk_tx_invalid: xsk.tx_invalid_descs,
      kernel_rx_dropped: Math.max(0, rx - socketRx),
      kernel_tx_dropped: port.tx,
      punt_dropped: near.tx,
      redirect_failed: redirectFailed,
      tunnel_dropped: adv.rx + vxlan.tx,
    };
    for (const reason of KERNEL_DROP_REASONS) {
      const key = `${index}/${reason}`;
      out[reason] = Math.max(out[reason], this.reported.get(key) ?? 0);
      this.reported.set(key, out[reason]);
    }
    return out;
  }
}
