#!/usr/bin/python3
"""End-to-end check of `sqz prune` (and the ONNX export it uses):
  1. LeNet-300-100 --sparsity 0.8 -> ONNX: onnx.checker (full check) passes, the
     Gemm weights hold exactly 80% zeros, and `sqz import` + `sqz eval` of that
     ONNX gives the accuracy prune reports;
  2. --pattern 2:4 -> at most 2 non-zeros in every run of 4 inputs;
  (accuracies on the first 1000 test images)
  3. the MobileNetV2-style reference model (tools/models/mobilenet.onnx, when
     present) --channels 0.2 -> .sqz: fewer MACs, `sqz eval` agrees with the
     reported accuracy, the logits layer is reported as kept whole; the same
     pruning written as ONNX passes the checker and imports to the same MACs;
  4. a .sqz input is accepted; --criterion bn on it says why it cannot work;
  5. errors: no mode, an unknown layer, --sensitivity without a target: exit 1,
     one line, no output file;
  6. --sparsity 0.6 --sensitivity: per-layer sparsities from the sweep reach 60%;
  7. --max-drop 0.5: the drop on the selection (training) images is <= 0.5.
Usage: prune.py SQZ_BINARY WORK_DIR"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "tools/models")


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


def evaluate(sqz, model):
    r = run([sqz, "eval", model, "--dataset", "fashion-mnist", "--json", "--batch", "50",
             "--limit", "1000"])
    if r.returncode != 0:
        raise RuntimeError("eval: " + r.stderr.strip())
    res = json.loads(r.stdout[r.stdout.index("{"):])
    return 100.0 * res["correct"] / res["total"]


def gemm_weights(path):
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return [inits[n.input[1]] for n in m.graph.node if n.op_type in ("Gemm", "Conv")]


def main():
    sqz, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failed = 0

    def check(ok, msg):
        nonlocal failed
        print(("PASS " if ok else "FAIL ") + msg)
        failed += not ok

    lenet = os.path.join(MODELS, "lenet300.onnx")
    # 1. unstructured sparsity -> ONNX
    out = os.path.join(work, "lenet300_s80.onnx")
    r = run([sqz, "prune", lenet, "--sparsity", "0.8", "--data", "fashion-mnist", "--limit", "1000",
             "--json", "-o", out])
    if r.returncode != 0:
        check(False, "prune --sparsity: " + r.stderr.strip())
    else:
        res = json.loads(r.stdout)
        m = onnx.load(out)
        try:
            onnx.checker.check_model(m, full_check=True)
            check(True, "sparsity: exported ONNX passes onnx.checker (full)")
        except Exception as e:  # noqa: BLE001
            check(False, "sparsity: onnx.checker: %s" % e)
        ws = gemm_weights(out)
        n = sum(w.size for w in ws)
        z = sum(int((w == 0).sum()) for w in ws)
        check(z == round(0.8 * n), f"sparsity: {z}/{n} zeros in the ONNX weights")
        back = os.path.join(work, "lenet300_s80.sqz")
        ri = run([sqz, "import", out, "-o", back])
        check(ri.returncode == 0, "sparsity: sqz import of the exported ONNX " + ri.stderr.strip())
        if ri.returncode == 0:
            acc = evaluate(sqz, back)
            check(abs(acc - res["accuracy_after"]) < 1e-6,
                  f"sparsity: eval of the re-imported ONNX {acc:.2f}% == reported "
                  f"{res['accuracy_after']:.2f}%")

    # 2. 2:4 pattern
    out = os.path.join(work, "lenet300_24.onnx")
    r = run([sqz, "prune", lenet, "--pattern", "2:4", "-o", out])
    if r.returncode != 0:
        check(False, "prune --pattern 2:4: " + r.stderr.strip())
    else:
        worst = 0
        for w in gemm_weights(out):  # Gemm weights [out, in] (transB = 1 in torch exports)
            k = w.shape[1] // 4 * 4
            runs = (w[:, :k] != 0).reshape(w.shape[0], -1, 4).sum(axis=2)
            worst = max(worst, int(runs.max()))
        check(worst == 2, f"2:4: at most {worst} non-zeros per run of 4 inputs")

    # 3. channels on the MobileNetV2-style model
    mb = os.path.join(MODELS, "mobilenet.onnx")
    if not os.path.exists(mb):
        print("SKIP channels: tools/models/mobilenet.onnx not present")
    else:
        out = os.path.join(work, "mobilenet_c20.sqz")
        r = run([sqz, "prune", mb, "--channels", "0.2", "--scope", "layer", "--data",
                 "fashion-mnist", "--limit", "1000", "--json", "-o", out])
        if r.returncode != 0:
            check(False, "prune --channels: " + r.stderr.strip())
        else:
            res = json.loads(r.stdout)
            check(res["macs_after"] < res["macs_before"],
                  f"channels: MACs {res['macs_before']} -> {res['macs_after']}")
            acc = evaluate(sqz, out)
            check(abs(acc - res["accuracy_after"]) < 1e-6,
                  f"channels: sqz eval {acc:.2f}% == reported {res['accuracy_after']:.2f}%")
            check(any(k["layer"] == "/fc/Gemm" and "graph output" in k["reason"]
                      for k in res["kept_whole"]), "channels: logits layer reported kept whole")
            onnx_out = os.path.join(work, "mobilenet_c20.onnx")
            r2 = run([sqz, "prune", mb, "--channels", "0.2", "--scope", "layer", "--json",
                      "-o", onnx_out])
            ok = r2.returncode == 0
            if ok:
                try:
                    onnx.checker.check_model(onnx.load(onnx_out), full_check=True)
                except Exception as e:  # noqa: BLE001
                    ok = False
                    print("checker:", e)
            check(ok, "channels: pruned ONNX passes onnx.checker " + r2.stderr.strip())
            if ok:
                r3 = run([sqz, "prune", onnx_out, "--sparsity", "0", "--json",
                          "-o", os.path.join(work, "again.sqz")])
                check(r3.returncode == 0 and json.loads(r3.stdout)["macs_before"] ==
                      res["macs_after"], "channels: the pruned ONNX re-imports to the same MACs")

    # 4. .sqz input
    base = os.path.join(work, "lenet300.sqz")
    run([sqz, "import", lenet, "-o", base])
    r = run([sqz, "prune", base, "--channels", "0.3", "--json", "-o",
             os.path.join(work, "lenet300_c30.sqz")])
    ok = r.returncode == 0 and json.loads(r.stdout)["params_after"] < json.loads(r.stdout)["params_before"]
    check(ok, "sqz input: channel pruning of a .sqz " + r.stderr.strip())

    # 4b. --criterion bn on a .sqz: BatchNorm is folded at import, said so
    r = run([sqz, "prune", base, "--channels", "0.3", "--criterion", "bn", "-o",
             os.path.join(work, "bn.sqz")])
    check(r.returncode == 1 and "keeps no BatchNorm gamma" in r.stderr
          and r.stderr.count("\n") == 1, "criterion bn on a .sqz: " + r.stderr.strip())

    # 6. per-layer sparsities from the sensitivity sweep (last 200 training
    # images) for a 60% target: the total reaches 60%, and the predicted drop
    # (sum of the one-layer drops of `sqz sensitivity` on the same images) is
    # no more than that of the uniform 0.6 the ladder offers
    sens = run([sqz, "sensitivity", lenet, "--select", "200", "--ratios", "0.3,0.6,0.8",
                "--data", "fashion-mnist", "--json"])
    out = os.path.join(work, "lenet300_sens60.sqz")
    r = run([sqz, "prune", lenet, "--sparsity", "0.6", "--sensitivity", "--select", "200",
             "--ratios", "0.3,0.6,0.8", "--data", "fashion-mnist", "--limit", "500", "--json",
             "-o", out])
    ok = r.returncode == 0 and sens.returncode == 0
    if ok:
        res, tab = json.loads(r.stdout), json.loads(sens.stdout)
        uniform = sum(max(0.0, max(l["drop"][:2])) for l in tab["layers"])
        pred = 0.0
        for l in tab["layers"]:
            k = tab["ratios"].index(res["layers"][l["name"]]) if res["layers"][l["name"]] else -1
            pred += max(0.0, max(l["drop"][:k + 1])) if k >= 0 else 0.0
        ok = (res["sparsity_after"] >= 0.6 - 1e-6 and abs(res["predicted_drop"] - pred) < 0.011
              and res["predicted_drop"] <= uniform + 1e-6)
    check(ok, "sensitivity target: " + (r.stdout.strip() if ok else r.stdout + r.stderr))

    # 7. --max-drop: the drop measured on the selection images is within it
    out = os.path.join(work, "lenet300_md.sqz")
    r = run([sqz, "prune", lenet, "--max-drop", "0.5", "--select", "200", "--ratios",
             "0.5,0.8,0.9", "--data", "fashion-mnist", "--limit", "500", "--json", "-o", out])
    ok = r.returncode == 0
    if ok:
        res = json.loads(r.stdout)
        d = res["select_accuracy_before"] - res["select_accuracy_after"]
        ok = d <= 0.5 + 1e-9 and res["sparsity_after"] >= 0.3
    check(ok, "max-drop: " + (r.stdout.strip() if ok else r.stdout + r.stderr))

    # 5. errors
    bad = os.path.join(work, "bad.sqz")
    for args, want in (([lenet, "-o", bad], "nothing to do"),
                       ([lenet, "--layer", "nope=0.5", "-o", bad], "nope"),
                       ([lenet, "--channels", "0.3", "--sensitivity", "-o", bad],
                        "--sensitivity chooses")):
        r = run([sqz, "prune"] + args)
        check(r.returncode == 1 and want in r.stderr and r.stderr.count("\n") == 1
              and not os.path.exists(bad), f"error '{want}': exit {r.returncode}, "
              f"{r.stderr.strip()!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
