#!/usr/bin/env bash
# The whole test run (the README's test command, and .ci/run): set up and build,
# then the unit tests, then the root-only integration suite. Both suites always run;
# the exit status is non-zero if either failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --guest

status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "test: npm run test:unit"
npm run test:unit 2>&1 | tee -a "$log" || status=1
echo "test: npm run test:integration (XDP fast path off)"
VSWITCHD_TEST_FAST_PATH=off npm run test:integration 2>&1 | tee -a "$log" || status=1
echo "test: npm run test:integration (XDP fast path on)"
VSWITCHD_TEST_FAST_PATH=auto npm run test:integration 2>&1 | tee -a "$log" || status=1

# One plain summary line over both suites (ava prints one per suite).
passed=$(grep -c '✔' "$log" || true)
failed=$(grep -c '✘' "$log" || true)
echo "${passed} passed, ${failed} failed"

if ((status != 0)); then
  echo "test: FAILED" >&2
else
  echo "test: all passed"
fi
exit "$status"
