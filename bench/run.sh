#!/usr/bin/env bash
# Proxy benchmark and micro benchmarks (`make bench`; see BENCHMARKS.md).
#
#   bash bench/run.sh            full run (~25 min on 2 cores): micro benchmarks,
#                                proxy benchmark (28 variants, 8 rounds × 3 s),
#                                perf profiles (Envoy by shared object, the
#                                native gate, the filter's Wasm functions),
#                                memory soak (100,000 requests);
#                                writes bench/results/ and the figures section
#                                of BENCHMARKS.md
#   bash bench/run.sh --quick    smoke run (< 2 min): every variant for one
#                                1 s round without warm-up, a 5,000-request
#                                soak, no micro benchmarks, no profile, writes
#                                nothing
#
# Expects `make venv build` to have run (the Makefile's `bench` target does
# that). Installs what else it needs from Debian's packages: wrk (HTTP/1.1
# load), h2load from nghttp2-client (HTTP/2 load) and perf (the profile); and
# builds the parse-only baseline filter in bench/.
# Settings: BENCH_ROUNDS (8), BENCH_SECONDS (3), BENCH_WARMUP (3),
# BENCH_FRESH_TOKENS (20000 per algorithm), BENCH_SOAK_REQUESTS (100000; 0:
# no soak), BENCH_ONLY (variant keys, `soak` for the soak), BENCH_MICRO (1),
# BENCH_PROFILE (plain,wasm-parse,warden,jwt-mcp-rbac; empty: none).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    *) ARGS+=("$arg") ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  export BENCH_ROUNDS=${BENCH_ROUNDS:-1} BENCH_SECONDS=${BENCH_SECONDS:-1} BENCH_WARMUP=${BENCH_WARMUP:-0}
  export BENCH_FRESH_TOKENS=${BENCH_FRESH_TOKENS:-2000} BENCH_SOAK_REQUESTS=${BENCH_SOAK_REQUESTS:-5000}
  export BENCH_MICRO=${BENCH_MICRO:-0} BENCH_PROFILE=${BENCH_PROFILE:-}
  ARGS+=(--no-write)
fi
export BENCH_PROFILE=${BENCH_PROFILE-plain,wasm-parse,warden,jwt-mcp-rbac}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
APT_UPDATED=0
apt_install() {  # apt_install COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $APT_UPDATED == 0 ]]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$2" >/dev/null
}

apt_install wrk wrk
apt_install h2load nghttp2-client
if [[ -n $BENCH_PROFILE ]]; then
  apt_install perf linux-perf || echo "bench: perf not available; the profile is skipped"
fi

for f in .venv/bin/python target/release/warden target/warden_filter.wasm; do
  [[ -e $f ]] || { echo "bench: $f is missing; run \`make bench\` (or \`make venv build\` first)" >&2; exit 1; }
done

echo "bench: building the parse-only baseline filter (bench/parse-filter)"
cargo build --quiet --release --locked --target wasm32-wasip1 \
  --manifest-path bench/parse-filter/Cargo.toml --target-dir target/bench

mkdir -p .work/bench
MICRO_LOG=.work/bench/micro.log
if [[ ${BENCH_MICRO:-1} == 1 ]]; then
  echo "bench: micro benchmarks (criterion): cargo bench -p warden-policy-sdk --features testing --bench core"
  cargo bench -p warden-policy-sdk --features testing --bench core 2>&1 | tee "$MICRO_LOG" | grep -E "^\S.*time:|^ +time:|^[a-z].*/" || true
  echo "bench: token verification in Wasm, in V8 (Node): policy-sdk's token_timing example"
  cargo build --quiet --release --locked --target wasm32-wasip1 -p warden-policy-sdk \
    --features testing --example token_timing
  node --no-warnings bench/v8_tokens.mjs target/wasm32-wasip1/release/examples/token_timing.wasm 100 \
    | tee -a "$MICRO_LOG"
  ARGS+=(--micro-log "$MICRO_LOG")
  if [[ -n $BENCH_PROFILE ]]; then
    bash bench/profile_core.sh bench/results/profile-core.txt
    bash bench/profile_wasm.sh bench/results/profile-wasm.txt
  fi
fi

exec .venv/bin/python bench/bench.py ${ARGS[@]+"${ARGS[@]}"}
