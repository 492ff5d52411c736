#!/bin/sh
# cli_errors.sh - the sqz CLI on bad input: every case must exit non-zero
# (1 or 2, never a crash / signal), print exactly one line "sqz <cmd>: ..." on
# stderr, and leave no output file (nor a temporary) behind.
#
# usage: tests/cli_errors.sh path/to/sqz scratch-dir
# Uses tools/models/lenet5.onnx (or another reference model) when present;
# the cases that need a model are skipped with a message otherwise.
set -u

SQZ=${1:?usage: cli_errors.sh path/to/sqz scratch-dir}
SCRATCH=${2:?usage: cli_errors.sh path/to/sqz scratch-dir}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
MODELS=$SRC/tools/models

[ -x "$SQZ" ] || { echo "cli_errors: $SQZ is not executable"; exit 1; }
mkdir -p "$SCRATCH" || exit 1
W=$(mktemp -d "$SCRATCH/cli_errors.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT

FAILS=0
PASSES=0
SKIPS=0

fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# expect_fail NAME OUTFILE CMD...  (OUTFILE "-" when the command writes none)
expect_fail() {
    name=$1
    out=$2
    shift 2
    "$@" >"$W/stdout" 2>"$W/stderr"
    rc=$?
    lines=$(wc -l <"$W/stderr" | tr -d ' ')
    first=$(head -n 1 "$W/stderr")
    ok=1
    if [ "$rc" -eq 0 ]; then
        fail "$name: exit 0 (expected failure)"
        ok=0
    elif [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
        fail "$name: exit $rc (crash or signal?)"
        ok=0
    fi
    if [ "$lines" != 1 ]; then
        fail "$name: $lines lines on stderr (expected 1)"
        sed 's/^/    | /' "$W/stderr" | head -n 20
        ok=0
    else
        case $first in
        "sqz"*": "*) ;;
        *)
            fail "$name: message not of the form 'sqz [<cmd>]: ...': $first"
            ok=0
            ;;
        esac
    fi
    if [ "$out" != "-" ] && [ -e "$out" ]; then
        fail "$name: output file $out left behind"
        rm -f "$out"
        ok=0
    fi
    leftovers=$(find "$W" -name '*.tmp.*' | head -n 1)
    if [ -n "$leftovers" ]; then
        fail "$name: temporary $leftovers left behind"
        find "$W" -name '*.tmp.*' -exec rm -f {} +
        ok=0
    fi
    if [ $ok -eq 1 ]; then
        PASSES=$((PASSES + 1))
        echo "ok: $name  [$rc] $first"
    fi
}

skip() {
    echo "skip: $*"
    SKIPS=$((SKIPS + 1))
}

# flip_byte FILE OFFSET: xor one byte with 0xff
flip_byte() {
    b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' \n')
    [ -n "$b" ] || return 1
    nb=$((b ^ 255))
    # shellcheck disable=SC2059
    printf "\\$(printf '%03o' "$nb")" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# make_npy FILE "d0, d1, ..." : a float32 .npy of zeros with that shape
# (the shape text is the tuple's inside, e.g. "1, 1, 28, 28" or "3,")
make_npy() {
    dict="{'descr': '<f4', 'fortran_order': False, 'shape': ($2), }"
    len=${#dict}
    hlen=$(((10 + len + 1 + 63) / 64 * 64 - 10))
    count=1
    for d in $(echo "$2" | tr ',' ' '); do count=$((count * d)); done
    {
        # shellcheck disable=SC2059
        printf "\\223NUMPY\\001\\000\\$(printf '%03o' $((hlen % 256)))\\$(printf '%03o' $((hlen / 256)))"
        printf '%s' "$dict"
        printf '%*s\n' $((hlen - len - 1)) ''
        head -c $((count * 4)) /dev/zero
    } >"$1"
}

# ------------------------------------------------------------ no model needed
expect_fail "no arguments" - "$SQZ"
expect_fail "unknown command" - "$SQZ" frobnicate
expect_fail "unknown global flag" - "$SQZ" --bogus
for c in import info run eval bench compress prune report quant sensitivity; do
    expect_fail "$c: unknown flag" - "$SQZ" "$c" --bogus-flag
    grep -q "unknown option '--bogus-flag'" "$W/stderr" || fail "$c: unknown flag not named: $(cat "$W/stderr")"
    expect_fail "$c: two positional arguments" - "$SQZ" "$c" "$W/a.onnx" "$W/b.onnx"
    grep -q "unexpected argument '$W/b.onnx'" "$W/stderr" ||
        fail "$c: second positional not named: $(cat "$W/stderr")"
done
expect_fail "import: no arguments" - "$SQZ" import
expect_fail "import: missing -o" - "$SQZ" import "$W/missing.onnx"
expect_fail "import: -o without value" - "$SQZ" import "$W/missing.onnx" -o
expect_fail "import: missing file" "$W/out.sqz" "$SQZ" import "$W/missing.onnx" -o "$W/out.sqz"
expect_fail "import: malformed --input-shape" "$W/out.sqz" \
    "$SQZ" import "$W/missing.onnx" -o "$W/out.sqz" --input-shape input:1,x
expect_fail "import: --input-shape without name" "$W/out.sqz" \
    "$SQZ" import "$W/missing.onnx" -o "$W/out.sqz" --input-shape 1,1,28,28
printf 'this is not protobuf at all \377\377\377\377\377' >"$W/garbage.onnx"
expect_fail "import: garbage .onnx" "$W/out.sqz" "$SQZ" import "$W/garbage.onnx" -o "$W/out.sqz"
: >"$W/empty.onnx"
expect_fail "import: empty .onnx" "$W/out.sqz" "$SQZ" import "$W/empty.onnx" -o "$W/out.sqz"
expect_fail "info: missing file" - "$SQZ" info "$W/missing.sqz"
printf 'SQZ?garbage' >"$W/garbage.sqz"
expect_fail "info: garbage .sqz" - "$SQZ" info "$W/garbage.sqz"
expect_fail "info: directory as model" - "$SQZ" info "$W"
make_npy "$W/in.npy" "1, 1, 28, 28"
expect_fail "run: missing model" "$W/y.npy" "$SQZ" run "$W/missing.sqz" --input "$W/in.npy" \
    --output "$W/y.npy"
expect_fail "run: missing input" "$W/y.npy" "$SQZ" run "$W/missing.sqz" --input "$W/missing.npy" \
    --output "$W/y.npy"
expect_fail "run: no --input" - "$SQZ" run "$W/missing.sqz"
expect_fail "run: bad --top-k" - "$SQZ" run "$W/missing.sqz" --input x.npy --top-k 0
expect_fail "run: bad --layout" - "$SQZ" run "$W/missing.sqz" --input x.npy --layout chw
expect_fail "bench: no model" - "$SQZ" bench
expect_fail "bench: missing model" - "$SQZ" bench "$W/missing.sqz"
expect_fail "bench: --runs 0" - "$SQZ" bench "$W/missing.sqz" --runs 0
expect_fail "bench: --runs not a number" - "$SQZ" bench "$W/missing.sqz" --runs 10x
expect_fail "bench: --runs without value" - "$SQZ" bench "$W/missing.sqz" --runs
expect_fail "bench: negative --warmup" - "$SQZ" bench "$W/missing.sqz" --warmup -1
expect_fail "bench: --threads 0" - "$SQZ" bench "$W/missing.sqz" --threads 0
expect_fail "bench: malformed --input-shape" - "$SQZ" bench "$W/missing.sqz" --input-shape input:1,x
expect_fail "bench: garbage .sqz" - "$SQZ" bench "$W/garbage.sqz"
expect_fail "info --memory: missing file" - "$SQZ" info --memory "$W/missing.sqz"
expect_fail "eval: missing --dataset" - "$SQZ" eval "$W/missing.sqz"
expect_fail "eval: unknown dataset" - "$SQZ" eval "$W/missing.sqz" --dataset cifar10
expect_fail "eval: missing data dir" "$W/pred.bin" "$SQZ" eval "$W/missing.sqz" \
    --dataset fashion-mnist --data-dir "$W/nodata" --predictions "$W/pred.bin"

# ------------------------------------------------------------ with a model
ONNX=
for m in lenet5 lenet300; do
    if [ -f "$MODELS/$m.onnx" ]; then
        ONNX=$MODELS/$m.onnx
        break
    fi
done
if [ -z "$ONNX" ]; then
    skip "no tools/models/lenet5.onnx: model cases skipped"
else
    echo "model: $ONNX"
    SHAPE=input:1,1,28,28
    if ! "$SQZ" import "$ONNX" -o "$W/good.sqz" --input-shape "$SHAPE" >"$W/stdout" 2>"$W/stderr"
    then
        fail "import of $ONNX failed: $(head -n 1 "$W/stderr")"
    else
        PASSES=$((PASSES + 1))
        size=$(wc -c <"$ONNX" | tr -d ' ')
        for cut in 0 16 $((size / 3)) $((size / 2)) $((size - 9)); do
            head -c "$cut" "$ONNX" >"$W/trunc.onnx"
            expect_fail "import: .onnx truncated to $cut bytes" "$W/out.sqz" \
                "$SQZ" import "$W/trunc.onnx" -o "$W/out.sqz" --input-shape "$SHAPE"
        done
        expect_fail "import: --input-shape of an unknown input" "$W/out.sqz" \
            "$SQZ" import "$ONNX" -o "$W/out.sqz" --input-shape nosuch:1,1,28,28
        expect_fail "import: --input-shape of the wrong rank" "$W/out.sqz" \
            "$SQZ" import "$ONNX" -o "$W/out.sqz" --input-shape input:1,28,28
        expect_fail "import: --input-shape with wrong channels" "$W/out.sqz" \
            "$SQZ" import "$ONNX" -o "$W/out.sqz" --input-shape input:1,5,28,28
        expect_fail "import: output into a missing directory" "$W/nodir/out.sqz" \
            "$SQZ" import "$ONNX" -o "$W/nodir/out.sqz" --input-shape "$SHAPE"
        expect_fail "info: --input-shape with wrong dims" - \
            "$SQZ" info "$W/good.sqz" --input-shape input:1,1,27,5
        expect_fail "info: --input-shape of an unknown input" - \
            "$SQZ" info "$W/good.sqz" --input-shape nosuch:1,1,28,28

        size=$(wc -c <"$W/good.sqz" | tr -d ' ')
        for off in 0 5 12 40 $((size / 2)) $((size - 1)); do
            cp "$W/good.sqz" "$W/flip.sqz"
            flip_byte "$W/flip.sqz" "$off"
            expect_fail "info: .sqz with byte $off flipped" - "$SQZ" info "$W/flip.sqz"
        done
        head -c $((size / 2)) "$W/good.sqz" >"$W/trunc.sqz"
        expect_fail "info: truncated .sqz" - "$SQZ" info "$W/trunc.sqz"
        cp "$W/good.sqz" "$W/flip.sqz"
        flip_byte "$W/flip.sqz" $((size / 2))
        make_npy "$W/zeros.npy" "1, 1, 28, 28"
        if "$SQZ" run "$W/good.sqz" --input "$W/zeros.npy" >/dev/null 2>"$W/stderr"; then
            PASSES=$((PASSES + 1))
        else
            fail "run on a zero .npy failed: $(head -n 1 "$W/stderr")"
        fi
        expect_fail "run: .sqz with a byte flipped" "$W/y.npy" \
            "$SQZ" run "$W/flip.sqz" --input "$W/zeros.npy" --output "$W/y.npy"

        # inputs of the wrong kind / shape
        expect_fail "run: input neither PNG nor npy" "$W/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/garbage.onnx" --output "$W/y.npy"
        make_npy "$W/short.npy" "1, 1, 28, 28"
        head -c 1000 "$W/short.npy" >"$W/short2.npy"
        mv "$W/short2.npy" "$W/short.npy"
        expect_fail "run: truncated .npy" "$W/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/short.npy" --output "$W/y.npy"
        make_npy "$W/vec3.npy" "3,"
        expect_fail "run: .npy of the wrong shape" "$W/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/vec3.npy" --output "$W/y.npy"
        printf '\211PNG\r\n\032\n\000\000\000\015IHDR' >"$W/trunc.png"
        expect_fail "run: truncated PNG" "$W/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/trunc.png" --output "$W/y.npy"
        make_npy "$W/batch28.npy" "1, 28, 28"
        expect_fail "run: .npy of the wrong rank" "$W/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/batch28.npy" --output "$W/y.npy"
        expect_fail "run: missing labels file" - \
            "$SQZ" run "$W/good.sqz" --input "$W/zeros.npy" --labels "$W/nolabels.txt"
        expect_fail "run: output into a missing directory" "$W/nodir/y.npy" \
            "$SQZ" run "$W/good.sqz" --input "$W/zeros.npy" --output "$W/nodir/y.npy"
        if "$SQZ" bench "$W/good.sqz" --runs 3 --warmup 1 --json >"$W/stdout" 2>"$W/stderr" &&
            grep -q '"median_ms":' "$W/stdout" && grep -q '"arena_bytes":' "$W/stdout"; then
            PASSES=$((PASSES + 1))
        else
            fail "bench --json on a good model: $(head -n 1 "$W/stderr")"
        fi
        if "$SQZ" info --memory --json "$W/good.sqz" >"$W/stdout" 2>"$W/stderr" &&
            grep -q '"lower_bound_bytes":' "$W/stdout" && grep -q '"naive_bytes":' "$W/stdout"; then
            PASSES=$((PASSES + 1))
        else
            fail "info --memory --json on a good model: $(head -n 1 "$W/stderr")"
        fi
        expect_fail "bench: --input of the wrong shape" "$W/y.npy" \
            "$SQZ" bench "$W/good.sqz" --input "$W/vec3.npy" --output "$W/y.npy" --runs 1
        expect_fail "bench: truncated --input" "$W/y.npy" \
            "$SQZ" bench "$W/good.sqz" --input "$W/short.npy" --output "$W/y.npy" --runs 1
        expect_fail "bench: --output into a missing directory" "$W/nodir/y.npy" \
            "$SQZ" bench "$W/good.sqz" --input "$W/zeros.npy" --output "$W/nodir/y.npy" --runs 1
        expect_fail "bench: .sqz with a byte flipped" - "$SQZ" bench "$W/flip.sqz" --runs 1
        expect_fail "eval: bad --batch" - "$SQZ" eval "$W/good.sqz" --dataset fashion-mnist \
            --batch 0
    fi
fi

echo "cli_errors: $PASSES passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" -eq 0 ]
