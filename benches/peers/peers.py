#!/usr/bin/env python3
"""DeepConvNet training and inference throughput: scratchnet vs PyTorch (CPU) vs the
reference NumPy algorithm, measured in one run on this machine.

    python3 benches/peers/peers.py [--threads N] [--batch 100] [--steps 10] [--skip-torch]

Each peer runs the same model (LAYERS.md's DeepConvNet: six 3x3 convolutions, three 2x2
pools, affine-relu-dropout-affine-dropout, softmax cross-entropy), f32, the same batch, one
training step = forward + loss + backward + Adam update; inference = forward without
dropout. Reported: median images/s over the timed steps after 2 warm-up steps.

Needs numpy (and torch unless --skip-torch): `pip install numpy torch`. Not part of CI.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def median_ips(step, batch, steps, warmup=2):
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


# ---------------------------------------------------------------------------------------
# The reference algorithm in NumPy (im2col layout, GEMM, transpose, separate ReLU,
# im2col-based pooling), as the layer library computes it.
# ---------------------------------------------------------------------------------------
def numpy_peer(batch, steps):
    import numpy as np

    rng = np.random.default_rng(0)

    def im2col(x, fh, fw, stride, pad, cval=0.0):
        n, c, h, w = x.shape
        oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
        img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], constant_values=cval)
        col = np.zeros((n, c, fh, fw, oh, ow), dtype=x.dtype)
        for y in range(fh):
            for xx in range(fw):
                col[:, :, y, xx, :, :] = img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride]
        return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)

    def col2im(col, shape, fh, fw, stride, pad):
        n, c, h, w = shape
        oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
        col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
        img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
        for y in range(fh):
            for xx in range(fw):
                img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride] += col[:, :, y, xx, :, :]
        return img[:, :, pad:h + pad, pad:w + pad]

    class Conv:
        def __init__(self, c, f, pad):
            self.W = (rng.standard_normal((f, c, 3, 3)) * np.sqrt(2.0 / (c * 9))).astype(np.float32)
            self.b = np.zeros(f, np.float32)
            self.pad = pad

        def forward(self, x, train):
            fn = self.W.shape[0]
            n, c, h, w = x.shape
            oh, ow = h + 2 * self.pad - 2, w + 2 * self.pad - 2
            self.x, self.col = x, im2col(x, 3, 3, 1, self.pad)
            self.colW = self.W.reshape(fn, -1).T
            out = self.col @ self.colW + self.b
            return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

        def backward(self, d):
            fn = self.W.shape[0]
            d = d.transpose(0, 2, 3, 1).reshape(-1, fn)
            self.db = d.sum(axis=0)
            self.dW = (self.col.T @ d).transpose(1, 0).reshape(self.W.shape)
            return col2im(d @ self.colW.T, self.x.shape, 3, 3, 1, self.pad)

    class Relu:
        def forward(self, x, train):
            self.mask = x <= 0
            out = x.copy()
            out[self.mask] = 0
            return out

        def backward(self, d):
            d = d.copy()
            d[self.mask] = 0
            return d

    class Pool:
        def forward(self, x, train):
            n, c, h, w = x.shape
            oh, ow = h // 2, w // 2
            col = im2col(x, 2, 2, 2, 0, -np.inf).reshape(-1, 4)
            self.x, self.arg = x, np.argmax(col, axis=1)
            return np.max(col, axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

        def backward(self, d):
            d = d.transpose(0, 2, 3, 1)
            dmax = np.zeros((d.size, 4), np.float32)
            dmax[np.arange(self.arg.size), self.arg.flatten()] = d.flatten()
            return col2im(dmax.reshape(d.shape[0] * d.shape[1] * d.shape[2], -1), self.x.shape, 2, 2, 2, 0)

    class Affine:
        def __init__(self, i, o):
            self.W = (rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32)
            self.b = np.zeros(o, np.float32)

        def forward(self, x, train):
            self.shape, self.x = x.shape, x.reshape(x.shape[0], -1)
            return self.x @ self.W + self.b

        def backward(self, d):
            self.dW, self.db = self.x.T @ d, d.sum(axis=0)
            return (d @ self.W.T).reshape(self.shape)

    class Dropout:
        def forward(self, x, train):
            if train:
                self.mask = rng.random(x.shape) > 0.5
                return x * self.mask
            return x * 0.5

        def backward(self, d):
            return d * self.mask

    layers = []
    c = 1
    for i, (f, p) in enumerate(zip([16, 16, 32, 32, 64, 64], [1, 1, 1, 2, 1, 1])):
        layers += [Conv(c, f, p), Relu()]
        c = f
        if i % 2 == 1:
            layers.append(Pool())
    layers += [Affine(64 * 4 * 4, 50), Relu(), Dropout(), Affine(50, 10), Dropout()]
    params = [l for l in layers if hasattr(l, "W")]
    m = {id(l): [np.zeros_like(l.W), np.zeros_like(l.b), np.zeros_like(l.W), np.zeros_like(l.b)] for l in params}
    state = {"t": 0}
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    t = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]

    def forward(train):
        h = x
        for l in layers:
            h = l.forward(h, train)
        return h

    def train_step():
        s = forward(True)
        y = np.exp(s - s.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
        d = (y - t) / batch
        for l in reversed(layers):
            d = l.backward(d)
        state["t"] += 1
        lr_t = 0.001 * np.sqrt(1 - 0.999 ** state["t"]) / (1 - 0.9 ** state["t"])
        for l in params:
            mw, mb, vw, vb = m[id(l)]
            for p, g, mm, vv in ((l.W, l.dW, mw, vw), (l.b, l.db, mb, vb)):
                mm += (1 - 0.9) * (g - mm)
                vv += (1 - 0.999) * (g ** 2 - vv)
                p -= lr_t * mm / (np.sqrt(vv) + 1e-7)

    return median_ips(train_step, batch, steps), median_ips(lambda: forward(False), batch, steps)


def torch_peer(batch, steps, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mods, c = [], 1
    for i, (f, p) in enumerate(zip([16, 16, 32, 32, 64, 64], [1, 1, 1, 2, 1, 1])):
        mods += [nn.Conv2d(c, f, 3, padding=p), nn.ReLU()]
        c = f
        if i % 2 == 1:
            mods.append(nn.MaxPool2d(2, 2))
    mods += [nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5)]
    net = nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(batch, 1, 28, 28)
    y = torch.arange(batch) % 10

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    net.train()
    tr = median_ips(train_step, batch, steps)
    net.eval()

    def infer():
        with torch.no_grad():
            net(x)

    return tr, median_ips(infer, batch, steps), torch.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-numpy", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads))
    os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--", "bench", "--model", "deep-conv", "--batch", str(a.batch),
         "--threads", str(a.threads), "--steps", str(max(a.steps, 10)), "--json"],
        cwd=root, env=env, check=True, capture_output=True, text=True).stdout
    ours = json.loads(out.strip().splitlines()[-1])
    rows = [("scratchnet", ours["train_images_per_s"], ours["infer_images_per_s"])]
    if not a.skip_torch:
        tr, inf, ver = torch_peer(a.batch, a.steps, a.threads)
        rows.append((f"PyTorch {ver} (CPU)", tr, inf))
    if not a.skip_numpy:
        tr, inf = numpy_peer(a.batch, a.steps)
        rows.append(("NumPy reference algorithm", tr, inf))
    print(f"DeepConvNet f32, batch {a.batch}, {a.threads} threads, median of {a.steps} steps")
    print(f"| peer | train images/s | infer images/s | scratchnet train speed-up |")
    print("|---|--:|--:|--:|")
    for name, tr, inf in rows:
        print(f"| {name} | {tr:.0f} | {inf:.0f} | {ours['train_images_per_s'] / tr:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
