"""Shared pieces of the sqz benches (bench/latency.py, bench/memory.py): the model list,
fixture generation (torchvision exports, cached), `sqz import`, `sqz info --json`.

Bench-only code: nothing here is part of the product."""
import json
import logging
import os
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_MODELS = ["lenet300", "lenet5", "mobilenet", "resnet"]  # tools/models/<name>.onnx
TV_MODELS = ["mobilenet_v2", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "mnasnet1_0",
             "efficientnet_b0"]
ALL_MODELS = REF_MODELS + TV_MODELS
QUICK_MODELS = ["lenet5", "mobilenet_v2"]
# Debian's python3 has torch / torchvision (the fixture exporter needs them).
TORCH_PY = os.environ.get("SQZ_TORCH_PYTHON", "/usr/bin/python3")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_models(spec, quick):
    if spec in (None, ""):
        return list(QUICK_MODELS if quick else ALL_MODELS)
    names = ALL_MODELS if spec == "all" else [s for s in spec.split(",") if s]
    for n in names:
        if n not in ALL_MODELS:
            sys.exit("unknown model %r (known: %s)" % (n, ", ".join(ALL_MODELS)))
    return names


def onnx_path(name, work):
    if name in REF_MODELS:
        return os.path.join(ROOT, "tools", "models", name + ".onnx")
    return os.path.join(work, "tv", name + ".onnx")


def ensure_fixtures(names, work):
    """Export the torchvision models that are not cached in WORK/tv yet."""
    tv = os.path.join(work, "tv")
    os.makedirs(tv, exist_ok=True)
    todo = [n for n in names if n in TV_MODELS and not (
        os.path.exists(os.path.join(tv, n + ".onnx")) and
        os.path.exists(os.path.join(tv, n + ".input.npy")))]
    if todo:
        log("exporting torchvision fixtures into %s: %s" % (tv, ", ".join(todo)))
        subprocess.run([TORCH_PY, os.path.join(ROOT, "tests", "fixtures", "make_torchvision.py"),
                        "--out", tv, "--models", ",".join(todo)], check=True,
                       stdout=sys.stderr)


def import_model(sqz, name, work):
    """sqz import (always redone: the importer changes under us). Returns (path, None) or
    (None, reason)."""
    src = onnx_path(name, work)
    if not os.path.exists(src):
        return None, "missing %s (not trained/committed yet?)" % os.path.relpath(src, ROOT)
    out_dir = os.path.join(work, "sqz")
    os.makedirs(out_dir, exist_ok=True)
    dst = os.path.join(out_dir, name + ".sqz")
    r = subprocess.run([sqz, "import", src, "-o", dst], capture_output=True, text=True)
    if r.returncode != 0:
        return None, "sqz import failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return dst, None


def sqz_json(sqz, args):
    r = subprocess.run([sqz] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError((r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1])
    return json.loads(r.stdout)


def machine_info():
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def quiet_onnxruntime():
    """ONNX Runtime's chatter stays out of the report: its C++ warnings (a line per unused
    initializer of every QDQ model), quantize_static's logging.warning advice on each call and
    numpy RuntimeWarnings from its histogram code. Errors still print."""
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"onnxruntime\.")
