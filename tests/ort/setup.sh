#!/usr/bin/env bash
# Installs the pinned onnxruntime-node (package-lock.json) into tests/ort/node_modules.
# Idempotent: does nothing when node_modules already matches the lock file.
# Exit codes: 0 ready; 2 node/npm missing; 3 npm registry unreachable; 1 other failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAMP="$HERE/node_modules/.pqtool-lock.sha256"
LIB="$HERE/node_modules/onnxruntime-node/bin/napi-v3/linux/x64/libonnxruntime.so.1"

log() { echo "ort/setup.sh: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node and npm are required (node >= 18); install them first."
  exit 2
fi

want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$LIB" ]]; then
  exit 0  # already up to date
fi

log "installing onnxruntime-node from package-lock.json into $HERE/node_modules"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
if ! (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$out" 2>&1; then
  cat "$out" >&2
  if grep -qiE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up|request to .* failed' "$out"; then
    log "cannot reach the npm registry: onnxruntime-node could not be installed."
    exit 3
  fi
  log "npm ci failed (see above)."
  exit 1
fi

if [[ ! -f "$LIB" ]]; then
  log "onnxruntime-node installed but $LIB is missing (unsupported platform? only linux x64 is expected)."
  exit 1
fi
if ! (cd "$HERE" && node -e "require('onnxruntime-node')") >"$out" 2>&1; then
  cat "$out" >&2
  log "onnxruntime-node installed but cannot be loaded."
  exit 1
fi
echo "$want" >"$STAMP"
log "ready."
