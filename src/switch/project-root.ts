// The project root (where package.json, bpf/, build/ and config/ live), found by
// walking up from this module: the same answer from src/ and from dist/src/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`vswitchd: project root not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const projectRoot = findRoot();
