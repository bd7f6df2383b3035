#!/usr/bin/env bash
# Runs each fuzz target for SECONDS, seeded from the captured Yar packets, and fails on the
# first finding (libFuzzer saves it as crash-*; copy it into regressions/<target>/, where
# the unit tests replay it).
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=$1
seconds=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
vectors=$here/../data/yar
work=$build/fuzz-work
mkdir -p "$work"

for t in yar msgpack json convert; do
  mkdir -p "$work/corpus-$t" "$work/artifacts-$t"
done
cp "$vectors"/*.bin "$work/corpus-yar/"
for f in "$vectors"/msgpack-*.bin; do tail -c +91 "$f" > "$work/corpus-msgpack/$(basename "$f")"; done
for f in "$vectors"/json-*.bin; do tail -c +91 "$f" > "$work/corpus-json/$(basename "$f")"; done
# The conversion's inputs: a byte choosing encodings and status, then a body.
for f in "$vectors"/*.bin; do { printf '\x03'; cat "$f"; } > "$work/corpus-convert/yar-$(basename "$f")"; done
for f in "$vectors"/json-*.bin; do { printf '\x00'; tail -c +91 "$f"; } > "$work/corpus-convert/json-$(basename "$f")"; done
for t in yar msgpack json convert; do cp "$here/regressions/$t/"* "$work/corpus-$t/" 2>/dev/null || true; done

for t in yar msgpack json convert; do
  echo "== fuzz_$t for ${seconds}s"
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts-$t/" \
    "$work/corpus-$t" 2>&1 | grep -E '^stat::number_of_executed_units|^stat::peak_rss|^Done|ERROR|SUMMARY|crash-|Test unit written' || true
  if ls "$work/artifacts-$t/"* >/dev/null 2>&1; then
    echo "fuzz_$t found a failing input: $(ls "$work/artifacts-$t/")" >&2
    exit 1
  fi
done
