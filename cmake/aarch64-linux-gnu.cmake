# Cross build for 64-bit Arm Linux with Debian's cross toolchain and multiarch
# arm64 libraries; tests run under qemu-aarch64 (user mode).
#
#   apt-get install gcc-aarch64-linux-gnu qemu-user
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install libcmocka-dev:arm64 libprotobuf-c-dev:arm64 libpng-dev:arm64 zlib1g-dev:arm64
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# tests/run_aarch64.sh does all of the above and runs ctest.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(SQZ_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${SQZ_TRIPLET}-gcc)
set(CMAKE_AR ${SQZ_TRIPLET}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${SQZ_TRIPLET}-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP ${SQZ_TRIPLET}-strip CACHE FILEPATH "")

# Cross runtime (libc, ld.so) lives in /usr/aarch64-linux-gnu; Debian multiarch
# arm64 -dev packages in /usr/lib/aarch64-linux-gnu and /usr/include.
set(CMAKE_FIND_ROOT_PATH /usr/${SQZ_TRIPLET})
set(CMAKE_LIBRARY_ARCHITECTURE ${SQZ_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # protoc-c, python3 run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must see the arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${SQZ_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# ctest (and add_test commands naming a target) run the binaries under qemu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/${SQZ_TRIPLET})
