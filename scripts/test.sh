#!/usr/bin/env bash
# The whole test run (the README's test command, and .ci/run): set up and build,
# then the unit tests, then the root-only integration suite. Both suites always run;
# the exit status is non-zero if either failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

status=0
echo "test: npm run test:unit"
npm run test:unit || status=1
echo "test: npm run test:integration"
npm run test:integration || status=1

if ((status != 0)); then
  echo "test: FAILED" >&2
else
  echo "test: all passed"
fi
exit "$status"
