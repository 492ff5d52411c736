#!/usr/bin/python3
"""End-to-end INT8 accuracy of the reference models (tools/models) through the
sqz CLI: sqz import + sqz eval (fp32), then sqz quant --method auto with the
committed calibration set (calib-data/fashion-mnist, train split): every
method is tried and the one whose int8 output is closest to fp32 on
calibration images is kept (its per-method lines are printed here); that int8
model is evaluated through the runtime on all 10,000 test images.

Asserts per model:
  * auto's int8 accuracy >= fp32 accuracy (both measured by sqz) - 0.3 points;
  * the int8 model is smaller than 0.40x the fp32 ONNX file (a regression
    guard; the figure is printed; the issue's 0.27x target is reported by
    bench/int8.sh);
  * the JSON report lists every int8 layer with finite SQNR.
--quick (sanitizer builds): percentile only, calibrated on 100 images,
evaluated on 200, and instead of the accuracy bound: int8 predictions agree
with fp32 on >= 97% of them.
Usage: quant.py SQZ_BINARY WORK_DIR [--quick] [model ...]"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALIB = os.path.join(ROOT, "calib-data/fashion-mnist/manifest.txt")
METHODS = ["percentile", "mse", "minmax", "kl"]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])}: {r.stderr.strip()}")
    return r.stdout


def evaluate(sqz, model, limit, preds=None):
    cmd = [sqz, "eval", model, "--dataset", "fashion-mnist", "--json", "--threads", "2"]
    if limit:
        cmd += ["--limit", str(limit)]
    if preds:
        cmd += ["--predictions", preds]
    out = run(cmd)
    res = json.loads(out[out.index("{"):])
    return 100.0 * res["correct"] / res["total"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    sqz, work = args[0], args[1]
    os.makedirs(work, exist_ok=True)
    manifest = json.load(open(os.path.join(ROOT, "tools/models/manifest.json")))["models"]
    names = args[2:] or sorted(n for n, e in manifest.items()
                               if os.path.exists(os.path.join(ROOT, "tools/models", e["file"])))
    limit = 200
    calib_args = ["--max-images", "100"] if quick else []
    passed = failed = 0
    for name in names:
        e = manifest[name]
        onnx = os.path.join(ROOT, "tools/models", e["file"])
        try:
            fp32 = os.path.join(work, name + ".sqz")
            run([sqz, "import", onnx, "-o", fp32])
            fpred = os.path.join(work, name + ".pred")
            if quick:
                m = METHODS[0]
                out = os.path.join(work, f"{name}.{m}.int8.sqz")
                rep = os.path.join(work, f"{name}.{m}.json")
                run([sqz, "quant", onnx, "--calib", CALIB, "--method", m, "-o", out, "--json", rep,
                     "-q"] + calib_args)
            else:
                out = os.path.join(work, f"{name}.auto.int8.sqz")
                rep = os.path.join(work, f"{name}.auto.json")
                log = run([sqz, "quant", onnx, "--calib", CALIB, "--method", "auto", "-o", out,
                           "--json", rep, "-q"])
                m = log.split("auto: chose ")[1].split()[0]
                tried = "; ".join(" ".join(l[len("auto: "):].split()) for l in log.splitlines()
                                  if l.startswith("auto: ") and "chose" not in l)
            r = json.load(open(rep))
            bad = [l["node"] for l in r["layers"] if l["int8"] and l["sqnr_db"] is None]
            if bad or not r["layers"]:
                raise RuntimeError(f"{m}: report without SQNR for {bad}")
            size = os.path.getsize(out)
            ratio = size / os.path.getsize(onnx)
            if quick:
                acc32_sel = evaluate(sqz, fp32, limit, fpred)
                acc8 = evaluate(sqz, out, limit, os.path.join(work, f"{name}.{m}.pred"))
                a = open(fpred, "rb").read()
                b = open(os.path.join(work, f"{name}.{m}.pred"), "rb").read()
                agree = 100.0 * sum(x == y for x, y in zip(a, b)) / len(a)
                ok = agree >= 97.0 and ratio <= 0.40
                msg = (f"first {limit} images: fp32 {acc32_sel:.2f}%, int8 {m} {acc8:.2f}%; "
                       f"agrees with fp32 on {agree:.1f}% (need >= 97)")
            else:
                acc32 = evaluate(sqz, fp32, 0)
                acc8 = evaluate(sqz, out, 0)
                ok = acc8 >= acc32 - 0.3 and ratio <= 0.40
                msg = (f"fp32 {acc32:.2f}% int8 auto ({m}) {acc8:.2f}% (drop "
                       f"{acc32 - acc8:+.2f}, need <= 0.30); tried on calibration images: {tried}")
            print(f"{'PASS' if ok else 'FAIL'} {name}: {msg}; int8 {size} bytes = "
                  f"{ratio:.3f}x the ONNX file")
        except RuntimeError as ex:
            print(f"FAIL {name}: {ex}")
            ok = False
        passed += ok
        failed += not ok
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
