"""Shared parts of the peer benchmarks (bench/peers/*.py): Fashion-MNIST from Debian's dataset-fashion-mnist
files, standardised as lowbit-train does it, the JSON line every peer prints, and the peer's versions.

The models are lowbit's nn::mlp and nn::cnn (include/lowbit/nn/models.hpp):
  mlp: dense 784-1024 (no bias), BN, act, dense 1024-1024 (no bias), BN, act, head;
  cnn: 2 x [conv3x3 16 (pad 1, no bias), BN, act], maxpool 2, 2 x [conv3x3 32, BN, act], maxpool 2, flatten,
       dense 1568-128 (no bias), BN, act, head;
  head: dense without bias + BatchNorm (Li et al.; lowbit-train's fp / bc / sr) or dense with bias (PACT, SAT;
        lowbit-train with --quantizer, and bench/infer.cpp's models).
"""
import gzip
import json
import os
import resource
import sys

import numpy as np

DATA = os.environ.get("LOWBIT_FMNIST", "/usr/share/datasets/fashion-mnist")


def idx(path):
    """An IDX file (optionally gzip-compressed) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def _file(data, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data, name)
        if os.path.exists(path):
            return path
    sys.exit(f"Fashion-MNIST file {stem}[.gz] not found in {data} (Debian: apt-get install dataset-fashion-mnist)")


def fashion_mnist(limit=0, data=DATA):
    """(train_x, train_y, test_x, test_y) as torch tensors: images flat [N, 784] float in [0, 1], standardised
    with the whole training set's mean and deviation, then the first `limit` training images (0: all) -- as
    lowbit-train does it (examples/train/run.hpp)."""
    import torch
    xtr = torch.tensor(idx(_file(data, "train-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255.0
    ytr = torch.tensor(idx(_file(data, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.tensor(idx(_file(data, "t10k-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255.0
    yte = torch.tensor(idx(_file(data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    m, s = xtr.mean(), xtr.std()
    xtr, xte = (xtr - m) / s, (xte - m) / s
    if limit and limit < xtr.shape[0]:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return xtr, ytr, xte, yte


def torch_info(with_brevitas=False):
    """The peer's versions and the CPU back ends its build has."""
    import torch
    info = {"torch": torch.__version__,
            "mkl": bool(torch.backends.mkl.is_available()),
            "onednn": bool(torch.backends.mkldnn.is_available())}
    if with_brevitas:
        import brevitas
        info["brevitas"] = brevitas.__version__
    return info


def peak_rss_kib():
    """This process's peak resident set size in KiB (Linux's ru_maxrss), what `/usr/bin/time -v` reports for
    lowbit-train; scripts/bench runs one training configuration per process, so it is that row's peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def emit(**fields):
    """One JSON line on stdout (what scripts/bench collects)."""
    print(json.dumps(fields), flush=True)
