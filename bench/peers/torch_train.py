#!/usr/bin/env python3
"""PyTorch peer of lowbit-train (scripts/bench runs it from build/peer-venv: torch 2.x from PyPI).

Trains lowbit's nn::mlp (784-1024-1024-10, BatchNorm, dense + BN head) or nn::cnn (16/32/128) on Fashion-MNIST
with Adam, as `lowbit-train --model M --method X --bits 1 --optimizer adam --schedule constant` does, and prints
one JSON line per method with the training images/s (over the epochs' training steps only, shuffling and batch
gathering included, evaluation excluded) and the test accuracy after training.

Methods (Li et al. 2017, 1-bit weights):
  fp  float weights: plain nn.Linear / nn.Conv2d, what a PyTorch user writes;
  bc  BinaryConnect: float shadow weights, sign() in the forward pass with a straight-through gradient, shadow
      weights clipped to [-1, 1] after each update;
  sr  stochastic rounding: weights kept on the 1-bit grid {-1, +1}, rounded stochastically after each update.
The binary layers multiply their output by sqrt(2 / fan_in), a fixed per-layer scale (BatchNorm follows anyway).

  python bench/peers/torch_train.py --model mlp --methods fp,bc,sr --epochs 1 --batch 100 --threads 2
  python bench/peers/torch_train.py --model cnn --methods fp,bc --limit 10000
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import emit, fashion_mnist, peak_rss_kib, torch_info


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        return g


class QLinear(nn.Linear):
    """Dense layer without bias whose weights are binary (bc: sign of the shadow; sr: stored on the grid)."""

    def __init__(self, i, o, method):
        super().__init__(i, o, bias=False)
        self.method = method
        nn.init.uniform_(self.weight, -1, 1)
        self.scale = (2.0 / i) ** 0.5

    def forward(self, x):
        w = SignSTE.apply(self.weight) if self.method == "bc" else self.weight
        return F.linear(x, w) * self.scale


class QConv(nn.Conv2d):
    """3x3 convolution (padding 1, no bias) with binary weights, as QLinear."""

    def __init__(self, i, o, method):
        super().__init__(i, o, 3, padding=1, bias=False)
        self.method = method
        nn.init.uniform_(self.weight, -1, 1)
        self.scale = (2.0 / (i * 9)) ** 0.5

    def forward(self, x):
        w = SignSTE.apply(self.weight) if self.method == "bc" else self.weight
        return F.conv2d(x, w, padding=1) * self.scale


def dense(i, o, method):
    return nn.Linear(i, o, bias=False) if method == "fp" else QLinear(i, o, method)


def conv(i, o, method):
    return nn.Conv2d(i, o, 3, padding=1, bias=False) if method == "fp" else QConv(i, o, method)


def mlp(method, hidden=1024):
    """nn::mlp with the BatchNorm head (lowbit-train's fp / bc / sr)."""
    return nn.Sequential(dense(784, hidden, method), nn.BatchNorm1d(hidden), nn.ReLU(),
                         dense(hidden, hidden, method), nn.BatchNorm1d(hidden), nn.ReLU(),
                         dense(hidden, 10, method), nn.BatchNorm1d(10))


def cnn(method, w1=16, w2=32, hidden=128):
    """nn::cnn with the BatchNorm head, on [N, 1, 28, 28]."""
    block = lambda i, o: [conv(i, o, method), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(1, w1), *block(w1, w1), nn.MaxPool2d(2), *block(w1, w2), *block(w2, w2),
                         nn.MaxPool2d(2), nn.Flatten(), dense(w2 * 7 * 7, hidden, method), nn.BatchNorm1d(hidden),
                         nn.ReLU(), dense(hidden, 10, method), nn.BatchNorm1d(10))


def after_update(model, gen):
    """bc: clip the shadow weights; sr: round the weights stochastically back onto {-1, +1}."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (QLinear, QConv)):
                w = m.weight
                if m.method == "bc":
                    w.clamp_(-1, 1)
                elif m.method == "sr":
                    x = (w.clamp(-1, 1) + 1) / 2.0  # levels -1 + 2k, k = 0, 1
                    lo = torch.floor(x)
                    up = torch.rand(w.shape, generator=gen) < (x - lo)
                    w.copy_(((lo + up.float()) * 2.0 - 1).clamp_(-1, 1))


def run(a, method, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = mlp(method, a.hidden) if a.model == "mlp" else cnn(method)
    if method == "sr":
        after_update(model, gen)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    n, seen, t0 = xtr.shape[0], 0, time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(n)
        model.train()
        for i in range(0, n - a.batch + 1, a.batch):
            j = perm[i:i + a.batch]
            loss = F.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            after_update(model, gen)
            seen += a.batch
    dt = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    emit(peer="pytorch", **torch_info(), model=a.model, method=method, bits=32 if method == "fp" else 1,
         optimizer="adam", lr=a.lr, epochs=a.epochs, batch=a.batch, threads=a.threads, train_images=n,
         test_acc=round(acc, 4), train_seconds=round(dt, 3), train_images_per_s=round(seen / dt, 1), peak_rss_kib=peak_rss_kib())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--methods", default="fp,bc,sr", help="comma-separated: fp, bc, sr")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=1024, help="MLP hidden width")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xtr, ytr, xte, yte = fashion_mnist(a.limit)
    if a.model == "cnn":
        xtr, xte = xtr.reshape(-1, 1, 28, 28), xte.reshape(-1, 1, 28, 28)
    for method in a.methods.split(","):
        if method not in ("fp", "bc", "sr"):
            ap.error(f"unknown method {method}")
        run(a, method, (xtr, ytr, xte, yte))


if __name__ == "__main__":
    main()
