#!/usr/bin/env bash
# The test command (README): installs what is missing, builds, and runs every test with ctest.
#   1. build/          GCC RelWithDebInfo: all tests (unit, store contract on real etcd + SQLite,
#                      daemon, lab, package: the .deb built with cpack, lintian, dpkg --root)
#   2. build-asan/     GCC Debug ASan+UBSan: unit and store tests
#   3. build-release/  GCC Release (-O3): builds everything (the build type users try first)
#   4. build-fuzz/     Clang Debug + libFuzzer, ASan+UBSan: builds everything, runs each fuzz
#                      target for a bounded number of inputs (ctest -L fuzz)
# Every build treats warnings as errors (FLANNEL_WERROR=ON). Exits non-zero if any step fails.
# Must run as root (network namespaces, iptables, apt).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

jobs=$(nproc)
# A compiler cache, when the machine has one (CI's fresh machines do not; it only saves rebuilds).
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLANNEL_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 300)

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLANNEL_SANITIZE=ON \
      -DFLANNEL_BUILD_BENCH=OFF -DFLANNEL_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build-asan -j "$jobs" --target sanitized_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j "$jobs" --timeout 300 -L 'unit|store')

cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLANNEL_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build-release -j "$jobs"

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLANNEL_FUZZ=ON \
      -DFLANNEL_BUILD_BENCH=OFF -DFLANNEL_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j "$jobs"
(cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz)
echo "test.sh: all tests passed"
