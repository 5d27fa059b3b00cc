// The cross-language vectors (test/vectors/shared.json, see its README) against
// the TypeScript copies of the rules: the bond flow hash and the ingress VLAN.
// The same file is run by native/test/shared_vectors.cc over the C++ functions
// the hot loop calls and over the XDP program (BPF_PROG_RUN), so a rule changed
// in one language alone fails one of them. FDB slots: TypeScript has no copy.
import { readFileSync } from 'node:fs';

import test from 'ava';

import { BOND_BUCKETS } from '../../src/switch/bond/policy.js';
import { bucketOf, fnv1a32, flowHashInput, hashFlow, type BondHash } from '../../src/switch/bond/flow-hash.js';
import { ingressVlan } from '../../src/switch/l2/vlan-rules.js';
import { MAX_MTU } from '../../src/switch/ports/hygiene.js';
import { POLICY_DROP_REASONS } from '../../src/switch/ports/policy.js';
import { FDB_FLAG_STATIC, MAX_PORTS, type VlanMode } from '../../src/switch/types.js';

interface FlowVector { name: string; hash: BondHash; frame: string; bucket: number }
type VectorPort = { mode: 'access'; access_vlan: number } | { mode: 'trunk'; trunks: number[]; native_vlan: number };
interface VlanVector { name: string; port: VectorPort; frame: string; vlan?: number; drop?: string }
interface Constants { max_ports: number; bond_buckets: number; fdb_flag_static: number; fnv_offset: string; fnv_prime: string; max_mtu: number }
interface PolicyVector { name: string; policy: { macs?: string[]; ips?: string[]; learn?: boolean }; frame: string; verdict: string }
interface Vectors { constants: Constants; flow: FlowVector[]; vlan: VlanVector[]; policy: PolicyVector[] }

// dist/test/unit/ -> the repository root (ava runs the compiled tests).
const vectors = JSON.parse(
  readFileSync(new URL('../../../test/vectors/shared.json', import.meta.url), 'utf8'),
) as Vectors;

const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));

function vlanMode(port: VectorPort): VlanMode {
  if (port.mode === 'access') return { mode: 'access', vlan: port.access_vlan };
  return port.native_vlan ? { mode: 'trunk', trunks: port.trunks, nativeVlan: port.native_vlan } : { mode: 'trunk', trunks: port.trunks };
}

test('shared vectors: the file has every section', (t) => {
  t.true(vectors.flow.length >= 40);
  t.true(vectors.vlan.length >= 40);
});

test('shared vectors: the constants TypeScript has copies of', (t) => {
  const c = vectors.constants;
  t.is(MAX_PORTS, c.max_ports);
  t.is(BOND_BUCKETS, c.bond_buckets);
  t.is(FDB_FLAG_STATIC, c.fdb_flag_static);
  t.is(MAX_MTU, c.max_mtu);
  // fnv1a32 keeps its constants inline: the empty input is the offset basis, one zero byte adds the prime.
  t.is(fnv1a32(new Uint8Array(0)), Number(c.fnv_offset));
  t.is(fnv1a32(Uint8Array.of(0)), Math.imul(Number(c.fnv_offset), Number(c.fnv_prime)) >>> 0);
});

test('shared vectors: hashFlow gives every frame its bucket (l2 and l3l4)', (t) => {
  const wrong: string[] = [];
  for (const v of vectors.flow) {
    const frame = bytes(v.frame);
    const got = hashFlow(frame, v.hash);
    // hashFlow is bucketOf(fnv1a32(flowHashInput)): check the parts agree too.
    if (got !== v.bucket || bucketOf(fnv1a32(flowHashInput(frame, v.hash))) !== v.bucket)
      wrong.push(`${v.name} (${v.hash}): bucket ${got}, want ${v.bucket}`);
  }
  t.deepEqual(wrong, []);
});

test('shared vectors: ingressVlan puts every frame in its VLAN or drops it', (t) => {
  const wrong: string[] = [];
  let checked = 0;
  for (const v of vectors.vlan) {
    if (v.drop === 'malformed') continue; // cut short before the tag: the hot loop's check, not a VLAN rule
    const f = bytes(v.frame);
    const tagged = f.length >= 18 && ((f[12]! << 8) | f[13]!) === 0x8100;
    const vid = tagged ? ((f[14]! << 8) | f[15]!) & 0x0fff : null;
    const got = ingressVlan(vlanMode(v.port), vid);
    const want = v.vlan ?? null;
    checked++;
    if (got !== want) wrong.push(`${v.name}: ${got ?? 'drop'}, want ${want ?? `drop (${v.drop})`}`);
  }
  t.true(checked > 0);
  t.deepEqual(wrong, []);
});

// Port security has no TypeScript copy (the C++ and BPF consumers run the frames); the
// reasons it names are the control plane's list, which sums them from both paths.
test('shared vectors: every port security verdict is ok or a policy drop reason the control plane knows', (t) => {
  t.true(vectors.policy.length >= 30);
  for (const v of vectors.policy) t.true(v.verdict === 'ok' || v.verdict === 'learn' || (POLICY_DROP_REASONS as readonly string[]).includes(v.verdict), v.name);
  for (const r of ['spoofed_mac', 'spoofed_ip', 'spoofed_arp', 'spoofed_nd']) t.true(vectors.policy.some((v) => v.verdict === r), `a vector for ${r}`);
});
