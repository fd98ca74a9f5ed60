#!/usr/bin/env bash
# Configures and builds pqtool into build/ (or $PQTOOL_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${PQTOOL_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
