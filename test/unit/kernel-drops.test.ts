import test from 'ava';
import { KernelDrops } from '../../src/switch/ports/kernel-drops.js';
import type { XskCounters } from '../../src/switch/datapath/native.js';

const noXsk: XskCounters = { rx_dropped: 0, rx_invalid_descs: 0, tx_invalid_descs: 0, rx_ring_full: 0, rx_fill_ring_empty_descs: 0, tx_ring_empty_descs: 0 };
const dev = (ifindex: number, rxDropped: number, txDropped = 0) => ({ ifindex, rxDropped, txDropped });

test('device drops count from when the port took the device, and survive the device being created again', (t) => {
  const k = new KernelDrops();
  k.track(3, { port: dev(10, 500, 7) });  // drops before it was a port are not ours
  t.is(k.reasons(3, noXsk, 0, { port: dev(10, 520, 9) }).kernel_rx_dropped, 20);
  t.is(k.reasons(3, noXsk, 0, { port: dev(10, 520, 9) }).kernel_tx_dropped, 2);
  // Gone (a VM shut down): what it counted stays.
  t.is(k.reasons(3, noXsk, 0, {}).kernel_rx_dropped, 20);
  // A new device of that name starts at 0: the port's count goes on from 20.
  k.track(3, { port: dev(11, 0) });
  t.is(k.reasons(3, noXsk, 0, { port: dev(11, 5) }).kernel_rx_dropped, 25);
});

test('a frame an AF_XDP socket refused is counted once: as the socket reason, not again as the device receive drop', (t) => {
  const k = new KernelDrops();
  k.track(1, { port: dev(4, 0), puntNear: dev(5, 0), puntFar: dev(6, 0) });
  // 100 fill-ring-empty (also in the socket's rx_dropped), 50 ring full; the far end's
  // rx_dropped has all 150 and 3 more of its own; the near end could not take 2 (too big).
  const xsk = { ...noXsk, rx_dropped: 100, rx_fill_ring_empty_descs: 100, rx_ring_full: 50, tx_ring_empty_descs: 9 };
  const r = k.reasons(1, xsk, 4, { port: dev(4, 0), puntNear: dev(5, 0, 2), puntFar: dev(6, 153) });
  t.like(r, { xsk_fill_ring_empty: 100, xsk_rx_dropped: 0, xsk_rx_ring_full: 50, kernel_rx_dropped: 3, punt_dropped: 2, redirect_failed: 4 });
});

test('no reason ever goes backwards, even when counters read apart dip', (t) => {
  const k = new KernelDrops();
  k.track(2, { port: dev(8, 0) });
  t.is(k.reasons(2, noXsk, 0, { port: dev(8, 10) }).kernel_rx_dropped, 10);
  // The socket's count caught up with the device's after the device was read.
  t.is(k.reasons(2, { ...noXsk, rx_ring_full: 12 }, 0, { port: dev(8, 11) }).kernel_rx_dropped, 10);
  t.is(k.reasons(2, { ...noXsk, rx_ring_full: 12 }, 0, { port: dev(8, 25) }).kernel_rx_dropped, 13);
});

test("a tunnel port counts what its bridge side lost: the advertise end's receive and the VXLAN device's transmit drops", (t) => {
  const k = new KernelDrops();
  k.track(5, { port: dev(20, 0), tunnelAdv: dev(21, 1), tunnelVxlan: dev(22, 0, 4) });
  const r = k.reasons(5, noXsk, 0, { port: dev(20, 0), tunnelAdv: dev(21, 3), tunnelVxlan: dev(22, 0, 10) });
  t.like(r, { tunnel_dropped: 8, kernel_rx_dropped: 0, kernel_tx_dropped: 0 });
});
