#!/usr/bin/python3
"""torchvision MobileNetV2, ResNet-18, SqueezeNet 1.1, ShuffleNetV2 x1.0 (random
weights, fixed seed) exported to ONNX by tests/fixtures/make_torchvision.py, run
through sqz import -> sqz run, compared with torch's output on the same input:
max abs error must be <= 1e-4.
Usage: torchvision_models.py SQZ_BINARY WORK_DIR [model ...]
Prints one line per model and a closing 'N passed, M failed'."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT = ["mobilenet_v2", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0"]
TOL = 1e-4


def main():
    sqz, work = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or DEFAULT
    os.makedirs(work, exist_ok=True)
    missing = [n for n in names if not os.path.exists(os.path.join(work, n + ".onnx"))]
    if missing:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/fixtures/make_torchvision.py"),
                        "--out", work, "--models", ",".join(missing)], check=True)
    passed = failed = 0
    for n in names:
        onnx, model = os.path.join(work, n + ".onnx"), os.path.join(work, n + ".sqz")
        x, y = os.path.join(work, n + ".input.npy"), os.path.join(work, n + ".sqz_out.npy")
        r = subprocess.run([sqz, "import", onnx, "-o", model], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([sqz, "run", model, "--input", x, "--output", y],
                               capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {n}: {r.stderr.strip()}")
            failed += 1
            continue
        ours = np.load(y)
        ref = np.load(os.path.join(work, n + ".torch_out.npy"))
        if ours.shape != ref.shape:
            print(f"FAIL {n}: output shape {ours.shape} vs torch {ref.shape}")
            failed += 1
            continue
        err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
        ok = err <= TOL
        print(f"{'PASS' if ok else 'FAIL'} {n}: max abs error {err:.3g} (tolerance {TOL}), "
              f"output range [{ref.min():.3g}, {ref.max():.3g}]")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
