#!/usr/bin/env python3
"""conv_fuse_models.py - whole-model A/B of the executor's conv epilogue fusions
(SQZ_FUSE_CONV unset = fused, SQZ_FUSE_CONV=0 = not), interleaved in the same run.

usage: /usr/bin/python3 bench/conv_fuse_models.py SQZ_BIN model.sqz[,model.sqz...]
           [--threads 1,2] [--rounds K] [--runs R]

Per model and thread count, K rounds of (fused, unfused) or (unfused, fused),
each `sqz bench --runs R`; prints the median latency of every round, the median
of the per-round ratios fused/unfused, and the same ratio of the sum of the
per-node minima (SQZ_PROFILE: process CPU time at 1 thread, wall time at 2),
which a busy machine disturbs less. The load average is printed before and
after: on a shared machine compare only ratios from the same run.
"""
import argparse
import json
import os
import re
import statistics
import subprocess


def one(sqz, model, threads, runs, fused):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               SQZ_PROFILE="cpu" if threads == 1 else "1")
    env.pop("SQZ_FUSE_CONV", None)
    if not fused:
        env["SQZ_FUSE_CONV"] = "0"
    p = subprocess.run([sqz, "bench", model, "--threads", str(threads), "--runs", str(runs),
                        "--warmup", "10", "--json"], env=env, capture_output=True, text=True,
                       check=True)
    med = json.loads(p.stdout)["median_ms"]
    m = re.search(r"sum of node minima ([0-9.]+) ms", p.stderr)
    return med, float(m.group(1)) if m else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sqz")
    ap.add_argument("models")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    load = lambda: " ".join(open("/proc/loadavg").read().split()[:3])
    print("load average before: %s" % load())
    print("%-22s %2s | %-26s | %-26s | %-12s | %s" % (
        "model", "T", "fused median ms (rounds)", "unfused median ms (rounds)",
        "fused/unfused", "node-minima fused/unfused"))
    for model in a.models.split(","):
        for t in [int(x) for x in a.threads.split(",")]:
            f, u = [], []
            for r in range(a.rounds):
                for fz in ((True, False) if r % 2 == 0 else (False, True)):
                    (f if fz else u).append(one(a.sqz, model, t, a.runs, fz))
            rat = statistics.median([x[0] / y[0] for x, y in zip(f, u)])
            ratn = statistics.median([x[1] / y[1] for x, y in zip(f, u)])
            print("%-22s %2d | %-26s | %-26s | %-12.3f | %.3f" % (
                os.path.basename(model), t, " ".join("%.3f" % x[0] for x in f),
                " ".join("%.3f" % x[0] for x in u), rat, ratn), flush=True)
    print("load average after: %s" % load())


if __name__ == "__main__":
    main()
