// The folders of src/switch/ are layers: the programs (cli/) sit on the daemon,
// the daemon on everything else; the operator-facing servers (operate/) see the
// switch only through operate/switch-api.ts. This test reads the imports and
// fails on an import that goes up a layer or closes a circle.

import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/switch/project-root.js';

const SRC = path.join(projectRoot, 'src', 'switch');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sources(full) : name.endsWith('.ts') ? [full] : [];
  });
}

/** Relative imports of a module, as paths under src/switch/ without extension (type-only imports too). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) =>
    path.relative(SRC, path.resolve(path.dirname(file), m[1]!)).replace(/\.(js|ts)$/, ''),
  );
}

const graph = new Map(sources(SRC).map((f) => [path.relative(SRC, f).replace(/\.ts$/, ''), importsOf(f)]));
const folder = (mod: string) => (mod.includes('/') ? mod.split('/')[0]! : '.');

test('no module outside cli/ imports cli/, and only cli/ imports daemon/', (t) => {
  const bad = [...graph].flatMap(([mod, deps]) =>
    deps.filter((d) => (folder(d) === 'cli' && folder(mod) !== 'cli') || (folder(d) === 'daemon' && !['cli', 'daemon'].includes(folder(mod)))).map((d) => `${mod} -> ${d}`),
  );
  t.deepEqual(bad, []);
});

test('operate/ sees the switch through switch-api.ts only', (t) => {
  const bad = [...graph].filter(([mod]) => folder(mod) === 'operate').flatMap(([mod, deps]) => deps.filter((d) => d.startsWith('daemon/')).map((d) => `${mod} -> ${d}`));
  t.deepEqual(bad, []);
});

test('no import circle between modules', (t) => {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (mod: string, trail: string[]) => {
    if (state.get(mod) === 'done') return;
    if (state.get(mod) === 'visiting') {
      cycles.push([...trail.slice(trail.indexOf(mod)), mod].join(' -> '));
      return;
    }
    state.set(mod, 'visiting');
    for (const dep of graph.get(mod) ?? []) visit(dep, [...trail, mod]);
    state.set(mod, 'done');
  };
  for (const mod of graph.keys()) visit(mod, []);
  t.deepEqual(cycles, []);
});
