#!/usr/bin/env bash
# size.sh - stripped size of libsqzrt, the on-device fp32 runtime (runtime/src +
# runtime/kernels: reference kernels, fast paths and every SIMD kernel of the
# architecture), for x86-64 and aarch64. Target: <= 300 KB on aarch64.
#
# usage: bench/size.sh [--no-aarch64]
#
# Definition (printed with the table): the static archive libsqzrt.a of a
# runtime-only build (-DSQZ_TOOLS=OFF -DSQZ_TESTS=OFF, position-independent,
# OpenMP on) is linked whole (--whole-archive: nothing dropped by the linker)
# into libsqzrt.so, which is then `strip --strip-all`ed; the figure is that
# file's size in bytes (1 KB = 1024 B); aarch64 is linked with 16 KB segment
# alignment (-z max-page-size=16384, see build_one). Rows for -O3 (CMake Release, what the
# tests run) and -Os (MinSizeRel; the device size build, which also drops the unwind
# tables, see SQZ_UNWIND_TABLES in CMakeLists.txt). libm / libgomp are shared system libraries
# and not counted. aarch64 uses Debian's gcc-aarch64-linux-gnu
# (tests/run_aarch64.sh installs it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=build/size
mkdir -p "$OUT"
archs=(x86_64)
if [ "${1:-}" != "--no-aarch64" ]; then
  if command -v aarch64-linux-gnu-gcc >/dev/null; then
    archs+=(aarch64)
  else
    echo "aarch64: SKIPPED (no aarch64-linux-gnu-gcc; bash tests/run_aarch64.sh --install-only)" >&2
  fi
fi

# build_one ARCH BUILD_TYPE -> prints "bytes" of the stripped .so
build_one() {
  local arch=$1 bt=$2 dir=$OUT/$1-$2 cc=cc strip=strip args=()
  if [ "$arch" = aarch64 ]; then
    args+=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake")
    cc=aarch64-linux-gnu-gcc
    strip=aarch64-linux-gnu-strip
  fi
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$bt" -DSQZ_TOOLS=OFF -DSQZ_TESTS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON ${args[@]+"${args[@]}"} >"$dir.cmake.log" 2>&1 ||
    { cat "$dir.cmake.log" >&2; exit 1; }
  cmake --build "$dir" --target sqzrt -j"$(nproc)" >"$dir.build.log" 2>&1 ||
    { cat "$dir.build.log" >&2; exit 1; }
  local ldflags=()
  # aarch64: segments aligned to 16 KB pages, the Android 15+ requirement (also
  # loads on 4 KB-page kernels); binutils' aarch64 default of 64 KB pads the file
  # by up to 64 KB once the code crosses a 64 KB boundary (this library's
  # MinSizeRel: 271 KB of text + data in a 331 KB file at 64 KB, 282 KB at 16 KB)
  [ "$arch" = aarch64 ] && ldflags+=(-Wl,-z,max-page-size=16384)
  "$cc" -shared -fopenmp ${ldflags[@]+"${ldflags[@]}"} -o "$dir/libsqzrt.so" \
    -Wl,--whole-archive "$dir/libsqzrt.a" -Wl,--no-whole-archive -lm
  "$strip" --strip-all -o "$dir/libsqzrt.stripped.so" "$dir/libsqzrt.so"
  stat -c %s "$dir/libsqzrt.stripped.so"
}

echo "== libsqzrt: fp32 runtime + all kernels of the arch, shared library, strip --strip-all"
printf "   %-8s %-11s %10s %9s %s\n" arch build bytes KB "(target <= 300 KB on aarch64)"
for a in "${archs[@]}"; do
  for bt in Release MinSizeRel; do
    b=$(build_one "$a" "$bt")
    kb=$(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1024 }')
    mark=""
    if [ "$a" = aarch64 ]; then
      mark=$(awk -v b="$b" 'BEGIN { print (b <= 300 * 1024) ? "pass" : "FAIL" }')
    fi
    printf "   %-8s %-11s %10d %9s %s\n" "$a" "$bt" "$b" "$kb" "$mark"
  done
done
echo "   files: $OUT/<arch>-<build>/libsqzrt.stripped.so"
