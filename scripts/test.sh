#!/usr/bin/env bash
# The whole test run (the README's test command, and .ci/run): set up and build,
# then the unit tests, the native shared-vector test (C++ rules and, as root,
# the XDP program through BPF_PROG_RUN), then the root-only integration suite.
# Every step always runs; the exit status is non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --guest

status=0
log=$(mktemp)       # every ava run's output, for the summary
failures=$(mktemp)  # ava's failure details of the runs that failed, printed again at the end
trap 'rm -f "$log" "$failures"' EXIT

# Runs one ava suite (its npm script, under LABEL), showing its output as it comes.
ava_suite() {
  local label=$1 part
  shift
  part=$(mktemp)
  "$@" 2>&1 | tee "$part" || status=1
  cat "$part" >>"$log"
  # ava ends a run that failed with each failure's assertion and values.
  if grep -q '✘' "$part"; then
    { echo "== $label"; sed -n '/^  ─$/,$p' "$part" | tail -n 80; } >>"$failures"
  fi
  rm -f "$part"
}

echo "test: npm run test:unit"
ava_suite "unit tests" npm run test:unit
# Its output has no ✔/✘ marks, so the summary below still counts ava's tests only.
echo "test: npm run test:native (shared vectors: C++ and XDP)"
if npm run -s test:native 2>&1; then
  echo "test: native shared vectors passed"
else
  echo "test: native shared vectors FAILED"
  status=1
fi
# The frame parser and classifier under libFuzzer with ASan and UBSan, for a bounded time.
echo "test: npm run fuzz -- --seconds 60"
if npm run -s fuzz -- --seconds 60 2>&1; then
  echo "test: fuzzer passed"
else
  echo "test: fuzzer FAILED"
  status=1
fi
# The integration suite once per datapath.fast_path choice: off (every frame through the
# hot loop), auto (the default: tc on veth and tap ports), xdp (the XDP hook on veths).
for mode in off auto xdp; do
  echo "test: npm run test:integration (datapath.fast_path: $mode)"
  ava_suite "integration, datapath.fast_path: $mode" env VSWITCHD_TEST_FAST_PATH="$mode" npm run test:integration
done

# One plain summary line over every suite (ava prints one per suite).
passed=$(grep -c '✔' "$log" || true)
failed=$(grep -c '✘' "$log" || true)
# The failed tests again, last, where a reader of only the output's tail sees them.
if ((failed > 0)); then
  echo "failed tests:"
  grep '✘' "$log" || true
  cat "$failures"
fi
echo "${passed} passed, ${failed} failed"

if ((status != 0)); then
  echo "test: FAILED" >&2
else
  echo "test: all passed"
fi
exit "$status"
