#!/usr/bin/env bash
# Shards benchmark: what splitting one run into N shards costs, and how evenly the
# assignment spreads the bytes. On one machine shards cannot add throughput, so the
# shards run one after another and their wall times are summed.
#
#   benches/shards.sh [RUNS] [N]     (default 3 runs, N = 4)
#
# For each run, into a fresh destination and state: one unsharded `ferry run`, then
# `ferry run --shard K/N` for every K, then `ferry finish --shards N`. Prints the median
# of the unsharded wall time and of the shards' summed wall times (finish apart), their
# ratio (target: at most 1.15), and the bytes each shard migrated: the largest against
# the mean (target: at most 1.3). Corpus: `small` (50,000 files), on tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shards=${2:-4}
. benches/common.sh
need "$timer"
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/shards-bench"
rm -rf "$work"
mkdir -p "$work"
src=$(corpus small)

timed() { # label command...: appends the wall time to $work/label
    local label=$1; shift
    "$timer" -f '%e' -o "$work/t" "$@" > /dev/null 2> "$work/log" \
        || { echo "$label failed:" >&2; cat "$work/log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/$label"
}

fresh() {
    rm -rf "$work/dst" "$work/state"
    mkdir -p "$work/dst"
    one_task_plan "$work/plan.yaml" bench "$work/state" "$src" "$work/dst"
}

for i in $(seq "$runs"); do
    fresh
    timed unsharded "$ferry" run "$work/plan.yaml"
    fresh
    total=0
    for k in $(seq 0 $((shards - 1))); do
        timed "shard-$i" "$ferry" run "$work/plan.yaml" --shard "$k/$shards"
    done
    awk '{ s += $1 } END { print s }' "$work/shard-$i" >> "$work/sharded"
    timed finish "$ferry" finish "$work/plan.yaml" --shards "$shards"
    diff -rq "$src" "$work/dst" > /dev/null || { echo "the sharded run's destination differs from the source" >&2; exit 1; }
done

# Bytes per shard, from each shard's round summary (the same in every run).
for k in $(seq 0 $((shards - 1))); do
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bytes_imported"])' \
        "$work/state/bench/t/shard-$k-of-$shards/reports/R1/round.json"
done > "$work/bytes"

unsharded=$(median < "$work/unsharded")
sharded=$(median < "$work/sharded")
finish=$(median < "$work/finish")
echo "corpus small, $runs runs, $shards shards one after another, $(nproc) CPUs"
awk -v u="$unsharded" -v s="$sharded" -v f="$finish" 'BEGIN {
    printf "  unsharded run           median %6.2f s\n", u
    printf "  sum of %s shard runs    median %6.2f s  %5.2fx unsharded (target <= 1.15)\n", "'"$shards"'", s, s / u
    printf "  finish (merge reports)  median %6.2f s  %5.2fx unsharded with the shards\n", f, (s + f) / u
}'
awk '{ b[NR] = $1; s += $1; if ($1 > m) m = $1 } END {
    printf "  bytes per shard:"; for (i = 1; i <= NR; i++) printf " %.0f MB", b[i] / 1e6
    printf "\n  largest shard %.2fx the mean (target <= 1.3)\n", m / (s / NR)
}' "$work/bytes"
rm -rf "$work"
