// A Clock for unit tests that run in virtual time: nothing waits for real.
// advance(ms) moves time forward and fires the timers that fall due on the
// way, in time order (timers scheduled by a firing timer fire in the same
// advance() when they are due before its end).

import type { Clock } from '../../src/switch/types.js';

interface Timer {
  id: number;
  at: number;
  /** Repeat interval; undefined for one-shot timers. */
  every: number | undefined;
  fn: () => void;
}

export class VirtualClock implements Clock {
  private now: number;
  private nextId = 1;
  private timers: Timer[] = [];

  constructor(startMs = 1_000_000) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  /** Run fn once, ms from now. Returns an id for clear(). */
  setTimeout(fn: () => void, ms: number): number {
    return this.add(fn, ms, undefined);
  }

  /** Run fn every ms, first ms from now. Returns an id for clear(). */
  setInterval(fn: () => void, ms: number): number {
    if (ms <= 0) throw new Error('setInterval: interval must be > 0');
    return this.add(fn, ms, ms);
  }

  clear(id: number): void {
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  /** Move time forward by ms, firing due timers in order (ties in creation order). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.now = Math.max(this.now, due.at);
      if (due.every === undefined) this.clear(due.id);
      else due.at += due.every;
      due.fn();
    }
    this.now = end;
  }

  /** Advance 1 ms at a time until pred() holds; returns the time it took, or throws after maxMs. */
  until(pred: () => boolean, maxMs: number): number {
    const start = this.now;
    while (!pred()) {
      if (this.now - start >= maxMs) throw new Error(`condition not met within ${maxMs} ms`);
      this.advance(1);
    }
    return this.now - start;
  }

  private add(fn: () => void, ms: number, every: number | undefined): number {
    const id = this.nextId++;
    this.timers.push({ id, at: this.now + Math.max(0, ms), every, fn });
    return id;
  }
}
