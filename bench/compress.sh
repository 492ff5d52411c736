#!/usr/bin/env bash
# Compressed reference models: size vs the ONNX file, sqz Huffman vs zlib-9 on
# the same index / gap streams, runtime decode MB/s, load time (bench/compress.c),
# each compressed by the default search of `sqz compress --data fashion-mnist`
# (same code, same model; the search takes ~0.5 min per LeNet and several for
# MobileNet on 2 busy cores). Then the synthetic decode-speed figures of
# bench/huffman.c.
# Usage: bash bench/compress.sh [model ...]   (default lenet300 lenet5; "all" adds
#   mobilenet and resnet, whose searches take several CPU minutes each); SQZ_BUILD=dir
#   (default build/rel); SQZ_SEARCH=search:lsq (sqz compress --lsq), search:lsq:z=1
#   (--lsq --confidence 1): the search's options (default: search)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SQZ_BUILD:-build/rel}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(lenet300 lenet5)
[ "${models[0]}" = "all" ] && models=(lenet300 lenet5 mobilenet resnet)
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc 2>/dev/null || echo 2)" --target bench_compress bench_huffman >/dev/null
args=()
for m in "${models[@]}"; do
  [ -f "tools/models/$m.onnx" ] && args+=("tools/models/$m.onnx" "${SQZ_SEARCH:-search}")
done
"$B/bench_compress" "${args[@]}"
echo
SQZ_SOURCE_DIR=. "$B/bench_huffman" | sed -n '1,/^sizes/p' | sed '$d'
