#!/usr/bin/env bash
# Size, bits per weight, weight SQNR and wall time of `pqtool quantize` on the PP-OCR models,
# for each bit width and method. Prints a Markdown table.
#   bench/ppocr_table.sh [BITS...]        (default: 2 3 4 8; needs build/pqtool and npm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${PQTOOL:-build/pqtool}"
assets="$(tests/ort/fetch_models.sh)"
bits=("$@")
(( ${#bits[@]} )) || bits=(2 3 4 8)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "| model | bits | method | bytes in | bytes out | out/in | bpw | weight SQNR dB | wall s |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in ch_PP-OCRv4_det_infer ch_PP-OCRv4_rec_infer ch_ppocr_mobile_v2.0_cls_infer; do
  for b in "${bits[@]}"; do
    for method in parametric lloyd-max; do
      start=$(date +%s.%N)
      "$bin" quantize "$assets/$model.onnx" -o "$tmp/q.onnx" --bits "$b" --method "$method" --force -q \
        --report "$tmp/r.json"
      end=$(date +%s.%N)
      python3 - "$tmp/r.json" "$model" "$b" "$method" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[6]) - float(sys.argv[5])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {r['bytes_in']} | {r['bytes_out']} | "
      f"{r['bytes_out']/r['bytes_in']:.3f} | {r['bpw']:.3f} | {r['sqnr_db']:.2f} | {wall:.2f} |")
PY
    done
  done
done
