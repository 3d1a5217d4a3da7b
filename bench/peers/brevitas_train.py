#!/usr/bin/env python3
"""Brevitas peer of lowbit-train's quantization-aware training (scripts/bench runs it from build/peer-venv:
torch 2.x and brevitas from PyPI). The MLP of nn::mlp (784-1024-1024-10, BatchNorm), Fashion-MNIST, Adam; one
JSON line per config with the training images/s (training steps only, as torch_train.py) and the test accuracy.

Configs:
  bc    binary weights in every layer (SignedBinaryWeightPerTensorConst: sign with a straight-through
        gradient; shadow weights clipped to [-1, 1] after each update), float ReLU activations, dense + BN head:
        the peer of `lowbit-train --model mlp --method bc --bits 1`;
  pact  2-bit weights in the hidden layer and 8-bit weights in the first and last layers (Int8WeightPerTensorFloat
        at 2 / 8 bits, 2^b levels), 2-bit activations after each hidden ReLU with a learned clipping scale
        (QuantReLU, Uint8ActPerTensorFloat at 2 bits: PACT-like), dense head with bias: the peer of
        `lowbit-train --model mlp --method bc --quantizer pact --bits 2 --act-bits 2` (first and last layers at
        8 bits, its default).

  python bench/peers/brevitas_train.py --configs bc,pact --epochs 1 --batch 100 --threads 2
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import brevitas.nn as qnn
from brevitas.quant import Int8WeightPerTensorFloat, SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFloat

from common import emit, fashion_mnist, peak_rss_kib, torch_info


def net(cfg, h):
    if cfg == "bc":
        L = lambda i, o, bias=False: qnn.QuantLinear(i, o, bias=bias, weight_quant=SignedBinaryWeightPerTensorConst)
        return nn.Sequential(L(784, h), nn.BatchNorm1d(h), nn.ReLU(), L(h, h), nn.BatchNorm1d(h), nn.ReLU(),
                             L(h, 10), nn.BatchNorm1d(10))
    L = lambda i, o, bits, bias=False: qnn.QuantLinear(i, o, bias=bias, weight_quant=Int8WeightPerTensorFloat,
                                                       weight_bit_width=bits, weight_narrow_range=False)
    A = lambda: qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=2)
    return nn.Sequential(L(784, h, 8), nn.BatchNorm1d(h), A(), L(h, h, 2), nn.BatchNorm1d(h), A(),
                         L(h, 10, 8, bias=True))


def run(a, cfg, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(0)
    model = net(cfg, a.hidden)
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
            if cfg == "bc":
                with torch.no_grad():
                    for m in model.modules():
                        if isinstance(m, qnn.QuantLinear):
                            m.weight.clamp_(-1, 1)
            seen += a.batch
    dt = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    emit(peer="brevitas", **torch_info(with_brevitas=True), model="mlp", method=cfg, bits=1 if cfg == "bc" else 2,
         act_bits=32 if cfg == "bc" else 2, optimizer="adam", lr=a.lr, epochs=a.epochs, batch=a.batch,
         threads=a.threads, train_images=n, test_acc=round(acc, 4), train_seconds=round(dt, 3),
         train_images_per_s=round(seen / dt, 1), peak_rss_kib=peak_rss_kib())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="bc,pact", help="comma-separated: bc, pact")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = fashion_mnist(a.limit)
    for cfg in a.configs.split(","):
        if cfg not in ("bc", "pact"):
            ap.error(f"unknown config {cfg}")
        run(a, cfg, data)


if __name__ == "__main__":
    main()
