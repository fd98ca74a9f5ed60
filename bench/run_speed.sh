#!/usr/bin/env bash
# pqtool quantize against the I/O floor on seeded synthetic models (DESIGN §7). Builds
# pqtool and pqtool_speed_bench, generates the models once (cached), times every row and writes
# bench/results/speed.md and speed.csv; the table also goes to stdout.
#   bench/run_speed.sh [MODELS]        MODELS comma-separated, default 10m,100m (also 100m-ext, 600m)
# Environment: BUILD_DIR (default build-speed), THREADS (default 2), BITS (default 4,8),
#   FORMATS (default lut, plus qdq when pqtool lists it), CACHE_DIR (default ~/.cache/pqtool/bench),
#   REPEAT (default 1), EXTRA (more pqtool_speed_bench run options, e.g. --warm or --no-stages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${BUILD_DIR:-build-speed}"
models="${1:-10m,100m}"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPQTOOL_BUILD_TESTS=OFF -DPQTOOL_BUILD_BENCH=ON >&2
fi
cmake --build "$build" --target pqtool pqtool_speed_bench -j "$(nproc)" >&2

args=(--pqtool "$build/pqtool" --models "$models" --threads "${THREADS:-2}" --bits "${BITS:-4,8}"
      --repeat "${REPEAT:-1}" --csv bench/results/speed.csv --md bench/results/speed.md)
[[ -n "${FORMATS:-}" ]] && args+=(--formats "$FORMATS")
[[ -n "${CACHE_DIR:-}" ]] && args+=(--cache-dir "$CACHE_DIR")
mkdir -p bench/results
# shellcheck disable=SC2086
"$build/bench/pqtool_speed_bench" run "${args[@]}" ${EXTRA:-}
