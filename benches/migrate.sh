#!/usr/bin/env bash
# Migration benchmark: `ferry run` against `cp -a`, `rsync -a` and `rclone copy` over
# the `small` (50,000 office-shaped files) and `large` (4 x 512 MiB) corpora, all on
# tmpfs, alternating runs into a fresh destination. Prints median wall times, ratios
# against rsync and each tool's peak RSS (GNU time).
#
#   benches/migrate.sh [RUNS]       (default 3 runs each)
#
# BENCH_DIR (default /mnt/bench) must be a tmpfs with room for two copies of a corpus;
# as root the script mounts one there. MAKE_CORPUS points at the corpus generator
# (default ../shared/bench/make-corpus). BENCH_DOUBLE=1 also runs ferry over `small`
# at twice the size, to show that its memory stays flat.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
. benches/common.sh
need "$timer" rsync rclone
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/migrate-bench"

# run TOOL SRC: one timed run into a fresh destination; appends "wall rss" to $work/TOOL
run() {
    local tool=$1 src=$2 dst="$work/dst"
    rm -rf "$dst" "$work/state"
    mkdir -p "$dst"
    case $tool in
        cp) "$timer" -f '%e %M' -o "$work/t" cp -a "$src/." "$dst/" ;;
        rsync) "$timer" -f '%e %M' -o "$work/t" rsync -a "$src/" "$dst/" ;;
        rclone) "$timer" -f '%e %M' -o "$work/t" rclone copy --links "$src" "$dst" ;;
        ferry)
            one_task_plan "$work/plan.yaml" bench "$work/state" "$src" "$dst"
            "$timer" -f '%e %M' -o "$work/t" "$ferry" run "$work/plan.yaml" > /dev/null 2> "$work/ferry.log" \
                || { echo "ferry failed:" >&2; cat "$work/ferry.log" >&2; exit 1; }
            ;;
    esac
    tail -n 1 "$work/t" >> "$work/$tool"
    # Every tool must have copied every byte.
    if [ "$(du -sb --apparent-size "$dst" | cut -f1)" -lt "$(du -sb --apparent-size "$src" | cut -f1)" ]; then
        echo "$tool did not copy everything" >&2
        exit 1
    fi
}

report() { # corpus
    local rsync_s
    rsync_s=$(awk '{ print $1 }' "$work/rsync" | median)
    echo "corpus $1, $runs runs each, $(nproc) CPUs"
    for tool in cp rsync rclone ferry; do
        local s rss
        s=$(awk '{ print $1 }' "$work/$tool" | median)
        rss=$(awk '{ print $2 }' "$work/$tool" | sort -n | tail -n 1)
        awk -v t="$tool" -v s="$s" -v r="$rsync_s" -v m="$rss" \
            'BEGIN { printf "  %-7s median %6.2f s  %5.2fx rsync  peak RSS %4.0f MiB\n", t, s, s / r, m / 1024 }'
    done
}

mkdir -p "$work"
for name in small large; do
    src=$(corpus "$name")
    rm -f "$work"/{cp,rsync,rclone,ferry}
    for i in $(seq "$runs"); do
        for tool in cp rsync rclone ferry; do run "$tool" "$src"; done
    done
    report "$name"
done
if [ "${BENCH_DOUBLE:-0}" = 1 ]; then
    src=$(corpus small 2)
    rm -f "$work/ferry"
    run ferry "$src"
    awk '{ printf "corpus small x2: ferry %.2f s, peak RSS %.0f MiB\n", $1, $2 / 1024 }' "$work/ferry"
fi
rm -rf "$work"
