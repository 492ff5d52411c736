#!/usr/bin/env bash
# latency.sh - inference latency of sqz vs ONNX Runtime, measured in the same run,
# interleaved, at 1 and 2 threads; prints model | sqz ms | ORT ms | sqz/ORT per thread count,
# the geometric mean of the ratios, and sqz-vs-ORT output max abs error per model.
#
# usage: bench/latency.sh [--quick] [--json out.json] [--models a,b,...] [--threads 1,2]
#                         [--runs R] [--warmup W] [--rounds K] [--cpus 0[,1]]
#
# Builds sqz Release (build/release, incremental) unless SQZ_BIN is set; exports the
# torchvision fixtures into build/bench/tv once (cached; Debian's torch); creates
# build/bench-venv (--system-site-packages) with PyPI onnxruntime once.
# Thread pinning: sqz runs with OMP_NUM_THREADS=<threads>; OMP_PROC_BIND / OMP_PLACES /
# OMP_WAIT_POLICY are passed through if you set them (e.g. OMP_PROC_BIND=close
# OMP_PLACES=cores). --cpus pins both engines (this process and its children) to those CPUs.
# ONNX Runtime's PyPI build uses its own thread pool, not OpenMP: intra_op_num_threads=N.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${SQZ_BUILD_DIR:-build/release}
WORK=${SQZ_BENCH_DIR:-build/bench}
VENV=${SQZ_BENCH_VENV:-build/bench-venv}
PY=/usr/bin/python3
mkdir -p "$WORK"

if [ -n "${SQZ_BIN:-}" ]; then
  SQZ=$SQZ_BIN
else
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  echo "building sqz (Release, $BUILD) ..." >&2
  if ! cmake --build "$BUILD" --target sqz -j"$(nproc)" >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    echo "latency.sh: build failed (log: $WORK/build.log)" >&2
    exit 2
  fi
  SQZ=$BUILD/sqz
fi
grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$(dirname "$SQZ")/CMakeCache.txt" 2>/dev/null ||
  echo "latency.sh: warning: $SQZ is not from a Release build" >&2

if ! "$VENV/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
  echo "creating $VENV with onnxruntime ..." >&2
  if ! $PY -c 'import ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  $PY -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install -q onnxruntime
fi

exec "$VENV/bin/python" "$ROOT/bench/latency.py" --sqz "$SQZ" --work "$WORK" "$@"
