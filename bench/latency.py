"""Latency of sqz against ONNX Runtime, measured in the same run, interleaved.

Per model and thread count N:
  * one input (the torchvision fixture's input.npy, or a fixed N(0,1) array of the sqz
    session's input shape for the reference models) is fed to both engines;
  * sqz: `sqz bench --json --threads N --warmup W --runs R/K --input x.npy` (OMP_NUM_THREADS=N),
    each timed run = set_input + run;
  * ORT: InferenceSession(graph_optimization_level=ORT_ENABLE_ALL, intra_op_num_threads=N,
    inter_op_num_threads=1, ORT_SEQUENTIAL, CPUExecutionProvider), input and a preallocated
    output bound once with IOBinding, each timed run = run_with_iobinding (the Python call
    overhead, a few microseconds, is included);
  * K rounds alternate the order (sqz, ORT), (ORT, sqz), ... each round with W warm-up runs
    of its own; the medians are over all R timed runs of each engine; for small models R/K
    and W are raised so a round lasts --min-round-ms (50 ms) and its warm-up a quarter of
    that (estimated from 5 ORT runs; the same counts for both engines; column "runs");
  * numerics: sqz's output (written by the bench itself, last timed run) vs ORT's output on
    the same input, max abs error, flagged above 1e-4.
Run by bench/latency.sh (which builds sqz and provides a venv with onnxruntime)."""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

import benchlib as bl

TOL = 1e-4


def make_input(sqz, model_sqz, name, work):
    """The input both engines get: torchvision's fixture input or a fixed N(0,1) array."""
    info = bl.sqz_json(sqz, ["info", "--json", model_sqz])
    if len(info["inputs"]) != 1:
        raise RuntimeError("%d inputs (the bench feeds single-input models)" % len(info["inputs"]))
    shape = tuple(info["inputs"][0]["shape"])
    if name in bl.TV_MODELS:
        path = os.path.join(work, "tv", name + ".input.npy")
        x = np.load(path)
        if tuple(x.shape) != shape:
            raise RuntimeError("fixture input %s vs sqz input %s" % (x.shape, shape))
        return path, x
    d = os.path.join(work, "inputs")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name + ".npy")
    x = np.random.RandomState(1234).standard_normal(shape).astype(np.float32)
    np.save(path, x)
    return path, x


class OrtRunner:
    def __init__(self, onnx, threads, x, no_spin):
        so = ort.SessionOptions()
        if no_spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
        ins = self.sess.get_inputs()
        if len(ins) != 1:
            raise RuntimeError("ORT: %d inputs" % len(ins))
        self.x = np.ascontiguousarray(x)
        out_name = self.sess.get_outputs()[0].name
        y = self.sess.run([out_name], {ins[0].name: self.x})[0]
        self.y = np.empty_like(y)
        self.io = self.sess.io_binding()
        self.io.bind_cpu_input(ins[0].name, self.x)
        self.io.bind_output(out_name, "cpu", 0, np.float32, list(self.y.shape),
                            self.y.ctypes.data)

    def run(self):
        self.sess.run_with_iobinding(self.io)

    def bench(self, warmup, runs):
        for _ in range(warmup):
            self.run()
        t = []
        for _ in range(runs):
            a = time.perf_counter()
            self.sess.run_with_iobinding(self.io)
            t.append((time.perf_counter() - a) * 1e3)
        return t


def sqz_bench(sqz, model, threads, warmup, runs, x_path, y_path, no_spin):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if no_spin:
        env["OMP_WAIT_POLICY"] = "passive"
    args = [sqz, "bench", model, "--json", "--threads", str(threads), "--warmup", str(warmup),
            "--runs", str(runs), "--input", x_path]
    if y_path:
        args += ["--output", y_path]
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError((r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1])
    return json.loads(r.stdout)


def summary(t):
    return {"median_ms": statistics.median(t), "min_ms": min(t),
            "mean_ms": statistics.fmean(t), "max_ms": max(t), "runs": len(t)}


def measure(sqz, name, model_sqz, onnx, threads, x_path, x, args, work):
    """Interleaved rounds; returns the result dict."""
    per_round = max(1, math.ceil(args.runs / args.rounds))
    warmup = args.warmup
    load = bl.loadavg()[0]
    runner = OrtRunner(onnx, threads, x, args.no_spin)
    if args.min_round_ms > 0:
        # tiny models: enough runs that each round lasts min_round_ms and its warm-up a
        # quarter of that (the same counts for both engines, estimated on ORT)
        est = statistics.median(runner.bench(2, 5))
        per_round = max(per_round, math.ceil(args.min_round_ms / max(est, 1e-4)))
        warmup = max(warmup, math.ceil(args.min_round_ms / 4 / max(est, 1e-4)))
    ts, to, arena = [], [], None
    y_path = os.path.join(work, "out", "%s.t%d.sqz_out.npy" % (name, threads))
    os.makedirs(os.path.dirname(y_path), exist_ok=True)
    for k in range(args.rounds):
        order = ("sqz", "ort") if k % 2 == 0 else ("ort", "sqz")
        for eng in order:
            if eng == "sqz":
                j = sqz_bench(sqz, model_sqz, threads, warmup, per_round, x_path,
                              y_path if k == 0 else None, args.no_spin)
                ts += j["times_ms"]
                arena = j["arena_bytes"]
            else:
                to += runner.bench(warmup, per_round)
    ys = np.load(y_path)
    yo = runner.y
    if ys.shape != yo.shape:
        err = float("inf")
        log_err = "shape %s vs ORT %s" % (ys.shape, yo.shape)
    else:
        err = float(np.max(np.abs(ys.astype(np.float64) - yo.astype(np.float64))))
        log_err = None
    s, o = summary(ts), summary(to)
    return {"model": name, "threads": threads, "sqz": dict(s, arena_bytes=arena), "ort": o,
            "ratio": s["median_ms"] / o["median_ms"], "max_abs_err": err,
            "numerics_ok": err <= TOL, "numerics_note": log_err, "loadavg_1min": load,
            "out_absmax": float(np.max(np.abs(yo)))}


def finite(o):
    """JSON has no inf / nan: null instead."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    return o


def geomean(v):
    v = [x for x in v if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def print_table(threads, rows, skipped, args_no_spin):
    print()
    print("threads = %d   (median of timed runs; ratio < 1: sqz faster)" % threads)
    hdr = "%-20s %10s %10s %9s %10s %10s %11s %6s %7s" % (
        "model", "sqz ms", "ORT ms", "sqz/ORT", "sqz min", "ORT min", "max|err|", "load", "runs")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        flag = "" if r["numerics_ok"] else "  <-- > %g" % TOL
        if r["numerics_note"]:
            flag += " (" + r["numerics_note"] + ")"
        print("%-20s %10.4f %10.4f %9.3f %10.4f %10.4f %11.3g %6.2f %7d%s" % (
            r["model"], r["sqz"]["median_ms"], r["ort"]["median_ms"], r["ratio"],
            r["sqz"]["min_ms"], r["ort"]["min_ms"], r["max_abs_err"], r["loadavg_1min"],
            r["sqz"]["runs"], flag))
    for name, why in skipped:
        print("%-20s %s" % (name, why))
    g = geomean([r["ratio"] for r in rows])
    print("%-20s %10s %10s %9.3f" % ("geomean (%d)" % len(rows), "", "", g))
    ncpu = len(os.sched_getaffinity(0))
    busy = [r["model"] for r in rows if r["loadavg_1min"] > ncpu + 0.5]
    if busy:
        print("warning: 1-min load average above %.1f (CPUs oversubscribed by other jobs) while "
              "measuring %s: these figures partly measure the contention" % (
                  ncpu + 0.5, ", ".join(busy)))
        if threads > 1 and not args_no_spin:
            print("         spinning OpenMP / ORT workers on oversubscribed CPUs wait for whole "
                  "time slices: try --no-spin")
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sqz", required=True, help="sqz binary")
    ap.add_argument("--work", required=True, help="work dir (fixtures cache, .sqz files)")
    ap.add_argument("--quick", action="store_true",
                    help="2 models, 10 runs, 2 warm-up runs: a fast check of the instrument")
    ap.add_argument("--models", help="comma list or 'all' (default: all 10, or 2 with --quick)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--runs", type=int, help="timed runs per engine (default 30; quick 10)")
    ap.add_argument("--warmup", type=int, help="warm-up runs per round (default 3; quick 2)")
    ap.add_argument("--min-round-ms", type=float, default=50.0,
                    help="raise the runs per round (and the warm-up to a quarter) so a round "
                         "lasts at least this long: tiny models get thousands of runs "
                         "(default 50; 0: exactly --runs)")
    ap.add_argument("--rounds", type=int,
                    help="interleaved rounds, order alternating (default 10; quick 2)")
    ap.add_argument("--no-spin", action="store_true",
                    help="idle worker threads sleep instead of spinning, in both engines "
                         "(sqz: OMP_WAIT_POLICY=passive; ORT: session.intra_op.allow_spinning=0); "
                         "use on a machine shared with other jobs")
    ap.add_argument("--cpus", help="pin this process and sqz to these CPUs, e.g. 0 or 0,1")
    ap.add_argument("--json", dest="json_out", help="write all figures to this file")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 10 if args.quick else 30
    if args.rounds is None:
        args.rounds = 2 if args.quick else 10
    if args.warmup is None:
        args.warmup = 2 if args.quick else 3
    if args.runs < 1 or args.warmup < 0 or args.rounds < 1:
        sys.exit("--runs >= 1, --warmup >= 0, --rounds >= 1")
    threads = [int(t) for t in args.threads.split(",") if t]
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    names = bl.parse_models(args.models, args.quick)
    sqz = os.path.abspath(args.sqz)
    work = os.path.abspath(args.work)

    mi = bl.machine_info()
    la0 = bl.loadavg()
    print("sqz latency vs ONNX Runtime %s   cpu: %s   cpus: %d (affinity %s)" % (
        ort.__version__, mi.get("cpu", "?"), mi["nproc"],
        ",".join(map(str, sorted(os.sched_getaffinity(0))))))
    print("runs per engine: at least %d (in %d interleaved rounds, each at least %g ms), "
          "warm-up at least %d per round; load average at start %.2f" % (
              math.ceil(args.runs / args.rounds) * args.rounds, args.rounds, args.min_round_ms,
              args.warmup, la0[0]))
    env_desc = " ".join("%s=%s" % (k, os.environ[k]) for k in
                        ("OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                        if k in os.environ)
    print("env: OMP_NUM_THREADS=<threads> for sqz%s%s" % (
        " " + env_desc if env_desc else "",
        "; --no-spin: OMP_WAIT_POLICY=passive (sqz), allow_spinning=0 (ORT)" if args.no_spin
        else "; spin-waiting thread pools (library defaults)"))
    sys.stdout.flush()

    bl.ensure_fixtures([n for n in names if n in bl.TV_MODELS], work)
    prepared, skipped = [], []
    for n in names:
        model, why = bl.import_model(sqz, n, work)
        if not model:
            skipped.append((n, "skipped: " + why))
            bl.log("%s: %s" % (n, why))
            continue
        try:
            x_path, x = make_input(sqz, model, n, work)
        except (RuntimeError, ValueError, OSError) as e:
            skipped.append((n, "skipped: %s" % e))
            continue
        prepared.append((n, model, bl.onnx_path(n, work), x_path, x))

    results, geo = [], {}
    for t in threads:
        rows, failed = [], list(skipped)
        for n, model, onnx, x_path, x in prepared:
            bl.log("measuring %s, %d thread(s) ..." % (n, t))
            try:
                rows.append(measure(sqz, n, model, onnx, t, x_path, x, args, work))
            except Exception as e:  # noqa: BLE001 - a failing model must not stop the bench
                failed.append((n, "FAILED: %s" % e))
        geo[t] = print_table(t, rows, failed, args.no_spin)
        results += rows
        sys.stdout.flush()
    la1 = bl.loadavg()
    bad = [r for r in results if not r["numerics_ok"]]
    print()
    print("numerics: %d of %d measurements within %g of ORT%s" % (
        len(results) - len(bad), len(results), TOL,
        "" if not bad else "; over: " + ", ".join(
            "%s/t%d (%.3g)" % (r["model"], r["threads"], r["max_abs_err"]) for r in bad)))
    print("load average at end %.2f (noise: other jobs on the machine)" % la1[0])
    if args.json_out:
        doc = {"machine": mi, "onnxruntime": ort.__version__,
               "config": {"runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
                          "threads": threads, "cpus": args.cpus, "quick": args.quick,
                          "no_spin": args.no_spin},
               "loadavg": {"start": la0, "end": la1},
               "results": results, "skipped": [{"model": n, "why": w} for n, w in skipped],
               "geomean_ratio": {str(k): v for k, v in geo.items()}}
        tmp = args.json_out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(finite(doc), f, indent=1)
        os.replace(tmp, args.json_out)
        print("wrote %s" % args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
