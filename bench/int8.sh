#!/usr/bin/env bash
# int8.sh - INT8 quantization of the reference models: sqz quant (each method) vs ONNX
# Runtime quantize_static (each calibration method) on the same calibration images, accuracy
# on the Fashion-MNIST test set, model bytes, calibration wall time, per-layer SQNR, and
# latency of sqz int8 vs sqz fp32 vs ORT int8 at 1 and 2 threads. Prints tables.
#
# usage: bench/int8.sh [--models lenet5,mobilenet] [--limit N] [--runs R] [--quant-threads T]
#                      [--holdout N] [--calib-reps R] [--calib-only] [--json out.json]
#
# Builds sqz Release (build/release, incremental) unless SQZ_BIN is set. Creates its own
# venv build/int8-venv (PyPI onnxruntime, onnx, numpy, pillow; not Debian's onnx 1.12, which is too
# old for onnxruntime.quantization) once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${SQZ_BUILD_DIR:-build/release}
WORK=${SQZ_BENCH_DIR:-build/bench/int8}
VENV=${SQZ_INT8_VENV:-build/int8-venv}
mkdir -p "$WORK"
if [ -n "${SQZ_BIN:-}" ]; then
  SQZ=$SQZ_BIN
else
  [ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  echo "building sqz (Release, $BUILD) ..." >&2
  if ! cmake --build "$BUILD" --target sqz -j"$(nproc)" >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    echo "int8.sh: build failed (log: $WORK/build.log)" >&2
    exit 2
  fi
  SQZ=$BUILD/sqz
fi
if ! "$VENV/bin/python" -c 'import onnxruntime.quantization, onnx, numpy' 2>/dev/null; then
  echo "creating $VENV with onnxruntime, onnx, numpy from PyPI ..." >&2
  if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q onnxruntime onnx numpy
fi
# Pillow: ORT's calibration reader decoding the PNGs itself (one of the timing comparisons;
# skipped, with a line saying so, when it cannot be installed)
if ! "$VENV/bin/python" -c 'import PIL.Image' 2>/dev/null; then
  "$VENV/bin/pip" install -q pillow >&2 || echo "int8.sh: pillow not installed" >&2
fi
exec "$VENV/bin/python" "$ROOT/bench/int8.py" --sqz "$SQZ" --work "$WORK" "$@"
