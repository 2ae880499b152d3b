#!/usr/bin/env bash
# Runs every benchmark on both interpreters. Figures go into the README by hand, with the machine.
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for lua in lua5.4 luajit; do
  $lua bench/overhead.lua "${BENCH_N:-200000}"
  echo
done
