#!/usr/bin/env bash
# Resume inside a file in parts: `kill -9` five times during the run of a 300 MB file
# (16 MiB parts), then a run to the end; the total work of all six runs against one
# uninterrupted run. Work is what the runs write (`wchar` of /proc/PID/io: staging and
# destination, sampled every 10 ms and just before each kill). Also checks that the
# destination is the source, byte for byte.
#
#   benches/parts-resume.sh [KILLS]     (default 5)
#
# Needs root (to read the non-dumpable process's /proc/PID/io and mount the tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-5}
. benches/common.sh
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/parts-bench"
rm -rf "$work"
mkdir -p "$work/src"
head -c 300000000 /dev/urandom > "$work/src/big.bin"

fresh() {
    rm -rf "$work/dst" "$work/state"
    cat > "$work/plan.yaml" <<PLAN
version: 1
name: bench
working_folder: $work/state
defaults: { rules: posix, package: { max_size: 16MiB } }
tasks:
  - name: t
    source: $work/src
    destination: $work/dst
PLAN
}

# one_run SECONDS: a run, killed after SECONDS (0: to its end); prints its wchar and
# its wall time.
one_run() {
    local limit=$1 last=0 w start now
    start=$(date +%s.%N)
    "$ferry" run --workers 2 "$work/plan.yaml" > /dev/null 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2> /dev/null; do
        w=$(awk '/^wchar/ { print $2 }' "/proc/$pid/io" 2> /dev/null || true)
        [ -n "$w" ] && last=$w
        now=$(date +%s.%N)
        if [ "$limit" != 0 ] && awk -v n="$now" -v s="$start" -v l="$limit" 'BEGIN { exit !(n - s >= l) }'; then
            w=$(awk '/^wchar/ { print $2 }' "/proc/$pid/io" 2> /dev/null || true)
            [ -n "$w" ] && last=$w
            kill -9 "$pid" 2> /dev/null || true
            break
        fi
        sleep 0.01
    done
    wait "$pid" 2> /dev/null || true
    now=$(date +%s.%N)
    echo "$last $(awk -v n="$now" -v s="$start" 'BEGIN { printf "%.2f", n - s }')"
}

fresh
read -r clean clean_wall < <(one_run 0)
echo "uninterrupted: ${clean_wall} s, $((clean / 1000000)) MB written"

fresh
total=0
for k in $(seq 1 "$kills"); do
    # Each run is killed after a sixth of a whole run's time: five kills land inside the file.
    read -r w wall < <(one_run "$(awk -v c="$clean_wall" 'BEGIN { printf "%.2f", c / 6 }')")
    asm=$(find "$work/dst" -path '*/.ferry-work-*/data' -printf '%s' 2> /dev/null || true)
    echo "run $k: killed after ${wall} s, $((w / 1000000)) MB written, assembly ${asm:-0} bytes"
    total=$((total + w))
done
read -r w wall < <(one_run 0)
echo "final run: ${wall} s, $((w / 1000000)) MB written"
total=$((total + w))
cmp "$work/src/big.bin" "$work/dst/big.bin"
awk -v t="$total" -v c="$clean" -v k="$kills" \
    'BEGIN { printf "%d kills: %.2fx the work of an uninterrupted run (target at most 1.3x)\n", k, t / c }'
