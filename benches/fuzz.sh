#!/usr/bin/env bash
# Runs one fuzz target under cargo-fuzz (libFuzzer) for MINUTES minutes:
#   bash benches/fuzz.sh TARGET MINUTES
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs go
# to fuzz/corpus-work/TARGET (not checked in); the checked-in fuzz/corpus/TARGET seeds
# it. A failing input lands in fuzz/artifacts/TARGET/: keep it in
# fuzz/regressions/TARGET/ with the fix, and `cargo test` replays it from then on.
set -euo pipefail
target=${1:?usage: benches/fuzz.sh TARGET MINUTES}
minutes=${2:-10}
cd "$(dirname "$0")/../fuzz"
mkdir -p "corpus-work/$target" "corpus/$target" "regressions/$target"
exec cargo +nightly fuzz run "$target" "corpus-work/$target" "corpus/$target" "regressions/$target" -- \
  -max_total_time=$((minutes * 60)) -rss_limit_mb=2048 -timeout=20 -print_final_stats=1
