#!/usr/bin/env bash
# Login, bearer verification and refresh against two server builds, interleaved (A B A B) in
# one invocation on one machine, so that a change's cost shows as a ratio within the run.
#
#   bench/before-after.sh OLD_TESSERA NEW_TESSERA [OUT_DIR]
#
# OLD_TESSERA and NEW_TESSERA are `tessera` release binaries (for example the one built from
# the commit before a change: `git worktree add /tmp/old REV && cargo build --release -p
# tessera --manifest-path /tmp/old/Cargo.toml`). The load generator is this checkout's
# `tessera-bench` (built here first).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?the server binary before the change}
new=${2:?the server binary after the change}
out=${3:-docs/bench-results/before-after}
mkdir -p "$out"
cargo build --release -q -p tessera-bench
bench=target/release/tessera-bench
for round in 1 2; do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    "$bench" login --connections 2 --repeats 3 --tessera "$bin" --json > "$out/login-$side-$round.json"
    "$bench" verify --connections 64 --repeats 3 --tessera "$bin" --json > "$out/verify-$side-$round.json"
    "$bench" refresh --connections 1,64 --repeats 3 --tessera "$bin" --json > "$out/refresh-$side-$round.json"
  done
done
echo "results in $out"
