#!/usr/bin/python3
"""Build the Fashion-MNIST calibration set for `sqz quant` from the TRAIN split
of Debian's dataset-fashion-mnist (the test split is kept for evaluation).

Picks N images per class (default 50 -> 500 images) with a fixed seed, writes
them as 8-bit grayscale PNGs (zlib from the standard library) and a manifest
in the format of calib-data/README.md. Output is byte-for-byte deterministic.

usage: make_fashion_mnist.py [--out DIR] [--per-class N] [--data-dir DIR] [--seed S]
"""
import argparse
import gzip
import os
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4 + 4 * ndim or struct.unpack(">I", buf[:4])[0] != magic:
        sys.exit(f"{path}: not an IDX file with magic {magic:#x}")
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def png_gray8(img):
    """Minimal PNG (IHDR, one IDAT, IEND), color type 0, filter 0 per row."""
    h, w = img.shape

    def chunk(tag, payload):
        c = tag + payload
        return struct.pack(">I", len(payload)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "fashion-mnist"))
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=20190611)
    a = ap.parse_args()
    imgs = read_idx(os.path.join(a.data_dir, "train-images-idx3-ubyte.gz"), 0x803, 3)
    labs = read_idx(os.path.join(a.data_dir, "train-labels-idx1-ubyte.gz"), 0x801, 1)
    if len(imgs) != len(labs):
        sys.exit(f"{len(imgs)} train images but {len(labs)} labels")
    order = np.random.RandomState(a.seed).permutation(len(labs))
    picked = []
    for c in range(10):
        idx = [int(i) for i in order if labs[i] == c][:a.per_class]
        if len(idx) < a.per_class:
            sys.exit(f"class {c}: only {len(idx)} train images")
        picked += idx
    picked.sort()  # train-set order: classes interleaved as in the dataset
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    lines = ["# sqz calibration manifest (format: calib-data/README.md)",
             f"# Fashion-MNIST train split, {a.per_class} images per class, seed {a.seed},",
             "# built by calib-data/make_fashion_mnist.py; preprocessing of tools/models",
             "color: gray", "scale: 0.00392156862745098", "mean: 0.286", "std: 0.353",
             "layout: nchw"]
    for i in picked:
        name = f"images/train{i:05d}_c{int(labs[i])}.png"
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(png_gray8(imgs[i]))
        lines.append(name)
    with open(os.path.join(a.out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(picked)} images and {os.path.join(a.out, 'manifest.txt')}")


if __name__ == "__main__":
    main()
