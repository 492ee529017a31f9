#!/usr/bin/env bash
# Network share benchmark: the `small` corpus served over SSH on loopback and mounted
# with sshfs, once with every metadata operation going over the wire (as on an uncached
# SMB or NFS client) and once with sshfs's caches on. On each mount, side by side:
# `find -printf '%s %T@\n'` against `ferry scan`, and `rsync -a` against `ferry run`
# (destination, state and staging on tmpfs). Prints wall times, ratios and peak RSS.
#
#   benches/network.sh [WORKERS...]     (ferry with default settings, then with each
#                                        given --workers, e.g. `benches/network.sh 8 16`;
#                                        `max` is the highest concurrency ferry allows:
#                                        --workers 256 and resources.reads 256)
#
# It starts its own sshd on 127.0.0.1:${BENCH_SSH_PORT:-2222} with a throwaway host
# key and user key and its own configuration (the system's sshd and /etc/ssh are not
# touched), mounts a fresh sshfs for every measured command (so that the cached mount
# starts cold each time), and on exit unmounts, stops sshd by its PID and removes what
# it made: nothing is left running. Needs root (sshd and FUSE), Debian's
# openssh-server, sshfs, rsync and time. Takes about 10 minutes on 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
need "$timer" rsync sshfs fusermount3 ssh ssh-keygen
[ -x /usr/sbin/sshd ] || { echo "$name: /usr/sbin/sshd is needed (Debian's openssh-server)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "$name: /dev/fuse is needed" >&2; exit 1; }
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
port=${BENCH_SSH_PORT:-2222}
src=$(corpus small)
work="$dir/network-bench"
keys=$(mktemp -u /tmp/ferry-network-bench.XXXXXX)
mnt="$work/mnt"
share=tests/sshfs-share

cleanup() {
    "$share" stop "$keys" "$mnt" || true
    rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work" "$mnt"

# A throwaway sshd on loopback, its keys and configuration in $keys.
"$share" start "$keys" "$port"

# mount MODE: a fresh mount of the corpus (see tests/sshfs-share for the modes).
mount_corpus() { "$share" mount "$keys" "$port" "$src" "$mnt" "$1"; }

# timed LABEL COMMAND...: one run; appends "label wall rss" to $work/results.
timed() {
    local label=$1; shift
    "$timer" -f '%e %M' -o "$work/t" "$@" > /dev/null 2> "$work/log" \
        || { echo "$label failed:" >&2; cat "$work/log" >&2; exit 1; }
    echo "$label $(tail -n 1 "$work/t")" >> "$work/results"
}

# fresh WORKERS: an empty destination and state, and the plan; sets `flag`.
fresh() {
    rm -rf "$work/dst" "$work/state"
    mkdir -p "$work/dst"
    one_task_plan "$work/plan.yaml" bench "$work/state" "$mnt" "$work/dst"
    flag=()
    case $1 in
        default) ;;
        max) flag=(--workers 256)
             sed -i 's/^tasks:/resources: { reads: 256 }\ntasks:/' "$work/plan.yaml" ;;
        *) flag=(--workers "$1") ;;
    esac
}

: > "$work/results"
for mode in uncached cached; do
    mount_corpus "$mode"
    timed "$mode find" find "$mnt" -printf '%s %T@\n'
    for workers in default "$@"; do
        mount_corpus "$mode"; fresh "$workers"
        timed "$mode scan-$workers" "$ferry" scan "$work/plan.yaml" "${flag[@]}"
    done
    mount_corpus "$mode"; fresh default
    timed "$mode rsync" rsync -a "$mnt/" "$work/dst/"
    for workers in default "$@"; do
        mount_corpus "$mode"; fresh "$workers"
        timed "$mode run-$workers" "$ferry" run "$work/plan.yaml" "${flag[@]}"
        diff -rq "$src" "$work/dst" > /dev/null \
            || { echo "ferry run ($mode, $workers workers) left a destination unlike the source" >&2; exit 1; }
    done
done

echo "corpus small over sshfs on loopback, one run each, $(nproc) CPUs"
for mode in uncached cached; do
    echo "  $mode mount"
    awk -v m="$mode" '
        $1 == m { wall[$2] = $3; rss[$2] = $4 }
        END {
            for (k in wall) {
                peer = (k ~ /^(scan|find)/) ? "find" : "rsync"
                printf "    %-14s %7.2f s  %5.2fx %-5s  peak RSS %4.0f MiB\n", k, wall[k], wall[k] / wall[peer], peer, rss[k] / 1024
            }
        }' "$work/results" | sort
done
