#!/usr/bin/python3
"""End-to-end check of `sqz report` on LeNet-5 (tools/models), 1000 test images:
  1. bad input (no / unknown / unlabelled dataset, unknown key, bits 0 and 9,
     sparsity 1, bad shard) fails with one line before any point is evaluated
     and leaves no file;
  2. a 7-point sweep: sizes fall with the bits and the sparsity, the fp32 point's accuracy equals
     `sqz eval` of the imported model on the same images, the P column is the
     Pareto front recomputed here;
  3. --shard 1/2 + 2/2 then --merge gives byte-identical Markdown and HTML;
     merging one shard alone fails (point missing);
  4. the HTML page rendered in headless Chromium: the DOM holds one SVG circle
     per point (Pareto ones marked), and the screenshot shows the plot (the
     point colours present, spread over the plot area).
Exit 77 (ctest SKIP) with the reason only when chromium cannot run.
Usage: report.py SQZ_BINARY WORK_DIR"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONNX = os.path.join(ROOT, "tools/models/lenet5.onnx")
DATA = "/usr/share/datasets/fashion-mnist"
LIMIT = "1000"
SWEEP = ["--sweep", "share.bits=8,4,2", "--sweep", "prune.sparsity=0,0.9", "--limit", LIMIT]


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def md_rows(path):
    rows = []
    for line in open(path):
        m = re.match(r"\| (\d+) \| (.*) \| (\d+) \| ([\d.]+)x \| ([\d.]+) \| ([+-][\d.]+) \| (P?) \|$",
                     line.rstrip("\n"))
        if m:
            rows.append((int(m[1]), m[2], int(m[3]), float(m[5]), m[7] == "P"))
    return rows


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def main():
    sqz, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failed = 0

    def check(ok, msg):
        nonlocal failed
        print(("PASS " if ok else "FAIL ") + msg)
        failed += not ok

    # 1. bad input, before any work
    nolabels = os.path.join(work, "nolabels")
    os.makedirs(nolabels, exist_ok=True)
    img = os.path.join(nolabels, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(img):
        os.symlink(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), img)
    bad_out = os.path.join(work, "bad")
    cases = [([], "labelled set"),
             (["--data", "cifar"], "unknown dataset"),
             (["--data", "fashion-mnist", "--data-dir", nolabels], "no labels"),
             (["--data", "fashion-mnist", "--sweep", "share.bitz=4"], "share.bitz"),
             (["--data", "fashion-mnist", "--sweep", "share.bits=4,0"], "share.bits"),
             (["--data", "fashion-mnist", "--sweep", "share.bits=9"], "share.bits"),
             (["--data", "fashion-mnist", "--sweep", "prune.sparsity=0.5,1"], "prune.sparsity"),
             (["--data", "fashion-mnist", "--set", "prune.sparsity=-0.1"], "prune.sparsity"),
             (["--data", "fashion-mnist", "--shard", "3/2"], "--shard")]
    for args, word in cases:
        r = run([sqz, "report", ONNX, "-o", bad_out] + args)
        lines = r.stderr.strip().splitlines()
        ok = (r.returncode != 0 and len(lines) == 1 and word in lines[0]
              and not any(os.path.exists(bad_out + s) for s in (".md", ".html", "")))
        check(ok, f"bad input {' '.join(args) or '(no --data)'}: {r.stderr.strip()}")

    # 2. the sweep
    full = os.path.join(work, "full")
    r = run([sqz, "report", ONNX, "--data", "fashion-mnist", "-o", full] + SWEEP)
    if r.returncode != 0:
        check(False, "report: " + r.stderr.strip())
        return 1
    print(r.stdout)
    rows = md_rows(full + ".md")
    check([x[0] for x in rows] == list(range(7)), f"7 points in the table ({len(rows)})")
    if len(rows) != 7:
        return 1
    # points: fp32, then (bits, sparsity) = (8,0) (8,.9) (4,0) (4,.9) (2,0) (2,.9)
    b = [x[2] for x in rows]
    check(b[0] > b[1] > b[3] > b[5] and b[2] < b[1] and b[4] < b[3] and b[6] < b[5],
          "bytes fall with the bits and with pruning: " + ", ".join(map(str, b)))
    imported = os.path.join(work, "lenet5.sqz")
    run([sqz, "import", ONNX, "-o", imported])
    e = run([sqz, "eval", imported, "--dataset", "fashion-mnist", "--limit", LIMIT])
    m = re.search(r"accuracy: ([\d.]+)%", e.stdout)
    check(m is not None and abs(float(m[1]) - rows[0][3]) < 0.006,
          f"fp32 point {rows[0][3]:.2f}% equals sqz eval {m[1] if m else e.stderr.strip()}%")
    front = [not any(q[2] <= p[2] and q[3] >= p[3] and (q[2] < p[2] or q[3] > p[3])
                     for q in rows if q is not p) for p in rows]
    check(front == [x[4] for x in rows], f"Pareto column {[x[4] for x in rows]} == {front}")
    # one code path for the size: sqz compress with a point's recipe writes a file of
    # exactly the bytes the report gives that point (biases rounded to fp16 by both)
    for k in (1, 4, 6):
        sets = [a for kv in rows[k][1].split() for a in ("--set", kv)]
        out = os.path.join(work, f"point{k}.sqz")
        c = run([sqz, "compress", ONNX, "-o", out] + sets)
        size = os.path.getsize(out) if c.returncode == 0 and os.path.exists(out) else -1
        check(size == rows[k][2],
              f"point {k} ({rows[k][1]}): report {rows[k][2]} B == sqz compress file {size} B "
              f"{c.stderr.strip()[-200:]}")

    # 3. shards + merge
    parts = []
    for i in (1, 2):
        part = os.path.join(work, f"part{i}.tsv")
        r = run([sqz, "report", ONNX, "--data", "fashion-mnist", "--shard", f"{i}/2", "-o", part]
                + SWEEP)
        check(r.returncode == 0 and os.path.exists(part), f"shard {i}/2: {r.stderr.strip()[-200:]}")
        parts.append(part)
    merged = os.path.join(work, "merged")
    r = run([sqz, "report", "--merge"] + parts + ["-o", merged])
    same = (r.returncode == 0 and open(merged + ".md").read() == open(full + ".md").read()
            and open(merged + ".html").read() == open(full + ".html").read())
    check(same, f"merge of 2 shards == unsharded report {r.stderr.strip()}")
    r = run([sqz, "report", "--merge", parts[0], "-o", os.path.join(work, "half")])
    check(r.returncode != 0 and "missing" in r.stderr and
          not os.path.exists(os.path.join(work, "half.md")), f"one shard alone: {r.stderr.strip()}")

    # 4. headless Chromium
    browser = chromium()
    if not browser:
        print("SKIP chromium not installed (Debian package chromium, tools/scripts/install_deps.sh)")
        return 1 if failed else 77
    html = "file://" + os.path.abspath(full + ".html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1000,800"]
    shot = os.path.join(work, "report.png")
    if os.path.exists(shot):
        os.remove(shot)
    try:
        d = run([browser] + flags + ["--dump-dom", html], timeout=120)
        s = run([browser] + flags + ["--screenshot=" + shot, html], timeout=120)
    except (OSError, subprocess.TimeoutExpired) as ex:
        print(f"SKIP chromium cannot run: {ex}")
        return 1 if failed else 77
    if d.returncode != 0 or s.returncode != 0 or not os.path.exists(shot):
        print("SKIP chromium cannot run: " + (d.stderr + s.stderr).strip()[-300:])
        return 1 if failed else 77
    circles = re.findall(r'<circle class="pt( pareto)?"', d.stdout)
    check(len(circles) == 7 and sum(1 for c in circles if c) == sum(front),
          f"rendered DOM: {len(circles)} points, {sum(1 for c in circles if c)} Pareto")
    check('id="plot"' in d.stdout and "<polyline" in d.stdout, "rendered DOM holds the SVG plot")
    from PIL import Image
    im = Image.open(shot).convert("RGB")
    px = im.load()
    red, blue = [], []
    for y in range(im.height):
        for x in range(im.width):
            c = px[x, y]
            if abs(c[0] - 214) < 12 and abs(c[1] - 39) < 12 and abs(c[2] - 40) < 12:
                red.append((x, y))
            elif abs(c[0] - 76) < 12 and abs(c[1] - 114) < 12 and abs(c[2] - 176) < 12:
                blue.append((x, y))
    npar = sum(front)
    spread = (max(p[0] for p in red) - min(p[0] for p in red)) if red else 0
    check(len(red) >= 40 * npar and spread >= 200,
          f"screenshot: Pareto points / front drawn ({len(red)} red pixels, {spread} px wide)")
    check(npar == 7 or len(blue) >= 30 * (7 - npar) + 30, f"screenshot: other points drawn ({len(blue)} blue pixels)")
    print(f"{'OK' if not failed else str(failed) + ' failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
