#!/usr/bin/env bash
# Instructions per request (callgrind's Ir) of the session middleware, for the anonymous, read
# and write scenarios of bench/callgrind.lua: each run with n requests and with none after the
# same warm-up, the difference divided by n; with the middleware, without it (plain), and the
# overhead (the difference). An A/B measure for the hot path that does not move with the
# machine's load, as time does.
#
# Runs repeat exactly: the interpreter runs under a shim (bench/callgrind_seed.c, compiled
# here with cc into build/) that makes time() and getrandom() answer from a seed, so Lua's
# string hash seed, LuaJIT's, Rust's HashMap keys and the session ids are the same in every
# run with that seed; two runs of one build agree within a few instructions per request. Other
# seeds lay the interpreters' hash tables out otherwise, which moves a request's count by up
# to 2% (a table's keys iterate in another order): each figure is the mean over SEEDS seeds,
# and two builds compared under the same seeds differ by what the change did, within about
# 0.1% (their different layouts in memory). Needs valgrind and a C compiler; about a minute per
# interpreter and seed.
# Usage (from the repo root, after `make both`):
#   bash bench/callgrind.sh [n] [interpreter...]   (default: 5000 requests, lua5.4 luajit)
#   SEEDS=5 bash bench/callgrind.sh                (the mean over seeds 1 to 5; default 3)
#   SCENARIOS=write bash bench/callgrind.sh        (only these of anon, read and write)
#   PLAIN=0 bash bench/callgrind.sh                (skips the runs without the middleware, which a
#                                                   change to the module does not move)
#   KEEP=/tmp/cg bash bench/callgrind.sh           (keeps the callgrind.out files there, for
#                                                   callgrind_annotate; build with debug info,
#                                                   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only,
#                                                   for line numbers)
# Valgrind does not run the SHA extensions: HMAC-SHA256 (about 7,500 Ir of a load) takes the
# sha2 crate's portable code here, and far fewer instructions on a CPU with them.
set -eu
cd "$(dirname "$0")/.."
N=${1:-5000}
shift || true
LUAS=${*:-lua5.4 luajit}
SEEDS=${SEEDS:-3}
PLAIN=${PLAIN:-1}
SCENARIOS=${SCENARIOS:-anon read write}
KEEP=${KEEP:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; fi
mkdir -p build
cc -shared -fPIC -O2 -o build/callgrind_seed.so bench/callgrind_seed.c -ldl

# Ir of one run: interpreter, scenario, n, mode ("" or plain), seed. A fixed environment (the
# shim's path relative, nothing inherited): its size moves the stack, whose addresses Lua 5.4
# mixes into its hash seed too.
ir() {
  local lua=$1 sc=$2 n=$3 mode=$4 seed=$5 out smc=
  out="$tmp/callgrind.out.$lua.$sc.$n${mode:+.$mode}.$seed"
  # LuaJIT writes the machine code it runs: valgrind must look for it.
  if [ "$lua" = luajit ]; then smc=--smc-check=all; fi
  # shellcheck disable=SC2086 # $smc and $mode are one word or none
  if ! env -i PATH=/usr/local/bin:/usr/bin:/bin HS_SEED="$seed" LD_PRELOAD=build/callgrind_seed.so \
    valgrind --tool=callgrind --callgrind-out-file="$out" $smc \
    "$lua" bench/callgrind.lua "$sc" "$n" 1000 $mode >/dev/null 2>"$out.log"; then
    cat "$out.log" >&2
    exit 1
  fi
  if [ -n "$KEEP" ]; then cp "$out" "$KEEP/"; fi
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

# Ir per request of one scenario and mode: the mean over the seeds.
per_request() {
  local seed sum=0
  for seed in $(seq "$SEEDS"); do
    sum=$((sum + $(ir "$1" "$2" "$N" "$3" "$seed") - $(ir "$1" "$2" 0 "$3" "$seed")))
  done
  echo $((sum / SEEDS / N))
}

echo "Ir per request, $N requests after 1000 of warm-up (callgrind; mean over seeds 1 to $SEEDS)"
if [ "$PLAIN" = 0 ]; then
  printf '%-8s %-9s %10s\n' interp scenario with
else
  printf '%-8s %-9s %10s %10s %10s\n' interp scenario with plain overhead
fi
for lua in $LUAS; do
  for sc in $SCENARIOS; do
    w=$(per_request "$lua" "$sc" "")
    if [ "$PLAIN" = 0 ]; then
      printf '%-8s %-9s %10d\n' "$lua" "$sc" "$w"
      continue
    fi
    p=$(per_request "$lua" "$sc" plain)
    printf '%-8s %-9s %10d %10d %10d\n' "$lua" "$sc" "$w" "$p" $((w - p))
  done
done
