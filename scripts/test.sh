#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds twice (release with warnings as
# errors, and AddressSanitizer + UndefinedBehaviorSanitizer), and runs every test in each
# build. Each ctest run starts its own ZooKeeper on a free loopback port and stops it.
#
# Then the codec fuzzers run for SVCCTL_FUZZ_SECONDS each (default 20), seeded from the
# captured Yar packets; a finding fails the run.
#
#   scripts/test.sh            # both builds and the fuzzers
#   scripts/test.sh --fast     # the release build only
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
[ "${1:-}" = "--fast" ] && fast=1

scripts/deps.sh
jobs=$(nproc)

run() {  # run BUILD_DIR CMAKE_ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DSVCCTL_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest -j "$jobs" --output-on-failure)
}

echo "== release build (warnings are errors)"
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSVCCTL_WERROR=ON

if [ $fast -eq 0 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DSVCCTL_SANITIZE=ON -DSVCCTL_WERROR=ON

  echo "== libFuzzer targets (clang)"
  cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSVCCTL_FUZZ=ON -DSVCCTL_TESTS=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_yar fuzz_msgpack fuzz_json
  tests/fuzz/run.sh build-fuzz "${SVCCTL_FUZZ_SECONDS:-20}"
fi
