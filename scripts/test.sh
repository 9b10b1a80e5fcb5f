#!/usr/bin/env bash
# The test command (README): installs what is missing, builds, and runs every test with ctest.
#   1. build/        RelWithDebInfo: all tests (unit, store contract on real etcd + SQLite, daemon)
#   2. build-asan/   ASan+UBSan: unit and store tests
# Exits non-zero if any test fails. Must run as root (network namespaces, iptables, apt).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 300)

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLANNEL_SANITIZE=ON \
      -DFLANNEL_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs" --target unit_tests daemon_unit_tests contract_sqlite_test contract_etcd_test contract_etcdv3_test
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j "$jobs" --timeout 300 -L 'unit|store')
echo "test.sh: all tests passed"
