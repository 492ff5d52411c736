#!/usr/bin/env python3
"""Byte breakdown of .sqz v2 / v3 files (layout: runtime/include/sqz/format.h).

Per file: total bytes, header + section table, each section, and the TENSORS /
DATA bytes split by tensor kind (dtype, constant or activation, quant record,
storage encoding), with the bytes the quantization records take.

usage: /usr/bin/python3 bench/sqz_sizes.py model.sqz [...] [--onnx model.onnx]
       (--onnx: also print each file's size as a fraction of that ONNX file)
"""
import collections
import os
import struct
import sys

SECTIONS = {1: "STRINGS", 2: "TENSORS", 3: "GRAPH", 4: "DATA", 5: "METADATA"}
DTYPES = {1: "f32", 2: "f16", 3: "i8", 4: "i32", 5: "u8"}
QKINDS = {0: "", 1: "q-tensor", 2: "q-channel", 3: "q-channel-sym"}


def encname(e):
    if e == 0:
        return "raw"
    names = [n for b, n in ((1, "codebook"), (2, "sparse"), (4, "huffman"), (8, "f16"),
                            (16, "varint")) if e & b]
    return "+".join(names)


class Reader:
    def __init__(self, b, pos):
        self.b, self.pos = b, pos

    def u8(self):
        v = self.b[self.pos]
        self.pos += 1
        return v

    def var(self):
        v, sh = 0, 0
        while True:
            c = self.u8()
            v |= (c & 0x7F) << sh
            sh += 7
            if not c & 0x80:
                return v


def breakdown(path):
    b = open(path, "rb").read()
    if b[:8] != b"SQZMODEL":
        raise SystemExit("%s: not a .sqz file" % path)
    ver, _, ns, _, _ = struct.unpack_from("<IIIIQ", b, 8)
    if ver not in (2, 3):
        raise SystemExit("%s: format version %d (this script reads 2 and 3)" % (path, ver))
    sec = {}
    for i in range(ns):
        t, _, o, s = struct.unpack_from("<IIQQ", b, 32 + 24 * i)
        sec[t] = (o, s)
    print("%s: %d bytes" % (path, len(b)))
    print("  %-10s %8d" % ("header", 32 + 24 * ns))
    for t in sorted(sec, key=lambda t: sec[t][0]):
        print("  %-10s %8d" % (SECTIONS.get(t, str(t)), sec[t][1]))
    pad = len(b) - 32 - 24 * ns - sum(s for _, s in sec.values())
    print("  %-10s %8d" % ("padding", pad))
    r = Reader(b, sec[2][0])
    kinds = collections.OrderedDict()
    for _ in range(r.var()):
        start = r.pos
        r.var()  # name
        dt, enc, flags, ndim = r.u8(), r.u8(), r.u8(), r.u8()
        dims = [r.var() for _ in range(ndim)]
        q = r.u8()
        qstart = r.pos - 1
        kind = q & 15
        if kind:
            axis = r.u8()
            nq = 1 if kind == 1 else dims[axis]
            r.pos += nq * (2 if q & 0x10 else 4)
            if kind in (1, 2):
                for _ in range(nq):
                    r.var()
        qbytes = r.pos - qstart
        size = r.var() if flags & 1 else 0
        key = "%s %s %s %s" % (DTYPES.get(dt, dt), "const" if flags & 1 else "act",
                               QKINDS.get(kind, kind) + ("/f16" if q & 0x10 else ""),
                               encname(enc) if flags & 1 else "")
        k = kinds.setdefault(key, [0, 0, 0, 0])
        k[0] += 1
        k[1] += r.pos - start
        k[2] += qbytes
        k[3] += size
    print("  %-40s %5s %9s %9s %9s" % ("tensors by kind", "n", "record B", "quant B", "data B"))
    for key, (n, rec, qb, data) in kinds.items():
        print("    %-38s %5d %9d %9d %9d" % (key, n, rec, qb, data))
    return len(b)


def main():
    args = sys.argv[1:]
    onnx = None
    if "--onnx" in args:
        i = args.index("--onnx")
        onnx = args[i + 1]
        del args[i:i + 2]
    if not args:
        print(__doc__)
        return 2
    for p in args:
        n = breakdown(p)
        if onnx:
            o = os.path.getsize(onnx)
            print("  %d / %d bytes of %s = %.4f (%.2fx smaller)" % (n, o, onnx, n / o, o / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
