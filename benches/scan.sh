#!/usr/bin/env bash
# Scan benchmark: `ferry scan` against `find SRC -printf '%s %T@\n'` over the `many`
# corpus (1,000,000 tiny files in 10,000 folders), both on tmpfs, alternating runs.
# Prints the median wall time of each, their ratio and ferry's peak RSS (GNU time).
#
#   benches/scan.sh [RUNS]          (default 5 runs each)
#
# BENCH_DIR (default /mnt/bench) must be a tmpfs; as root the script mounts one there.
# MAKE_CORPUS points at the corpus generator (default ../shared/bench/make-corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/common.sh
need "$timer" find
on_tmpfs
src="$dir/many"
if [ ! -d "$src" ]; then
    echo "generating the corpus in $src (about a minute)" >&2
    python3 "$make_corpus" many "$src" >&2
fi
work="$dir/scan-bench"
rm -rf "$work" && mkdir -p "$work"
cat > "$work/plan.yaml" <<PLAN
version: 1
name: bench
working_folder: $work/state
tasks:
  - name: many
    source: $src
    destination: $work/destination
PLAN

cargo build --release --quiet
ferry=target/release/ferry

: > "$work/find.times"; : > "$work/ferry.times"; : > "$work/ferry.rss"
# One warm-up of each, so that both start with the same dentry cache.
find "$src" -printf '%s %T@\n' > /dev/null
"$ferry" scan "$work/plan.yaml" > /dev/null 2>&1 || true
for i in $(seq "$runs"); do
    "$timer" -f '%e' -o "$work/t" find "$src" -printf '%s %T@\n' > /dev/null
    cat "$work/t" >> "$work/find.times"
    # Exit 1 is expected: the corpus has 0-byte files, which SharePoint refuses.
    "$timer" -f '%e %M' -o "$work/t" "$ferry" scan "$work/plan.yaml" > /dev/null 2>&1 || true
    tail -n 1 "$work/t" | awk '{ print $1 }' >> "$work/ferry.times"
    tail -n 1 "$work/t" | awk '{ print $2 }' >> "$work/ferry.rss"
done
find_s=$(median < "$work/find.times")
ferry_s=$(median < "$work/ferry.times")
rss_kib=$(sort -n "$work/ferry.rss" | tail -n 1)
items=$(awk -F, 'NR == 2 { print $4 }' "$work/state/bench/many/reports/R0/ScanSummary_R0.csv")
echo "corpus: many ($items items), $runs runs each, $(nproc) CPUs"
echo "find -printf '%s %T@\\n'  median wall ${find_s}s   ($(tr '\n' ' ' < "$work/find.times"))"
echo "ferry scan               median wall ${ferry_s}s   ($(tr '\n' ' ' < "$work/ferry.times"))"
awk -v a="$ferry_s" -v b="$find_s" -v r="$rss_kib" 'BEGIN {
    printf "ratio ferry/find: %.2f (target <= 0.70)\n", a / b
    printf "ferry peak RSS: %.0f MiB (target <= 300 MiB)\n", r / 1024
}'
