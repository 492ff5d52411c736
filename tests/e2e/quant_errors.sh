#!/bin/sh
# quant_errors.sh - `sqz quant` on bad calibration sets and arguments: every
# case must exit 1 or 2 (never a crash), print exactly one line
# "sqz quant: ..." on stderr naming what is wrong, and leave neither the output
# model, nor the JSON report, nor a temporary behind.
#
# usage: tests/e2e/quant_errors.sh path/to/sqz scratch-dir
set -u
SQZ=${1:?usage: quant_errors.sh path/to/sqz scratch-dir}
SCRATCH=${2:?usage: quant_errors.sh path/to/sqz scratch-dir}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$SRC/tools/models/lenet5.onnx
[ -x "$SQZ" ] || { echo "quant_errors: $SQZ is not executable"; exit 1; }
[ -f "$MODEL" ] || { echo "SKIP: no $MODEL"; exit 0; }
mkdir -p "$SCRATCH" || exit 1
W=$(mktemp -d "$SCRATCH/quant_errors.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
FAILS=0
PASSES=0
OUT=$W/out.int8.sqz
JS=$W/report.json

fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# expect_fail NAME NEEDLE CMD...: non-zero exit, one stderr line containing NEEDLE
expect_fail() {
    name=$1
    needle=$2
    shift 2
    "$@" >"$W/stdout" 2>"$W/stderr"
    rc=$?
    lines=$(wc -l <"$W/stderr" | tr -d ' ')
    first=$(head -n 1 "$W/stderr")
    ok=1
    if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
        fail "$name: exit $rc (expected 1 or 2)"
        ok=0
    fi
    if [ "$lines" != 1 ]; then
        fail "$name: $lines lines on stderr (expected 1)"
        sed 's/^/    | /' "$W/stderr" | head -n 10
        ok=0
    fi
    case $first in
    "sqz quant: "*"$needle"*) ;;
    *)
        fail "$name: message lacks 'sqz quant: ...$needle': $first"
        ok=0
        ;;
    esac
    for f in "$OUT" "$JS"; do
        if [ -e "$f" ]; then
            fail "$name: $f left behind"
            rm -f "$f"
            ok=0
        fi
    done
    left=$(find "$W" -name '*.tmp.*' | head -n 1)
    if [ -n "$left" ]; then
        fail "$name: temporary $left left behind"
        find "$W" -name '*.tmp.*' -exec rm -f {} +
        ok=0
    fi
    [ $ok -eq 1 ] && { PASSES=$((PASSES + 1)); echo "ok: $name  [$rc] $first"; }
}

# PNGs: gray 28x28, RGB 28x28, a truncated gray one, a text file named .png
/usr/bin/python3 - "$W" <<'PY'
import struct, sys, zlib
d = sys.argv[1]
def png(w, h, ct, ch):
    def chunk(t, p):
        return struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + bytes((x * 9 + y) % 256 for x in range(w * ch)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ct, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(d + "/gray.png", "wb").write(png(28, 28, 0, 1))
open(d + "/rgb.png", "wb").write(png(28, 28, 2, 3))
open(d + "/trunc.png", "wb").write(png(28, 28, 0, 1)[:60])
open(d + "/text.png", "w").write("not a png, just text long enough to fill a header\n")
# npy_batch files: 3 samples of 4x4 (not a 28x28 model input), 2 of 1x28x28 cut short
def npy(shape, n_values):
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        "%d, " % v for v in shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + b"\0" * (4 * n_values)
open(d + "/b16.npy", "wb").write(npy((3, 1, 4, 4), 48))
open(d + "/bcut.npy", "wb").write(npy((2, 1, 28, 28), 2 * 784 - 1))
PY
mkdir -p "$W/dir.png"
printf '# nothing listed\ncolor: gray\n' >"$W/empty.txt"
printf 'gray.png\nmissing.png\n' >"$W/missing.txt"
printf 'gray.png\ntext.png\n' >"$W/nonpng.txt"
printf 'color: gray\ngray.png\nrgb.png\n' >"$W/mixed.txt"
printf 'color: rgb\nrgb.png\n' >"$W/rgbset.txt"
printf 'rgb.png\n' >"$W/rgbauto.txt"
printf 'gray.png\ndir.png\n' >"$W/dir.txt"
printf 'gray.png\ntrunc.png\n' >"$W/trunc.txt"
printf 'gray.png\nphoto.jpg\n' >"$W/jpg.txt"
printf 'color: gray\ngray.png\n' >"$W/good.txt"
printf 'gray.png\nnpy_batch: b16.npy\n' >"$W/b16.txt"
printf 'npy_batch: bcut.npy\n' >"$W/bcut.txt"

Q() { "$SQZ" quant "$MODEL" -o "$OUT" --json "$JS" "$@"; }
expect_fail "manifest does not exist" "cannot open calibration manifest" Q --calib "$W/nope.txt"
expect_fail "empty calibration set" "empty calibration set" Q --calib "$W/empty.txt"
expect_fail "listed path missing" "missing.txt:2: cannot open" Q --calib "$W/missing.txt"
expect_fail "non-PNG file" "is not a PNG file" Q --calib "$W/nonpng.txt"
expect_fail "unreadable entry (a directory)" "dir.txt:2: '$W/dir.png' is not a regular file" Q --calib "$W/dir.txt"
expect_fail "other extension" "neither a .png image nor a .npy" Q --calib "$W/jpg.txt"
expect_fail "RGB image in a gray set" "colour image but the manifest says color: gray" \
    Q --calib "$W/mixed.txt"
expect_fail "RGB set for a 1-channel model" "color: rgb does not fit the model input's 1 channel" \
    Q --calib "$W/rgbset.txt"
expect_fail "RGB image, 1-channel model" "colour image but the model input has 1 channel" \
    Q --calib "$W/rgbauto.txt"
expect_fail "truncated PNG (found while calibrating)" "trunc.png" Q --calib "$W/trunc.txt"
expect_fail "npy_batch samples of another size" "b16.txt:2: '$W/b16.npy' holds 3 samples of 16" \
    Q --calib "$W/b16.txt"
expect_fail "npy_batch file cut short" "bcut.txt:1:" Q --calib "$W/bcut.txt"
expect_fail "unknown method" "unknown --method 'entropy'" Q --calib "$W/good.txt" --method entropy
expect_fail "unknown weight scale" "unknown --weight-scale 'l1'" Q --calib "$W/good.txt" \
    --weight-scale l1
expect_fail "bad percentile" "--percentile" Q --calib "$W/good.txt" --method percentile \
    --percentile 30
expect_fail "missing --calib" "missing --calib" "$SQZ" quant "$MODEL" -o "$OUT"
expect_fail "missing -o" "missing -o" "$SQZ" quant "$MODEL" --calib "$W/good.txt"
expect_fail "model missing" "nomodel.onnx" "$SQZ" quant "$W/nomodel.onnx" --calib "$W/good.txt" \
    -o "$OUT"
expect_fail "output directory missing" "nodir" "$SQZ" quant "$MODEL" --calib "$W/good.txt" \
    -o "$W/nodir/x.sqz"
expect_fail "report directory missing" "nodir" Q --calib "$W/good.txt" --json "$W/nodir/r.json"
# 2 threads: the set's files are checked and decoded on the second thread
# while the first imports the model and opens the sessions, and the model is
# written while the report is simulated: the same errors, nothing left behind
# (late.txt: the bad file well after the first batches)
i=0
: >"$W/late.txt"
while [ $i -lt 70 ]; do echo gray.png >>"$W/late.txt"; i=$((i + 1)); done
echo missing.png >>"$W/late.txt"
mkdir -p "$W/adir"
expect_fail "2 threads: empty calibration set" "empty calibration set" Q --calib "$W/empty.txt" \
    --threads 2
expect_fail "2 threads: listed path missing" "missing.txt:2: cannot open" Q --calib \
    "$W/missing.txt" --threads 2
expect_fail "2 threads: late path missing" "late.txt:71: cannot open" Q --calib "$W/late.txt" \
    --threads 2
expect_fail "2 threads: non-PNG file" "is not a PNG file" Q --calib "$W/nonpng.txt" --threads 2
expect_fail "2 threads: unreadable entry" "is not a regular file" Q --calib "$W/dir.txt" --threads 2
expect_fail "2 threads: RGB image in a gray set" "colour image but the manifest says color: gray" \
    Q --calib "$W/mixed.txt" --threads 2
expect_fail "2 threads: RGB image, 1-channel model" "colour image but the model input has 1" \
    Q --calib "$W/rgbauto.txt" --threads 2
expect_fail "2 threads: truncated PNG" "trunc.png" Q --calib "$W/trunc.txt" --threads 2
expect_fail "2 threads: npy_batch file cut short" "bcut.txt:1:" Q --calib "$W/bcut.txt" --threads 2
expect_fail "2 threads: model missing" "nomodel.onnx" "$SQZ" quant "$W/nomodel.onnx" --calib \
    "$W/good.txt" -o "$OUT" --threads 2
for t in 1 2; do
    expect_fail "$t thread(s): output path is a directory" "adir" Q --calib "$W/good.txt" \
        -o "$W/adir" --threads $t
    [ -d "$W/adir" ] || fail "output path is a directory: the directory is gone"
    # (the model is in place before the QDQ export fails: removed)
    expect_fail "$t thread(s): QDQ directory missing" "nodir" Q --calib "$W/good.txt" \
        --onnx-qdq "$W/nodir/q.onnx" --threads $t
done
# and the good set works, writing both files
if Q --calib "$W/good.txt" -q >"$W/stdout" 2>"$W/stderr" && [ -s "$OUT" ] && [ -s "$JS" ]; then
    PASSES=$((PASSES + 1))
    echo "ok: good set writes the model and the report"
else
    fail "good set: $(head -n 1 "$W/stderr")"
fi
echo "quant_errors: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
