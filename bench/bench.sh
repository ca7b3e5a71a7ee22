#!/usr/bin/env bash
# Regenerates every figure in docs/benchmarks.md.
#
#   bench/bench.sh [OUT_DIR]      (default: docs/bench-results/, the figures docs/benchmarks.md cites)
#
# Builds the release binaries once (`tessera`, the server, and `tessera-bench`, the load
# tool that starts it as a child process), then runs each workload as its own process (so
# that the memory figure is not disturbed by the others), 3 repeats each, medians reported.
# Every run writes OUT_DIR/NAME.json (the machine-readable report) and OUT_DIR/NAME.txt (the
# human lines, runs and medians). Needs about 20 minutes on 2 cores, plus the release build.
# The divan micro-benchmarks (storage/benches/hot_paths.rs) go to OUT_DIR/hot_paths.txt.
#
# Environment: TESSERA_BIN and TESSERA_BENCH_BIN to use existing binaries; BENCH_REPEATS,
# BENCH_DURATION, BENCH_EVENTS, BENCH_SESSIONS, BENCH_MIXED_RATES to change the defaults
# below; BENCH_SKIP_DIVAN=1 to leave the micro-benchmarks out; any TESSERA_* configuration
# variable (argon2 parameters, pool sizes) applies both to the child server and to the
# ceilings measured next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench-results}
mkdir -p "$out"
if [[ -z "${TESSERA_BIN:-}" || -z "${TESSERA_BENCH_BIN:-}" ]]; then
  cargo build --release -p tessera -p tessera-bench
fi
TESSERA_BIN=${TESSERA_BIN:-${CARGO_TARGET_DIR:-target}/release/tessera}
TESSERA_BENCH_BIN=${TESSERA_BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/tessera-bench}
repeats=${BENCH_REPEATS:-3}
duration=${BENCH_DURATION:-3}
common=(--duration "$duration" --warmup 1 --json)

run() {
  local name=$1
  shift
  echo "== $name: tessera-bench $*" | tee "$out/$name.txt"
  "$TESSERA_BENCH_BIN" "$@" --tessera "$TESSERA_BIN" "${common[@]}" >"$out/$name.json" 2> >(tee -a "$out/$name.txt" >&2)
}

{
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  free -h
  uname -sr
  df -hT "${TMPDIR:-/tmp}" | tail -1
  echo "loadavg: $(cat /proc/loadavg)"
  echo "cpu pressure: $(head -1 /proc/pressure/cpu 2>/dev/null || echo n/a)"
} >"$out/machine.txt"
cat "$out/machine.txt"

run ceilings ceilings --repeats "$repeats" --connections 64
run tokens tokens --repeats "$repeats"
run login login --repeats "$repeats" --connections 2,8
run login-token login-token --repeats "$repeats" --connections 2,8,64
# The same at 64 connections with an argon2 queue that admits them all (the default, 16
# per worker, admits 32: the other 32 connections spin on 503s).
TESSERA_HTTP__HASH_QUEUE_MAX=128 run login-token-q128 login-token --repeats "$repeats" --connections 64
run me me --repeats "$repeats" --connections 64
run verify verify --repeats "$repeats" --connections 64
run api-key api-key --repeats "$repeats" --connections 64
run api-key-usage api-key-usage --repeats 1 --connections 64 --duration 60
run refresh refresh --repeats "$repeats" --connections 1,16,64,256
run mixed mixed --repeats 1 --connections 64 --rates "${BENCH_MIXED_RATES:-2000,4000,6000,8000,10000,12000}"
run flood flood --repeats "$repeats" --connections 64
run forged forged --repeats "$repeats" --connections 64
run register register --repeats "$repeats" --connections 8
run group-commit group-commit --repeats "$repeats" --connections 1,64
run replay replay --repeats "$repeats" --events "${BENCH_EVENTS:-1000000}"
run sessions sessions --repeats "$repeats" --sessions "${BENCH_SESSIONS:-100000}"
run sessions-1m sessions --repeats 1 --sessions "${BENCH_SESSIONS_LARGE:-1000000}"
run import import --repeats 1 --users "${BENCH_IMPORT_USERS:-10000}" --ceiling-secs 5
run legacy-timing legacy-timing --repeats "$repeats" --bcrypt-cost 10 --rounds 30
run webauthn webauthn --repeats "$repeats" --connections 64

if [[ -z "${BENCH_SKIP_DIVAN:-}" ]]; then
  echo "== hot_paths: cargo bench -p tessera-storage --bench hot_paths" | tee "$out/hot_paths.txt"
  cargo bench -p tessera-storage --bench hot_paths 2>/dev/null | tee -a "$out/hot_paths.txt"
fi

echo
echo "== targets"
grep -h '^target ' "$out"/*.txt || true
