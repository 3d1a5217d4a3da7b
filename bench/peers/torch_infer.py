#!/usr/bin/env python3
"""PyTorch peer of bench/infer.cpp (scripts/bench runs it from build/peer-venv: torch 2.x from PyPI): float
inference of lowbit's nn::mlp (784-1024-1024-10) and nn::cnn (16/32/128 on 1x28x28), each with BatchNorm after
every layer but the last, ReLU activations and a dense head with bias (bench/infer.cpp's models), in eval mode
under torch.inference_mode(). Weights are untrained: the work does not depend on them.

Measured as Google Benchmark does for bench_infer: per (model, threads, batch), calls repeated until at least
--min-time seconds have passed, --repetitions times, median; batch 1 gives the latency, batch 256 the
throughput. One JSON line per (model, threads, batch) with latency_us (per call) and images_per_s.

  python bench/peers/torch_infer.py --models mlp,cnn --threads 1,2 --batches 1,256 --min-time 0.5 --repetitions 3
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

from common import emit, torch_info


def mlp(hidden=1024):
    return nn.Sequential(nn.Linear(784, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def cnn(w1=16, w2=32, hidden=128):
    block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(1, w1), *block(w1, w1), nn.MaxPool2d(2), *block(w1, w2), *block(w2, w2),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(w2 * 7 * 7, hidden, bias=False),
                         nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 10))


def calibrated(model, shape):
    """BatchNorm statistics from one training-mode batch (as bench/infer.cpp does), then eval mode."""
    torch.manual_seed(1)
    model.train()
    with torch.no_grad():
        model(torch.randn(256, *shape))
    return model.eval()


def seconds_per_call(model, x, min_time):
    """Calls until min_time seconds have passed (doubling the count, as Google Benchmark sizes its runs)."""
    iters = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / iters
        iters = max(iters * 2, int(iters * min_time * 1.4 / max(dt, 1e-9)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--repetitions", type=int, default=3)
    a = ap.parse_args()
    info = torch_info()
    for name in a.models.split(","):
        model, shape = (mlp(), (784,)) if name == "mlp" else (cnn(), (1, 28, 28))
        model = calibrated(model, shape)
        params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
        for t in (int(s) for s in a.threads.split(",")):
            torch.set_num_threads(t)
            for b in (int(s) for s in a.batches.split(",")):
                x = torch.randn(b, *shape)
                with torch.inference_mode():
                    for _ in range(3):  # warm-up: first-call allocations, oneDNN primitive creation
                        model(x)
                    runs = [seconds_per_call(model, x, a.min_time) for _ in range(a.repetitions)]
                s = statistics.median(runs)
                emit(peer="pytorch", **info, model=name, threads=t, batch=b, repetitions=a.repetitions,
                     min_time=a.min_time, latency_us=round(s * 1e6, 2), images_per_s=round(b / s, 1),
                     float_values=params)


if __name__ == "__main__":
    main()
