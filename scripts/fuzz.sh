#!/usr/bin/env bash
# Fuzzes the hot loop's per-frame code (native/fuzz/frame_fuzzer.cc) with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, from a seed corpus of frame kinds
# (native/fuzz/make_seeds.py), for a bounded time. Exits non-zero on any crash,
# sanitizer report or broken invariant (the input is kept in native/fuzz/out/).
#   bash scripts/fuzz.sh [--seconds N] [--coverage]     (npm run fuzz -- --seconds N)
# --coverage: afterwards, line and branch coverage of datapath/frame_rules.h and
# vswitchd_shared.h over the corpus the run grew.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
coverage=0
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --coverage) coverage=1; shift ;;
    *) echo "fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
done

out=native/fuzz/out
make -s -C native/fuzz out/frame_fuzzer
rm -rf "$out/seeds"
python3 native/fuzz/make_seeds.py "$out/seeds"
mkdir -p "$out/corpus"
echo "fuzz: frame_fuzzer for ${seconds} s ($(ls "$out/seeds" | wc -l) seeds)"
# The grown corpus stays between runs (out/corpus); -artifact_prefix keeps a crashing input.
status=0
"$out/frame_fuzzer" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$out/" \
  -max_len=10000 "$out/corpus" "$out/seeds" >"$out/last.log" 2>&1 || status=$?
grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==|SUMMARY|frame_fuzzer:|.*runtime error)' "$out/last.log" || true
if ((status != 0)); then
  echo "fuzz: FAILED (exit $status); the whole log: $out/last.log" >&2
  exit 1
fi
execs=$(grep -oP 'stat::number_of_executed_units: \K\d+' "$out/last.log" || echo 0)
echo "fuzz: passed, $execs executions in ${seconds} s ($((execs / seconds))/s); $(grep -oP '#\d+\s+DONE\s+cov: \K\d+' "$out/last.log" || echo '?') coverage points"

if ((coverage)); then
  make -s -C native/fuzz out/frame_fuzzer_cov
  LLVM_PROFILE_FILE="$out/cov.profraw" "$out/frame_fuzzer_cov" -runs=0 "$out/corpus" "$out/seeds" >/dev/null 2>&1
  llvm-profdata merge -sparse "$out/cov.profraw" -o "$out/cov.profdata"
  llvm-cov report "$out/frame_fuzzer_cov" -instr-profile="$out/cov.profdata" \
    | grep -E '^(Filename|-|.*frame_rules\.h|.*vswitchd_shared\.h)'
fi
