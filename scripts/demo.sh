#!/usr/bin/env bash
# The README's demo command: set up and build (idempotent), then run the demo on
# the embedded default config. Pass --hold to keep the switch running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/switch/cli/demo.js "$@"
