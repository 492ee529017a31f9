#!/usr/bin/env bash
# A/B benchmark: the release binary of another revision against this checkout's, run
# alternately on the same corpora with the same plan, to tell what a change costs from
# what a busy machine costs. Three kinds of run: `ferry run` of `small` (50,000 files)
# and of `large` (4 x 512 MiB) into a fresh destination, and a no-change round of
# `small`. Prints each binary's median wall time (with its range) and peak RSS.
#
#   benches/ab.sh REVISION [RUNS]     (default 5 runs each)
#
# BENCH_DIR (default /mnt/bench) must be a tmpfs with room for two copies of a corpus;
# as root the script mounts one there.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/ab.sh REVISION [RUNS]}
runs=${2:-5}
. benches/common.sh
need "$timer" git
on_tmpfs
work="$dir/ab-bench"
rm -rf "$work"
mkdir -p "$work"

cargo build --release --quiet
cp target/release/ferry "$work/ferry-b"
tree="$work/tree-a"
git worktree add --detach --force "$tree" "$rev" > /dev/null 2>&1
trap 'git worktree remove --force "$tree" > /dev/null 2>&1 || true' EXIT
# A separate target folder, kept between runs: only what changed is built again.
cargo build --release --quiet --manifest-path "$tree/Cargo.toml" --target-dir "$PWD/target/ab"
cp target/ab/release/ferry "$work/ferry-a"

plan() { # SRC DST
    one_task_plan "$work/plan.yaml" bench "$work/state" "$1" "$2"
}

# one BIN KIND SRC: a timed run; appends "wall rss" to $work/BIN-KIND
one() {
    local bin=$1 kind=$2 src=$3 dst="$work/dst"
    if [ "$kind" != unchanged ]; then rm -rf "$dst" "$work/state"; fi
    plan "$src" "$dst"
    "$timer" -f '%e %M' -o "$work/t" "$work/$bin" run "$work/plan.yaml" > /dev/null 2> "$work/log" \
        || { echo "$bin failed:" >&2; cat "$work/log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/$bin-$kind"
}

summary() { # FILE
    sort -n "$1" | awk '{ w[NR] = $1; if ($2 > m) m = $2 } END {
        printf "%.2f s (%.2f-%.2f), %d MiB", w[int((NR + 1) / 2)], w[1], w[NR], m / 1024 }'
}

small=$(corpus small)
large=$(corpus large)
for _ in $(seq "$runs"); do
    for bin in ferry-a ferry-b; do
        one "$bin" small "$small"
        one "$bin" unchanged "$small"
        one "$bin" large "$large"
    done
done
echo "A = $rev ($(git rev-parse --short "$rev")), B = this checkout ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', modified')); medians of $runs"
printf '%-10s  %-32s  %-32s\n' run A B
for kind in small unchanged large; do
    printf '%-10s  %-32s  %-32s\n' "$kind" "$(summary "$work/ferry-a-$kind")" "$(summary "$work/ferry-b-$kind")"
done
