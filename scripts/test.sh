#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds with warnings as errors, runs every
# test (unit tests, then the integration tests against a ZooKeeper started on a free
# loopback port and stopped after), then runs each codec fuzzer for SVCCTL_FUZZ_SECONDS
# (default 15), seeded from the captured Yar packets; a finding fails the run.
#
#   scripts/test.sh              # release build, every test, the fuzzers
#   scripts/test.sh --fast       # release build and every test, no fuzzers
#   scripts/test.sh --sanitize   # and then the same tests again in an AddressSanitizer +
#                                # UndefinedBehaviorSanitizer build (about twice as long)
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
sanitize=0
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    --sanitize) sanitize=1 ;;
    *) echo "usage: scripts/test.sh [--fast] [--sanitize]" >&2; exit 2 ;;
  esac
done

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

if [ $sanitize -eq 1 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DSVCCTL_SANITIZE=ON -DSVCCTL_WERROR=ON
fi

if [ $fast -eq 0 ]; then
  echo "== libFuzzer targets (clang)"
  cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSVCCTL_FUZZ=ON -DSVCCTL_TESTS=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_yar fuzz_msgpack fuzz_json fuzz_convert
  tests/fuzz/run.sh build-fuzz "${SVCCTL_FUZZ_SECONDS:-15}"
fi
