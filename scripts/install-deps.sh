#!/usr/bin/env bash
# Installs everything pqtool needs from Debian's packages (build, and with --test the test
# tools too: Node.js for the ONNX Runtime harness, ImageMagick and fonts for the fidelity test,
# clang with its libFuzzer runtime for the fuzzing stage).
# Idempotent; uses sudo when not root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_tests=0
[[ "${1:-}" == "--test" ]] && want_tests=1

packages=(cmake g++ make pkg-config libonnx-dev libprotobuf-dev protobuf-compiler libeigen3-dev libcli11-dev
          libspdlog-dev libfmt-dev nlohmann-json3-dev)
if (( want_tests )); then
  packages+=(libgtest-dev clang)
  mapfile -t extra < <(grep -v '^\s*#' tests/ort/APT_PACKAGES | grep -v '^\s*$')
  packages+=("${extra[@]}")
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
