#!/usr/bin/python3
"""Prune -> fine-tune loop: how sqz plugs into a training pipeline.

Each round: `sqz prune` raises the unstructured sparsity and writes ONNX (the
weights' zeros are the mask); the ONNX graph is loaded into torch (a small
interpreter of the ops sqz and torch export: Gemm, MatMul, Conv, Relu, Clip, MaxPool,
AveragePool, GlobalAveragePool, Flatten, Reshape, Add), fine-tuned on the
Fashion-MNIST training split with the mask re-applied after every step, and
exported back to ONNX for the next round. At the end the model is imported
with `sqz import` and evaluated with `sqz eval` on the test split.

usage: tools/prune_finetune.py --model tools/models/lenet300.onnx --sqz build/rel/sqz
       [--schedule 0.5,0.7,0.8,0.87,0.92] [--epochs 2] [--final-epochs 6] [--lr 1e-3]
       [--distill 0.5] [--out model_sparse.onnx] [--work DIR] [--seed 0]
Gradual pruning: each round prunes to the next sparsity of the schedule (one
global magnitude threshold) and fine-tunes --epochs epochs with the learning
rate annealed (cosine) from --lr to 0; the last round trains --final-epochs.
--distill W mixes in W x distillation from the dense model's logits.
Uses Debian's python3-torch, one thread (torch.set_num_threads(1)); data from
/usr/share/datasets/fashion-mnist (training split only; the test split is
only evaluated, never used to choose anything).
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


class OnnxModule(torch.nn.Module):
    """The ONNX graph as a torch module: float initializers become parameters."""

    def __init__(self, path):
        super().__init__()
        m = onnx.load(path)
        self.graph = m.graph
        self.params = torch.nn.ParameterDict()
        self.consts = {}
        self.names = {}
        for t in m.graph.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32 and a.ndim >= 1 and a.size > 1:
                key = "p%d" % len(self.names)
                self.names[t.name] = key
                self.params[key] = torch.nn.Parameter(torch.from_numpy(a.copy()))
            else:
                self.consts[t.name] = torch.from_numpy(a.copy())
        self.input = m.graph.input[0].name
        self.output = m.graph.output[0].name

    def value(self, env, name):
        if name in env:
            return env[name]
        if name in self.names:
            return self.params[self.names[name]]
        return self.consts[name]

    def forward(self, x):
        env = {self.input: x}
        for n in self.graph.node:
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            ins = [self.value(env, i) if i else None for i in n.input]
            op = n.op_type
            if op == "Gemm":
                a, b = ins[0], ins[1]
                if at.get("transA", 0):
                    a = a.t()
                if at.get("transB", 0):
                    b = b.t()
                y = a @ b
                if at.get("alpha", 1.0) != 1.0:
                    y = at["alpha"] * y
                if len(ins) > 2 and ins[2] is not None:
                    y = y + (ins[2] if at.get("beta", 1.0) == 1.0 else at["beta"] * ins[2])
            elif op == "Conv":
                p = at.get("pads", [0, 0, 0, 0])
                xin, pad = ins[0], (p[0], p[1])
                if p[0] != p[2] or p[1] != p[3]:  # asymmetric: explicit Pad
                    xin, pad = F.pad(ins[0], (p[1], p[3], p[0], p[2])), (0, 0)
                y = F.conv2d(xin, ins[1], ins[2] if len(ins) > 2 else None,
                             stride=tuple(at.get("strides", [1, 1])), padding=pad,
                             dilation=tuple(at.get("dilations", [1, 1])),
                             groups=at.get("group", 1))
            elif op == "Relu":
                y = F.relu(ins[0])
            elif op == "Clip":
                lo = ins[1].item() if len(ins) > 1 and ins[1] is not None else None
                hi = ins[2].item() if len(ins) > 2 and ins[2] is not None else None
                y = torch.clamp(ins[0], lo, hi)
            elif op in ("MaxPool", "AveragePool"):
                p = at.get("pads", [0, 0, 0, 0])
                xin = ins[0] if p == [0, 0, 0, 0] else F.pad(
                    ins[0], (p[1], p[3], p[0], p[2]), value=-1e30 if op == "MaxPool" else 0.0)
                fn = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
                y = fn(xin, tuple(at["kernel_shape"]), tuple(at.get("strides", at["kernel_shape"])))
            elif op == "GlobalAveragePool":
                y = ins[0].mean(dim=(2, 3), keepdim=True)
            elif op == "Flatten":
                y = torch.flatten(ins[0], at.get("axis", 1))
            elif op == "Reshape":
                shape = [int(s) for s in ins[1].tolist()]
                if len(shape) == 2 and shape[0] == 1:
                    y = torch.flatten(ins[0], 1)  # sqz fixes batch 1; let torch batch
                else:
                    shape = [int(ins[0].shape[i]) if s == 0 else s for i, s in enumerate(shape)]
                    y = ins[0].reshape(shape)
            elif op == "MatMul":
                y = ins[0] @ ins[1]
            elif op == "Add":
                y = ins[0] + ins[1]
            elif op == "Mul":
                y = ins[0] * ins[1]
            else:
                raise SystemExit("prune_finetune: op %s (node %s) not supported" % (op, n.name))
            env[n.output[0]] = y
        return env[self.output]


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def accuracy(sqz, onnx_path, work):
    sqzf = os.path.join(work, "eval.sqz")
    run([sqz, "import", onnx_path, "-o", sqzf])
    out = run([sqz, "eval", sqzf, "--dataset", "fashion-mnist", "--json", "--batch", "50"])
    res = json.loads(out[out.index("{"):])
    return 100.0 * res["correct"] / res["total"]


def weight_sparsity(path):
    """Zeros / weights over the >= 2-D float initializers (Conv / Gemm weights)."""
    z = n = 0
    for t in onnx.load(path).graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.ndim >= 2:
            z += int((a == 0).sum())
            n += a.size
    return z / max(n, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sqz", required=True)
    ap.add_argument("--schedule", default="0.5,0.7,0.8,0.87,0.92")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--final-epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distill", type=float, default=0.0,
                    help="weight of distillation from the dense model (KL at temperature 4)")
    ap.add_argument("--out", default=None, help="copy of the final fine-tuned ONNX model")
    ap.add_argument("--work", default="build/prune_finetune")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(1)  # shared machine: keep other jobs' timings valid
    torch.manual_seed(a.seed)
    x = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).astype(np.float32)
    y = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x = torch.from_numpy((x / 255.0 - MEAN) / STD).unsqueeze(1)
    y = torch.from_numpy(y)
    dense = accuracy(a.sqz, a.model, a.work)
    print("dense: %.2f%%" % dense)
    teacher = None
    if a.distill > 0:  # the dense model's soft labels (Hinton et al. 2015)
        teacher = OnnxModule(a.model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    cur = a.model
    sched = [float(v) for v in a.schedule.split(",")]
    for i, s in enumerate(sched):
        pruned = os.path.join(a.work, "round%d_pruned.onnx" % i)
        run([a.sqz, "prune", cur, "--sparsity", str(s), "--scope", "global", "-o", pruned])
        net = OnnxModule(pruned)
        masks = {k: (p != 0).float() for k, p in net.params.items() if p.dim() >= 2}
        epochs = a.final_epochs if i == len(sched) - 1 else a.epochs
        steps = epochs * ((x.shape[0] + a.batch - 1) // a.batch)
        opt = torch.optim.Adam(net.parameters(), lr=a.lr)
        sched_lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        net.train()
        for ep in range(epochs):
            perm = torch.randperm(x.shape[0])
            for b in range(0, x.shape[0], a.batch):
                idx = perm[b:b + a.batch]
                out = net(x[idx])
                loss = F.cross_entropy(out, y[idx])
                if teacher is not None:
                    with torch.no_grad():
                        soft = F.softmax(teacher(x[idx]) / 4.0, dim=1)
                    kd = F.kl_div(F.log_softmax(out / 4.0, dim=1), soft, reduction="batchmean")
                    loss = (1 - a.distill) * loss + a.distill * 16.0 * kd
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched_lr.step()
                with torch.no_grad():  # the mask: pruned weights stay exactly zero
                    for k, m in masks.items():
                        net.params[k].mul_(m)
        net.eval()
        tuned = os.path.join(a.work, "round%d_tuned.onnx" % i)
        torch.onnx.export(net, x[:1], tuned, opset_version=13, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        acc = accuracy(a.sqz, tuned, a.work)
        print("round %d: sparsity %.4f (%d epochs), fine-tuned test accuracy %.2f%% "
              "(dense %.2f%%, drop %.2f)" % (i, weight_sparsity(tuned), epochs, acc, dense,
                                             dense - acc))
        sys.stdout.flush()
        cur = tuned
    if a.out:
        shutil.copyfile(cur, a.out)
        print("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
