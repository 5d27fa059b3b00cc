#!/usr/bin/env node
// Entry point; the daemon runs from the compiled dist/ (workers cannot load .ts on Node 20).
import { main } from '../dist/src/switch/cli/vswitchd.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`vswitchd: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
