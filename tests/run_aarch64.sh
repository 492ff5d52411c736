#!/usr/bin/env bash
# run_aarch64.sh - cross-build sqz for aarch64 (Debian gcc-aarch64-linux-gnu,
# multiarch arm64 -dev packages) and run the unit tests and the ONNX
# conformance run under qemu-aarch64 (Debian qemu-user). Called by
# tests/run.sh; also usable alone.
#
# usage: bash tests/run_aarch64.sh [--install-only]
#
# Under qemu-user 7.2 (Debian 12) on this CI host, creating a guest thread
# (pthread_create, so any OpenMP region with > 1 thread) and exiting a forked
# child hang inside the emulator. So the aarch64 build has -DSQZ_OPENMP=OFF
# (the thread-count paths still run, serially), and onnx_conformance runs with
# --no-fork (in-process) here instead of through ctest. The CLI tests that
# exec the aarch64 sqz binary from Python / sh (e2e_*, cli_errors) are left to
# the x86-64 runs. QEMU_CPU defaults to qemu's "max" CPU (NEON + dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)

# ---------------------------------------------------------------- packages
HOST_PKGS=(gcc-aarch64-linux-gnu qemu-user)
ARM_PKGS=(libc6-dev:arm64 libcmocka-dev:arm64 libprotobuf-c-dev:arm64 libpng-dev:arm64
          zlib1g-dev:arm64)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${HOST_PKGS[@]}" "${ARM_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "sqz aarch64: installing Debian packages: ${missing[*]}"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
  fi
  # A registry without arm64 packages must not hide the x86 results: the
  # aarch64 stage is then skipped, loudly, with the reason (build or test
  # failures below still fail the run).
  if ! { $SUDO apt-get update -qq && \
         $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "SKIPPED aarch64 build and tests: apt-get could not install ${missing[*]}" >&2
    exit 0
  fi
fi
if [ "${1:-}" = "--install-only" ]; then exit 0; fi

# ---------------------------------------------------------------- build
dir=build/aarch64
cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DSQZ_OPENMP=OFF >/dev/null
if ! cmake --build "$dir" -j"$JOBS" >"$dir/build.log" 2>&1; then
  cat "$dir/build.log"; echo "aarch64 build failed ($dir)"; exit 1
fi

# ---------------------------------------------------------------- tests
echo "== aarch64 unit tests under qemu-aarch64 =="
(cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 900 \
  -E '^(e2e_|cli_errors$|onnx_conformance$)')
echo "== aarch64 int8 tests with dotprod masked (SQZ_ISA=neon: the smlal kernels) =="
(cd "$dir" && SQZ_ISA=neon ctest --output-on-failure -j"$JOBS" --timeout 900 -R '^test_rt_int8_')
echo "== aarch64 ONNX conformance under qemu-aarch64 (in-process) =="
qemu-aarch64 -L /usr/aarch64-linux-gnu "$dir/onnx_conformance" --no-fork \
  --expect-refused tests/conformance_refused.txt
