#!/usr/bin/env bash
# Direct mode benchmark: `ferry run` with `staging: {kind: none}` against `rsync -a` on
# `small` (50,000 office-shaped files) and against `cp -a` on `large` (4 x 512 MiB),
# with staged ferry in the same run for comparison (`direct` with the default `verify:
# transferred`, `direct-kernel` with `verify: none`, where the kernel copies); all on tmpfs, alternating runs
# into a fresh destination. Prints median wall times, ratios against rsync and cp,
# and each tool's peak RSS (GNU time).
#
#   benches/direct.sh [RUNS]       (default 5 runs each; BENCH_CORPORA="large" for one)
#
# BENCH_DIR (default /mnt/bench) must be a tmpfs with room for two copies of a corpus;
# as root the script mounts one there. MAKE_CORPUS points at the corpus generator.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/common.sh
need "$timer" rsync
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/direct-bench"

# run TOOL SRC: one timed run into a fresh destination; appends "wall rss" to $work/TOOL
run() {
    local tool=$1 src=$2 dst="$work/dst"
    rm -rf "$dst" "$work/state"
    mkdir -p "$dst"
    case $tool in
        cp) "$timer" -f '%e %M' -o "$work/t" cp -a "$src/." "$dst/" ;;
        rsync) "$timer" -f '%e %M' -o "$work/t" rsync -a "$src/" "$dst/" ;;
        staged | direct | direct-kernel)
            one_task_plan "$work/plan.yaml" bench "$work/state" "$src" "$dst"
            if [ "$tool" != staged ]; then printf 'staging: {kind: none}\n' >> "$work/plan.yaml"; fi
            # Without verification the kernel copies (copy_file_range), and what it
            # wrote is read back for the index's hash.
            if [ "$tool" = direct-kernel ]; then
                sed -i 's/defaults: { rules: posix }/defaults: { rules: posix, verify: none }/' "$work/plan.yaml"
            fi
            "$timer" -f '%e %M' -o "$work/t" "$ferry" run "$work/plan.yaml" > /dev/null 2> "$work/ferry.log" \
                || { echo "ferry ($tool) failed:" >&2; cat "$work/ferry.log" >&2; exit 1; }
            ;;
    esac
    tail -n 1 "$work/t" >> "$work/$tool"
    # Every tool must have copied every byte.
    if [ "$(du -sb --apparent-size "$dst" | cut -f1)" -lt "$(du -sb --apparent-size "$src" | cut -f1)" ]; then
        echo "$tool did not copy everything" >&2
        exit 1
    fi
    if [ "${tool#direct}" != "$tool" ] && ! diff -rq "$src" "$dst" > /dev/null; then
        echo "direct: the destination differs from the source" >&2
        exit 1
    fi
}

report() { # corpus peer
    local peer_s
    peer_s=$(awk '{ print $1 }' "$work/$2" | median)
    echo "corpus $1, $runs runs each, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
    for tool in $3; do
        local s rss
        s=$(awk '{ print $1 }' "$work/$tool" | median)
        rss=$(awk '{ print $2 }' "$work/$tool" | sort -n | tail -n 1)
        awk -v t="$tool" -v s="$s" -v r="$peer_s" -v p="$2" -v m="$rss" \
            'BEGIN { printf "  %-13s median %6.2f s  %5.2fx %s  peak RSS %4.0f MiB\n", t, s, s / r, p, m / 1024 }'
    done
}

mkdir -p "$work"
for name in ${BENCH_CORPORA:-small large}; do
    src=$(corpus "$name")
    rm -f "$work"/{cp,rsync,staged,direct,direct-kernel}
    for i in $(seq "$runs"); do
        for tool in cp rsync staged direct direct-kernel; do run "$tool" "$src"; done
    done
    case $name in
        small) report small rsync "rsync cp staged direct direct-kernel" ;;
        large) report large cp "cp rsync staged direct direct-kernel" ;;
    esac
done
rm -rf "$work"
