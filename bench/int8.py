#!/usr/bin/env python3
"""bench/int8.py (run through bench/int8.sh): INT8 post-training quantization of
the reference models, sqz vs ONNX Runtime's quantize_static, measured in the
same run on the same calibration images (calib-data/fashion-mnist, train split)
and the 10,000 Fashion-MNIST test images.

Per model: fp32 accuracy (sqz), sqz int8 accuracy per method, ORT int8 accuracy
per calibration method (QDQ, per-channel int8 weights, int8 activations) run in
ORT, the best of each, per-layer SQNR of sqz's best (min / median), model bytes
(fp32 ONNX, sqz int8, ORT int8 ONNX), calibration wall and CPU time (sqz quant
total vs quantize_static, each method, medians of --calib-reps interleaved rounds;
sqz both from the PNGs and from the same images pre-decoded into one .npy, the
arrays ORT is given; the load average; --calib-only: these timings only), latency (median ms, batch 1) of sqz int8,
sqz fp32 and ORT int8 at 1 and 2 threads; paired counts of sqz auto vs ORT's best on the test
images, and each one's top-1 changes vs fp32 there (flips); with --holdout N, top-1 changes vs fp32 on N train images outside the calibration set.
Bench-only code."""
import argparse
import contextlib
import gzip
import io
import json
import math
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["lenet300", "lenet5", "mobilenet", "resnet"]
SQZ_METHODS = ["minmax", "percentile", "kl", "mse"]
DATA = "/usr/share/datasets/fashion-mnist"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- calibration images, decoded as sqz does (8-bit PNG, manifest preprocessing)
def png_decode(path):
    b = open(path, "rb").read()
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(path + ": not a PNG")
    pos, idat = 8, b""
    while pos < len(b):
        n = int.from_bytes(b[pos:pos + 4], "big")
        tag, body = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ct = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ct != 0:
                raise ValueError(path + ": bench decodes 8-bit gray PNGs only")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    out = np.zeros((h, w), np.uint8)
    prev = np.zeros(w, np.int32)
    for y in range(h):
        f, row = raw[y * (w + 1)], np.frombuffer(raw, np.uint8, w, y * (w + 1) + 1).astype(np.int32)
        cur = np.zeros(w, np.int32)
        for x in range(w):
            a = cur[x - 1] if x else 0
            c = prev[x - 1] if x else 0
            if f == 0:
                v = row[x]
            elif f == 1:
                v = row[x] + a
            elif f == 2:
                v = row[x] + prev[x]
            elif f == 3:
                v = row[x] + (a + prev[x]) // 2
            else:
                p = a + prev[x] - c
                pa, pb, pc = abs(p - a), abs(p - prev[x]), abs(p - c)
                v = row[x] + (a if pa <= pb and pa <= pc else prev[x] if pb <= pc else c)
            cur[x] = v & 255
        out[y] = cur
        prev = cur
    return out


def calib_spec(manifest):
    """(image paths, scale, mean, std) of a gray calibration manifest"""
    d = os.path.dirname(manifest)
    keys, paths = {}, []
    for line in open(manifest):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition(":")
        if sep and k.isidentifier() and k in ("color", "scale", "mean", "std", "layout"):
            keys[k] = v.strip()
        else:
            paths.append(os.path.join(d, line))
    scale, mean, std = float(keys.get("scale", 1 / 255)), float(keys.get("mean", 0)), float(
        keys.get("std", 1))
    return paths, scale, mean, std


def calib_images(manifest):
    paths, scale, mean, std = calib_spec(manifest)
    return [((png_decode(p).astype(np.float32) * np.float32(scale) - np.float32(mean)) /
             np.float32(std)).reshape(1, 1, 28, 28) for p in paths]


def test_set():
    x = np.frombuffer(gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")).read(), np.uint8,
                      offset=16).reshape(-1, 1, 28, 28)
    y = np.frombuffer(gzip.open(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).read(), np.uint8,
                      offset=8)
    x = ((x.astype(np.float32) * np.float32(1 / 255) - np.float32(0.286)) / np.float32(0.353))
    return x, y


SELECT_N = 5000  # train images of sqz quant --method auto --select (the split's last)


def train_outside_calib(manifest):
    """Train images and labels, and the indices of those outside the calibration set."""
    import re
    cal = set()
    for line in open(manifest):
        mm = re.search(r"train(\d+)_", line)
        if mm:
            cal.add(int(mm.group(1)))
    xs = np.frombuffer(gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")).read(),
                       np.uint8, offset=16).reshape(-1, 28, 28)
    ys = np.frombuffer(gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).read(),
                       np.uint8, offset=8)
    return xs, ys, [i for i in range(len(ys)) if i not in cal]


def select_set(manifest, work):
    """The last SELECT_N train images outside the calibration set, as an npy_batch manifest:
    the images sqz quant --method auto chooses on (--select; never the test split)."""
    xs, _, rest = train_outside_calib(manifest)
    sel = np.array(rest[-SELECT_N:])
    np.save(os.path.join(work, "select.npy"), ((xs[sel].astype(np.float32) * np.float32(1 / 255) -
                                                np.float32(0.286)) / np.float32(0.353)).reshape(
        -1, 1, 28, 28))
    path = os.path.join(work, "select.txt")
    with open(path, "w") as f:
        f.write("# train images outside the calibration set, for --method auto's choice\n"
                "npy_batch: select.npy\n")
    return path


def holdout_set(manifest, work, n):
    """The first n train images (index order) that are not in the calibration set nor in the
    auto selection set: written as the idx files sqz eval --data-dir reads, and returned
    preprocessed (x, y)."""
    xs, ys, rest = train_outside_calib(manifest)
    sel = np.array(rest[:-SELECT_N][:n])
    d = os.path.join(work, "holdout")
    os.makedirs(d, exist_ok=True)
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(sel), 28, 28) + xs[sel].tobytes())
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(sel)) + ys[sel].tobytes())
    x = ((xs[sel].astype(np.float32) * np.float32(1 / 255) - np.float32(0.286)) /
         np.float32(0.353)).reshape(-1, 1, 28, 28)
    return d, x, ys[sel]


def sqz_preds(binary, model, pred, data_dir=None):
    cmd = ["eval", model, "--dataset", "fashion-mnist", "--predictions", pred, "--threads", "2"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    try:
        sqz(cmd + ["--batch", "50"], binary)
    except RuntimeError:  # a model whose batch is fixed
        sqz(cmd, binary)
    return np.frombuffer(open(pred, "rb").read(), np.uint8)


def ort_preds(path, x):
    s = ort_session(path, 2)
    nm = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {nm: x[i:i + 500]})[0].argmax(1)
                           for i in range(0, len(x), 500)])


# ---- sqz
# sqz quant's OpenMP threads wait passively (sleep at a barrier instead of
# spinning) unless the caller chose a policy: on a loaded 2-core machine
# libgomp's default spinning made --threads 2 10x slower than one thread
QUANT_ENV = dict(os.environ)
QUANT_ENV.setdefault("OMP_WAIT_POLICY", "passive")


def sqz(args, binary, env=None):
    r = subprocess.run([binary] + args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("sqz %s: %s" % (args[0], r.stderr.strip()))
    return r.stdout


def sqz_eval(binary, model, limit):
    cmd = ["eval", model, "--dataset", "fashion-mnist", "--json", "--threads", "2",
           "--batch", "50"]
    if limit:
        cmd += ["--limit", str(limit)]
    try:
        out = sqz(cmd, binary)
    except RuntimeError:  # a model whose batch is fixed
        out = sqz(cmd[:-2], binary)
    r = json.loads(out[out.index("{"):])
    return 100.0 * r["correct"] / r["total"]


def sqz_times(binary, model, threads, runs, warmup):
    """per-run times (ms) of one `sqz bench` process"""
    out = sqz(["bench", model, "--threads", str(threads), "--runs", str(runs), "--warmup",
               str(warmup), "--json"], binary)
    return json.loads(out[out.index("{"):])["times_ms"]


LAT_ROUNDS = 5        # interleaved rounds per engine
LAT_MIN_ROUND_MS = 50  # a round lasts at least this long (tiny models: thousands of runs)


def latency_rounds(binary, int8_path, fp32_path, ort_path, threads, runs):
    """Medians (ms) of sqz int8, sqz fp32 and ORT int8 over LAT_ROUNDS interleaved rounds,
    the engines' order rotated each round, each round at least LAT_MIN_ROUND_MS long and
    its warm-up a quarter of that (the same counts for all three, estimated on sqz fp32):
    this host's slow periods of a few seconds then fall on all three engines alike rather
    than on one engine's single block of runs."""
    est = statistics.median(sqz_times(binary, fp32_path, threads, 20, 5))
    per = max(math.ceil(runs / LAT_ROUNDS), math.ceil(LAT_MIN_ROUND_MS / max(est, 1e-4)))
    warm = max(10, math.ceil(LAT_MIN_ROUND_MS / 4 / max(est, 1e-4)))
    ort_s = ort_session(ort_path, threads) if ort_path else None
    t = {"sqz_int8": [], "sqz_fp32": [], "ort_int8": []}
    engines = ["sqz_int8", "sqz_fp32"] + (["ort_int8"] if ort_s else [])
    for k in range(LAT_ROUNDS):
        for e in engines[k % len(engines):] + engines[:k % len(engines)]:
            if e == "ort_int8":
                t[e] += ort_times(ort_s, per, warm)
            else:
                t[e] += sqz_times(binary, int8_path if e == "sqz_int8" else fp32_path, threads,
                                  per, warm)
    r = {e: statistics.median(v) for e, v in t.items() if v}
    r["runs"] = per * LAT_ROUNDS
    return r


# ---- ONNX Runtime
class Reader:
    def __init__(self, name, images):
        self.name, self.images, self.i = name, images, 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.name: self.images[self.i - 1]}

    def rewind(self):
        self.i = 0


class PngReader:
    """A calibration reader that opens, decodes (Pillow) and preprocesses each image file when
    quantize_static asks for it, so decoding the PNGs happens inside the call, as it does
    inside sqz quant."""
    def __init__(self, name, paths, scale, mean, std):
        from PIL import Image
        self.open, self.name, self.paths, self.i = Image.open, name, paths, 0
        self.scale, self.mean, self.std = np.float32(scale), np.float32(mean), np.float32(std)

    def get_next(self):
        if self.i >= len(self.paths):
            return None
        with self.open(self.paths[self.i]) as im:
            x = np.asarray(im.convert("L"), dtype=np.float32)
        self.i += 1
        x = (x * self.scale - self.mean) / self.std
        return {self.name: x.reshape(1, 1, x.shape[0], x.shape[1])}

    def rewind(self):
        self.i = 0


def have_pillow():
    try:
        import PIL.Image  # noqa: F401
        return True
    except ImportError:
        return False


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_accuracy(path, x, y, limit):
    s = ort_session(path, 2)
    name = s.get_inputs()[0].name
    n = limit or len(y)
    correct = 0
    for i in range(0, n, 100):
        out = s.run(None, {name: x[i:min(n, i + 100)]})[0]
        correct += int((out.argmax(1) == y[i:min(n, i + 100)]).sum())
    return 100.0 * correct / n


def ort_times(s, runs, warmup):
    """per-run times (ms) of `runs` runs of session s after `warmup` runs"""
    name = s.get_inputs()[0].name
    x = np.random.RandomState(1).uniform(-1, 1, (1, 1, 28, 28)).astype(np.float32)
    for _ in range(warmup):
        s.run(None, {name: x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {name: x})
        t.append((time.perf_counter() - t0) * 1e3)
    return t


def ort_wait_policy():
    """How ORT's calibration sessions wait: as sqz quant's threads (QUANT_ENV)."""
    return "spinning (ORT default)" if QUANT_ENV["OMP_WAIT_POLICY"].lower() == "active" \
        else "no spinning"


@contextlib.contextmanager
def ort_passive_sessions():
    """quantize_static makes its calibration session with onnxruntime.SessionOptions() defaults
    (threads = the cores, as sqz quant --threads here; workers spin while they wait). sqz quant
    runs with OMP_WAIT_POLICY=passive here (QUANT_ENV): for the same conditions, the sessions
    made inside the call get no spinning either, unless OMP_WAIT_POLICY=active (measured, load
    ~10: lenet300 minmax 0.31 -> 0.23 s wall, resnet 2.0 -> 1.2 s). Only inside the call: the
    latency figures keep ORT's defaults."""
    import onnxruntime as ort
    if QUANT_ENV["OMP_WAIT_POLICY"].lower() == "active":
        yield
        return
    base = ort.SessionOptions

    class PassiveOptions(base):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.add_session_config_entry("session.inter_op.allow_spinning", "0")

    ort.SessionOptions = PassiveOptions
    try:
        yield
    finally:
        ort.SessionOptions = base


def ort_quantize(src, dst, images, method):
    """images: decoded arrays, or a (paths, scale, mean, std) tuple for a PngReader"""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    name = ort_session(src, 1).get_inputs()[0].name
    reader = PngReader(name, *images) if isinstance(images, tuple) else Reader(name, images)
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile,
          "distribution": CalibrationMethod.Distribution}[method]
    t0, c0 = time.perf_counter(), time.process_time()
    # its progress lines ("Collecting tensor data ...") are not ours to print: dropped
    with contextlib.redirect_stdout(io.StringIO()), ort_passive_sessions():
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QInt8, calibrate_method=cm)
    return time.perf_counter() - t0, time.process_time() - c0


PAIRS = [("minmax", "minmax"), ("percentile", "percentile"), ("kl", "entropy"),
         ("mse", "distribution")]


def sqz_timed(binary, args):
    """Wall and CPU seconds of one sqz run (a fresh process: exec and exit included)."""
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    sqz(args, binary, QUANT_ENV)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)


def time_calibration(a, m, onnx_p, manifest, npy_manifest, images):
    """Calibration wall / CPU time of each method pair, a.calib_reps rounds. A round times, per
    pair, sqz from the PNGs, sqz from the pre-decoded .npy, ORT's quantize_static given the
    decoded arrays and (with Pillow) ORT's quantize_static with a reader that decodes the PNGs,
    one after the other in an order rotated every round (no tool always runs first, after the
    same other or in the same part of a load swing); figures are medians over the rounds. Every
    sqz run must write the same bytes as the first (no state carried between runs)."""
    sq = {sm: {"png": [], "npy": [], "same_reps": True} for sm, _ in PAIRS}
    ort = {om: [] for _, om in PAIRS}
    ort_png = {om: [] for _, om in PAIRS}
    ort_err = {}
    spec = calib_spec(manifest) if have_pillow() else None
    # a model whose round is short (the LeNets: ~1-2 s) gets three times the rounds: a 10 ms process
    # on a shared 2-core machine is often caught by another job's burst, and more interleaved
    # rounds make the median steadier at little cost
    reps, rnd, t_start = a.calib_reps, 0, time.perf_counter()
    while rnd < reps:
        for sm, om in PAIRS:
            out = os.path.join(a.work, "%s.%s.int8.sqz" % (m, sm))
            out_n = os.path.join(a.work, "%s.%s.npy.int8.sqz" % (m, sm))
            jobs = ["png", "npy", "ort"] + (["ort_png"] if spec else [])
            jobs = jobs[rnd % len(jobs):] + jobs[:rnd % len(jobs)]
            for j in jobs:
                if j in ("ort", "ort_png"):
                    if om in ort_err:
                        continue
                    try:
                        (ort if j == "ort" else ort_png)[om].append(ort_quantize(
                            onnx_p, os.path.join(a.work, "%s.%s.%s.onnx" % (m, j, om)),
                            images if j == "ort" else spec, om))
                    except Exception as ex:  # report, keep going
                        ort_err[om] = str(ex).splitlines()[0][:200]
                        log("  ort %s failed: %s" % (om, ort_err[om]))
                    continue
                o = out if j == "png" else out_n
                prev = open(o, "rb").read() if rnd > 0 else None
                args = ["quant", onnx_p, "--calib", manifest if j == "png" else npy_manifest,
                        "--method", sm, "-o", o, "-q", "--threads", str(a.quant_threads)]
                if j == "png":
                    args += ["--json", out + ".json"]
                sq[sm][j].append(sqz_timed(a.sqz, args))
                if prev is not None and open(o, "rb").read() != prev:
                    sq[sm]["same_reps"] = False
        if rnd == 0 and time.perf_counter() - t_start < 2.5:
            reps = 3 * a.calib_reps
        log("  calibration round %d/%d done (load %.1f)" % (rnd + 1, reps, os.getloadavg()[0]))
        rnd += 1
    med = lambda v, k: statistics.median(x[k] for x in v)
    res_s, res_o = {}, {}
    for sm, om in PAIRS:
        png, npy = sq[sm]["png"], sq[sm]["npy"]
        same = open(os.path.join(a.work, "%s.%s.int8.sqz" % (m, sm)), "rb").read() == open(
            os.path.join(a.work, "%s.%s.npy.int8.sqz" % (m, sm)), "rb").read()
        res_s[sm] = {"wall_s": med(png, 0), "cpu_s": med(png, 1),
                     "wall_min_s": min(x[0] for x in png), "npy_wall_s": med(npy, 0),
                     "npy_cpu_s": med(npy, 1), "npy_wall_min_s": min(x[0] for x in npy),
                     "npy_same_model": same, "same_every_run": sq[sm]["same_reps"],
                     "runs": {"png": png, "npy": npy}}
        if om in ort_err:
            res_o[om] = {"error": ort_err[om]}
        else:
            res_o[om] = {"wall_s": med(ort[om], 0), "cpu_s": med(ort[om], 1),
                         "wall_min_s": min(x[0] for x in ort[om]), "runs": ort[om]}
            if ort_png[om]:
                # same images, same model expected: Pillow's decode equals ours
                same_o = open(os.path.join(a.work, "%s.ort.%s.onnx" % (m, om)), "rb").read() == \
                    open(os.path.join(a.work, "%s.ort_png.%s.onnx" % (m, om)), "rb").read()
                res_o[om].update({"png_wall_s": med(ort_png[om], 0),
                                  "png_cpu_s": med(ort_png[om], 1),
                                  "png_same_model": same_o, "png_runs": ort_png[om]})
        log("  %-10s sqz %.3f s (pre-decoded %.3f s%s%s), ORT %-12s %s" % (
            sm, res_s[sm]["wall_s"], res_s[sm]["npy_wall_s"], "" if same else ", MODEL DIFFERS",
            "" if sq[sm]["same_reps"] else ", RUNS DIFFER", om,
            "failed" if om in ort_err else "%.3f s" % res_o[om]["wall_s"]))
    return res_s, res_o


def print_calib_tables(rows, a, n_images, start_s):
    print("calibration time on the same %d images, seconds: median of %d interleaved rounds "
          "(3x that for a model whose round took under 2.5 s) "
          "(per round and method: sqz from the PNGs, sqz from the .npy, ORT from arrays and ORT "
          "from the PNGs, the order rotated "
          "each round), wall and CPU; ratio sqz / ORT per method pair (minmax-minmax, "
          "percentile-percentile, kl-entropy, mse-distribution)" % (n_images, a.calib_reps))
    print("sqz: the whole sqz quant process, --threads %d, OMP_WAIT_POLICY=%s (exec, import, PNG "
          "decoding, calibration, report, write; process start alone, sqz --version: %.1f ms); "
          "ORT: the quantize_static call in this warm Python process (imports done, images "
          "decoded into arrays), its sessions' default threads, %s"
          % (a.quant_threads, QUANT_ENV["OMP_WAIT_POLICY"], 1e3 * start_s, ort_wait_policy()))
    print("(1-minute load average before / after each model's rounds: %s)" % ", ".join(
        "%s %.1f/%.1f" % (r["model"], r["load"][0], r["load"][1]) for r in rows))
    print_calib_ratios(rows, PAIRS, "wall_s", "cpu_s", False)
    print("\nthe same, sqz from the same images pre-decoded into one .npy (manifest line "
          "'npy_batch: calib_predecoded.npy'; no PNG decoding, as ORT is given arrays): ratio "
          "sqz / ORT; 'same model': the .sqz written is byte-identical to the one from the PNGs")
    print_calib_ratios(rows, PAIRS, "npy_wall_s", "npy_cpu_s", True)
    if any("png_wall_s" in o for r in rows for o in r["ort"].values()):
        print("\nthe same, both from the PNG files: sqz from the PNGs (first table) over ORT's "
              "quantize_static with a reader that opens, decodes (Pillow) and preprocesses each "
              "PNG in get_next, so that the decoding falls inside the call as it does in sqz "
              "quant (ORT's own example reader decodes every image before the call instead); "
              "'MODEL DIFFERS': ORT's model differs from the one made from the arrays")
        print_calib_ratios(rows, PAIRS, "wall_s", "cpu_s", False, True)
    else:
        print("\n(no Pillow in the venv: ORT with a PNG-decoding reader not measured)")
    bad = ["%s %s" % (r["model"], sm) for r in rows for sm, _ in PAIRS
           if not r["sqz"][sm]["same_every_run"]]
    if bad:
        print("WARNING: sqz wrote different bytes across runs for: %s" % ", ".join(bad))


def print_calib_ratios(rows, pairs, wall_key, cpu_key, check_same, ort_png=False):
    """One line per model: sqz's calibration (wall_key / cpu_key of its runs) over ORT's per method
    pair (ort_png: ORT's runs whose reader decoded the PNGs); check_same flags a pre-decoded run
    whose model differs from the PNG one."""
    ow, oc = ("png_wall_s", "png_cpu_s") if ort_png else ("wall_s", "cpu_s")
    for r in rows:
        cells = []
        for sm, om in pairs:
            so, oo = r["sqz"][sm], r["ort"].get(om, {})
            if ow not in oo:
                cells.append("%s/%s: ORT failed" % (sm, om))
                continue
            differs = (check_same and not so["npy_same_model"]) or (
                ort_png and not oo["png_same_model"])
            cells.append("%s/%s wall %.3f/%.3f=%.3f cpu %.3f/%.3f=%.3f%s" % (
                sm, om, so[wall_key], oo[ow], so[wall_key] / oo[ow], so[cpu_key],
                oo[oc], so[cpu_key] / max(oo[oc], 1e-9), " (MODEL DIFFERS)" if differs else ""))
        print("%-10s %s" % (r["model"], "\n           ".join(cells)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqz", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--limit", type=int, default=0, help="test images (0: all 10,000)")
    ap.add_argument("--runs", type=int, default=200, help="timed latency runs")
    ap.add_argument("--quant-threads", type=int, default=os.cpu_count() or 1,
                    help="sqz quant --threads (default: the CPUs, as ONNX Runtime's sessions)")
    ap.add_argument("--holdout", type=int, default=0,
                    help="also measure fidelity on N train images outside the calibration set "
                         "and auto's selection set (0: no; 54500: all of them): accuracy and "
                         "top-1 changes vs fp32")
    ap.add_argument("--calib-reps", type=int, default=5,
                    help="interleaved rounds of the calibration timings (median reported)")
    ap.add_argument("--calib-only", action="store_true",
                    help="calibration timings only (no accuracy, latency or export)")
    ap.add_argument("--json")
    a = ap.parse_args()
    bl.quiet_onnxruntime()
    os.makedirs(a.work, exist_ok=True)
    manifest = os.path.join(ROOT, "calib-data", "fashion-mnist", "manifest.txt")
    images = calib_images(manifest)
    # the same images pre-decoded into one [N, C, H, W] .npy (the arrays ORT's
    # quantize_static is given), for sqz's like-for-like calibration time
    npy_manifest = os.path.join(a.work, "calib_predecoded.txt")
    np.save(os.path.join(a.work, "calib_predecoded.npy"), np.concatenate(images))
    with open(npy_manifest, "w") as f:
        f.write("# the images of calib-data/fashion-mnist, decoded and preprocessed by bench/int8.py\n"
                "npy_batch: calib_predecoded.npy\n")
    x, y = test_set()
    # process start alone (sqz's timings include it; ORT's call runs in this process)
    start_s = statistics.median(sqz_timed(a.sqz, ["--version"])[0] for _ in range(11))
    hold = holdout_set(manifest, a.work, a.holdout) if a.holdout > 0 else None
    select = select_set(manifest, a.work)
    rows = []
    for m in [s for s in a.models.split(",") if s]:
        onnx_p = os.path.join(ROOT, "tools", "models", m + ".onnx")
        if not os.path.exists(onnx_p):
            log("skip %s: %s missing" % (m, onnx_p))
            continue
        log("== %s" % m)
        r = {"model": m, "onnx_bytes": os.path.getsize(onnx_p)}
        fp32 = os.path.join(a.work, m + ".sqz")
        sqz(["import", onnx_p, "-o", fp32], a.sqz)
        r["load"] = [os.getloadavg()[0]]
        r["sqz"], r["ort"] = time_calibration(a, m, onnx_p, manifest, npy_manifest, images)
        r["load"].append(os.getloadavg()[0])
        if a.calib_only:
            rows.append(r)
            continue
        r["fp32_acc"] = sqz_eval(a.sqz, fp32, a.limit)
        for meth in SQZ_METHODS:
            out = os.path.join(a.work, "%s.%s.int8.sqz" % (m, meth))
            jr = json.load(open(out + ".json"))
            sq = sorted(l["sqnr_db"] for l in jr["layers"] if l["int8"] and l["sqnr_db"] is not None)
            r["sqz"][meth].update({"acc": sqz_eval(a.sqz, out, a.limit),
                                   "bytes": os.path.getsize(out),
                                   "calib_s": jr["calibration_seconds"],
                                   "sqnr_min": sq[0] if sq else None,
                                   "sqnr_median": statistics.median(sq) if sq else None})
            log("  sqz %-10s acc %.2f  %d bytes" % (meth, r["sqz"][meth]["acc"],
                                                    r["sqz"][meth]["bytes"]))
        # the same methods with empirical bias correction (accuracy only)
        for meth in SQZ_METHODS:
            out = os.path.join(a.work, "%s.%s-emp.int8.sqz" % (m, meth))
            sqz(["quant", onnx_p, "--calib", manifest, "--method", meth, "--bias-correction",
                 "empirical", "-o", out, "-q"], a.sqz)
            r["sqz"][meth + "+emp"] = {"acc": sqz_eval(a.sqz, out, a.limit)}
            log("  sqz %-10s +empirical bias correction acc %.2f" % (meth,
                                                                   r["sqz"][meth + "+emp"]["acc"]))
        # and with GPTQ weight rounding (accuracy only)
        for meth in SQZ_METHODS:
            out = os.path.join(a.work, "%s.%s-gptq.int8.sqz" % (m, meth))
            sqz(["quant", onnx_p, "--calib", manifest, "--method", meth, "--rounding", "gptq",
                 "-o", out, "-q"], a.sqz)
            r["sqz"][meth + "+gptq"] = {"acc": sqz_eval(a.sqz, out, a.limit)}
            log("  sqz %-10s +gptq rounding acc %.2f" % (meth, r["sqz"][meth + "+gptq"]["acc"]))
        # and with sequential GPTQ (accuracy only)
        for meth in SQZ_METHODS:
            out = os.path.join(a.work, "%s.%s-seq.int8.sqz" % (m, meth))
            sqz(["quant", onnx_p, "--calib", manifest, "--method", meth, "--rounding", "gptq-seq",
                 "-o", out, "-q"], a.sqz)
            r["sqz"][meth + "+seq"] = {"acc": sqz_eval(a.sqz, out, a.limit)}
            log("  sqz %-10s +gptq-seq rounding acc %.2f" % (meth, r["sqz"][meth + "+seq"]["acc"]))
        # --method auto: the choice made on training images only (output SQNR vs fp32 on the
        # selection set, train images outside the calibration set)
        out = os.path.join(a.work, "%s.auto.int8.sqz" % m)
        t0 = time.perf_counter()
        alog = sqz(["quant", onnx_p, "--calib", manifest, "--method", "auto", "--select",
                    select, "-o", out, "-q"], a.sqz)
        part = alog.split("auto: chose ")[1].split(";")[0]
        chose = part.split()[0] + ("+emp" if "empirical" in part else "") + (
            "+wmse" if "mse weight" in part else "") + ("+gptq" if "gptq rounding" in part else
                                                        "+seq" if "gptq-seq" in part else "") + (
            "+search" if "searched ranges" in part else "")
        r["auto"] = {"acc": sqz_eval(a.sqz, out, a.limit), "chose": chose,
                     "wall_s": time.perf_counter() - t0, "bytes": os.path.getsize(out)}
        log("  sqz auto: %s acc %.2f" % (chose, r["auto"]["acc"]))
        for meth, o in r["ort"].items():
            if "error" in o:
                continue
            out = os.path.join(a.work, "%s.ort.%s.onnx" % (m, meth))
            o.update({"acc": ort_accuracy(out, x, y, a.limit), "bytes": os.path.getsize(out)})
            log("  ort %-12s acc %.2f  %d bytes" % (meth, o["acc"], o["bytes"]))
        best_s = max(SQZ_METHODS, key=lambda k: r["sqz"][k]["acc"])  # by test accuracy
        # the same over every variant measured (+emp, +gptq): the table's best-on-test
        r["best_sqz_any"] = max(r["sqz"], key=lambda k: r["sqz"][k]["acc"])
        # QDQ export of sqz's best, run in ORT: accuracy and label agreement with sqz int8
        qdq = os.path.join(a.work, "%s.%s.qdq.onnx" % (m, best_s))
        sqz(["quant", onnx_p, "--calib", manifest, "--method", best_s, "-o",
             os.path.join(a.work, "%s.qdq.int8.sqz" % m), "--onnx-qdq", qdq, "-q"], a.sqz)
        preds = os.path.join(a.work, "%s.qdq.pred" % m)
        cmd = ["eval", os.path.join(a.work, "%s.qdq.int8.sqz" % m), "--dataset", "fashion-mnist",
               "--predictions", preds, "--threads", "2"]
        sqz(cmd + (["--limit", str(a.limit)] if a.limit else []), a.sqz)
        sp = np.frombuffer(open(preds, "rb").read(), np.uint8)
        s_ort = ort_session(qdq, 2)
        nm = s_ort.get_inputs()[0].name
        nq = len(sp)
        op = np.concatenate([s_ort.run(None, {nm: x[i:min(nq, i + 100)]})[0].argmax(1)
                             for i in range(0, nq, 100)])
        r["qdq"] = {"ort_acc": 100.0 * float((op == y[:nq]).mean()),
                    "agree": 100.0 * float((op == sp).mean()), "bytes": os.path.getsize(qdq)}
        ok_ort = [k for k in r["ort"] if "acc" in r["ort"][k]]
        best_o = max(ok_ort, key=lambda k: r["ort"][k]["acc"]) if ok_ort else None
        r["best_sqz"], r["best_ort"] = best_s, best_o
        # paired counts on the test images: sqz auto right where ORT's best is wrong, and the
        # reverse (the accuracy gap is their difference; a sign test on them says whether it
        # is more than chance)
        if best_o:
            pa = os.path.join(a.work, "%s.auto.pred" % m)
            cmd = ["eval", os.path.join(a.work, "%s.auto.int8.sqz" % m), "--dataset",
                   "fashion-mnist", "--predictions", pa, "--threads", "2"]
            sqz(cmd + (["--limit", str(a.limit)] if a.limit else []), a.sqz)
            ap = np.frombuffer(open(pa, "rb").read(), np.uint8)
            so = ort_session(os.path.join(a.work, "%s.ort.%s.onnx" % (m, best_o)), 2)
            nm = so.get_inputs()[0].name
            na = len(ap)
            bp = np.concatenate([so.run(None, {nm: x[i:min(na, i + 100)]})[0].argmax(1)
                                 for i in range(0, na, 100)])
            r["paired"] = {"sqz_only": int(((ap == y[:na]) & (bp != y[:na])).sum()),
                           "ort_only": int(((ap != y[:na]) & (bp == y[:na])).sum())}
            # fidelity on the same test images: top-1 changes vs the fp32 model (an int8 model
            # that reproduced fp32 exactly would score fp32's accuracy, so accuracy above fp32
            # is chance; flips say how close each quantizer stays)
            fp = sqz_preds(a.sqz, fp32, os.path.join(a.work, "%s.fp32.test.pred" % m))[:na]
            bsk = r["best_sqz_any"]
            bsp = sqz_preds(a.sqz, os.path.join(a.work, "%s.%s.int8.sqz" % (
                m, bsk.replace("+", "-"))), os.path.join(a.work, "%s.best.test.pred" % m))[:na]
            r["flips"] = {"auto": int((ap != fp).sum()), "best": int((bsp != fp).sum()),
                          "ort": int((bp != fp).sum())}
        if hold:  # fidelity on held-out train images: top-1 changes vs fp32 (fewer: closer)
            hd, hx, hy = hold
            f32 = sqz_preds(a.sqz, fp32, os.path.join(a.work, "%s.fp32.hold.pred" % m), hd)
            au = sqz_preds(a.sqz, os.path.join(a.work, "%s.auto.int8.sqz" % m),
                           os.path.join(a.work, "%s.auto.hold.pred" % m), hd)
            r["holdout"] = {"fp32": [100.0 * float((f32 == hy).mean()), 0],
                            "sqz auto": [100.0 * float((au == hy).mean()), int((au != f32).sum())]}
            for k in ok_ort:
                op = ort_preds(os.path.join(a.work, "%s.ort.%s.onnx" % (m, k)), hx)
                r["holdout"]["ORT " + k] = [100.0 * float((op == hy).mean()),
                                            int((op != f32).sum())]
        best_path = os.path.join(a.work, "%s.%s.int8.sqz" % (m, best_s))
        r["lat"] = {}
        for th in (1, 2):
            ort_path = os.path.join(a.work, "%s.ort.%s.onnx" % (m, best_o)) if best_o else None
            r["lat"][th] = latency_rounds(a.sqz, best_path, fp32, ort_path, th, a.runs)
        rows.append(r)
    # ---- tables
    if a.calib_only:
        print_calib_tables(rows, a, len(images), start_s)
        return
    n = a.limit or 10000
    print("INT8 post-training quantization, Fashion-MNIST test accuracy on %d images (%%), "
          "calibration: %d train images (calib-data/fashion-mnist)" % (n, len(images)))
    cols = SQZ_METHODS + [k + "+emp" for k in SQZ_METHODS] + [k + "+gptq" for k in SQZ_METHODS] + [
        k + "+seq" for k in SQZ_METHODS]
    print("sqz per method (+emp: --bias-correction empirical, +gptq: --rounding gptq, +seq: "
          "--rounding gptq-seq):")
    print("%-10s %7s | %s" % ("model", "fp32", " ".join("%14s" % k for k in cols)))
    for r in rows:
        print("%-10s %7.2f | %s" % (r["model"], r["fp32_acc"], " ".join(
            "%14.2f" % r["sqz"][k]["acc"] for k in cols)))
    print("\nsqz auto: method, bias correction, weight scales (+wmse: --weight-scale mse) and "
          "rounding chosen on training images only (--select: %d outside the calibration set), "
          "by int8-vs-fp32 output SQNR; ORT best: the best of its methods on the test set itself"
          % SELECT_N)
    print("(paired: test images sqz auto gets right and ORT best wrong / the reverse; flips: test "
          "images whose top-1 differs from fp32's, sqz auto / sqz best-on-test / ORT best)")
    print("%-10s %7s | %-40s | %-22s | %-27s | %7s %7s | %9s | %14s" % (
        "model", "fp32", "sqz auto (drop)", "sqz best-on-test", "ORT best (drop)", "auto-ORT",
        "best-ORT", "paired", "flips vs fp32"))
    for r in rows:
        bs, bo = r["best_sqz_any"], r["best_ort"]
        sa = r["sqz"][bs]["acc"]
        oa = r["ort"][bo]["acc"] if bo else float("nan")
        aa = r["auto"]["acc"]
        pc, fl = r.get("paired"), r.get("flips")
        print("%-10s %7.2f | %-24s %6.2f (%+5.2f) | %-15s %6.2f | %-12s %6.2f (%+5.2f) | %+7.2f %+7.2f"
              " | %9s | %14s" % (r["model"], r["fp32_acc"], r["auto"]["chose"], aa,
                                 aa - r["fp32_acc"], bs, sa, str(bo), oa, oa - r["fp32_acc"], aa - oa,
                                 sa - oa, "%d/%d" % (pc["sqz_only"], pc["ort_only"]) if pc else "-",
                                 "%d/%d/%d" % (fl["auto"], fl["best"], fl["ort"]) if fl else "-"))
    if hold:
        print("\nfidelity on %d train images outside the calibration set (never the test split): "
              "accuracy %% (top-1 changes vs fp32: fewer is closer to fp32; the models were "
              "trained on these images, so accuracy itself says little)" % len(hold[2]))
        for r in rows:
            print("%-10s %s" % (r["model"], "  ".join(
                "%s %.3f (%d)" % (k, v[0], v[1]) for k, v in r["holdout"].items())))
    print("\nORT quantize_static per method (QDQ, per-channel s8 weights, s8 activations), "
          "accuracy %:")
    for r in rows:
        print("%-10s %s" % (r["model"], "  ".join(
            "%s %s" % (k, "%.2f" % v["acc"] if "acc" in v else "failed") for k, v in
            r["ort"].items())))
    print("\n%-10s %11s %11s %7s %11s %7s | %-17s" % (
        "model", "fp32 ONNX B", "sqz int8 B", "ratio", "ORT int8 B", "ratio", "sqz SQNR min/med"))
    for r in rows:
        bs, bo = r["best_sqz"], r["best_ort"]
        s = r["sqz"][bs]
        ob = r["ort"][bo]["bytes"] if bo else 0
        print("%-10s %11d %11d %7.3f %11d %7.3f | %7.1f / %-7.1f" % (
            r["model"], r["onnx_bytes"], s["bytes"], s["bytes"] / r["onnx_bytes"], ob,
            ob / r["onnx_bytes"], s["sqnr_min"] or float("nan"), s["sqnr_median"] or float("nan")))
    print()
    print_calib_tables(rows, a, len(images), start_s)
    print("\nlatency, batch 1 (ms): median over %d interleaved rounds (order rotated, each >= %d "
          "ms, at least %d runs in all, column runs); speedups = fp32 / int8 and ORT int8 / sqz "
          "int8" % (LAT_ROUNDS, LAT_MIN_ROUND_MS, a.runs))
    print("%-10s %3s %10s %10s %10s %12s %12s %7s" % ("model", "thr", "sqz int8", "sqz fp32",
                                                     "ORT int8", "int8 speedup", "vs ORT int8",
                                                     "runs"))
    for r in rows:
        for th, l in r["lat"].items():
            o = l.get("ort_int8", float("nan"))
            print("%-10s %3d %10.4f %10.4f %10.4f %11.2fx %11.2fx %7d" % (
                r["model"], th, l["sqz_int8"], l["sqz_fp32"], o, l["sqz_fp32"] / l["sqz_int8"],
                o / l["sqz_int8"], l["runs"]))
    print("\nsqz's int8 model exported as ONNX QDQ (sqz quant --onnx-qdq), run in ONNX Runtime:")
    for r in rows:
        q = r["qdq"]
        print("%-10s %-10s ORT accuracy %.2f%%, label agreement with sqz int8 %.2f%%, %d bytes" % (
            r["model"], r["best_sqz"], q["ort_acc"], q["agree"], q["bytes"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
