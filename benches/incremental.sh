#!/usr/bin/env bash
# Incremental benchmark, on the `small` corpus (50,000 files), all on tmpfs:
#
#  1. no-change re-run: after a complete migration, `ferry run` again (a new round that
#     finds nothing to move) against `rsync -a` again into its own up-to-date copy;
#  2. resume after a kill: a full `ferry run` is timed, then another full run into a
#     fresh destination is killed (SIGKILL) at half that time, and the run that resumes
#     the round is timed: the remainder against the full run;
#  3. after `make-corpus mutate` (1% of files changed, added or deleted): the next
#     round against rsync over the same change.
#
#   benches/incremental.sh [RUNS]       (default 5 runs each; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/common.sh
need "$timer" rsync python3
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/incremental-bench"
rm -rf "$work"
mkdir -p "$work"
src="$work/src"
copy_corpus small "$src"

timed() { # OUT COMMAND...: appends the wall time in seconds to OUT
    local out=$1
    shift
    "$timer" -f '%e' -o "$work/t" "$@" > /dev/null 2> "$work/log" || {
        local code=$?
        # ferry exits 1 when some items were reported (conflicts, say): still timed.
        if [ "$code" != 1 ]; then cat "$work/log" >&2; exit 1; fi
    }
    tail -n 1 "$work/t" >> "$out"
}
plan() { # NAME DEST
    one_task_plan "$work/$1.yaml" "$1" "$work/state" "$src" "$2"
}

# 1. No change.
plan nochange "$work/ferry-dst"
"$ferry" run "$work/nochange.yaml" > /dev/null 2>&1
rsync -a "$src/" "$work/rsync-dst/"
for i in $(seq "$runs"); do
    timed "$work/ferry-nochange" "$ferry" run "$work/nochange.yaml"
    timed "$work/rsync-nochange" rsync -a "$src/" "$work/rsync-dst/"
done

# 2. Kill half way, resume.
plan resume "$work/resume-dst"
for i in $(seq "$runs"); do
    rm -rf "$work/resume-dst" "$work/state/resume"
    timed "$work/full" "$ferry" run "$work/resume.yaml"
    full=$(tail -n 1 "$work/full")
    rm -rf "$work/resume-dst" "$work/state/resume"
    "$ferry" run "$work/resume.yaml" > /dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v f="$full" 'BEGIN { print f / 2 }')"
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    timed "$work/resumed" "$ferry" run "$work/resume.yaml"
done

# 3. One per cent changed.
python3 "$make_corpus" mutate "$src" > /dev/null
timed "$work/ferry-mutate" "$ferry" run "$work/nochange.yaml"
timed "$work/rsync-mutate" rsync -a "$src/" "$work/rsync-dst/"

f=$(median < "$work/ferry-nochange")
r=$(median < "$work/rsync-nochange")
full=$(median < "$work/full")
resumed=$(median < "$work/resumed")
fm=$(cat "$work/ferry-mutate")
rm_=$(cat "$work/rsync-mutate")
echo "corpus small, $runs runs each, $(nproc) CPUs"
awk -v f="$f" -v r="$r" 'BEGIN { printf "  no-change re-run: ferry %.2f s, rsync %.2f s: %.2fx rsync\n", f, r, f / r }'
awk -v a="$full" -v b="$resumed" 'BEGIN { printf "  killed half way: full run %.2f s, resumed remainder %.2f s: %.2fx the full run\n", a, b, b / a }'
awk -v f="$fm" -v r="$rm_" 'BEGIN { printf "  after mutate (1%%): ferry %.2f s, rsync %.2f s: %.2fx rsync\n", f, r, f / r }'
rm -rf "$work"
