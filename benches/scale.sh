#!/usr/bin/env bash
# Scale benchmark on `make-corpus many` (1,000,000 tiny files in 10,000 folders), the
# rows of the scale targets, each against its peer in the same run:
#
#  1. tmpfs: `ferry run` into a fresh destination against `rsync -a`; a no-change round
#     against `rsync -a` into its up-to-date copy; `ferry scan` against
#     `find -printf '%s %T@\n'`;
#  2. ext4 (page-cached, under EXT4_DIR, default /var/tmp/ferry-bench): `ferry scan`
#     against `find`;
#  3. memory: peak RSS of `ferry run` and of a no-change round on `many` at each scale
#     of BENCH_SCALES (default "1"; "1 2 4" for the flatness check, on ext4: 4,000,000
#     files need 16 GiB of disk and about 20 minutes to generate).
#
#   benches/scale.sh [RUNS]      (default 3 runs each; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
. benches/common.sh
need "$timer" rsync find
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/scale-bench"
ext4=${EXT4_DIR:-/var/tmp/ferry-bench}
rm -rf "$work" && mkdir -p "$work"

timed() { # OUT COMMAND...: appends "wall rss" to OUT
    local out=$1
    shift
    "$timer" -f '%e %M' -o "$work/t" "$@" > /dev/null 2> "$work/log" || {
        local code=$?
        if [ "$code" != 1 ]; then cat "$work/log" >&2; exit 1; fi
    }
    tail -n 1 "$work/t" >> "$out"
}
row() { # LABEL OURS PEER
    local ours peer rss
    ours=$(awk '{ print $1 }' "$2" | median)
    peer=$(awk '{ print $1 }' "$3" | median)
    rss=$(awk '{ print $2 }' "$2" | sort -n | tail -n 1)
    awk -v l="$1" -v o="$ours" -v p="$peer" -v m="$rss" \
        'BEGIN { printf "  %-34s ferry %7.2f s  peer %7.2f s  %5.2fx  peak RSS %5.0f MiB\n", l, o, p, o / p, m / 1024 }'
}

src=$(corpus many)
echo "many on tmpfs ($src), $runs runs each, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
for i in $(seq "$runs"); do
    rm -rf "$work/dst" "$work/state" "$work/rsync"
    one_task_plan "$work/plan.yaml" bench "$work/state" "$src" "$work/dst"
    timed "$work/run" "$ferry" run "$work/plan.yaml"
    timed "$work/nochange" "$ferry" run "$work/plan.yaml"
    timed "$work/rsync-run" rsync -a "$src/" "$work/rsync/"
    timed "$work/rsync-nochange" rsync -a "$src/" "$work/rsync/"
    timed "$work/scan" "$ferry" scan "$work/plan.yaml"
    timed "$work/find" find "$src" -printf '%s %T@\n'
done
row "run (vs rsync -a)" "$work/run" "$work/rsync-run"
row "no-change round (vs rsync -a)" "$work/nochange" "$work/rsync-nochange"
row "scan (vs find)" "$work/scan" "$work/find"
rm -rf "$work/dst" "$work/state" "$work/rsync"

mkdir -p "$ext4"
if [ ! -d "$ext4/many" ]; then
    echo "generating $ext4/many" >&2
    python3 "$make_corpus" many "$ext4/many" >&2
fi
# Page-cached: read once before timing.
find "$ext4/many" > /dev/null
one_task_plan "$work/plan-ext4.yaml" bench "$work/state-ext4" "$ext4/many" "$work/dst-ext4"
for i in $(seq "$runs"); do
    timed "$work/scan-ext4" "$ferry" scan "$work/plan-ext4.yaml"
    timed "$work/find-ext4" find "$ext4/many" -printf '%s %T@\n'
done
echo "many on $(stat -f -c %T "$ext4") ($ext4/many), page-cached"
row "scan (vs find)" "$work/scan-ext4" "$work/find-ext4"
rm -rf "$work/state-ext4"

for scale in ${BENCH_SCALES:-1}; do
    tree="$ext4/many-x$scale"
    [ "$scale" = 1 ] && tree="$ext4/many"
    if [ ! -d "$tree" ]; then
        echo "generating $tree" >&2
        python3 "$make_corpus" many "$tree" --scale "$scale" >&2
    fi
    rm -rf "$ext4/dst" "$ext4/state"
    one_task_plan "$work/plan-x.yaml" bench "$ext4/state" "$tree" "$ext4/dst"
    rm -f "$work/x-run" "$work/x-nochange"
    timed "$work/x-run" "$ferry" run "$work/plan-x.yaml"
    timed "$work/x-nochange" "$ferry" run "$work/plan-x.yaml"
    awk -v s="$scale" '{ r[NR] = $0 } END { split(r[1], a, " "); printf "  many x%s on ext4: run %.2f s, peak RSS %.0f MiB;", s, a[1], a[2] / 1024 }' "$work/x-run"
    awk '{ printf " no-change %.2f s, peak RSS %.0f MiB\n", $1, $2 / 1024 }' "$work/x-nochange"
    rm -rf "$ext4/dst" "$ext4/state"
done
rm -rf "$work"
