#!/usr/bin/env bash
# Where the filter's own Wasm work goes on a steady allowed call: perf
# samples of the module's compiled functions while `warden hostcalls
# --repeat` sends the call again and again in one VM (wasmtime, the
# harness's engine, which writes a perf map of the functions under their
# names when WARDEN_WASM_PERFMAP is set). The engine meters fuel and does
# not optimise, so samples follow the Wasm instructions a function runs,
# the figure `warden hostcalls` totals, not V8's time.
# Run by bench/run.sh when profiling is on; writes
# bench/results/profile-wasm.txt (or the file given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/profile-wasm.txt}
CALLS=${WASM_PROFILE_CALLS:-200000}
command -v perf >/dev/null || { echo "bench: perf missing; Wasm profile skipped"; exit 0; }
WARDEN=target/release/warden
[[ -x $WARDEN ]] || { echo "bench: no $WARDEN (make build); Wasm profile skipped"; exit 0; }
# The shipped module carries no function names (Cargo.toml says why); this
# build keeps them, from the same sources and settings otherwise, and goes
# through wasm-opt as the shipped one does (`make wasm`; the Makefile exports
# its flags), -g keeping the names.
NAMED=.work/bench/named
cargo build --quiet --release --locked -p warden-filter --target wasm32-wasip1 \
  --target-dir "$NAMED" --config 'profile.release.package.warden-filter.strip="debuginfo"'
WASM=$NAMED/wasm32-wasip1/release/warden_filter.wasm
if [[ -n ${WASM_OPT_FLAGS:-} ]]; then
  # shellcheck disable=SC2086 # the flags are words
  wasm-opt $WASM_OPT_FLAGS -g "$WASM" -o "$NAMED/warden_filter.wasm"
  WASM=$NAMED/warden_filter.wasm
else
  echo "bench: WASM_OPT_FLAGS unset (run through \`make bench\` for them): profiling cargo's module, not wasm-opt's" >&2
fi
mkdir -p .work/bench "$(dirname "$OUT")"
DATA=.work/bench/perf-wasm.data
WARDEN_WASM_PERFMAP=1 perf record -F 2999 -o "$DATA" -- "$WARDEN" hostcalls \
  --policy bench/hostcalls.yaml --tool deploy --denied-tool drop --header-mode stream \
  --repeat "$CALLS" --wasm "$WASM" >/dev/null 2>&1 || {
  echo "bench: perf record failed; Wasm profile skipped"; exit 0; }
# Self shares by function, in the filter's code only ([JIT] in perf's
# terms): "<share of all samples> <function>" per line.
perf report -i "$DATA" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
  | awk '/^#/ || NF == 0 { next } /\[JIT\]/ { share = $1; sub(/%/, "", share); name = $0; sub(/.*\[\.\] /, "", name); print share, name }' \
  > "$DATA.jit"
{
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ", with changes"): perf, 2999 Hz, $CALLS allowed calls through \`warden hostcalls --repeat\`"
  echo "(wasmtime with fuel, unoptimised: samples follow Wasm instructions)."
  echo "The filter's functions by self time, as shares of the samples in the"
  echo "filter's code (the rest is the harness: compiling, the host's side of"
  echo "the hostcalls); functions under 0.1% of the filter left out."
  awk '{ jit += $1 } END { printf "Filter code: %.1f%% of all samples.\n\n", jit }' "$DATA.jit"
  awk '
    { name = $0; sub(/^[^ ]+ /, "", name); shares[name] += $1; jit += $1 }
    END { for (name in shares) if (shares[name] / jit >= 0.001) printf "%6.2f%%  %s\n", 100 * shares[name] / jit, substr(name, 1, 160) }
  ' "$DATA.jit" | sort -rn
} > "$OUT"
rm -f "$DATA.jit"
# The map wasmtime wrote for this run's process (perf report read it
# above), and no other's.
PID=$(perf script -i "$DATA" -F pid 2>/dev/null | head -1 | tr -d ' ' || true)
[[ $PID =~ ^[0-9]+$ ]] && rm -f "/tmp/perf-$PID.map"
echo "bench: Wasm profile written to $OUT"
