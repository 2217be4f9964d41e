#!/usr/bin/env bash
# Where the decision core's time goes: perf samples of the criterion benchmark
# `gate/whole_decision/cached_token` (native code, with symbols), by function.
# Run by bench/run.sh after the micro benchmarks (when profiling is on);
# writes bench/results/profile-core.txt (or the file given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/profile-core.txt}
command -v perf >/dev/null || { echo "bench: perf missing; core profile skipped"; exit 0; }
BIN=$(cargo bench -p warden-policy-sdk --features testing --bench core --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[[ -x $BIN ]] || { echo "bench: no benchmark binary; core profile skipped"; exit 0; }
mkdir -p .work/bench "$(dirname "$OUT")"
DATA=.work/bench/perf-core.data
BENCH_ID=${CORE_BENCH:-gate/whole_decision/cached_token}
perf record -F 1999 -o "$DATA" -- "$BIN" --bench --profile-time 6 "^${BENCH_ID}\$" >/dev/null 2>&1 || {
  echo "bench: perf record failed; core profile skipped"; exit 0; }
{
  echo "perf, 1999 Hz, 6 s of \`$BENCH_ID\` (native, criterion --profile-time)."
  echo "Self time by function (the release profile keeps no frame pointers, so no call graph);"
  echo "functions under 1% left out."
  echo
  perf report -i "$DATA" --no-children --sort sym --stdio -g none --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-160
} > "$OUT"
echo "bench: core profile written to $OUT"
