#!/usr/bin/env bash
# Install the Debian packages sqz needs (build, tests, reference data), only
# those missing. Used by the README's two commands and by .ci/run.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev
      libpng-dev zlib1g-dev libcmocka-dev
      libonnx-testdata dataset-fashion-mnist
      python3 python3-numpy python3-onnx python3-torch python3-torchvision
      chromium python3-pil) # chromium + PIL: tests/e2e/report.py renders the HTML report
if [ "${1:-}" = "--runtime-only" ]; then
  PKGS=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler libonnx-dev
        libpng-dev zlib1g-dev libcmocka-dev dataset-fashion-mnist)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "sqz: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
