#!/usr/bin/env bash
# The sqz main job (README): install, build, then for the bundled reference
# model(s): import to .sqz and evaluate on the Fashion-MNIST test set through
# the sqz runtime; `sqz compress` (default search: per-layer sparsity / bits
# chosen on held-out TRAINING images for <= 0.5 points accuracy drop, Huffman
# coding) with its size table; `sqz report` (uniform recipe sweep + the search
# point, Markdown table + HTML plot in build/models/<model>_report.html); a
# summary table at the end.
# Usage: bash tools/scripts/demo.sh [model ...]   (default: lenet5; "all" = every reference model)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/scripts/install_deps.sh --runtime-only
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSQZ_TESTS=OFF >/dev/null
if ! cmake --build build/release -j"$JOBS" --target sqz >build/release/build.log 2>&1; then
  cat build/release/build.log; exit 1
fi
SQZ=build/release/sqz
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(lenet5)
if [ "${models[0]}" = "all" ]; then
  models=()
  for m in lenet300 lenet5 mobilenet resnet; do [ -f "tools/models/$m.onnx" ] && models+=("$m"); done
fi
out=build/models; mkdir -p "$out"
# torch accuracy from the manifest (written by tools/train_reference_models.py)
torch_acc() { # the first torch_test_accuracy after the model's key
  awk -v key="\"$1\":" '$1 == key { f = 1 } f && /torch_test_accuracy/ { gsub(/[^0-9.]/, "", $2); print $2; exit }' \
    tools/models/manifest.json
}
rows=()
for m in "${models[@]}"; do
  onnx=tools/models/$m.onnx
  [ -f "$onnx" ] || { echo "demo: no reference model $onnx" >&2; exit 1; }
  "$SQZ" import "$onnx" -o "$out/$m.sqz" >/dev/null 2>&1
  json=$("$SQZ" eval "$out/$m.sqz" --dataset fashion-mnist --json)
  correct=$(echo "$json" | grep -o '"correct": *[0-9]*' | grep -o '[0-9]*$')
  total=$(echo "$json" | grep -o '"total": *[0-9]*' | grep -o '[0-9]*$')
  acc=$(awk -v c="$correct" -v t="$total" 'BEGIN { printf "%.2f", 100 * c / t }')
  info=$("$SQZ" info "$out/$m.sqz" --json)
  params=$(echo "$info" | grep -o '"params": *[0-9]*' | head -1 | grep -o '[0-9]*$')
  macs=$(echo "$info" | grep -o '"macs": *[0-9]*' | head -1 | grep -o '[0-9]*$')

  echo; echo "== $m: sqz compress $onnx --data fashion-mnist -o $out/${m}_c.sqz"
  "$SQZ" compress "$onnx" --data fashion-mnist -o "$out/${m}_c.sqz" 2>"$out/${m}_compress.log" |
    tee "$out/${m}_compress.txt"
  grep "search:" "$out/${m}_compress.log" || true
  cacc=$(grep -o 'compressed [0-9.]*%' "$out/${m}_compress.txt" | grep -o '[0-9.]*')

  sweep=(--sweep share.bits=8,6,5,4,3,2 --sweep prune.sparsity=0,0.5,0.7 --search)
  echo; echo "== $m: sqz report $onnx --data fashion-mnist ${sweep[*]} -o $out/${m}_report"
  "$SQZ" report "$onnx" --data fashion-mnist "${sweep[@]}" -o "$out/${m}_report" \
    2>"$out/${m}_report.log"
  rows+=("$(printf '%-10s %9s %9s %10s %9s %9s%% %8s%% %9s %8s%% %7s' "$m" "$params" "$macs" \
    "$(stat -c %s "$onnx")" "$(stat -c %s "$out/$m.sqz")" "$(torch_acc "$m")" "$acc" \
    "$(stat -c %s "$out/${m}_c.sqz")" "$cacc" \
    "$(awk -v a="$(stat -c %s "$onnx")" -v b="$(stat -c %s "$out/${m}_c.sqz")" 'BEGIN { printf "%.2fx", a / b }')")")
done
echo
printf '%-10s %9s %9s %10s %9s %10s %9s %9s %9s %7s\n' model params MACs "onnx B" "sqz B" \
  "torch acc" "sqz acc" "compr. B" "compr acc" ratio
printf '%s\n' "${rows[@]}"
