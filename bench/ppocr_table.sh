#!/usr/bin/env bash
# Size, bits per weight, weight SQNR and wall time of `pqtool quantize` on the PP-OCR models.
# Prints a Markdown table.
#   bench/ppocr_table.sh [BITS...]         each bit width with --method parametric and lloyd-max
#                                          (default: 2 3 4 8)
#   bench/ppocr_table.sh --bpw [BPW...]    the default method under --target-bpw BPW
#                                          (default: 2.1 3.1 4.0 4.1 4.5 5.1 6.1 8.1)
# Needs build/pqtool (or $PQTOOL) and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${PQTOOL:-build/pqtool}"
assets="$(tests/ort/fetch_models.sh)"
mode=bits
if [[ "${1:-}" == "--bpw" ]]; then
  mode=bpw
  shift
fi
values=("$@")
if (( ${#values[@]} == 0 )); then
  if [[ $mode == bits ]]; then values=(2 3 4 8); else values=(2.1 3.1 4.0 4.1 4.5 5.1 6.1 8.1); fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# One table row: row MODEL SETTING METHOD PQTOOL-ARGS...
row() {
  local model="$1" setting="$2" method="$3"
  shift 3
  local start end
  start=$(date +%s.%N)
  "$bin" quantize "$assets/$model.onnx" -o "$tmp/q.onnx" --force -q --report "$tmp/r.json" "$@"
  end=$(date +%s.%N)
  python3 - "$tmp/r.json" "$model" "$setting" "$method" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[6]) - float(sys.argv[5])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {r['bytes_in']} | {r['bytes_out']} | "
      f"{r['bytes_out']/r['bytes_in']:.3f} | {r['bpw']:.3f} | {r['sqnr_db']:.2f} | {wall:.2f} |")
PY
}

if [[ $mode == bits ]]; then
  echo "| model | bits | method | bytes in | bytes out | out/in | bpw | weight SQNR dB | wall s |"
else
  echo "| model | --target-bpw | method | bytes in | bytes out | out/in | bpw | weight SQNR dB | wall s |"
fi
echo "|---|---|---|---|---|---|---|---|---|"
for model in ch_PP-OCRv4_det_infer ch_PP-OCRv4_rec_infer ch_ppocr_mobile_v2.0_cls_infer; do
  for v in "${values[@]}"; do
    if [[ $mode == bits ]]; then
      for method in parametric lloyd-max; do row "$model" "$v" "$method" --bits "$v" --method "$method"; done
    else
      row "$model" "$v" auto --target-bpw "$v"
    fi
  done
done
