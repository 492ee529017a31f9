#!/usr/bin/env bash
# Cloud staging benchmark: the same corpus into the same Azurite on loopback, median of
# RUNS each, alternating:
#   - `rclone copy` of the corpus into a container (its azureblob backend);
#   - `ferry run --stages scan,package,upload` into a round's container (goal: at most
#     0.8x rclone's wall time);
#   - a whole `ferry run` round trip, staged and imported (goal: at most 2.0x rclone's
#     upload alone).
# Prints wall times, ratios, peak RSS (GNU time; goal at most 256 MiB, and flat: staging
# the corpus twice over is measured too) and the bytes the emulator stored against the
# corpus's size (compression shows there).
#
#   benches/cloud.sh [RUNS] [CORPUS]     (default 3 runs of `small`)
#
# RCLONE_RUNS (default RUNS) sets how many of the runs include rclone: against the whole
# `small`, one rclone upload takes half an hour on this emulator, so RCLONE_RUNS=0 gives
# ferry's figures alone, to set against an rclone run measured before.
#
# CORPUS is a corpus name for make-corpus, or a folder. Azurite (Node) takes several
# minutes for `small`'s 50,000 files; a folder of a part of it gives quicker figures.
#
# Needs azurite-blob (npm `azurite`), rclone and GNU time. BENCH_DIR (default
# /mnt/bench) must be a tmpfs with room for the corpus, the emulator's copy and a
# destination; as root the script mounts one there.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
corpus_name=${2:-small}
. benches/common.sh
need "$timer" rclone azurite-blob
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/cloud-bench"
rm -rf "$work"
mkdir -p "$work/azurite"
account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
port=10100
endpoint="http://127.0.0.1:$port/$account"

# Each measured step gets an empty emulator: the tmpfs holds one copy of the corpus in
# it at a time.
azurite_pid=
trap '[ -z "$azurite_pid" ] || kill "$azurite_pid" 2>/dev/null || true' EXIT
fresh_azurite() {
    if [ -n "$azurite_pid" ]; then kill "$azurite_pid"; wait "$azurite_pid" 2>/dev/null || true; fi
    rm -rf "$work/azurite"
    mkdir -p "$work/azurite"
    azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --location "$work/azurite" \
        --disableTelemetry --skipApiVersionCheck --loose > "$work/azurite.log" 2>&1 &
    azurite_pid=$!
    for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.5; done
    echo "Azurite did not start" >&2
    exit 1
}

if [ -d "$corpus_name" ]; then
    src=$(cd "$corpus_name" && pwd)
else
    src=$(corpus "$corpus_name")
fi
corpus_bytes=$(du -sb --apparent-size "$src" | cut -f1)
printf '%s' "$key" > "$work/key"
chmod 600 "$work/key"

plan() {
    cat > "$work/plan.yaml" <<PLAN
version: 1
name: bench
working_folder: $work/state
staging:
  kind: azure
  account: $account
  endpoint: $endpoint
  credential: { file: $work/key }
defaults: { rules: posix }
tasks:
  - name: t
    source: $src
    destination: $work/dst
PLAN
}
plan
stored() { du -sb "$work/azurite" | cut -f1; }

rclone_runs=${RCLONE_RUNS:-$runs}
: > "$work/rclone"
for i in $(seq "$runs"); do
  if [ "$i" -le "$rclone_runs" ]; then
    # rclone reaches the emulator through a container SAS URL (its emulator mode, in
    # Debian's 1.60, does not reach Azurite).
    fresh_azurite
    url=$(python3 benches/azure-container.py "$account" "$key" "127.0.0.1:$port" "rclone$i" 2> /dev/null)
    "$timer" -f '%e %M' -o "$work/t" rclone copy --links --transfers 8 "$src" ":azureblob,sas_url='$url':rclone$i" \
        2> "$work/rclone.log" || { cat "$work/rclone.log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/rclone"
  fi

    fresh_azurite
    rm -rf "$work/state" "$work/dst"
    before=$(stored)
    "$timer" -f '%e %M' -o "$work/t" "$ferry" run "$work/plan.yaml" --stages scan,package,upload > /dev/null 2> "$work/ferry.log" \
        || { cat "$work/ferry.log" >&2; exit 1; }
    tail -n 1 "$work/t" >> "$work/stage"
    echo $(( $(stored) - before )) >> "$work/sent"

    fresh_azurite
    rm -rf "$work/state" "$work/dst"
    "$timer" -f '%e %M' -o "$work/t" "$ferry" run "$work/plan.yaml" > /dev/null 2> "$work/ferry.log" \
        || { [ $? -eq 1 ] || { cat "$work/ferry.log" >&2; exit 1; }; }
    tail -n 1 "$work/t" >> "$work/trip"
done

# Flat memory: staging the corpus twice over (hard links: no more room on the tmpfs)
# should need about the same peak RSS as staging it once.
double="$work/double"
rm -rf "$double"
mkdir -p "$double"
cp -al "$src" "$double/a"
cp -al "$src" "$double/b"
sed "s|source: $src|source: $double|" "$work/plan.yaml" > "$work/plan-double.yaml"
fresh_azurite
rm -rf "$work/state" "$work/dst"
"$timer" -f '%e %M' -o "$work/t" "$ferry" run "$work/plan-double.yaml" --stages scan,package,upload > /dev/null 2> "$work/ferry.log" \
    || { cat "$work/ferry.log" >&2; exit 1; }
tail -n 1 "$work/t" > "$work/double-stage"
rm -rf "$double" "$work/state"

if [ -s "$work/rclone" ]; then r=$(cut -d' ' -f1 "$work/rclone" | median); else r=nan; fi
s=$(cut -d' ' -f1 "$work/stage" | median)
t=$(cut -d' ' -f1 "$work/trip" | median)
rss() { cut -d' ' -f2 "$1" | sort -n | tail -n 1 | awk '{ printf "%d MiB", $1 / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
sent=$(median < "$work/sent")
echo "corpus $corpus_name ($corpus_bytes bytes), $runs runs each, 2 CPUs, Azurite on loopback"
printf '  rclone copy                      %6.2f s          peak RSS %s\n' "$r" "$(rss "$work/rclone")"
printf '  ferry --stages scan,package,upload %6.2f s  %sx  peak RSS %s\n' "$s" "$(ratio "$s" "$r")" "$(rss "$work/stage")"
printf '  ferry run (round trip)           %6.2f s  %sx  peak RSS %s\n' "$t" "$(ratio "$t" "$r")" "$(rss "$work/trip")"
printf '  bytes the emulator stored for a staged round: %s (%s of the corpus)\n' "$sent" "$(ratio "$sent" "$corpus_bytes")"
single=$(cut -d' ' -f2 "$work/stage" | sort -n | tail -n 1)
doubled=$(cut -d' ' -f2 "$work/double-stage")
printf '  peak RSS staging the corpus twice over: %s (%s of once)\n' "$(rss "$work/double-stage")" "$(ratio "$doubled" "$single")"
