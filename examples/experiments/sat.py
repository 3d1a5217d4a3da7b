#!/usr/bin/env python3
"""SAT (Jin, Yang, Liao 2020, "Neural Network Quantization with Scale-Adjusted Training") on Fashion-MNIST.

The CNN at 4/4 and 2/2 bits (weights/activations): SAT (DoReFa weights, CG-PACT activations, last layer
rescaled to variance 1/n_out) against PACT (DoReFa weights, PACT activations) and DoReFa (weights and
activations) without SAT, and against float. Every quantized model keeps its first and last layers at 8 bits
(the paper's recipe) and has a classifier with bias and no BatchNorm after it (a BatchNorm there would undo the
rescaling). Writes docs/results/sat.md (with the study's provenance), docs/results/sat_runs.json (every run's
command, result and curves) and docs/results/sat_curves.png.

Usage (from the repository root, after `cmake --workflow --preset release`):
    /usr/bin/python3 examples/experiments/sat.py [--seeds 3] [--epochs 3] [--train-limit 10000]
    /usr/bin/python3 examples/experiments/sat.py --report-only     # rewrite the report from the raw runs

Resumable: each finished run is kept under build/experiments/sat/ and reused by a later call with the same
command.

Settings fixed before any run, the same for every method: SGD (momentum 0.9), lr 0.05 with a cosine schedule
(the paper's), batch 100, PACT alpha initialised at 4 (the activations it clips follow BatchNorm and ReLU, so
they are of order 1; the paper's 8-10 are for unnormalised ImageNet-scale activations).
"""
import argparse, os, statistics

from common import OUT, ROOT, check_binary, err_stats, load_runs, mean_of, provenance_lines, run, save_runs

RAW = os.path.join(ROOT, "build", "experiments", "sat")
COMMON = ["--model", "cnn", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine", "--threads", "2",
          "--pact-alpha", "4"]


def methods(bits):
    b = str(bits)
    q = ["--bits", b, "--act-bits", b]
    return [(f"SAT {b}/{b}", ["--method", "sat"] + q),
            (f"PACT {b}/{b}", ["--method", "bc", "--quantizer", "pact"] + q),
            (f"DoReFa {b}/{b}", ["--method", "bc", "--quantizer", "dorefa"] + q)]


METHODS = [("FP", ["--method", "fp", "--head", "bias"]), ("FP + SAT", ["--method", "sat", "--bits", "32", "--first-last-bits", "32"])] \
    + methods(4) + methods(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=10000, help="first N training images (0: all)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from docs/results/sat_runs.json")
    a = ap.parse_args()
    if a.report_only:
        doc = load_runs("sat")
        write_report(doc)
        plot(doc["runs"])
        return
    check_binary()
    runs = {}
    for name, args in METHODS:
        runs[name] = [run(RAW, f"{name.replace(' ', '_').replace('/', '-')}_s{s}",
                          COMMON + args + ["--epochs", str(a.epochs), "--seed", str(s), "--train-limit", str(a.train_limit)])
                      for s in range(1, a.seeds + 1)]
    args = f"--seeds {a.seeds} --epochs {a.epochs} --train-limit {a.train_limit}"
    doc = save_runs(RAW, "sat", runs, {"seeds": a.seeds, "epochs": a.epochs, "train_limit": a.train_limit, "args": args})
    write_report(doc)
    plot(runs)


def write_report(doc):
    runs, st = doc["runs"], doc["settings"]
    fp = err_stats(runs["FP"])[0]
    data = f"the first {st['train_limit']} training images" if st["train_limit"] else "all 60000 training images"
    lines = ["# SAT on Fashion-MNIST", "",
             f"The CNN, {st['epochs']} epochs on {data}, test error on all 10000 test images, seeds 1..{st['seeds']}. "
             "Provenance and the commands are at the end.", "",
             "## Test error (%), mean +- std over seeds", "",
             "| method | test error | vs FP | last-layer weight std | logit std | train images/s |",
             "|---|---|---|---|---|---|"]
    for name, _ in METHODS:
        m, s = err_stats(runs[name])
        lines.append(f"| {name} | {m:.2f} +- {s:.2f} | {m - fp:+.2f} | {mean_of(runs[name], 'last_weight_std'):.3f} | "
                     f"{mean_of(runs[name], 'logit_std'):.2f} | {mean_of(runs[name], 'train_images_per_s'):.0f} |")
    lines += ["", "Last-layer weight std: the standard deviation of the classifier's forward weights (Q* for SAT, "
              "Q otherwise) after training; logit std: that of the logits on the first 1000 test images, in "
              "evaluation mode. These are the quantities of the paper's diagnosis: DoReFa's clamp inflates the "
              "last layer's weight variance, which saturates the softmax; SAT fixes the variance at 1/n_out "
              "(std 1/sqrt(10) = 0.316 here). The images/s column is informative only: these runs shared the 2 cores "
              "with other jobs; `docs/benchmarks.md` has the training-speed benchmarks.", "",
              "## The paper's claims, side by side", "",
              "| claim (Jin et al.) | here |", "|---|---|"]
    for b in (4, 2):
        sat, pact, dorefa = (err_stats(runs[f"{k} {b}/{b}"])[0] for k in ("SAT", "PACT", "DoReFa"))
        lines.append(f"| SAT beats PACT at {b}/{b} bits | SAT {sat:.2f} vs PACT {pact:.2f}: "
                     f"{'yes' if sat < pact else 'no'} ({pact - sat:+.2f} points) |")
        lines.append(f"| SAT-quantized models can match or beat FP ({b}/{b}) | SAT {sat:.2f} vs FP {fp:.2f}: "
                     f"{'yes' if sat <= fp else 'no'} ({sat - fp:+.2f} points) |")
        lines.append(f"| (DoReFa without SAT, {b}/{b}) | {dorefa:.2f} |")
    lines += ["", "Differences smaller than the seeds' standard deviations are not evidence either way.", "",
              "![test error per epoch](sat_curves.png)", ""]
    lines += provenance_lines(doc, "sat.py", st["args"])
    lines += ["## Commands (seed 1; the other seeds differ only in --seed and --log)", ""]
    lines += [f"- `{runs[name][0]['cmd']}`" for name, _ in METHODS]
    with open(os.path.join(OUT, "sat.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(runs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, _ in METHODS:
        curves = [r["curve"] for r in runs[name]]
        n = min(len(c) for c in curves)
        ax.plot(range(1, n + 1), [100 * statistics.mean(c[i] for c in curves) for i in range(n)], marker="o",
                linestyle="-" if "SAT" in name else "--", label=name)
    ax.set_title("Fashion-MNIST CNN: SAT vs PACT / DoReFa")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "sat_curves.png"), dpi=110)


if __name__ == "__main__":
    main()
