#!/usr/bin/python3
"""End-to-end check of `sqz compress` on LeNet-300-100 (tools/models):
  1. an explicit recipe file (share.bits = 4, Huffman): the written .sqz is
     evaluated with `sqz eval`; its accuracy must equal the one compress
     reports, stay within target.drop (0.5 points) of the fp32 model, and the
     ratio against the ONNX file must be >= 8x; with --strip (no metadata)
     the file is smaller and predicts the same;
  2. the default search (no recipe, --data fashion-mnist): ratio >= 10x and
     `sqz eval` agrees with the accuracy compress reports;
  3. bad recipes fail before any work, naming file:line and key, leaving no file;
  4. lossless stage: for a pruned (sparse gaps) + shared + Huffman recipe, the
     encoded .sqz and the same weights stored raw (--unencoded) give bit-identical
     outputs on 200 test images.
Usage: compress.py SQZ_BINARY WORK_DIR"""
import gzip
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONNX = os.path.join(ROOT, "tools/models/lenet300.onnx")


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


def evaluate(sqz, model):
    r = run([sqz, "eval", model, "--dataset", "fashion-mnist", "--json", "--batch", "50"])
    if r.returncode != 0:
        raise RuntimeError("eval: " + r.stderr.strip())
    res = json.loads(r.stdout[r.stdout.index("{"):])
    return 100.0 * res["correct"] / res["total"]


def main():
    sqz, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failed = 0

    def check(ok, msg):
        nonlocal failed
        print(("PASS " if ok else "FAIL ") + msg)
        failed += not ok

    # 1. explicit recipe
    recipe = os.path.join(work, "lenet300.recipe")
    with open(recipe, "w") as f:
        f.write("# LeNet-300-100, post-training\nshare.bits = 4\nhuffman = 1\ntarget.drop = 0.5\n")
    out = os.path.join(work, "lenet300_b4.sqz")
    r = run([sqz, "compress", ONNX, "--recipe", recipe, "--data", "fashion-mnist", "--json",
             "-o", out])
    if r.returncode != 0:
        check(False, "compress --recipe: " + r.stderr.strip())
    else:
        res = json.loads(r.stdout)
        acc = evaluate(sqz, out)
        before = 100.0 * res["accuracy_before"]
        drop = before - acc
        check(abs(acc - 100.0 * res["accuracy_after"]) < 1e-6,
              f"recipe: sqz eval {acc:.2f}% equals the reported {100 * res['accuracy_after']:.2f}%")
        check(drop <= 0.5, f"recipe: drop {drop:+.2f} points (fp32 {before:.2f}%) <= 0.5")
        ratio = os.path.getsize(ONNX) / os.path.getsize(out)
        check(ratio >= 8.0 and not res["size_is_estimate"],
              f"recipe: file ratio {ratio:.2f}x >= 8x (reported {res['ratio']:.2f}x)")
        # --strip: the same model without the metadata, same predictions
        stripped = os.path.join(work, "lenet300_b4_strip.sqz")
        r = run([sqz, "compress", ONNX, "--recipe", recipe, "--strip", "-o", stripped])
        if r.returncode != 0:
            check(False, "compress --strip: " + r.stderr.strip())
        else:
            sa = evaluate(sqz, stripped)
            check(sa == acc and os.path.getsize(stripped) < os.path.getsize(out),
                  f"--strip: {os.path.getsize(out)} -> {os.path.getsize(stripped)} bytes, "
                  f"accuracy {acc:.2f}% -> {sa:.2f}%")

    # 2. default search
    out = os.path.join(work, "lenet300_auto.sqz")
    # smaller search settings than the defaults: keeps the test short under ASan
    r = run([sqz, "compress", ONNX, "--data", "fashion-mnist", "-o", out, "--select", "1000",
             "--sens-images", "100", "--refine", "0"])
    if r.returncode != 0:
        check(False, "compress (search): " + r.stderr.strip())
    else:
        print(r.stdout)
        ratio = os.path.getsize(ONNX) / os.path.getsize(out)
        acc = evaluate(sqz, out)
        line = [l for l in r.stdout.splitlines() if l.startswith("accuracy (")][0]
        reported = float(line.split("-> compressed ")[1].split("%")[0])
        check(ratio >= 10.0, f"search: file ratio {ratio:.2f}x >= 10x")
        check(abs(acc - reported) < 0.006, f"search: sqz eval {acc:.2f}% equals reported {reported:.2f}%")

    # 3. recipe errors, before any work, no output left
    for text, where, key in [("share.bits = 9\n", ":1", "share.bits"),
                             ("# x\nprune.sparsity = 1.0\n", ":2", "prune.sparsity"),
                             ("share.bits = 4\nfoo = 1\n", ":2", "foo"),
                             ("share.bits = 4\nbias.bits = 1\n", ":2", "bias.bits"),
                             ("share.bits 4\n", ":1", "malformed")]:
        bad = os.path.join(work, "bad.recipe")
        with open(bad, "w") as f:
            f.write(text)
        out = os.path.join(work, "bad.sqz")
        r = run([sqz, "compress", ONNX, "--recipe", bad, "-o", out])
        ok = (r.returncode == 1 and bad + where in r.stderr and key in r.stderr
              and len(r.stderr.strip().splitlines()) == 1 and not os.path.exists(out))
        check(ok, f"bad recipe {text.strip()!r}: {r.stderr.strip()}")
    r = run([sqz, "compress", ONNX, "--bits", "0", "-o", os.path.join(work, "bad.sqz")])
    check(r.returncode == 1 and "--bits" in r.stderr, f"--bits 0: {r.stderr.strip()}")
    # 4. lossless: encoded == unencoded outputs, bit for bit
    import numpy as np
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:200]
    x = ((imgs.astype(np.float32) / 255.0 - 0.286) / 0.353).astype(np.float32)
    xin = os.path.join(work, "x200.npy")
    np.save(xin, x)
    for name, args in [("sparse", ["--sparsity", "0.9", "--bits", "5"]),
                       ("dense", ["--bits", "3", "--set", "prune.layer./fc1/Gemm=0.5"])]:
        enc, raw = os.path.join(work, f"ll_{name}.sqz"), os.path.join(work, f"ll_{name}_raw.sqz")
        r = run([sqz, "compress", ONNX, "-o", enc, "--unencoded", raw] + args)
        if r.returncode != 0:
            check(False, f"lossless {name}: {r.stderr.strip()}")
            continue
        ys = []
        for model in (enc, raw):
            y = os.path.join(work, os.path.basename(model) + ".y.npy")
            rr = run([sqz, "run", model, "--input", xin, "--output", y])
            ys.append(np.load(y) if rr.returncode == 0 else None)
            if rr.returncode != 0:
                print(rr.stderr)
        same = (ys[0] is not None and ys[1] is not None and ys[0].shape == (200, 10)
                and ys[0].tobytes() == ys[1].tobytes())
        smaller = os.path.getsize(enc) * 4 < os.path.getsize(raw)
        check(same and smaller, f"lossless {name}: encoded ({os.path.getsize(enc)} B) and raw "
              f"({os.path.getsize(raw)} B) outputs bit-identical on 200 images")
    print(f"{'OK' if not failed else str(failed) + ' failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
