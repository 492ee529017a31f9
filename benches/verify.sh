#!/usr/bin/env bash
# `ferry verify` against `rclone check` on the same trees: the corpus migrated by ferry,
# then each tool compares source and destination by content, median of RUNS each,
# alternating (goal: ferry at most 0.8x rclone's wall time). Both read from page cache
# on a tmpfs. rclone check compares sizes and then MD5 (the hash both local sides have);
# `--checkers` is set to ferry's default of four readers per CPU.
#
#   benches/verify.sh [RUNS] [CORPUS]     (default 3 runs of `small`)
#
# Needs rclone and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
corpus_name=${2:-small}
. benches/common.sh
need "$timer" rclone
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/verify-bench"
rm -rf "$work"
mkdir -p "$work"
src=$(corpus "$corpus_name")
one_task_plan "$work/plan.yaml" bench "$work/state" "$src" "$work/dst"
"$ferry" run "$work/plan.yaml" > /dev/null 2>&1
checkers=$(( $(nproc) * 4 ))
for _ in $(seq "$runs"); do
    "$timer" -f '%e %M' -o "$work/t" rclone check --checkers "$checkers" "$src" "$work/dst" \
        > /dev/null 2> "$work/rclone.log" || { cat "$work/rclone.log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/rclone"
    "$timer" -f '%e %M' -o "$work/t" "$ferry" verify "$work/plan.yaml" > /dev/null 2> "$work/ferry.log" \
        || { cat "$work/ferry.log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/ferry"
    "$timer" -f '%e %M' -o "$work/t" "$ferry" verify "$work/plan.yaml" --against index > /dev/null 2> "$work/ferry.log" \
        || { cat "$work/ferry.log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/index"
done
r=$(cut -d' ' -f1 "$work/rclone" | median)
v=$(cut -d' ' -f1 "$work/ferry" | median)
i=$(cut -d' ' -f1 "$work/index" | median)
rss() { cut -d' ' -f2 "$1" | sort -n | tail -n 1 | awk '{ printf "%d MiB", $1 / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "corpus $corpus_name, $runs runs each, $(nproc) CPUs, tmpfs"
printf '  rclone check (--checkers %s)        %6.2f s          peak RSS %s\n' "$checkers" "$r" "$(rss "$work/rclone")"
printf '  ferry verify                          %6.2f s  %sx  peak RSS %s\n' "$v" "$(ratio "$v" "$r")" "$(rss "$work/ferry")"
printf '  ferry verify --against index          %6.2f s  %sx  peak RSS %s\n' "$i" "$(ratio "$i" "$r")" "$(rss "$work/index")"
rm -rf "$work"
