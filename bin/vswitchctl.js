#!/usr/bin/env node
import { main } from '../dist/src/switch/cli/vswitchctl.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`vswitchctl: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  },
);
