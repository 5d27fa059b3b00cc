// The switch's YAML config: parse, validate, fill defaults.
//
// Every problem is reported with file, line, column, key path and what was
// expected versus found, and all problems are collected in one pass, so an
// operator fixes a bad file in one edit and `reload` can refuse it with a
// message worth logging. Validation is in two layers:
//   1. a zod schema for the shape of each key (types, ranges, unknown keys);
//   2. cross-field checks (names unique, references resolve, VLAN rules),
//      run on the raw data so that they report even when layer 1 failed.
// Positions come from the yaml CST through `doc.getIn(path, true).range`.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import { Composer, isMap, isScalar, isSeq, Lexer, LineCounter, Parser, type Document } from 'yaml';
import { z } from 'zod';
import { MAX_PORTS } from '../types.js';

// ---------------------------------------------------------------------------
// The API other modules code against.

export interface PortConfig {
  name: string;
  type?: 'veth' | 'tap' | 'internal';
  vlan?: number;
  trunks?: number[];
  native_vlan?: number;
  security?: PortSecurityConfig;
  storm_control?: StormControlConfig;
  policing?: PolicingConfig;
}

/** Port security (anti-spoofing): the source MACs and IPs a port may send from. */
export interface PortSecurityConfig {
  /** Source MACs (lowercase); absent: any. */
  macs?: string[];
  /** Source IPv4/IPv6 addresses; absent: any. DHCP clients, link-local and :: always pass. */
  ips?: string[];
  /**
   * "Sticky": the first `learn` source MACs the port sends from (beyond `macs`) are learned
   * and the port is then locked to them, until a reload changes `security` or
   * `vswitchctl port unlock`. Absent: only `macs`.
   */
  learn?: number;
}

/** Frames/s entering from the port, per class; absent: no cap. */
export interface StormControlConfig {
  broadcast?: number;
  multicast?: number;
  unknown_unicast?: number;
}

/** An ingress token bucket, as OVS's ingress_policing_rate/burst (kilobits). */
export interface PolicingConfig {
  rate_kbps: number;
  burst_kb: number;
}

/** How many source MACs, and IPv4 and IPv6 addresses each, a port's security may list (VSW_POLICY_MACS/IPS). */
export const MAX_SECURITY_MACS = 8;
export const MAX_SECURITY_IPS = 8;
/** OVS's default ingress_policing_burst: the least burst given by default. */
export const DEFAULT_POLICING_BURST_KB = 8000;
/**
 * The burst when the config gives none: 200 ms of the rate, at least OVS's 8000 kbit.
 * TCP through a policer whose burst is smaller than what its window puts in flight
 * collapses into retransmission timeouts (measured at 100 Mbit/s, iperf3 5 s through
 * veth: burst 1000 kbit 6-7 Mbit/s of TCP, 8000 42, 10000 49, 20000 97-98).
 */
export function policingBurstKb(rateKbps: number): number {
  return Math.min(1_000_000, Math.max(DEFAULT_POLICING_BURST_KB, Math.ceil(rateKbps / 5)));
}

export interface LacpConfig {
  mode: 'active' | 'passive';
  rate: 'fast' | 'slow';
  system_priority: number;
  fallback: 'active-backup' | 'none';
}

export interface BondConfig {
  name: string;
  members: string[];
  mode: 'active-backup' | 'balance-tcp' | 'lacp';
  hash: 'l2' | 'l3l4';
  primary?: string;
  updelay: number;
  downdelay: number;
  lacp?: LacpConfig;
  vlan?: number;
  trunks?: number[];
  native_vlan?: number;
}

export interface StaticFdbConfig {
  mac: string;
  vlan: number;
  port: string;
}

/** A mirror (SPAN): copies of the selected frames go to the output port, which receives nothing else. */
export interface MirrorConfig {
  name: string;
  /** Frames entering (ingress), leaving (egress) or both by these ports; absent: every port. vlans: only frames of these VLANs. */
  select: { ports?: string[]; direction: 'both' | 'ingress' | 'egress'; vlans?: number[] };
  output: string;
}

/** Mirrors a switch may have (native/datapath/datapath.h kMaxMirrors). */
export const MAX_MIRRORS = 32;

/**
 * Where known unicast is switched in the kernel. auto: per port, the hook that keeps
 * the host's offloads (tc on veth and tap ports; XDP on NICs). tc, xdp: that hook on
 * every port. off: no fast path; every frame through the AF_XDP hot loop (veth and
 * tap ports still enter through tc, so their offloads are finished on the way).
 */
export type FastPathMode = 'auto' | 'tc' | 'xdp' | 'off';

/** A VLAN carried across hosts in a VXLAN VNI (src/switch/tunnel/evpn.ts). */
export interface VniConfig {
  vlan: number;
  vni: number;
}

export interface VxlanConfig {
  /** This host's VTEP address (IPv4, on lo or the underlay). */
  local: string;
  /** UDP destination port. */
  port: number;
  vnis: VniConfig[];
}

export interface SwitchConfig {
  bridge: string;
  /** The internal port's MAC; absent: derived from the bridge name and the machine id (l2/mac.ts bridgeMac). */
  bridge_mac?: string;
  workers: number;
  datapath: { xdp_mode: 'auto' | 'native' | 'generic'; frames_per_worker: number; fast_path: FastPathMode };
  fdb: { aging: number; max_per_port: number; capacity: number; static: StaticFdbConfig[] };
  metrics: { listen: string };
  control: { socket: string };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
  ports: PortConfig[];
  bonds: BondConfig[];
  mirrors: MirrorConfig[];
  /** VXLAN tunnels with an EVPN control plane (FRR); absent: every VLAN stays on this host. */
  vxlan?: VxlanConfig;
}

export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

/** Issues printed (and logged by a refused reload); the rest are counted. A hostile file can have hundreds of thousands. */
export const MAX_SHOWN_ISSUES = 20;

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(formatIssues(issues));
    this.name = 'ConfigError';
    this.issues = issues;
  }

  /** The first MAX_SHOWN_ISSUES issues, for a log line. */
  get shownIssues(): ConfigIssue[] {
    return this.issues.slice(0, MAX_SHOWN_ISSUES);
  }
}

/** One line per issue, the first MAX_SHOWN_ISSUES of them, then where the rest start and how many they are. */
export function formatIssues(issues: ConfigIssue[]): string {
  const lines = issues.slice(0, MAX_SHOWN_ISSUES).map(formatIssue);
  const next = issues[MAX_SHOWN_ISSUES];
  if (next !== undefined) {
    const more = issues.length - MAX_SHOWN_ISSUES;
    lines.push(`${next.file}:${next.line}:${next.column}: ... and ${more} more error${more === 1 ? '' : 's'} from here on, not shown`);
  }
  return lines.join('\n');
}

/** `file:line:column: path: message`; the path part is left out when empty (file and syntax errors). */
export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.column}`;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

/** ["ports", 1, "vlan"] -> "ports[1].vlan". Keys that are not plain words are quoted, so the path stays unambiguous. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Rules shared by the schema and the cross-field checks.

const VLAN_MIN = 1;
const VLAN_MAX = 4094;
/** Linux IFNAMSIZ is 16 including the NUL. */
const NAME_RE = /^[A-Za-z0-9_.:-]{1,15}$/;
const NAME_DESC = 'a name of 1..15 characters from [A-Za-z0-9_.:-]';
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const MAC_DESC = 'a MAC address like "02:00:00:00:00:01"';
/** sun_path is 108 bytes including the NUL. */
const SOCKET_PATH_MAX = 107;

/**
 * The largest config file read. 4096 ports (the most a switch has) take about 170 KB
 * as access ports and 250 KB as trunks; the yaml parser here reads about 1 MB/s, so
 * this bound keeps every check under 1 s (see docs/ARCHITECTURE.md, hostile config files).
 */
export const MAX_CONFIG_BYTES = 256 * 1024;
/**
 * Mappings and lists nested deeper than this are refused before they are built: the
 * deepest key of the config (bonds[].lacp.mode) is 4 deep, and the yaml composer
 * recurses once per level (a few thousand levels overflow the stack).
 */
export const MAX_NESTING = 32;
/**
 * Values (mapping values and list entries) checked at most. 4096 trunk ports with a few
 * VLANs each are about 30000; the schema library collects issues with spread calls,
 * which overflow the stack somewhere above 100000 (a 256 KiB list of zeros has 131072).
 */
export const MAX_VALUES = 65536;

const DEFAULT_BRIDGE = 'br0';
const DEFAULT_BOND_MODE = 'active-backup';

const DEFAULT_LACP: LacpConfig = { mode: 'active', rate: 'slow', system_priority: 65535, fallback: 'none' };

/** A value as the operator wrote it, short enough for one line of error. */
function describe(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

/** The one message shape of the schema: what was expected, what was found. */
function expected(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `missing required key (expected ${what})` : `expected ${what}, got ${describe(issue.input)}`;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** "host:port" with host an IPv4 address, a hostname or a bracketed IPv6 address; port 0 asks the OS for one. */
function isListenAddress(s: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(s);
  return m !== null && Number(m[2]) <= 65535;
}

function metricsDisabled(s: string): boolean {
  return s === '' || s === 'off';
}

// ---------------------------------------------------------------------------
// Layer 1: the schema. Every leaf carries its own `error`, so every issue
// reads "expected <what>, got <found>" whatever zod check failed.

function intIn(min: number, max: number) {
  return z.number({ error: expected(`an integer in ${min}..${max}`) }).int().min(min).max(max);
}

function powerOfTwoIn(min: number, max: number) {
  return z
    .number({ error: expected(`a power of two in ${min}..${max}`) })
    .int()
    .min(min)
    .max(max)
    .refine(isPowerOfTwo);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expected(`one of: ${values.join(', ')}`) });
}

/** A strict object whose unknown-key message lists the keys it does know. */
function section<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown key (expected one of: ${known})` : expected('a mapping')(issue),
  });
}

/**
 * A section or list key written with nothing after it (`ports:` whose entries
 * are all commented out) counts as left out, so it takes its default.
 */
function emptyAsDefault<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema);
}

const nameSchema = z.string({ error: expected(NAME_DESC) }).regex(NAME_RE);
const vlanSchema = intIn(VLAN_MIN, VLAN_MAX);
const trunksSchema = z
  .array(vlanSchema, { error: expected(`a non-empty list of VLAN ids in ${VLAN_MIN}..${VLAN_MAX}`) })
  .min(1);

// MACs and addresses are only type-checked here; their format is a cross-field check
// (checkPortPolicy), so that one message says what is wrong with each.
const securitySchema = section({
  macs: z.array(z.string({ error: expected(MAC_DESC) }), { error: expected(`a list of up to ${MAX_SECURITY_MACS} unicast MACs`) })
    .max(MAX_SECURITY_MACS)
    .optional(),
  ips: z.array(z.string({ error: expected('an IPv4 or IPv6 address') }), {
    error: expected(`a list of IPv4 and IPv6 addresses (up to ${MAX_SECURITY_IPS} of each)`),
  }).optional(),
  learn: intIn(1, MAX_SECURITY_MACS).optional(),
});

const stormSchema = section({
  broadcast: intIn(1, 100_000_000).optional(),
  multicast: intIn(1, 100_000_000).optional(),
  unknown_unicast: intIn(1, 100_000_000).optional(),
});

const policingSchema = section({
  rate_kbps: intIn(1, 100_000_000),  // 100 Gbit/s (VSW_POLICE_MAX_RATE)
  burst_kb: intIn(1, 1_000_000).optional(),
}).transform((p): PolicingConfig => ({ rate_kbps: p.rate_kbps, burst_kb: p.burst_kb ?? policingBurstKb(p.rate_kbps) }));

const portSchema = section({
  name: nameSchema,
  type: oneOf(['veth', 'tap', 'internal']).optional(),
  vlan: vlanSchema.optional(),
  trunks: trunksSchema.optional(),
  native_vlan: vlanSchema.optional(),
  security: securitySchema.optional(),
  storm_control: stormSchema.optional(),
  policing: policingSchema.optional(),
});

const lacpSchema = section({
  mode: oneOf(['active', 'passive']).default(DEFAULT_LACP.mode),
  rate: oneOf(['fast', 'slow']).default(DEFAULT_LACP.rate),
  system_priority: intIn(1, 65535).default(DEFAULT_LACP.system_priority),
  fallback: oneOf(['active-backup', 'none']).default(DEFAULT_LACP.fallback),
});

const bondSchema = section({
  name: nameSchema,
  members: z.array(nameSchema, { error: expected('a non-empty list of member interface names') }).min(1),
  mode: oneOf(['active-backup', 'balance-tcp', 'lacp']).default(DEFAULT_BOND_MODE),
  hash: oneOf(['l2', 'l3l4']).default('l3l4'),
  primary: nameSchema.optional(),
  updelay: intIn(0, 3_600_000).default(0),
  downdelay: intIn(0, 3_600_000).default(0),
  lacp: lacpSchema.optional(),
  vlan: vlanSchema.optional(),
  trunks: trunksSchema.optional(),
  native_vlan: vlanSchema.optional(),
});

// The MAC is only type-checked here: its format and unicast rule are
// cross-field checks, so that exactly one message says what is wrong with it.
const staticSchema = section({
  mac: z.string({ error: expected(MAC_DESC) }),
  vlan: vlanSchema,
  port: nameSchema,
});

const mirrorSchema = section({
  name: nameSchema,
  select: section({
    ports: z.array(nameSchema, { error: expected('a non-empty list of port names') }).min(1).optional(),
    direction: oneOf(['both', 'ingress', 'egress']).default('both'),
    vlans: z.array(vlanSchema, { error: expected(`a non-empty list of VLAN ids in ${VLAN_MIN}..${VLAN_MAX}`) }).min(1).optional(),
  }),
  output: nameSchema,
});

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const VNI_MAX = 16_777_215;

const vxlanSchema = section({
  local: z.string({ error: expected('an IPv4 address (the VTEP, like 10.255.0.1)') }).regex(IPV4_RE),
  port: intIn(1, 65535).default(4789),
  vnis: emptyAsDefault(z.array(section({ vlan: vlanSchema, vni: intIn(1, VNI_MAX) }), { error: expected('a list of { vlan, vni } entries') }).default([])),
});

const configSchema = section({
  bridge: nameSchema.default(DEFAULT_BRIDGE),
  // Format and unicast rule: a cross-field check (macProblem), like a static entry's MAC.
  bridge_mac: z.string({ error: expected(MAC_DESC) }).optional(),
  workers: intIn(1, 64).default(2),
  datapath: emptyAsDefault(section({
    xdp_mode: oneOf(['auto', 'native', 'generic']).default('auto'),
    frames_per_worker: powerOfTwoIn(1024, 262144).default(8192),
    fast_path: oneOf(['auto', 'tc', 'xdp', 'off']).default('auto'),
  }).prefault({})),
  fdb: emptyAsDefault(section({
    aging: intIn(1, 1_000_000).default(300),
    max_per_port: intIn(1, 16_777_216).default(4096),
    capacity: powerOfTwoIn(1024, 16_777_216).default(65536),
    static: emptyAsDefault(z.array(staticSchema, { error: expected('a list of { mac, vlan, port } entries') }).default([])),
  }).prefault({})),
  metrics: emptyAsDefault(section({
    listen: z
      .string({ error: expected('"host:port" (like 127.0.0.1:9417), or "" or "off" to disable') })
      .refine((s) => metricsDisabled(s) || isListenAddress(s))
      .default('127.0.0.1:9417'),
  }).prefault({})),
  control: emptyAsDefault(section({
    socket: z
      .string({ error: expected(`a unix socket path of 1..${SOCKET_PATH_MAX} bytes`) })
      .refine((s) => s.length > 0 && Buffer.byteLength(s) <= SOCKET_PATH_MAX)
      .default('/run/vswitchd/vswitchd.sock'),
  }).prefault({})),
  log: emptyAsDefault(section({
    level: oneOf(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  }).prefault({})),
  ports: emptyAsDefault(z.array(portSchema, { error: expected('a list of ports') }).default([])),
  bonds: emptyAsDefault(z.array(bondSchema, { error: expected('a list of bonds') }).default([])),
  mirrors: emptyAsDefault(z.array(mirrorSchema, { error: expected('a list of mirrors') }).default([])),
  vxlan: vxlanSchema.optional(),
});

// ---------------------------------------------------------------------------
// Positions: from a key path to a line and column of the YAML source.

type Path = (string | number)[];

/** A problem before it has a position; `atKey` points at the key itself rather than its value (unknown keys). */
interface Problem {
  path: Path;
  message: string;
  atKey?: boolean;
}

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** 1-based line and column of the path's value, or of its nearest existing parent when the key is absent. */
  position(path: Path, atKey = false): { line: number; column: number } {
    const offset = (atKey ? this.keyOffset(path) : undefined) ?? this.valueOffset(path);
    if (offset === undefined) return { line: 1, column: 1 };
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  line(path: Path): number {
    return this.position(path).line;
  }

  private valueOffset(path: Path): number | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node: unknown = this.doc.getIn(path.slice(0, n), true);
      const range = rangeOf(node);
      if (range !== undefined) return range[0];
    }
    return undefined;
  }

  private keyOffset(path: Path): number | undefined {
    if (path.length === 0) return undefined;
    const parent: unknown = this.doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(last));
    return pair === undefined ? undefined : rangeOf(pair.key)?.[0];
  }
}

function rangeOf(node: unknown): readonly [number, number, number] | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node)) return undefined;
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) ? (range as unknown as [number, number, number]) : undefined;
}

interface Scan {
  /** Keys written twice in one mapping. */
  duplicates: { path: Path; offset: number }[];
  values: number;
  /** Where value number MAX_VALUES + 1 starts. */
  tooManyAt?: number;
}

/**
 * One walk over the document: keys written twice in one mapping, and the number of
 * values. yaml's own duplicate check (uniqueKeys) compares each key with every earlier
 * one, which took minutes on a hostile file; here a set per mapping. The depth is
 * bounded by MAX_NESTING, so recursion is fine.
 */
function scanDocument(node: unknown, scan: Scan, path: Path = []): void {
  const count = (child: unknown) => {
    if (++scan.values === MAX_VALUES + 1) scan.tooManyAt = rangeOf(child)?.[0] ?? 0;
  };
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key !== undefined && seen.has(key)) scan.duplicates.push({ path: [...path, key], offset: rangeOf(pair.key)?.[0] ?? 0 });
      if (key !== undefined) seen.add(key);
      count(pair.value ?? pair.key);
      scanDocument(pair.value, scan, [...path, key ?? '?']);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      count(item);
      scanDocument(item, scan, [...path, i]);
    });
  }
}

// ---------------------------------------------------------------------------
// Layer 2: cross-field checks, on raw data that may be only partly valid.
// Each check reads only what has the right type and skips the rest: layer 1
// already reports the wrong types.

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The mappings of a list key, with their index; absent or malformed lists give none. */
function records(parent: unknown, key: string): [number, Raw][] {
  const list = isRecord(parent) ? parent[key] : undefined;
  if (!Array.isArray(list)) return [];
  return list.flatMap((item, i): [number, Raw][] => (isRecord(item) ? [[i, item]] : []));
}

function stringAt(r: Raw, key: string): string | undefined {
  const v = r[key];
  return typeof v === 'string' ? v : undefined;
}

function vlanList(v: unknown): number[] {
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
}

/** vlan / trunks / native_vlan rules, shared by ports and bonds. */
function checkVlanMode(r: Raw, path: Path): Problem[] {
  const problems: Problem[] = [];
  if (r['vlan'] !== undefined && r['trunks'] !== undefined) {
    problems.push({
      path: [...path, 'trunks'],
      message: 'expected either vlan (access port) or trunks (trunk port), got both',
    });
  }
  if (r['native_vlan'] !== undefined && r['trunks'] === undefined) {
    problems.push({
      path: [...path, 'native_vlan'],
      message: 'native_vlan needs trunks (it is the VLAN of untagged frames on a trunk port)',
    });
  }
  const trunks = r['trunks'];
  if (Array.isArray(trunks)) {
    trunks.forEach((v, i) => {
      const first = trunks.indexOf(v);
      if (typeof v === 'number' && first !== i) {
        problems.push({ path: [...path, 'trunks', i], message: `duplicate VLAN ${v} (first at trunks[${first}])` });
      }
    });
  }
  return problems;
}

/** The VLANs a port or bond carries; one with neither vlan nor trunks is an access port of VLAN 1. */
function vlansOf(r: Raw): number[] {
  if (r['trunks'] !== undefined) {
    const native = typeof r['native_vlan'] === 'number' ? [r['native_vlan']] : [];
    return [...vlanList(r['trunks']), ...native];
  }
  return typeof r['vlan'] === 'number' ? [r['vlan']] : [1];
}

/** The bridge name the checks compare against; undefined when it is malformed (already reported), to skip those checks. */
function bridgeOf(raw: Raw): string | undefined {
  const bridge = raw['bridge'] ?? DEFAULT_BRIDGE;
  return typeof bridge === 'string' ? bridge : undefined;
}

interface NameUse {
  kind: 'port' | 'bond';
  path: Path;
  entry: Raw;
}

/** Ports and bonds share one name space: a static FDB entry or a member list names either. */
function checkNames(raw: Raw, loc: Locator): { problems: Problem[]; names: Map<string, NameUse> } {
  const problems: Problem[] = [];
  const names = new Map<string, NameUse>();
  const uses: NameUse[] = [
    ...records(raw, 'ports').map(([i, entry]): NameUse => ({ kind: 'port', path: ['ports', i], entry })),
    ...records(raw, 'bonds').map(([i, entry]): NameUse => ({ kind: 'bond', path: ['bonds', i], entry })),
  ];
  const bridge = bridgeOf(raw);
  for (const use of uses) {
    const name = stringAt(use.entry, 'name');
    if (name === undefined) continue;
    const namePath = [...use.path, 'name'];
    const first = names.get(name);
    if (first !== undefined) {
      const what = first.kind === use.kind ? `duplicate ${use.kind} name` : `${use.kind} name is already a ${first.kind} name`;
      problems.push({ path: namePath, message: `${what} "${name}" (first at line ${loc.line([...first.path, 'name'])})` });
      continue;
    }
    if (use.kind === 'bond' && name === bridge) {
      problems.push({ path: namePath, message: `bond name "${name}" is the bridge's internal port name` });
    }
    names.set(name, use);
  }
  return { problems, names };
}

/** The internal port (the host stack's leg) is the one named like the bridge, and only it. */
function checkPortTypes(raw: Raw): Problem[] {
  const problems: Problem[] = [];
  const bridge = bridgeOf(raw);
  if (bridge === undefined) return problems;
  for (const [i, port] of records(raw, 'ports')) {
    const name = stringAt(port, 'name');
    const type = port['type'];
    if (name === bridge && type !== undefined && type !== 'internal') {
      problems.push({
        path: ['ports', i, 'type'],
        message: `expected internal (port "${name}" is the bridge's own port), got ${describe(type)}`,
      });
    }
    if (type === 'internal' && name !== undefined && name !== bridge) {
      problems.push({
        path: ['ports', i, 'type'],
        message: `type internal is only for the port named like the bridge ("${bridge}"), got port "${name}"`,
      });
    }
  }
  return problems;
}

function checkPorts(raw: Raw): Problem[] {
  return [
    ...records(raw, 'ports').flatMap(([i, port]) => [...checkVlanMode(port, ['ports', i]), ...checkPortSecurity(port, ['ports', i])]),
    ...checkPortTypes(raw),
  ];
}

/** The MACs and addresses of a port's security block: each well formed, at most 8 addresses per family. */
function checkPortSecurity(port: Raw, path: Path): Problem[] {
  const sec = port['security'];
  if (!isRecord(sec)) return [];
  const problems: Problem[] = [];
  const macs = sec['macs'];
  if (Array.isArray(macs)) {
    macs.forEach((mac, j) => {
      const problem = typeof mac === 'string' ? macProblem(mac, 'a port\'s source MAC') : undefined;
      if (problem !== undefined) problems.push({ path: [...path, 'security', 'macs', j], message: problem });
    });
  }
  // The listed and the learned MACs share the datapath's VSW_POLICY_MACS places.
  const learn = sec['learn'];
  const listed = Array.isArray(macs) ? macs.length : 0;
  if (typeof learn === 'number' && Number.isInteger(learn) && learn >= 1 && learn <= MAX_SECURITY_MACS && listed <= MAX_SECURITY_MACS && listed + learn > MAX_SECURITY_MACS) {
    problems.push({ path: [...path, 'security', 'learn'], message: `too many MACs: macs lists ${listed} and learn adds ${learn}; at most ${MAX_SECURITY_MACS} in all` });
  }
  const ips = sec['ips'];
  if (Array.isArray(ips)) {
    const count = { 4: 0, 6: 0 };
    ips.forEach((ip, j) => {
      if (typeof ip !== 'string') return;
      const family = isIP(ip);
      if (family === 0) {
        problems.push({ path: [...path, 'security', 'ips', j], message: `expected an IPv4 or IPv6 address (no prefix length), got ${describe(ip)}` });
      } else if (++count[family as 4 | 6] === MAX_SECURITY_IPS + 1) {
        problems.push({ path: [...path, 'security', 'ips', j], message: `too many IPv${family} addresses: at most ${MAX_SECURITY_IPS} per port; the first that does not fit is here` });
      }
    });
  }
  return problems;
}

/** Member lists, primary, lacp block and VLAN mode of every bond. Returns which bond owns each member. */
function checkBonds(
  raw: Raw,
  names: Map<string, NameUse>,
  loc: Locator,
): { problems: Problem[]; memberOf: Map<string, string> } {
  const problems: Problem[] = [];
  const memberOf = new Map<string, string>();
  const memberPath = new Map<string, Path>();
  const bridge = bridgeOf(raw);
  for (const [i, bond] of records(raw, 'bonds')) {
    const bondName = stringAt(bond, 'name') ?? `bonds[${i}]`;
    const members = Array.isArray(bond['members']) ? bond['members'] : [];
    members.forEach((member, j) => {
      if (typeof member !== 'string') return;
      const path: Path = ['bonds', i, 'members', j];
      const owner = memberOf.get(member);
      const named = names.get(member);
      if (owner !== undefined) {
        const again = owner === bondName ? `duplicate member "${member}"` : `"${member}" is already a member of bond "${owner}"`;
        problems.push({ path, message: `${again} (first at line ${loc.line(memberPath.get(member) ?? [])})` });
        return;
      }
      if (named !== undefined) {
        problems.push({
          path,
          message: `"${member}" is also listed as a ${named.kind} (line ${loc.line([...named.path, 'name'])}); a bond member must not be a port or a bond`,
        });
      } else if (member === bridge) {
        problems.push({ path, message: `"${member}" is the bridge's internal port and cannot be a bond member` });
      }
      memberOf.set(member, bondName);
      memberPath.set(member, path);
    });
    problems.push(...checkBondOptions(bond, ['bonds', i]));
  }
  return { problems, memberOf };
}

function checkBondOptions(bond: Raw, path: Path): Problem[] {
  const problems: Problem[] = [...checkVlanMode(bond, path)];
  const mode = bond['mode'] ?? DEFAULT_BOND_MODE;
  if (bond['lacp'] !== undefined && mode !== 'lacp') {
    problems.push({ path: [...path, 'lacp'], message: `a lacp block needs mode lacp, got mode ${describe(mode)}` });
  }
  const primary = bond['primary'];
  const members = Array.isArray(bond['members']) ? [...new Set(bond['members'].filter((m) => typeof m === 'string'))] : [];
  if (typeof primary === 'string' && !members.includes(primary)) {
    problems.push({
      path: [...path, 'primary'],
      message: `expected one of the bond's members (${members.join(', ')}), got "${primary}"`,
    });
  }
  return problems;
}

/** The MAC rules of a station's MAC (a static entry, the bridge's own); undefined when the MAC is fine. */
function macProblem(mac: string, what: string): string | undefined {
  if (!MAC_RE.test(mac)) return `expected ${MAC_DESC}, got ${describe(mac)}`;
  const bytes = mac.split(':').map((b) => parseInt(b, 16));
  if (((bytes[0] ?? 0) & 1) === 1) return `multicast MAC cannot be ${what}, got "${mac}"`;
  if (bytes.every((b) => b === 0)) return `the all-zero MAC cannot be ${what}`;
  return undefined;
}

function checkBridgeMac(raw: Raw): Problem[] {
  const mac = stringAt(raw, 'bridge_mac');
  const problem = mac === undefined ? undefined : macProblem(mac, "the bridge's MAC");
  return problem === undefined ? [] : [{ path: ['bridge_mac'], message: problem }];
}

/**
 * Port slots, as start takes them: the internal port, the other ports, then each bond
 * and its members. The first entry past MAX_PORTS is the error (start would fail there
 * with "no free port slot").
 */
function checkPortSlots(raw: Raw): Problem[] {
  const bridge = bridgeOf(raw);
  const slots: Path[] = [[]];  // the internal port, listed or not
  for (const [i, port] of records(raw, 'ports')) if (stringAt(port, 'name') !== bridge) slots.push(['ports', i, 'name']);
  for (const [i, bond] of records(raw, 'bonds')) {
    slots.push(['bonds', i, 'name']);
    const members = Array.isArray(bond['members']) ? bond['members'] : [];
    members.forEach((_, j) => slots.push(['bonds', i, 'members', j]));
  }
  const over = slots[MAX_PORTS];
  if (over === undefined) return [];
  return [{
    path: over,
    message: `too many ports: ${slots.length} port slots, at most ${MAX_PORTS} (the internal port, each port, each bond and each bond member take one); the first that does not fit is here`,
  }];
}

/** The port of a static entry must exist, not be a bond leg, and carry the entry's VLAN (else it would leak across VLANs). */
function staticPortProblem(
  port: string,
  vlan: unknown,
  raw: Raw,
  names: Map<string, NameUse>,
  memberOf: Map<string, string>,
): string | undefined {
  const bridge = bridgeOf(raw);
  const target = names.get(port);
  if (target === undefined) {
    const bond = memberOf.get(port);
    if (bond !== undefined) return `"${port}" is a member of bond "${bond}": name the bond instead`;
    // The internal port exists whether or not it is listed under ports.
    if (port !== bridge) return `expected the name of a port or bond, got "${port}"`;
  }
  if (typeof vlan !== 'number') return undefined;
  const carried = target === undefined ? [1] : vlansOf(target.entry);
  if (!carried.includes(vlan)) {
    return `${target?.kind ?? 'port'} "${port}" does not carry VLAN ${vlan} (its VLANs: ${carried.join(', ')})`;
  }
  return undefined;
}

function checkStatic(raw: Raw, names: Map<string, NameUse>, memberOf: Map<string, string>, loc: Locator): Problem[] {
  const problems: Problem[] = [];
  const seen = new Map<string, Path>();
  for (const [k, entry] of records(raw['fdb'], 'static')) {
    const path: Path = ['fdb', 'static', k];
    const mac = stringAt(entry, 'mac');
    const badMac = mac === undefined ? undefined : macProblem(mac, 'a static unicast entry');
    if (badMac !== undefined) problems.push({ path: [...path, 'mac'], message: badMac });
    const port = stringAt(entry, 'port');
    const portProblem = port === undefined ? undefined : staticPortProblem(port, entry['vlan'], raw, names, memberOf);
    if (portProblem !== undefined) problems.push({ path: [...path, 'port'], message: portProblem });
    if (mac !== undefined && typeof entry['vlan'] === 'number') {
      const key = `${entry['vlan']}/${mac.toLowerCase()}`;
      const first = seen.get(key);
      if (first !== undefined) {
        problems.push({
          path: [...path, 'mac'],
          message: `duplicate static entry for ${mac.toLowerCase()} in VLAN ${entry['vlan']} (first at line ${loc.line(first)})`,
        });
      } else {
        seen.set(key, path);
      }
    }
  }
  return problems;
}

/** What a mirror names must be a plain port; undefined when it is one (the internal port counts). */
function mirrorPortProblem(name: string, raw: Raw, names: Map<string, NameUse>, memberOf: Map<string, string>): string | undefined {
  const use = names.get(name);
  if (use?.kind === 'bond') return `"${name}" is a bond: a mirror names ports (a bond's members are not supported yet)`;
  const bond = memberOf.get(name);
  if (bond !== undefined) return `"${name}" is a member of bond "${bond}": a mirror names ports that are not bond members`;
  if (use === undefined && name !== bridgeOf(raw)) return `expected the name of a port, got "${name}"`;
  return undefined;
}

/**
 * Mirrors: names unique, at most MAX_MIRRORS, a selection of ports and/or VLANs, an
 * output that is a port of its own: not selected by any mirror, the output of one
 * mirror only, not the internal port, no static FDB entry on it (it receives only copies).
 */
function checkMirrors(raw: Raw, names: Map<string, NameUse>, memberOf: Map<string, string>, loc: Locator): Problem[] {
  const problems: Problem[] = [];
  const mirrors = records(raw, 'mirrors');
  const seen = new Map<string, Path>();
  const outputs = new Map<string, { mirror: string; path: Path }>();
  const selected = new Map<string, { mirror: string; path: Path }>();
  const bridge = bridgeOf(raw);
  if (mirrors.length > MAX_MIRRORS) {
    problems.push({ path: ['mirrors', MAX_MIRRORS], message: `too many mirrors: ${mirrors.length}, at most ${MAX_MIRRORS}; the first that does not fit is here` });
  }
  for (const [i, m] of mirrors) {
    const name = stringAt(m, 'name') ?? `mirrors[${i}]`;
    const first = seen.get(name);
    if (first !== undefined) problems.push({ path: ['mirrors', i, 'name'], message: `duplicate mirror name "${name}" (first at line ${loc.line(first)})` });
    else seen.set(name, ['mirrors', i, 'name']);
    const select = isRecord(m['select']) ? m['select'] : undefined;
    if (select !== undefined && select['ports'] === undefined && select['vlans'] === undefined) {
      problems.push({ path: ['mirrors', i, 'select'], message: 'expected ports and/or vlans to select frames by, got neither' });
    }
    const ports = select !== undefined && Array.isArray(select['ports']) ? select['ports'] : [];
    ports.forEach((port, j) => {
      if (typeof port !== 'string') return;
      const path: Path = ['mirrors', i, 'select', 'ports', j];
      const again = ports.indexOf(port);
      if (again !== j) return problems.push({ path, message: `duplicate port "${port}" (first at ports[${again}])` });
      const bad = mirrorPortProblem(port, raw, names, memberOf);
      if (bad !== undefined) return problems.push({ path, message: bad });
      if (!selected.has(port)) selected.set(port, { mirror: name, path });
    });
    const vlans = select !== undefined && Array.isArray(select['vlans']) ? select['vlans'] : [];
    vlans.forEach((v, j) => {
      if (typeof v === 'number' && vlans.indexOf(v) !== j) problems.push({ path: ['mirrors', i, 'select', 'vlans', j], message: `duplicate VLAN ${v} (first at vlans[${vlans.indexOf(v)}])` });
    });
    const output = stringAt(m, 'output');
    if (output === undefined) continue;
    const path: Path = ['mirrors', i, 'output'];
    const bad = output === bridge ? `"${output}" is the bridge's internal port (the host stack's leg); a mirror's output must be a port of its own`
      : mirrorPortProblem(output, raw, names, memberOf);
    if (bad !== undefined) {
      problems.push({ path, message: bad });
      continue;
    }
    const other = outputs.get(output);
    if (other !== undefined) problems.push({ path, message: `port "${output}" is already the output of mirror "${other.mirror}" (line ${loc.line(other.path)}); a port is the output of one mirror at most` });
    else outputs.set(output, { mirror: name, path });
  }
  // An output receives only copies: it cannot be a source (of any mirror) or an FDB destination.
  for (const [port, out] of outputs) {
    const sel = selected.get(port);
    if (sel !== undefined) {
      const which = sel.mirror === out.mirror ? 'also selected by this mirror' : `selected by mirror "${sel.mirror}" (line ${loc.line(sel.path)})`;
      problems.push({ path: out.path, message: `output port "${port}" is ${which}; a mirror's output receives only copies and cannot be a source` });
    }
  }
  for (const [k, entry] of records(raw['fdb'], 'static')) {
    const port = stringAt(entry, 'port');
    const out = port === undefined ? undefined : outputs.get(port);
    if (out !== undefined) problems.push({ path: ['fdb', 'static', k, 'port'], message: `port "${port}" is the output of mirror "${out.mirror}" (line ${loc.line(out.path)}): it receives only copies, never frames for a MAC` });
  }
  return problems;
}

/** A VLAN has at most one VNI and a VNI one VLAN; the tunnel devices' names are vswitchd's (tunnel/evpn.ts tunnelNames). */
function checkVnis(raw: Raw, loc: Locator): Problem[] {
  const problems: Problem[] = [];
  for (const [i, port] of records(raw, 'ports')) {
    const name = stringAt(port, 'name');
    if (name !== undefined && /^vsw-(br|vx|tn|tb)\d+$/.test(name))
      problems.push({ path: ['ports', i, 'name'], message: `"${name}" is the name of a VXLAN tunnel device vswitchd creates (vsw-br/vx/tn/tb<vni>); name the port otherwise` });
  }
  const seen = { vlan: new Map<unknown, Path>(), vni: new Map<unknown, Path>() };
  for (const [k, entry] of records(raw['vxlan'], 'vnis')) {
    for (const key of ['vlan', 'vni'] as const) {
      const value = entry[key];
      if (typeof value !== 'number') continue;
      const path: Path = ['vxlan', 'vnis', k, key];
      const first = seen[key].get(value);
      if (first !== undefined) problems.push({ path, message: `${key} ${value} is mapped twice (first at line ${loc.line(first)})` });
      else seen[key].set(value, path);
    }
  }
  return problems;
}

function crossFieldProblems(raw: Raw, loc: Locator): Problem[] {
  const { problems: nameProblems, names } = checkNames(raw, loc);
  const { problems: bondProblems, memberOf } = checkBonds(raw, names, loc);
  return [
    ...checkBridgeMac(raw),
    ...nameProblems,
    ...checkPorts(raw),
    ...bondProblems,
    ...checkStatic(raw, names, memberOf, loc),
    ...checkMirrors(raw, names, memberOf, loc),
    ...checkPortSlots(raw),
    ...checkVnis(raw, loc),
  ];
}

// ---------------------------------------------------------------------------
// From zod issues and yaml errors to problems.

function schemaProblems(error: z.ZodError): Problem[] {
  return error.issues.flatMap((issue): Problem[] => {
    const path = issue.path.filter((seg): seg is string | number => typeof seg !== 'symbol');
    // One unknown-key issue per key, each pointing at its own key.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...path, key], message: issue.message, atKey: true }));
    }
    return [{ path, message: issue.message }];
  });
}

/** Several zod checks of one leaf fail together (e.g. not an integer and too big); they all say the same thing. */
function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${formatPath(p.path)}\n${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Syntax errors and duplicate keys, in source order. */
function yamlIssues(doc: Document, lines: LineCounter, file: string): ConfigIssue[] {
  const syntax = doc.errors.map((err) => {
    const { line, col } = lines.linePos(err.pos[0]);
    return { file, line, column: col, path: '', message: `YAML syntax error: ${err.message}` };
  });
  const scan: Scan = { duplicates: [], values: 0 };
  scanDocument(doc.contents, scan);
  const duplicates = scan.duplicates.map(({ path, offset }) => {
    const { line, col } = lines.linePos(offset);
    return { file, line, column: col, path: formatPath(path), message: `duplicate key "${path[path.length - 1]}" (keys of a mapping must be unique)` };
  });
  const tooMany = [];
  if (scan.tooManyAt !== undefined) {
    const { line, col } = lines.linePos(scan.tooManyAt);
    tooMany.push({ file, line, column: col, path: '', message: `more than ${MAX_VALUES} values (${scan.values}: keys and list entries); a config of 4096 ports has about 30000; this is the first past the limit` });
  }
  return [...syntax, ...duplicates, ...tooMany].sort((a, b) => a.line - b.line || a.column - b.column);
}

function toIssues(problems: Problem[], loc: Locator, file: string): ConfigIssue[] {
  const issues = dedupe(problems).map((p) => ({
    file,
    ...loc.position(p.path, p.atKey),
    path: formatPath(p.path),
    message: p.message,
  }));
  // Source order reads best; sort is stable, so ties keep check order.
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

// ---------------------------------------------------------------------------
// Output: the validated data with the defaults that depend on other keys.

type Parsed = z.output<typeof configSchema>;

function finish(data: Parsed): SwitchConfig {
  return {
    ...data,
    ...(data.bridge_mac !== undefined ? { bridge_mac: data.bridge_mac.toLowerCase() } : {}),
    fdb: { ...data.fdb, static: data.fdb.static.map((s) => ({ ...s, mac: s.mac.toLowerCase() })) },
    // The bridge's own port with no type is the internal port.
    ports: data.ports.map(finishPort).map((p) => (p.name === data.bridge && p.type === undefined ? { ...p, type: 'internal' } : p)),
    bonds: data.bonds.map(finishBond),
  };
}

/** LACP settings exist exactly when the bond runs LACP, defaults filled. */
/** MACs lowercase; security without a key is no security. */
function finishPort(p: Parsed['ports'][number]): PortConfig {
  const { security, ...rest } = p;
  if (!security || (security.macs === undefined && security.ips === undefined && security.learn === undefined)) return rest;
  return {
    ...rest,
    security: {
      ...(security.macs !== undefined ? { macs: security.macs.map((m) => m.toLowerCase()) } : {}),
      ...(security.ips !== undefined ? { ips: security.ips } : {}),
      ...(security.learn !== undefined ? { learn: security.learn } : {}),
    },
  };
}

function finishBond(bond: Parsed['bonds'][number]): BondConfig {
  const { lacp, ...rest } = bond;
  return bond.mode === 'lacp' ? { ...rest, lacp: lacp ?? { ...DEFAULT_LACP } } : rest;
}

// ---------------------------------------------------------------------------
// Entry points.

/**
 * yaml's parseDocument, with the nesting depth bounded while the text is parsed: the
 * parser keeps its open collections on a stack (no recursion), the composer that turns
 * them into a Document recurses, so it only sees what passed.
 */
function parseYaml(text: string, file: string, lines: LineCounter): Document {
  // yaml makes an Error per syntax error; their stack traces took 1.5 s of a hostile file's check.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return parseYamlTokens(text, file, lines);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

function parseYamlTokens(text: string, file: string, lines: LineCounter): Document {
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0);  // as Parser.parse() does
  const tokens = [];
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) tokens.push(token);
    // The stack holds the document, the open mappings and lists, and the item being read.
    if (parser.stack.length > MAX_NESTING && parser.stack.filter((t) => 'items' in t).length > MAX_NESTING) {
      const { line, col } = lines.linePos(parser.offset);
      throw new ConfigError([{ file, line, column: col, path: '', message: `mappings and lists nested more than ${MAX_NESTING} deep (a switch config needs 4)` }]);
    }
  }
  for (const token of parser.end()) tokens.push(token);
  // prettyErrors off: the message stays one line; the position is ours to format.
  const composer = new Composer({ prettyErrors: false, uniqueKeys: false });  // scanDocument() finds duplicates
  let doc: Document | undefined;
  for (const next of composer.compose(tokens, true, text.length)) {
    if (doc === undefined) doc = next;
    else {
      const { line, col } = lines.linePos(next.range[0]);
      throw new ConfigError([{ file, line, column: col, path: '', message: 'expected one YAML document, found a second one (---)' }]);
    }
  }
  return doc!;
}

export function parseConfig(text: string, file: string): SwitchConfig {
  const lines = new LineCounter();
  const doc = parseYaml(text, file, lines);
  const syntaxIssues = yamlIssues(doc, lines, file);
  if (syntaxIssues.length > 0) throw new ConfigError(syntaxIssues);
  const loc = new Locator(doc, lines);

  let raw: unknown;
  try {
    raw = doc.toJS() ?? {}; // an empty file or only comments: all defaults
  } catch (err) {
    // e.g. too many alias expansions (yaml's guard against "billion laughs")
    throw new ConfigError([{ file, line: 1, column: 1, path: '', message: `cannot read the YAML: ${(err as Error).message}` }]);
  }
  if (!isRecord(raw)) {
    const { line, column } = loc.position([]);
    throw new ConfigError([{ file, line, column, path: '', message: `expected a mapping at the top level, got ${describe(raw)}` }]);
  }

  const result = configSchema.safeParse(raw);
  const problems = [...(result.success ? [] : schemaProblems(result.error)), ...crossFieldProblems(raw, loc)];
  if (problems.length > 0 || !result.success) throw new ConfigError(toIssues(problems, loc, file));
  return finish(result.data);
}

/** The file's text; a file over MAX_CONFIG_BYTES is refused without reading it all (it may be /dev/zero). */
function readConfigFile(file: string): string {
  const tooBig = (size: string) => new ConfigError([{
    file, line: 1, column: 1, path: '',
    message: `the config file is ${size}, more than the ${MAX_CONFIG_BYTES} bytes (${MAX_CONFIG_BYTES / 1024} KiB) a config may have`,
  }]);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: `cannot read the config file: ${(err as Error).message}` }]);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_CONFIG_BYTES) throw tooBig(`${size} bytes`);
    // Not trusting the size (a pipe, a file that grows): read one byte past the limit at most.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let len = 0;
    for (let n; len < buf.length && (n = readSync(fd, buf, len, buf.length - len, null)) > 0; ) len += n;
    if (len > MAX_CONFIG_BYTES) throw tooBig('larger than that');
    return buf.toString('utf8', 0, len);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: `cannot read the config file: ${(err as Error).message}` }]);
  } finally {
    closeSync(fd);
  }
}

export function loadConfig(file: string): SwitchConfig {
  const text = readConfigFile(file);
  try {
    return parseConfig(text, file);
  } catch (err) {
    // The depth bound keeps the recursive parts shallow; should anything still overflow, say so in one line.
    if (err instanceof RangeError) throw new ConfigError([{ file, line: 1, column: 1, path: '', message: `cannot check the config: ${err.message}` }]);
    throw err;
  }
}

/**
 * One port entry given at run time (`vswitchctl port add`, the control socket),
 * checked by the same schema and VLAN rules as a `ports:` entry of the file.
 * Throws an Error whose message names each bad key.
 */
export function parsePortConfig(value: unknown): PortConfig {
  const raw = isRecord(value) ? value : {};
  const result = portSchema.safeParse(value);
  const problems = dedupe([...(result.success ? [] : schemaProblems(result.error)), ...checkVlanMode(raw, [])]);
  if (problems.length > 0 || !result.success) {
    throw new Error(problems.map((p) => (p.path.length ? `${formatPath(p.path)}: ${p.message}` : p.message)).join('; '));
  }
  return result.data;
}
