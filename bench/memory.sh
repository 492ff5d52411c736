#!/usr/bin/env bash
# memory.sh - sqz's MPool activation memory per model: arena vs lower bound vs naive
# (from `sqz info --memory --json`), arena/lower-bound and 1 - arena/naive, with the targets
# (arena <= 1.05 x lower bound; >= 75% below naive on MobileNetV2 and ResNet-18) marked
# pass/FAIL. Exit status 1 when a target fails.
#
# usage: bench/memory.sh [--quick] [--models a,b,...] [--json out.json]
#
# Same models and fixtures as bench/latency.sh (build/bench, cached). Builds sqz Release
# (build/release, incremental) unless SQZ_BIN is set. Needs only Debian's python3 (+ torch
# for the one-time fixture export).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${SQZ_BUILD_DIR:-build/release}
WORK=${SQZ_BENCH_DIR:-build/bench}
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
    echo "memory.sh: build failed (log: $WORK/build.log)" >&2
    exit 2
  fi
  SQZ=$BUILD/sqz
fi

exec /usr/bin/python3 "$ROOT/bench/memory.py" --sqz "$SQZ" --work "$WORK" "$@"
