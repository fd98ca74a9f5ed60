#!/usr/bin/env bash
# One command from a fresh Debian machine to a quantized model: installs the dependencies,
# builds pqtool and quantizes the PP-OCR text-direction classifier shipped in models/ to 4 bits,
# printing the per-tensor table and writing a JSON report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
scripts/build.sh -DPQTOOL_BUILD_TESTS=OFF
mkdir -p out
build/pqtool quantize models/ppocr_mobile_v2.0_cls.onnx -o out/cls.q4.onnx --bits 4 --force -v \
  --report out/cls.q4.json
echo "wrote out/cls.q4.onnx and out/cls.q4.json"
