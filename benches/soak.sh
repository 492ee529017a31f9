#!/usr/bin/env bash
# Soak: `kill -9` a migration at random points KILLS times (default 200), then let it
# complete and check that the destination equals the source byte for byte, with no
# temporary files left and every item counted once. The test suite does 20 kills; this
# is the long version (`just soak`).
#
#   benches/soak.sh [KILLS]      (SOAK_STAGING=none: the same in direct mode)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-200}
. benches/common.sh
on_tmpfs
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work="$dir/soak"
rm -rf "$work"
mkdir -p "$work"
copy_corpus small "$work/src"
cat > "$work/plan.yaml" <<PLAN
version: 1
name: soak
working_folder: $work/state
defaults: { rules: posix, package: { max_size: 4MiB, max_files: 200 } }
tasks:
  - name: t
    source: $work/src
    destination: $work/dst
PLAN
if [ -n "${SOAK_STAGING:-}" ]; then printf 'staging: {kind: %s}\n' "$SOAK_STAGING" >> "$work/plan.yaml"; fi
completed=0
for i in $(seq "$kills"); do
    "$ferry" run "$work/plan.yaml" > /dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
    if kill -9 "$pid" 2> /dev/null; then wait "$pid" 2> /dev/null || true; else
        wait "$pid" && completed=$((completed + 1))
        rm -rf "$work/dst" "$work/state"
    fi
done
until "$ferry" run "$work/plan.yaml" > /dev/null 2> "$work/log"; do
    [ $? = 3 ] || { cat "$work/log" >&2; exit 1; }
done
diff -r "$work/src" "$work/dst" > /dev/null || { echo "soak: the destination differs" >&2; exit 1; }
if [ -n "$(find "$work/dst" -name '.ferry-*' | head -n 1)" ]; then echo "soak: temporary files left" >&2; exit 1; fi
items=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['progress']; print(p['items'], p['items_done'], p['failed'])" "$work/state/soak/t/session.json")
echo "soak: $kills kills ($completed runs finished before their kill), then complete; destination equals source; items, done, failed: $items"
rm -rf "$work"
