#!/usr/bin/env bash
# Sparse files and metadata: a 1 GiB file holding 4 KiB of data, migrated by `ferry
# run` (staged, the default), `rsync -aS`, `rsync -aHAXS` and `cp -a --sparse=always`,
# each RUNS times into a fresh destination, on tmpfs and on the disk that holds
# DISK_DIR (default /var/tmp: ext4 here). Prints each tool's median wall time and the
# bytes the copy allocates.
#
#   benches/sparse.sh [RUNS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/common.sh
need "$timer" rsync cp
on_tmpfs
cargo build --release --quiet
ferry="$PWD/target/release/ferry"

bench_on() { # folder label
    local work="$1/sparse-bench" label=$2
    rm -rf "$work"
    mkdir -p "$work/src"
    truncate -s 1G "$work/src/disk.img"
    head -c 4096 /dev/urandom | dd of="$work/src/disk.img" bs=4096 seek=131072 conv=notrunc status=none
    one_task_plan "$work/plan.yaml" sparse "$work/state" "$work/src" "$work/dest"
    printf '%-8s %-22s %10s %12s\n' "$label" tool "median" "allocated"
    for tool in ferry rsync-S rsync-HAXS cp; do
        for _ in $(seq "$runs"); do
            rm -rf "$work/dest" "$work/state"
            case $tool in
                ferry) "$timer" -f '%e' -o "$work/t" "$ferry" run "$work/plan.yaml" > /dev/null 2>&1 ;;
                rsync-S) "$timer" -f '%e' -o "$work/t" rsync -aS "$work/src/" "$work/dest/" ;;
                rsync-HAXS) "$timer" -f '%e' -o "$work/t" rsync -aHAXS "$work/src/" "$work/dest/" ;;
                cp) "$timer" -f '%e' -o "$work/t" cp -a --sparse=always "$work/src" "$work/dest" ;;
            esac
            tail -1 "$work/t" >> "$work/times-$tool"
        done
        local copy
        copy=$(find "$work/dest" -name disk.img | head -1)
        cmp "$work/src/disk.img" "$copy"
        printf '%-8s %-22s %9ss %12s\n' "$label" "$tool" "$(median < "$work/times-$tool")" \
            "$(( $(stat -c %b "$copy") * 512 )) B"
    done
    rm -rf "$work"
}

bench_on "$dir" tmpfs
bench_on "${DISK_DIR:-/var/tmp}" disk
