// Mirrors (SPAN) at run time: which datapath slot each configured mirror has,
// what the datapath is told (ports by index), and the counters per mirror.
// A mirror keeps its slot, and so its counters, while its name stays in the
// config; a removed mirror frees its slot, and a mirror that takes it later
// counts from 0 (the slot's count at that moment is its base).
import { MAX_MIRRORS, type MirrorConfig } from '../config/config.js';
import type { MirrorCounters, NativeMirror } from '../datapath/native.js';
import type { MirrorRow } from '../operate/switch-api.js';

export type { MirrorRow };

export interface MirrorPorts {
  /** The port's index if it exists and is up. */
  indexOf(name: string): number | undefined;
}

interface Slot {
  cfg: MirrorConfig;
  base: MirrorCounters;
}

function minus(now: MirrorCounters, base: MirrorCounters): MirrorCounters {
  const lost: Record<string, number> = {};
  for (const [k, v] of Object.entries(now.lost)) if (v - (base.lost[k] ?? 0) > 0) lost[k] = v - (base.lost[k] ?? 0);
  return { frames: now.frames - base.frames, bytes: now.bytes - base.bytes, lost };
}

export class MirrorTable {
  private readonly slots: (Slot | undefined)[] = [];
  /** Counted on from (a restart: what the previous daemon's mirrors had), by name. */
  private readonly carried = new Map<string, MirrorCounters>();

  constructor(private readonly counters: (slot: number) => MirrorCounters) {}

  /** Takes the config's mirrors; returns what changed, for the reload's change list. */
  set(mirrors: MirrorConfig[]): string[] {
    const changes: string[] = [];
    const wanted = new Map(mirrors.map((m) => [m.name, m]));
    this.slots.forEach((s, i) => {
      if (!s || wanted.has(s.cfg.name)) return;
      this.slots[i] = undefined;
      this.carried.delete(s.cfg.name);
      changes.push(`mirror ${s.cfg.name} removed`);
    });
    for (const cfg of mirrors) {
      const i = this.slots.findIndex((s) => s?.cfg.name === cfg.name);
      if (i >= 0) {
        if (JSON.stringify(this.slots[i]!.cfg) !== JSON.stringify(cfg)) changes.push(`mirror ${cfg.name} changed`);
        this.slots[i]!.cfg = cfg;
        continue;
      }
      let free = this.slots.findIndex((s) => s === undefined);
      if (free < 0) free = this.slots.length;
      if (free >= MAX_MIRRORS) throw new Error(`at most ${MAX_MIRRORS} mirrors`);
      this.slots[free] = { cfg, base: this.counters(free) };
      changes.push(`mirror ${cfg.name} added`);
    }
    while (this.slots.length > 0 && this.slots[this.slots.length - 1] === undefined) this.slots.pop();
    return changes;
  }

  /** The names of the mirrors' output ports (excluded from floods, never learned on). */
  outputs(): Set<string> {
    return new Set(this.slots.flatMap((s) => (s ? [s.cfg.output] : [])));
  }

  /** A port's part in the mirrors: their output, a source (selected by name, or carrying a VLAN a VLAN-only mirror selects), or none. */
  roleOf(name: string, vlansOfPort: number[]): 'output' | 'source' | undefined {
    if (this.outputs().has(name)) return 'output';
    for (const s of this.slots) {
      if (!s) continue;
      const { ports, vlans } = s.cfg.select;
      if (ports ? ports.includes(name) : (vlans ?? []).some((v) => vlansOfPort.includes(v))) return 'source';
    }
    return undefined;
  }

  /** What the datapath gets, slot by slot; ports that do not exist (or are down) are left out. */
  native(ports: MirrorPorts): NativeMirror[] {
    return this.slots.map((s): NativeMirror => {
      const out = s ? ports.indexOf(s.cfg.output) : undefined;
      if (!s || out === undefined) return { ingress: [], egress: [], vlans: [], anyPort: false };
      const { ports: names, direction, vlans } = s.cfg.select;
      const selected = (names ?? []).flatMap((n) => {
        const i = ports.indexOf(n);
        return i === undefined ? [] : [i];
      });
      return {
        out,
        ingress: direction === 'egress' ? [] : selected,
        egress: direction === 'ingress' ? [] : selected,
        vlans: vlans ?? [],
        anyPort: names === undefined,
      };
    });
  }

  /** Counters to count on from, by mirror name (a restart). */
  carryOver(counters: Record<string, MirrorCounters>): void {
    for (const [name, c] of Object.entries(counters)) this.carried.set(name, c);
  }

  rows(ports: MirrorPorts): MirrorRow[] {
    return this.slots.flatMap((s, i): MirrorRow[] => {
      if (!s) return [];
      const c = minus(this.counters(i), s.base);
      const from = this.carried.get(s.cfg.name);
      if (from) {
        c.frames += from.frames;
        c.bytes += from.bytes;
        for (const [k, v] of Object.entries(from.lost)) c.lost[k] = (c.lost[k] ?? 0) + v;
      }
      return [{ name: s.cfg.name, select: s.cfg.select, output: s.cfg.output, output_up: ports.indexOf(s.cfg.output) !== undefined, ...c }];
    });
  }
}
