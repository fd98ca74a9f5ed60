#!/usr/bin/env bash
# Fidelity of quantized PP-OCR models vs the originals (see tests/ort/README.md).
#   tests/fidelity/measure.sh [--det ORIG Q] [--rec ORIG Q] [--cls ORIG Q] [--json out.json] [--check]
# Exit: 0 ok; 1 check failed or error; 2 usage; 3 prerequisite unavailable
# (npm registry unreachable for onnxruntime-node, ImageMagick or fonts missing): callers skip.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$HERE/../ort/setup.sh"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "measure.sh: onnxruntime-node is unavailable (tests/ort/setup.sh exit $rc); skipping fidelity measurement." >&2
  exit 3
fi
if ! { command -v magick || command -v /usr/bin/convert; } >/dev/null 2>&1; then
  echo "measure.sh: ImageMagick is not installed (apt-get install \$(cat tests/ort/APT_PACKAGES)); skipping." >&2
  exit 3
fi
exec node "$HERE/measure.js" "$@"
