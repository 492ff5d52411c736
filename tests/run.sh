#!/usr/bin/env bash
# The sqz test command (README): installs missing Debian packages, then builds
# and runs every test twice: Release, and Debug with ASan+UBSan; then the
# aarch64 cross build under qemu-aarch64 (tests/run_aarch64.sh).
# Usage: bash tests/run.sh [--release-only|--asan-only|--aarch64-only]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/scripts/install_deps.sh
JOBS=$(nproc 2>/dev/null || echo 2)
# ctest runs $JOBS tests at once, each may use 2 OpenMP threads: with libgomp's
# default active (spinning) wait, an oversubscribed barrier costs a whole time
# slice (measured: int8 eval 80 ms/image instead of 0.6 ms on a loaded machine).
# Tests check results, not speed, so threads sleep while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mode=${1:-all}
run_build() { # name, cmake args...
  local dir=build/$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  if ! cmake --build "$dir" -j"$JOBS" >"$dir/build.log" 2>&1; then
    cat "$dir/build.log"; echo "build failed ($dir)"; exit 1
  fi
  (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 1500)
}
if [ "$mode" != "--asan-only" ] && [ "$mode" != "--aarch64-only" ]; then
  echo "== Release build and tests =="
  run_build release -DCMAKE_BUILD_TYPE=Release
fi
if [ "$mode" = "all" ] && command -v clang >/dev/null; then
  echo "== clang -Werror build (compile check) =="
  cmake -S . -B build/clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release >/dev/null
  if ! cmake --build build/clang -j"$JOBS" >build/clang/build.log 2>&1; then
    cat build/clang/build.log; echo "clang build failed"; exit 1
  fi
fi
if [ "$mode" = "all" ] || [ "$mode" = "--asan-only" ]; then
  echo "== Debug + AddressSanitizer + UndefinedBehaviorSanitizer build and tests =="
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_build asan -DCMAKE_BUILD_TYPE=Debug -DSQZ_SANITIZE=ON
fi
if [ "$mode" = "all" ] || [ "$mode" = "--aarch64-only" ]; then
  echo "== aarch64 cross build, tests under qemu-aarch64 =="
  bash tests/run_aarch64.sh
fi
