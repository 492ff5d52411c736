"""MPool activation memory of sqz per model: arena vs lower bound (largest set of buffers live
at one step) vs naive (every buffer its own allocation), from `sqz info --memory --json`.
Targets: arena <= 1.05 x lower bound on every model; arena >= 75% below naive on MobileNetV2
and ResNet-18. Run by bench/memory.sh."""
import argparse
import json
import os
import sys

import benchlib as bl

LB_TARGET = 1.05
NAIVE_TARGET = 0.75
NAIVE_TARGET_MODELS = ("mobilenet_v2", "resnet18")


def mib(b):
    return b / 1048576.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sqz", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--models", help="comma list or 'all' (default all)")
    ap.add_argument("--quick", action="store_true", help="2 models")
    ap.add_argument("--json", dest="json_out", help="write the figures to this file")
    args = ap.parse_args()
    names = bl.parse_models(args.models, args.quick)
    sqz = os.path.abspath(args.sqz)
    work = os.path.abspath(args.work)
    bl.ensure_fixtures([n for n in names if n in bl.TV_MODELS], work)

    rows, skipped, fails = [], [], 0
    for n in names:
        model, why = bl.import_model(sqz, n, work)
        if not model:
            skipped.append((n, "skipped: " + why))
            continue
        try:
            j = bl.sqz_json(sqz, ["info", "--memory", "--json", model])
        except (RuntimeError, ValueError) as e:
            skipped.append((n, "FAILED: %s" % e))
            fails += 1
            continue
        a, lb, nv = j["arena_bytes"], j["lower_bound_bytes"], j["naive_bytes"]
        over = a / lb if lb else float("nan")
        saved = 1.0 - a / nv if nv else float("nan")
        lb_ok = lb > 0 and a <= LB_TARGET * lb
        nv_ok = None if n not in NAIVE_TARGET_MODELS else saved >= NAIVE_TARGET
        fails += (not lb_ok) + (nv_ok is False)
        peak = j.get("peak_step") or {}
        rows.append({"model": n, "arena_bytes": a, "lower_bound_bytes": lb, "naive_bytes": nv,
                     "arena_over_lower_bound": over, "saving_vs_naive": saved,
                     "lower_bound_target_ok": lb_ok, "naive_target_ok": nv_ok,
                     "peak_step": peak})

    print("sqz MPool activation memory (sqz info --memory; batch 1, import-time input shape)")
    print("targets: arena <= %.2f x lower bound (all); >= %d%% below naive on %s" % (
        LB_TARGET, NAIVE_TARGET * 100, " and ".join(NAIVE_TARGET_MODELS)))
    hdr = "%-20s %11s %11s %11s %10s %11s  %-6s %-6s  %s" % (
        "model", "arena MiB", "lower MiB", "naive MiB", "arena/LB", "1-ar/naive", "LB", "naive",
        "peak step")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        pk = r["peak_step"]
        print("%-20s %11.3f %11.3f %11.3f %10.3f %10.1f%%  %-6s %-6s  %s" % (
            r["model"], mib(r["arena_bytes"]), mib(r["lower_bound_bytes"]),
            mib(r["naive_bytes"]), r["arena_over_lower_bound"], 100 * r["saving_vs_naive"],
            "pass" if r["lower_bound_target_ok"] else "FAIL",
            "-" if r["naive_target_ok"] is None else "pass" if r["naive_target_ok"] else "FAIL",
            "#%s %s %s" % (pk.get("index", "?"), pk.get("op", ""), pk.get("name", ""))
            if pk else "-"))
    for n, why in skipped:
        print("%-20s %s" % (n, why))
    print("%d target(s) failed" % fails if fails else "all targets met")
    if args.json_out:
        tmp = args.json_out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"targets": {"arena_over_lower_bound_max": LB_TARGET,
                                   "saving_vs_naive_min": NAIVE_TARGET,
                                   "saving_models": list(NAIVE_TARGET_MODELS)},
                       "results": rows,
                       "skipped": [{"model": n, "why": w} for n, w in skipped]}, f, indent=1)
        os.replace(tmp, args.json_out)
        print("wrote %s" % args.json_out)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
