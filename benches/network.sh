#!/usr/bin/env bash
# Network share benchmark: the `small` corpus served over SSH on loopback and mounted
# with sshfs, once with every metadata operation going over the wire (as on an uncached
# SMB or NFS client) and once with sshfs's caches on. On each mount, side by side:
# `find -printf '%s %T@\n'` against `ferry scan`, and `rsync -a` against `ferry run`
# (destination, state and staging on tmpfs). Prints wall times, ratios and peak RSS.
#
#   benches/network.sh [WORKERS...]     (ferry with default workers, then each given
#                                        --workers, e.g. `benches/network.sh 8 16`)
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
keys=$(mktemp -d /tmp/ferry-network-bench.XXXXXX)
mnt="$work/mnt"

cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && { fusermount3 -u "$mnt" || umount -l "$mnt"; } || true
    if [ -s "$keys/sshd.pid" ]; then
        local pid
        pid=$(cat "$keys/sshd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    [ -e "$keys/made-run-sshd" ] && rmdir /run/sshd 2>/dev/null || true
    rm -rf "$keys" "$work"
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work" "$mnt"

# A throwaway sshd on loopback, its keys and configuration in $keys.
chmod 700 "$keys"
ssh-keygen -q -t ed25519 -N '' -C ferry-bench-host -f "$keys/host_key"
ssh-keygen -q -t ed25519 -N '' -C ferry-bench-user -f "$keys/user_key"
cp "$keys/user_key.pub" "$keys/authorized_keys"
chmod 600 "$keys/authorized_keys"
cat > "$keys/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $keys/host_key
PidFile $keys/sshd.pid
AuthorizedKeysFile $keys/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowUsers $(id -un)
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel ERROR
CONF
# sshd wants its privilege separation folder, which systemd makes on a usual system.
[ -d /run/sshd ] || { mkdir -m 0755 /run/sshd && touch "$keys/made-run-sshd"; }
/usr/sbin/sshd -t -f "$keys/sshd_config"
/usr/sbin/sshd -f "$keys/sshd_config" -E "$keys/sshd.log"
for _ in $(seq 50); do [ -s "$keys/sshd.pid" ] && break; sleep 0.1; done
ssh_options="IdentityFile=$keys/user_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR,port=$port"
ssh -i "$keys/user_key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes -o LogLevel=ERROR "$(id -un)@127.0.0.1" true

# mount MODE: a fresh mount of the corpus. `uncached`: sshfs's own caches off
# (`cache=no`) and the kernel's too (the timeouts): every lookup, stat and listing goes
# over the wire. `cached`: sshfs's defaults.
mount_corpus() {
    mountpoint -q "$mnt" && fusermount3 -u "$mnt"
    case $1 in
        uncached) sshfs "$(id -un)@127.0.0.1:$src" "$mnt" \
            -o "$ssh_options,cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0" ;;
        cached) sshfs "$(id -un)@127.0.0.1:$src" "$mnt" -o "$ssh_options" ;;
    esac
}

# timed LABEL COMMAND...: one run; appends "label wall rss" to $work/results.
timed() {
    local label=$1; shift
    "$timer" -f '%e %M' -o "$work/t" "$@" > /dev/null 2> "$work/log" \
        || { echo "$label failed:" >&2; cat "$work/log" >&2; exit 1; }
    echo "$label $(tail -n 1 "$work/t")" >> "$work/results"
}

fresh() {
    rm -rf "$work/dst" "$work/state"
    mkdir -p "$work/dst"
    one_task_plan "$work/plan.yaml" bench "$work/state" "$mnt" "$work/dst"
}

: > "$work/results"
for mode in uncached cached; do
    mount_corpus "$mode"
    timed "$mode find" find "$mnt" -printf '%s %T@\n'
    for workers in default "$@"; do
        flag=(); [ "$workers" = default ] || flag=(--workers "$workers")
        mount_corpus "$mode"; fresh
        timed "$mode scan-$workers" "$ferry" scan "$work/plan.yaml" "${flag[@]}"
    done
    mount_corpus "$mode"; fresh
    timed "$mode rsync" rsync -a "$mnt/" "$work/dst/"
    for workers in default "$@"; do
        flag=(); [ "$workers" = default ] || flag=(--workers "$workers")
        mount_corpus "$mode"; fresh
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
