#!/usr/bin/env bash
# The sqz main job (README): install, build, import the bundled reference
# model(s) to .sqz, evaluate on the Fashion-MNIST test set through the sqz
# runtime, and print a size / accuracy table.
# Usage: bash tools/scripts/demo.sh [model ...]   (default: mobilenet; "all" = every reference model)
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
[ ${#models[@]} -eq 0 ] && models=(mobilenet)
[ "${models[0]}" = "all" ] && models=(lenet300 lenet5 mobilenet resnet)
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
  "$SQZ" import "$onnx" -o "$out/$m.sqz" >/dev/null
  json=$("$SQZ" eval "$out/$m.sqz" --dataset fashion-mnist --json)
  correct=$(echo "$json" | grep -o '"correct": *[0-9]*' | grep -o '[0-9]*$')
  total=$(echo "$json" | grep -o '"total": *[0-9]*' | grep -o '[0-9]*$')
  acc=$(awk -v c="$correct" -v t="$total" 'BEGIN { printf "%.2f", 100 * c / t }')
  info=$("$SQZ" info "$out/$m.sqz" --json)
  params=$(echo "$info" | grep -o '"params": *[0-9]*' | head -1 | grep -o '[0-9]*$')
  macs=$(echo "$info" | grep -o '"macs": *[0-9]*' | head -1 | grep -o '[0-9]*$')
  rows+=("$(printf '%-10s %10s %10s %12s %10s %9s%% %9s%%' "$m" "$params" "$macs" \
    "$(stat -c %s "$onnx")" "$(stat -c %s "$out/$m.sqz")" "$(torch_acc "$m")" "$acc")")
done
printf '\n%-10s %10s %10s %12s %10s %10s %10s\n' model params MACs "onnx bytes" "sqz bytes" "torch acc" "sqz acc"
printf '%s\n' "${rows[@]}"
