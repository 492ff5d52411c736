#!/usr/bin/python3
"""The committed calibration set calib-data/fashion-mnist is exactly what
calib-data/make_fashion_mnist.py writes (deterministic), and only uses the
train split: rebuild it in WORK_DIR and compare every file byte for byte; check
each image equals its train-split source image.
Usage: quant_calib_set.py WORK_DIR"""
import gzip
import os
import re
import shutil
import subprocess
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = "/usr/share/datasets/fashion-mnist"


def png_pixels(path):
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w = 8, b"", 0
    while pos < len(b):
        n = int.from_bytes(b[pos:pos + 4], "big")
        tag = b[pos + 4:pos + 8]
        body = b[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w = int.from_bytes(body[:4], "big")
            assert body[8] == 8 and body[9] == 0, "8-bit gray expected"
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (w + 1):(y + 1) * (w + 1)] for y in range(len(raw) // (w + 1))]
    assert all(r[0] == 0 for r in rows), "filter 0 expected"
    return b"".join(r[1:] for r in rows)


def main():
    work = sys.argv[1]
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        print(f"SKIP: {DATA} not installed (Debian dataset-fashion-mnist)")
        return 0
    out = os.path.join(work, "fashion-mnist")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "calib-data/make_fashion_mnist.py"),
                    "--out", out], check=True, capture_output=True)
    ref = os.path.join(ROOT, "calib-data/fashion-mnist")
    built = sorted(os.listdir(os.path.join(out, "images")))
    committed = sorted(os.listdir(os.path.join(ref, "images")))
    fails = 0
    if built != committed:
        print(f"FAIL: file lists differ ({len(built)} built, {len(committed)} committed)")
        fails += 1
    for name in ["manifest.txt"] + ["images/" + n for n in built if n in committed]:
        if open(os.path.join(out, name), "rb").read() != open(os.path.join(ref, name), "rb").read():
            print(f"FAIL: {name} differs from the script's output")
            fails += 1
    train = gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")).read()[16:]
    labels = gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).read()[8:]
    for n in committed:
        m = re.match(r"train(\d+)_c(\d)\.png$", n)
        i, c = int(m.group(1)), int(m.group(2))
        if png_pixels(os.path.join(ref, "images", n)) != train[i * 784:(i + 1) * 784] or labels[i] != c:
            print(f"FAIL: {n} is not train image {i} of class {c}")
            fails += 1
    per_class = [sum(1 for n in committed if n.endswith(f"_c{c}.png")) for c in range(10)]
    print(f"{'PASS' if not fails else 'FAIL'}: {len(committed)} images, per class {per_class}, "
          f"rebuilt identically, all from the train split")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
