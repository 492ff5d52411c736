#!/usr/bin/python3
"""Train and export sqz's reference models on Fashion-MNIST.

Data: Debian's dataset-fashion-mnist package (IDX gz files under
/usr/share/datasets/fashion-mnist), read directly with gzip + numpy.
Only the train split is used for training; the 10,000 test images are used to
report accuracy and to record torch's predictions.

Models (all take a 1x1x28x28 NCHW gray image, value = (pixel/255 - 0.2860)/0.3530):
  lenet300   Flatten -> FC 784-300-100-10, ReLU
  lenet5     classic LeNet-5: conv5x5(6, pad 2)-ReLU-maxpool2, conv5x5(16)-ReLU-maxpool2,
             FC 400-120-84-10, ReLU
  mobilenet  compact MobileNetV2-style CNN (inverted residual blocks, BN, ReLU6, GAP, FC)
  resnet     small ResNet-style CNN (basic blocks, 1x1 downsample shortcuts, BN, ReLU, GAP, FC)

Outputs (in --out): <name>.onnx (opset 13, input "input" [batch,1,28,28], output
"logits" [batch,10]), <name>.torch_pred.bin (10,000 uint8 predicted labels of the
eval-mode torch model, test-set order) and manifest.json.

Usage: /usr/bin/python3 tools/train_reference_models.py --out tools/models [--epochs N]
       [--models lenet300,lenet5,...]
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.2860
STD = 0.3530
OPSET = 13
SEED = 20240601

# Default epochs per model (kept cheap: 2 shared CPU cores).
DEFAULT_EPOCHS = {"lenet300": 10, "lenet5": 12, "mobilenet": 4, "resnet": 6}


# ----------------------------------------------------------------------------- data
def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError("%s: bad IDX magic" % path)
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError("%s: expected uint8 IDX data" % path)
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError("%s: size mismatch" % path)
    return arr.reshape(dims)


def load_split(split, data_dir):
    imgs = read_idx(os.path.join(data_dir, "%s-images-idx3-ubyte.gz" % split))
    labels = read_idx(os.path.join(data_dir, "%s-labels-idx1-ubyte.gz" % split))
    assert imgs.shape[0] == labels.shape[0] and imgs.shape[1:] == (28, 28)
    return imgs, labels


def preprocess(imgs_u8):
    x = torch.from_numpy(imgs_u8.astype(np.float32) / 255.0)
    x = (x - MEAN) / STD
    return x.unsqueeze(1).contiguous()  # N,1,28,28


# ----------------------------------------------------------------------------- models
class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = self.flatten(x)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Classic LeNet-5 (6/16 conv channels, FC 120-84-10), ReLU + max pooling,
    first conv padded so the 28x28 input behaves like LeNet's 32x32."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # 6x14x14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # 16x5x5
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn(cin, hidden, 1, act=nn.ReLU6),                         # expand
            conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),  # depthwise
            conv_bn(hidden, cout, 1),                                      # project (linear)
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetSmall(nn.Module):
    # (expand t, out channels c, repeats n, first stride s) as in MobileNetV2
    # The first block downsamples 28x28 -> 14x14 (keeps CPU training cheap), the
    # second stride-2 block goes to 7x7.
    CFG = [(2, 16, 1, 2), (4, 24, 2, 1), (4, 32, 2, 2), (4, 48, 2, 1)]

    def __init__(self, width=16, last=128, num_classes=10):
        super().__init__()
        layers = [conv_bn(1, width, 3, 1, act=nn.ReLU6)]
        cin = width
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.down is None else self.down(x)
        return F.relu(y + s)


class ResNetSmall(nn.Module):
    """ResNet-8-style: stem conv3x3(16), stages 16/32/64 with one basic block each
    (stride 1/2/2, 1x1 conv+BN downsample shortcut when shape changes), GAP, FC."""

    def __init__(self, widths=(16, 32, 64), num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


MODELS = {
    "lenet300": (LeNet300, "LeNet-300-100: Flatten, FC 784-300-100-10 with ReLU"),
    "lenet5": (LeNet5, "LeNet-5 (classic 6/16 conv channels): conv5x5(6,pad2)-ReLU-maxpool2, "
                       "conv5x5(16)-ReLU-maxpool2, FC 400-120-84-10 with ReLU"),
    "mobilenet": (MobileNetSmall, "MobileNetV2-style: stem conv3x3(16)+BN+ReLU6, inverted residual "
                                  "blocks (t,c,n,s)=" + str(MobileNetSmall.CFG) +
                                  ", conv1x1(128)+BN+ReLU6, GAP, FC 128-10"),
    "resnet": (ResNetSmall, "ResNet-8-style: stem conv3x3(16)+BN+ReLU, basic blocks 16/32/64 "
                            "(stride 1/2/2, 1x1 conv+BN downsample shortcut), GAP, FC 64-10"),
}

# (optimizer, max lr, weight decay, batch size)
HPARAMS = {
    "lenet300": ("adamw", 2e-3, 1e-4, 128),
    "lenet5": ("adamw", 3e-3, 1e-4, 128),
    "mobilenet": ("adamw", 5e-3, 5e-4, 128),
    "resnet": ("adamw", 5e-3, 5e-4, 128),
}


# ----------------------------------------------------------------------------- training
def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(xb, gen):
    """Cheap augmentation: random horizontal flip + random shift of up to 2 px
    (padding with the normalised background value)."""
    n = xb.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
    bg = (0.0 - MEAN) / STD
    pad = F.pad(xb, (2, 2, 2, 2), value=bg)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return pad[:, :, dy:dy + 28, dx:dx + 28]


def evaluate(model, x, bs=1000):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, x.shape[0], bs):
            preds.append(model(x[i:i + bs]).argmax(1))
    return torch.cat(preds)


def train(name, model, xtr, ytr, epochs, log):
    opt_name, lr, wd, bs = HPARAMS[name]
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps_per_epoch = (xtr.shape[0] + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch,
                                                pct_start=0.25)
    use_aug = name in ("mobilenet", "resnet", "lenet5")
    n = xtr.shape[0]
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        tot, correct, loss_sum = 0, 0, 0.0
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb, yb = xtr[idx], ytr[idx]
            if use_aug:
                xb = augment(xb, gen)
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * xb.shape[0]
            correct += (out.argmax(1) == yb).sum().item()
            tot += xb.shape[0]
        log("  %s epoch %d/%d: loss %.4f train acc %.2f%% (%.1fs)" %
            (name, ep + 1, epochs, loss_sum / tot, 100.0 * correct / tot, time.time() - t0))


# ----------------------------------------------------------------------------- export
def export_onnx(model, path):
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=OPSET, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.EVAL)


def check_onnx(path, model, xte):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    if "BatchNormalization" in ops:
        # do_constant_folding in eval mode folds BN into Conv; an unfused BN must be
        # in inference form (a single output, i.e. not training_mode).
        for n in m.graph.node:
            if n.op_type == "BatchNormalization":
                assert len(n.output) == 1, "BatchNormalization exported in training mode"
    # Eval-mode check: BN layers must use running stats, i.e. the output of one image
    # must not depend on the other images of its batch.
    model.eval()
    for mod in model.modules():
        assert not mod.training, "module %s still in training mode" % type(mod).__name__
    with torch.no_grad():
        a = model(xte[:1])
        b = model(xte[:64])[:1]
        assert torch.allclose(a, b, atol=1e-5), "batch-dependent output: not in eval mode"
    try:  # optional cross-check with ONNX Runtime if present
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = model(xte[:256]).numpy()
        got = sess.run(None, {"input": xte[:256].numpy()})[0]
        assert np.allclose(ref, got, atol=1e-4), "onnxruntime mismatch"
    except ImportError:
        pass
    return ops


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# ----------------------------------------------------------------------------- main
def tune_malloc():
    """glibc serves the big activation tensors with mmap/munmap on every step, and the
    page faults cost ~30% of CPU training time; keep them on the heap instead."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def main():
    tune_malloc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. tools/models)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs for every model (default: per-model %s)" % DEFAULT_EPOCHS)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    ap.add_argument("--data", default=DATA_DIR, help="Fashion-MNIST IDX gz directory")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    tr_imgs, tr_labels = load_split("train", args.data)
    te_imgs, te_labels = load_split("t10k", args.data)
    xtr, ytr = preprocess(tr_imgs), torch.from_numpy(tr_labels.astype(np.int64))
    xte, yte = preprocess(te_imgs), torch.from_numpy(te_labels.astype(np.int64))
    log("data: train %s, test %s" % (tuple(xtr.shape), tuple(xte.shape)))

    manifest_path = os.path.join(args.out, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    manifest.setdefault("dataset", {
        "name": "Fashion-MNIST",
        "source": "Debian package dataset-fashion-mnist (" + DATA_DIR + ")",
        "train_images": 60000, "test_images": 10000,
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                    "Shirt", "Sneaker", "Bag", "Ankle boot"],
    })
    manifest.setdefault("models", {})

    names = [s for s in args.models.split(",") if s]
    for name in names:
        if name not in MODELS:
            sys.exit("unknown model %r (known: %s)" % (name, ", ".join(MODELS)))
    for mi, name in enumerate(names):
        cls, desc = MODELS[name]
        seed_all(SEED + 100 * list(MODELS).index(name))
        model = cls()
        params = sum(p.numel() for p in model.parameters())
        epochs = args.epochs or DEFAULT_EPOCHS[name]
        log("%s: %d params, %d epochs" % (name, params, epochs))
        t0 = time.time()
        train(name, model, xtr, ytr, epochs, log)
        train_s = time.time() - t0

        model.eval()
        onnx_path = os.path.join(args.out, name + ".onnx")
        export_onnx(model, onnx_path)
        ops = check_onnx(onnx_path, model, xte)

        # Accuracy and predictions from the eval-mode model, i.e. the exported weights.
        pred = evaluate(model, xte)
        acc = 100.0 * (pred == yte).float().mean().item()
        pred_path = os.path.join(args.out, name + ".torch_pred.bin")
        pred.numpy().astype(np.uint8).tofile(pred_path)
        log("%s: test accuracy %.2f%%, ops %s, %.0fs" % (name, acc, ops, train_s))

        manifest["models"][name] = {
            "file": name + ".onnx",
            "description": desc,
            "params": params,
            "input": {"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float32"},
            "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32"},
            "preprocessing": {"scale": 1.0 / 255.0, "mean": MEAN, "std": STD,
                              "formula": "x = (pixel * scale - mean) / std",
                              "layout": "NCHW", "color": "gray", "height": 28, "width": 28},
            "opset": OPSET,
            "onnx_ops": ops,
            "epochs": epochs,
            "torch_version": torch.__version__,
            "torch_test_accuracy": round(acc, 2),
            "torch_pred_file": name + ".torch_pred.bin",
            "sha256": sha256(onnx_path),
            "onnx_bytes": os.path.getsize(onnx_path),
        }
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
    log("wrote %s" % manifest_path)


if __name__ == "__main__":
    main()
