# Shared by the benchmarks (sourced, not run): settings, the tools they need, and a
# tmpfs to run on, so that disk noise does not drown the signal.
#
#   need TOOL... -- exits with a hint unless every tool is installed
#   on_tmpfs     -- makes sure $dir is a tmpfs (mounting one as root)
#   copy_corpus NAME DEST -- a copy of corpus NAME at DEST (from $dir/NAME if it is
#                  there, else generated), for benchmarks that change their source
#   corpus NAME [SCALE] -- prints the path of corpus NAME under $dir, generating it once
#   median       -- the median of the numbers on stdin, one per line
#   one_task_plan FILE NAME STATE SRC DST -- writes a plan NAME with one task, SRC into
#                  DST, its state in STATE, posix rules
dir=${BENCH_DIR:-/mnt/bench}
make_corpus=${MAKE_CORPUS:-../shared/bench/make-corpus}
timer=/usr/bin/time
name=$(basename "$0")

need() {
    for tool in "$@"; do
        command -v "$tool" > /dev/null \
            || { echo "$name: $tool is needed; install it (GNU time is Debian's \`time\` package)" >&2; exit 1; }
    done
}

on_tmpfs() {
    mkdir -p "$dir"
    if [ "$(stat -f -c %T "$dir")" != tmpfs ]; then
        if [ "$(id -u)" = 0 ]; then
            mount -t tmpfs -o size=12g tmpfs "$dir"
        else
            echo "$name: $dir is not a tmpfs; mount one (mount -t tmpfs -o size=12g tmpfs $dir)" >&2
            exit 1
        fi
    fi
}

copy_corpus() {
    if [ -d "$dir/$1" ]; then cp -a "$dir/$1" "$2"; else python3 "$make_corpus" "$1" "$2" >&2; fi
}

corpus() { # name [scale]
    local src="$dir/$1${2:+-x$2}"
    if [ ! -d "$src" ]; then
        echo "generating $src" >&2
        python3 "$make_corpus" "$1" "$src" ${2:+--scale "$2"} >&2
    fi
    echo "$src"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

one_task_plan() { # file name state src dst
    cat > "$1" <<PLAN
version: 1
name: $2
working_folder: $3
defaults: { rules: posix }
tasks:
  - name: t
    source: $4
    destination: $5
PLAN
}
