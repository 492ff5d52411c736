#!/usr/bin/python3
"""End-to-end check of the reference models (tools/models): ONNX -> sqz import
-> sqz eval on the 10,000 Fashion-MNIST test images. Asserts, per model:
  * sqz's predicted labels equal torch's (tools/models/<m>.torch_pred.bin) on
    >= 99.9% of the images;
  * the accuracy sqz prints equals the manifest's torch accuracy to 0.1 points.
Usage: models.py SQZ_BINARY WORK_DIR [model ...]
Prints one line per model and a closing 'N passed, M failed'."""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    sqz, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    manifest = json.load(open(os.path.join(ROOT, "tools/models/manifest.json")))
    entries = manifest["models"] if "models" in manifest else manifest
    names = sys.argv[3:] or sorted(entries.keys() if isinstance(entries, dict) else
                                   [e["name"] for e in entries])
    passed = failed = 0
    for name in names:
        e = entries[name] if isinstance(entries, dict) else [x for x in entries if x["name"] == name][0]
        onnx = os.path.join(ROOT, "tools/models", e.get("file", name + ".onnx"))
        model = os.path.join(work, name + ".sqz")
        preds = os.path.join(work, name + ".pred.bin")
        r = subprocess.run([sqz, "import", onnx, "-o", model], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {name}: import: {r.stderr.strip()}")
            failed += 1
            continue
        r = subprocess.run([sqz, "eval", model, "--dataset", "fashion-mnist", "--json",
                            "--predictions", preds], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {name}: eval: {r.stderr.strip()}")
            failed += 1
            continue
        res = json.loads(r.stdout[r.stdout.index("{"):])
        acc = 100.0 * res["correct"] / res["total"]  # JSON accuracy is a fraction
        ours = open(preds, "rb").read()
        theirs = open(os.path.join(ROOT, "tools/models", name + ".torch_pred.bin"), "rb").read()
        if len(ours) != len(theirs) or len(ours) != 10000:
            print(f"FAIL {name}: {len(ours)} sqz predictions vs {len(theirs)} torch predictions")
            failed += 1
            continue
        agree = sum(a == b for a, b in zip(ours, theirs)) / len(ours) * 100.0
        tacc = float(e["torch_test_accuracy"])
        ok = agree >= 99.9 and abs(acc - tacc) <= 0.1
        print(f"{'PASS' if ok else 'FAIL'} {name}: sqz accuracy {acc:.2f}% torch {tacc:.2f}% "
              f"(diff {acc - tacc:+.2f}), label agreement {agree:.2f}% (need >= 99.9)")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
