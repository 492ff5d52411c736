#!/usr/bin/env bash
# int8_tv.sh - whole-model INT8 latency on the torchvision models (bench/int8_tv.py):
# sqz int8 vs sqz fp32 vs ONNX Runtime int8 (quantize_static QDQ), 1 and 2 threads.
#
# usage: bench/int8_tv.sh [--models a,b] [--calib N] [--runs R] [--rounds K] [--threads 1,2]
#                         [--json out.json]
#
# Builds sqz Release (build/release, incremental) unless SQZ_BIN is set; the torchvision
# fixtures are exported into build/bench/tv once (Debian's torch, as bench/latency.sh);
# uses the venv of bench/int8.sh (build/int8-venv: PyPI onnxruntime, onnx, numpy), created
# once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${SQZ_BUILD_DIR:-build/release}
WORK=${SQZ_BENCH_DIR:-build/bench}
VENV=${SQZ_INT8_VENV:-build/int8-venv}
mkdir -p "$WORK"
if [ -n "${SQZ_BIN:-}" ]; then
  SQZ=$SQZ_BIN
else
  [ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  echo "building sqz (Release, $BUILD) ..." >&2
  if ! cmake --build "$BUILD" --target sqz -j"$(nproc)" >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    echo "int8_tv.sh: build failed (log: $WORK/build.log)" >&2
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
exec "$VENV/bin/python" "$ROOT/bench/int8_tv.py" --sqz "$SQZ" --work "$WORK" "$@"
