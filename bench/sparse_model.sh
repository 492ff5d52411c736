#!/usr/bin/env bash
# sparse_model.sh - whole-model latency, dense vs magnitude-pruned, with sqz's
# own runtime in the same run: the compact CNN (tools/models/mobilenet.onnx,
# MobileNetV2-style, 28x28) at 80% and LeNet-300-100 at 90% unstructured
# sparsity (`sqz prune --sparsity`), fp32, one thread.
#
# For each model three variants are timed, interleaved round by round
# (`sqz bench --json`, median of --runs inferences per round; the figure is the
# median over rounds of those medians):
#   dense         the unpruned model (sqz import)
#   pruned/dense  the pruned model with the sparse kernels off (SQZ_SPARSE=0):
#                 the same zeros through the dense kernels
#   pruned/sparse the pruned model as sessions choose it (sparse kernels where
#                 the per-layer crossover says they are faster)
# and the ratios dense / pruned-sparse and pruned-dense / pruned-sparse.
#
#   bash bench/sparse_model.sh [build-dir] [rounds] [runs]   (defaults build/rel 7 200)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/rel}
ROUNDS=${2:-7}
RUNS=${3:-200}
SQZ=$BUILD/sqz
[ -x "$SQZ" ] || { echo "sparse_model.sh: $SQZ not found (build first)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
bench_ms() { # env-assignment-or-"-" model -> median ms of one sqz bench
  local envset=$1 model=$2 out
  if [ "$envset" = "-" ]; then
    out=$("$SQZ" bench "$model" --threads 1 --runs "$RUNS" --warmup 20 --json)
  else
    out=$(env "$envset" "$SQZ" bench "$model" --threads 1 --runs "$RUNS" --warmup 20 --json)
  fi
  echo "$out" | grep -o '"median_ms": *[0-9.e+-]*' | sed 's/.*: *//'
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   rounds $ROUNDS x $RUNS runs, 1 thread"
printf '%-12s %8s %10s %15s %15s %14s %16s\n' model sparsity "dense ms" "pruned/dense" \
  "pruned/sparse" "dense/sparse" "pr.dense/sparse"
for spec in mobilenet:0.8 lenet300:0.9; do
  name=${spec%%:*} sp=${spec##*:}
  onnx=tools/models/$name.onnx
  "$SQZ" import "$onnx" -o "$WORK/$name.sqz" >/dev/null
  "$SQZ" prune "$onnx" --sparsity "$sp" -o "$WORK/${name}_sp.sqz" >/dev/null
  : >"$WORK/d" ; : >"$WORK/pd" ; : >"$WORK/ps"
  for _ in $(seq "$ROUNDS"); do
    bench_ms - "$WORK/$name.sqz" >>"$WORK/d"
    bench_ms SQZ_SPARSE=0 "$WORK/${name}_sp.sqz" >>"$WORK/pd"
    bench_ms - "$WORK/${name}_sp.sqz" >>"$WORK/ps"
  done
  d=$(median <"$WORK/d") pd=$(median <"$WORK/pd") ps=$(median <"$WORK/ps")
  awk -v n="$name" -v s="$sp" -v d="$d" -v pd="$pd" -v ps="$ps" 'BEGIN {
    printf "%-12s %7.0f%% %10.4f %15.4f %15.4f %13.2fx %15.2fx\n", n, 100 * s, d, pd, ps, d / ps, pd / ps }'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
