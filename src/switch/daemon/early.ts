// The early start after a restart (issue 13). The new daemon's slow path is
// back only once its hot loop runs; reading the config (zod, yaml), the logger
// and the rest of the control plane take 0.3-0.9 s of Node start-up here before
// the daemon could add a port. But a restart hands over everything the hot
// loop needs: the maps, the links, the tap, and in the state each port's index,
// device, VLANs and punt pair. So before anything else is loaded, this puts the
// handed-over ports back in a datapath built from the state and starts the
// workers: frames flow (flooding included) while the config is read. The Switch
// then takes the datapath over (PortTable's addPort of an early port claims it
// as it runs), checks that the config still asks for the same datapath, and
// reconciles as after any adoption. When the config asks for another datapath
// (workers, frames, FDB size, bridge), the process starts again in place
// without the early start, with the fds it was given untouched (the datapath
// got copies). Learned MACs reported meanwhile wait for the FDB policy.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { bpfObjectPath, loadNative, type NativeAddon, type NativeDatapath } from '../datapath/native.js';
import { Supervisor } from '../datapath/supervisor.js';
import { vlanMembers } from '../l2/vlan-rules.js';
import type { LearnEvent } from '../types.js';
import { Handover, inheritedFds, isXskFdName, linkFdName, MAP_NAMES, programBuild, puntFdName, tapFdName, UMEM_NAMES, xskNamesOf, type HandoverState } from './handover.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** Keeps what is logged until the real logger exists (pino loads after the first frames flow). */
export class DeferredLog {
  private target?: Logger;
  private readonly kept: [Level, object, string?][] = [];

  private say(level: Level, obj: object | string, msg?: string): void {
    const [o, m] = typeof obj === 'string' ? [{}, obj] : [obj, msg];
    if (this.target) this.target[level](o, m);
    else if (this.kept.length < 1000) this.kept.push([level, o, m]);
  }
  debug(obj: object | string, msg?: string) { this.say('debug', obj, msg); }
  info(obj: object | string, msg?: string) { this.say('info', obj, msg); }
  warn(obj: object | string, msg?: string) { this.say('warn', obj, msg); }
  error(obj: object | string, msg?: string) { this.say('error', obj, msg); }

  /** From here on everything goes to log, what was said before first. */
  attach(log: Logger): void {
    this.target = log;
    for (const [level, o, m] of this.kept.splice(0)) log[level](o, m);
  }

  get logger(): Logger {
    return this as unknown as Logger;
  }
}

/** What a start was handed: the fds (always), and the running datapath when the early start took it. */
export interface Inherited {
  handover: Handover;
  log: DeferredLog;
  native: NativeAddon;
  early?: EarlyStart;
}

export interface EarlyStart {
  state: HandoverState;
  datapath: NativeDatapath;
  supervisor: Supervisor;
  /** The internal port's tap (a copy of the handed-over fd). */
  tapFd: number;
  /** Ports put in the datapath, by name: the daemon's addPort claims them. */
  ports: Set<string>;
  /** The datapath adopted the UMEM and holds the handed-over sockets (the daemon's ports take theirs by name). */
  xsks: boolean;
  /** The learn and punt handlers; what the workers reported before they are set is delivered then. */
  setHandlers(onLearn: (ev: LearnEvent[]) => void, onPunt: (port: number, frame: Buffer) => void): void;
  /** The daemon took the datapath over: the handed-over originals are closed (the datapath has copies). */
  release(): void;
  /** The config asks for another datapath: start again in place without the early start. */
  fallback(reason: string): never;
}

/**
 * Takes what this start was handed (systemd's fd store or a re-exec) and, when it is a
 * datapath of this build, serves it at once. Never throws: whatever it cannot do, the
 * Switch does the usual way.
 */
export function takeInherited(env: NodeJS.ProcessEnv = process.env): Inherited {
  const native = loadNative();
  const log = new DeferredLog();
  const fds = inheritedFds(env);
  const original = new Map(fds);
  const handover = new Handover(native, fds, log.logger);
  // Set by a fallback for the one start after it (a later re-exec may start early again).
  const off = env.VSWITCHD_EARLY === 'off';
  delete env.VSWITCHD_EARLY;
  if (off || !fds.has('state')) return { handover, log, native };
  try {
    const early = startEarly(native, handover, original, log);
    return early ? { handover, log, native, early } : { handover, log, native };
  } catch (err) {
    // Only before the datapath existed (see startEarly): nothing was taken.
    log.warn({ err: (err as Error).message }, 'early start not possible: the daemon adopts the datapath the usual way');
    return { handover, log, native };
  }
}

function startEarly(native: NativeAddon, handover: Handover, original: Map<string, number>, log: DeferredLog): EarlyStart | undefined {
  const t0 = native.monotonicMs();
  const state = handover.readState();
  const tcObject = process.env.VSWITCHD_TC_OBJECT ?? path.join(path.dirname(bpfObjectPath), 'tc_fastpath.bpf.o');
  if (!state?.datapath || state.layout !== native.layoutVersion || state.programs !== programBuild([bpfObjectPath, tcObject])) return undefined;
  if (!MAP_NAMES.every((n) => handover.inherited.has(n)) || !handover.inherited.has(tapFdName(state.bridge))) return undefined;
  const d = state.datapath;
  // First: piscina starts its threads now, so they load while the datapath is built.
  const workers = earlyWorkers(d.workers, log);
  const tWorkers = native.monotonicMs();
  const dup = (name: string) => native.dupFd(handover.inherited.get(name)!);
  const xsk = adoptableXsk(native, handover, original, state, log);
  const datapath = new native.Datapath({
    workers: d.workers,
    framesPerWorker: d.framesPerWorker,
    fdbCapacity: state.fdbCapacity,
    bpfObject: bpfObjectPath,
    tcObject,
    fastPath: d.fastPath,
    anchorDevice: state.bridge,
    adopt: Object.fromEntries(MAP_NAMES.map((n) => [n, dup(n)])),
    ...(xsk ? { adoptXsk: { umem: dup('umem'), anchor: dup('umem.anchor'), sockets: Object.fromEntries(xsk.map((n) => [n, dup(n)])) } } : {}),
  });
  if (xsk) {
    // A socket the datapath could not take: closed and out of the store, so a new one can bind its queue.
    for (const failure of datapath.xskAdoptFailures()) {
      const name = failure.slice(0, failure.indexOf(': '));
      log.warn({ socket: name, reason: failure.slice(name.length + 2) }, 'early start: a handed-over AF_XDP socket');
      const fd = handover.inherited.get(name);
      if (fd === undefined || failure.includes('let go')) continue;
      native.closeFd(fd);
      handover.inherited.delete(name);
      original.delete(name);
      handover.forget(name);
    }
  }
  const steps = { workers_ms: tWorkers - t0, datapath_ms: native.monotonicMs() - tWorkers };
  try {
    return serve(native, handover, original, log, state, datapath, workers, t0, steps, xsk !== undefined);
  } catch (err) {
    // The datapath exists and holds copies: only a start afresh in place undoes that.
    return fallbackTo(native, original, log, `early start failed: ${(err as Error).message}`);
  }
}

function fallbackTo(native: NativeAddon, original: Map<string, number>, log: DeferredLog, reason: string): never {
  log.warn({ reason }, 'starting again in place without the early start (the handed-over fds are untouched)');
  process.env.VSWITCHD_EARLY = 'off';
  const names = [...original.keys()];
  native.reexec(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], names.map((n) => original.get(n)!), names);
  throw new Error('re-exec returned');
}

function serve(native: NativeAddon, handover: Handover, original: Map<string, number>, log: DeferredLog, state: HandoverState,
  datapath: NativeDatapath, workers: EarlyWorkers, t0: number, steps: Record<string, number>, adoptedXsks: boolean): EarlyStart {
  const d = state.datapath!;
  const tPorts = native.monotonicMs();
  const tapFd = native.dupFd(handover.inherited.get(tapFdName(state.bridge))!);
  const taken: string[] = [...MAP_NAMES, tapFdName(state.bridge), ...(adoptedXsks ? [...handover.inherited.keys()].filter(isXskFdName) : [])];
  const ports = new Set<string>();
  for (const p of state.ports) {
    if (!p.up || p.bond || !p.vlan || p.queues === undefined) continue;  // bond legs: the bond is rebuilt
    try {
      if (p.kind === 'internal') {
        datapath.addPort(p.index, p.name, 1, 'none', tapFd, { early: true });
      } else {
        const a = p.attached;
        const link = handover.inherited.get(linkFdName(p.name));
        const punt = handover.inherited.get(puntFdName(p.name));
        // Only the device the old daemon had, with its links (a device made again is another one).
        if (!a || link === undefined || ifindexOf(p.name) !== a.ifindex) continue;
        if (p.hook === 'tc' && (!p.punt || punt === undefined || ifindexOf(p.punt.near) === undefined || ifindexOf(p.punt.far) === undefined)) continue;
        if (p.hook !== 'tc' && p.hook !== 'xdp') continue;
        const xsks = xskNamesOf(p);
        datapath.addPort(p.index, p.name, p.queues, d.xdpMode, undefined, {
          hook: p.hook,
          ...(adoptedXsks ? { adoptXsks: xsks.device, adoptPuntXsk: xsks.punt } : {}),
          ...(p.punt ? { puntNear: p.punt.near, puntFar: p.punt.far } : {}),
          peerNetns: a.peerNetns,
          adoptLinkFd: native.dupFd(link),
          ...(punt !== undefined ? { adoptPuntLinkFd: native.dupFd(punt) } : {}),
          keepPrograms: true,
          early: true,
        });
        datapath.setPortFast(p.index, ...a.fast);
        taken.push(linkFdName(p.name), puntFdName(p.name));
      }
    } catch (err) {
      // The daemon adds it the usual way (the originals are untouched).
      log.warn({ port: p.name, err: (err as Error).message }, 'early start: port left to the daemon');
      continue;
    }
    const v = p.vlan;
    datapath.setPortVlan(p.index, v.mode === 'access' ? { trunk: false, accessVlan: v.vlan, nativeVlan: 0, trunks: [] } : { trunk: true, accessVlan: 0, nativeVlan: v.nativeVlan ?? 0, trunks: v.trunks });
    datapath.setPortActive(p.index, true);
    if (p.mtu !== undefined) datapath.setPortMtu(p.index, p.mtu);
    ports.add(p.name);
  }
  const members = vlanMembers(state.ports.filter((p) => ports.has(p.name)).map((p) => ({ index: p.index, vlan: p.vlan!, up: true })));
  for (const [vlan, list] of members) datapath.setFloodSet(vlan, list);
  datapath.commit();
  for (const name of taken) handover.inherited.delete(name);
  const { supervisor } = workers;
  const tStart = native.monotonicMs();
  supervisor.start();
  // Where the early start's time went (the restart test logs it in its timeline).
  const took = { ...steps, ports_ms: tStart - tPorts, start_ms: native.monotonicMs() - tStart };
  const sockets = taken.filter((n) => isXskFdName(n) && !(UMEM_NAMES as readonly string[]).includes(n)).length;
  log.info({ ports: [...ports], afxdp: adoptedXsks ? `UMEM and ${sockets} sockets adopted (frames waited in their rings)` : 'new UMEM and sockets', took_ms: native.monotonicMs() - t0, steps: took, handed_over_ms_ago: native.monotonicMs() - state.savedAtMs, process_uptime_ms: Math.round(process.uptime() * 1000) },
    'early start: the handed-over ports forward again; reading the config');
  return {
    state,
    datapath,
    supervisor,
    tapFd,
    ports,
    xsks: adoptedXsks,
    setHandlers: workers.setHandlers,
    release() {
      for (const name of taken) {
        const fd = original.get(name);
        if (fd !== undefined) native.closeFd(fd);
      }
    },
    fallback: (reason) => fallbackTo(native, original, log, reason),
  };
}

/**
 * The handed-over sockets to adopt (their names), or undefined: then they are closed and
 * out of the store before the datapath makes new ones (their queues are free only then).
 */
function adoptableXsk(native: NativeAddon, handover: Handover, original: Map<string, number>, state: HandoverState, log: DeferredLog): string[] | undefined {
  const names = [...handover.inherited.keys()].filter((n) => isXskFdName(n) && !(UMEM_NAMES as readonly string[]).includes(n));
  const why = !UMEM_NAMES.every((n) => handover.inherited.has(n)) ? 'no UMEM handed over'
    : state.xsk !== native.xskLayout ? `another socket layout (${state.xsk ?? 'none'}; this build: ${native.xskLayout})` : undefined;
  if (!why) return names;
  const dropped = handover.dropXsks(original);
  if (dropped.length) log.warn({ reason: why, sockets: dropped.length }, 'early start: the handed-over AF_XDP sockets are not adopted (new ones are made)');
  return undefined;
}

interface EarlyWorkers {
  supervisor: Supervisor;
  setHandlers: EarlyStart['setHandlers'];
}

function earlyWorkers(count: number, log: DeferredLog): EarlyWorkers {
  let handlers: { onLearn: (ev: LearnEvent[]) => void; onPunt: (port: number, frame: Buffer) => void } | undefined;
  const pending: LearnEvent[] = [];
  const supervisor = new Supervisor({
    workers: count,
    log: log.logger,
    onLearn: (ev) => {
      if (handlers) handlers.onLearn(ev);
      else if (pending.length < 65536) pending.push(...ev);
    },
    onPunt: (port, frame) => handlers?.onPunt(port, frame),  // LACPDUs: bonds are rebuilt anyway
  });
  return {
    supervisor,
    setHandlers(onLearn, onPunt) {
      handlers = { onLearn, onPunt };
      if (pending.length) onLearn(pending.splice(0));
    },
  };
}

function ifindexOf(dev: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8').trim());
  } catch {
    return undefined;
  }
}
