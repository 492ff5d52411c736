#!/usr/bin/env python3
"""bench/int8_tv.py (run through bench/int8_tv.sh): whole-model INT8 latency on the
torchvision models of the latency bench (random weights, build/bench/tv fixtures):
sqz int8 vs sqz fp32 vs ONNX Runtime int8 (quantize_static, QDQ, per-channel s8 weights,
s8 activations, MinMax calibration on the same images), batch 1, at 1 and 2 threads,
measured in the same run and interleaved (R rounds; the minimum over rounds of each
engine's median). Calibration: N inputs, the fixture's input.npy plus N-1 N(0,1) arrays
(the weights are random, so any input distribution is as representative as another).
Also prints each engine's calibration wall / CPU time and the top-1 agreement of the
int8 outputs with sqz fp32 on the fixture input. Bench-only code."""
import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def sqz_median(sqz, model, threads, runs, x_path):
    out = bl.sqz_json(sqz, ["bench", model, "--threads", str(threads), "--runs", str(runs),
                            "--warmup", "3", "--input", x_path, "--json"])
    return out["median_ms"]


def sqz_output(sqz, model, x_path, y_path):
    bl.sqz_json(sqz, ["bench", model, "--runs", "1", "--warmup", "0", "--input", x_path,
                      "--output", y_path, "--json"])
    return np.load(y_path)


class Reader:
    def __init__(self, name, arrays):
        self.name, self.arrays, self.i = name, arrays, 0

    def get_next(self):
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {self.name: self.arrays[self.i - 1]}

    def rewind(self):
        self.i = 0


def ort_session(path, threads, no_spin=False):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if no_spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_median(sess, x, runs):
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def main():
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqz", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--models", default=",".join(bl.TV_MODELS))
    ap.add_argument("--calib", type=int, default=8, help="calibration inputs")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-spin", action="store_true",
                    help="idle workers sleep: OMP_WAIT_POLICY=passive for sqz, "
                         "session.intra_op.allow_spinning=0 for ORT (for a shared machine)")
    ap.add_argument("--json")
    a = ap.parse_args()
    bl.quiet_onnxruntime()
    # both engines as latency.sh runs them: idle workers spin (the runtimes'
    # default) unless --no-spin or OMP_WAIT_POLICY is set by the caller
    if a.no_spin:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    policy = os.environ.get("OMP_WAIT_POLICY", "default (spinning)")
    names = [m for m in a.models.split(",") if m]
    for n in names:
        if n not in bl.TV_MODELS:
            sys.exit("unknown model %r (known: %s)" % (n, ", ".join(bl.TV_MODELS)))
    threads = [int(t) for t in a.threads.split(",")]
    bl.ensure_fixtures(names, a.work)
    out_dir = os.path.join(a.work, "int8_tv")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for m in names:
        bl.log("== %s" % m)
        onnx_p = bl.onnx_path(m, a.work)
        x_path = os.path.join(a.work, "tv", m + ".input.npy")
        x = np.load(x_path).astype(np.float32)
        # calibration set: the fixture input + N(0,1) arrays, as .npy files in a manifest
        rng = np.random.RandomState(2026)
        arrays = [x] + [rng.randn(*x.shape).astype(np.float32) for _ in range(a.calib - 1)]
        cdir = os.path.join(out_dir, m + ".calib")
        os.makedirs(cdir, exist_ok=True)
        with open(os.path.join(cdir, "manifest.txt"), "w") as f:
            for i, arr in enumerate(arrays):
                np.save(os.path.join(cdir, "c%d.npy" % i), arr)
                f.write("c%d.npy\n" % i)
        fp32, why = bl.import_model(a.sqz, m, a.work)
        if not fp32:
            bl.log("  skip: " + why)
            continue
        r = {"model": m}
        int8 = os.path.join(out_dir, m + ".int8.sqz")
        t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([a.sqz, "quant", onnx_p, "--calib", os.path.join(cdir, "manifest.txt"),
                            "--method", "minmax", "--report-images", "1", "-o", int8, "-q"],
                           capture_output=True, text=True)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            bl.log("  sqz quant failed: " + p.stderr.strip()[-300:])
            continue
        r["sqz_calib"] = (time.perf_counter() - t0,
                          (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime))
        ort_p = os.path.join(out_dir, m + ".ort.int8.onnx")
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        name = ort_session(onnx_p, 1).get_inputs()[0].name
        t0, cp0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            quantize_static(onnx_p, ort_p, Reader(name, arrays), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        r["ort_calib"] = (time.perf_counter() - t0, time.process_time() - cp0)
        # agreement with sqz fp32 on the fixture input
        y32 = sqz_output(a.sqz, fp32, x_path, os.path.join(out_dir, m + ".y32.npy"))
        y8 = sqz_output(a.sqz, int8, x_path, os.path.join(out_dir, m + ".y8.npy"))
        yo = ort_session(ort_p, 1).run(None, {name: x})[0]
        r["top1_sqz"] = int(np.argmax(y8) == np.argmax(y32))
        r["top1_ort"] = int(np.argmax(yo) == np.argmax(y32))
        r["cos_sqz"] = float(np.dot(y8.ravel(), y32.ravel()) /
                             (np.linalg.norm(y8) * np.linalg.norm(y32) + 1e-30))
        r["cos_ort"] = float(np.dot(yo.ravel(), y32.ravel()) /
                             (np.linalg.norm(yo) * np.linalg.norm(y32) + 1e-30))
        r["lat"] = {}
        for th in threads:
            sess = ort_session(ort_p, th, a.no_spin)
            best = {"sqz_int8": [], "sqz_fp32": [], "ort_int8": []}
            for _ in range(a.rounds):
                best["sqz_int8"].append(sqz_median(a.sqz, int8, th, a.runs, x_path))
                best["sqz_fp32"].append(sqz_median(a.sqz, fp32, th, a.runs, x_path))
                best["ort_int8"].append(ort_median(sess, x, a.runs))
            r["lat"][th] = {k: min(v) for k, v in best.items()}
            bl.log("  %d thr: %s" % (th, " ".join("%s %.2f" % kv for kv in r["lat"][th].items())))
        rows.append(r)
    la = bl.loadavg()
    print("INT8 whole-model latency, torchvision models (random weights), batch 1, ms: min over "
          "%d rounds of the median of %d runs; load average %.2f %.2f %.2f; OMP_WAIT_POLICY=%s; %s" % (
              a.rounds, a.runs, la[0], la[1], la[2], policy,
              bl.machine_info().get("cpu", "?")))
    print("%-20s %3s %10s %10s %10s %14s %12s" % ("model", "thr", "sqz int8", "sqz fp32",
                                                 "ORT int8", "int8/fp32 sqz", "ORT/sqz int8"))
    for r in rows:
        for th, l in r["lat"].items():
            print("%-20s %3d %10.2f %10.2f %10.2f %13.2fx %11.2fx" % (
                r["model"], th, l["sqz_int8"], l["sqz_fp32"], l["ort_int8"],
                l["sqz_fp32"] / l["sqz_int8"], l["ort_int8"] / l["sqz_int8"]))
    print("\ncalibration on %d inputs (MinMax), wall / CPU s: sqz quant (whole command) vs "
          "quantize_static; int8 vs sqz fp32 on the fixture input: top-1 same, cosine" % a.calib)
    for r in rows:
        print("%-20s sqz %.2f / %.2f  ORT %.2f / %.2f  CPU ratio %.3f | sqz top1 %d cos %.4f | "
              "ORT top1 %d cos %.4f" % (r["model"], r["sqz_calib"][0], r["sqz_calib"][1],
                                       r["ort_calib"][0], r["ort_calib"][1],
                                       r["sqz_calib"][1] / max(r["ort_calib"][1], 1e-9),
                                       r["top1_sqz"], r["cos_sqz"], r["top1_ort"], r["cos_ort"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
