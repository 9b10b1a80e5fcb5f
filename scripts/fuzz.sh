#!/usr/bin/env bash
# Long fuzzing runs of the libFuzzer targets in tests/fuzz/ (the test command runs each briefly).
#   scripts/fuzz.sh                 every target, 10 minutes each
#   scripts/fuzz.sh 3600 lease      one target for an hour
# Builds build-fuzz/ with Clang (FLANNEL_FUZZ=ON, Debug, ASan+UBSan). New inputs are kept in
# build-fuzz/tests/fuzz/corpus-out/<name>/ (copy the interesting ones to tests/fuzz/corpus/),
# crashes in build-fuzz/tests/fuzz/artifacts/. Exits non-zero if a target finds a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz.sh: seconds must be a positive integer, got '$seconds'" >&2
  exit 2
fi
all=()
for f in tests/fuzz/*_fuzz.cc; do
  b=$(basename "$f" .cc)
  all+=("${b%_fuzz}")
done
names=("$@")
if [ "${#names[@]}" -eq 0 ]; then names=("${all[@]}"); fi
for n in "${names[@]}"; do
  if [ ! -f "tests/fuzz/${n}_fuzz.cc" ]; then
    echo "fuzz.sh: no target '$n' (known: ${all[*]})" >&2
    exit 2
  fi
done

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLANNEL_FUZZ=ON \
  -DFLANNEL_BUILD_BENCH=OFF >/dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

out=build-fuzz/tests/fuzz
rc=0
for n in "${names[@]}"; do
  echo "fuzz.sh: $n for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/fuzz_$n" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$n-" "$out/corpus-out/$n" "tests/fuzz/corpus/$n" || rc=1
done
exit "$rc"
