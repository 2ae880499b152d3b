#!/usr/bin/env bash
# Runs every benchmark on both interpreters. Figures go into the README by hand, with the machine.
set -eu
cd "$(dirname "$0")/.."
N=${BENCH_N:-200000}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "/tmp/hs-bench-redis-$port.pid" --logfile /dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
for lua in lua5.4 luajit; do
  $lua bench/overhead.lua "$N"
  echo
  $lua bench/overhead.lua "$((N / 10))" "redis://127.0.0.1:$port"
  echo
done
lua5.4 bench/round_trips.lua
echo
lua5.4 bench/memory_store.lua
# HoneyMoon itself is not in the repository: HONEYMOON=/path/to/harbor_modules/honeymoon adds it.
if [ -n "${HONEYMOON:-}" ]; then
  for lua in lua5.4 luajit; do
    echo
    $lua bench/honeymoon.lua "$HONEYMOON" "$((N / 2))"
  done
fi
