#!/usr/bin/env python3
"""SQWA (Shin, Boo, Sung 2021, "SQWA: Stochastic Quantized Weight Averaging") on Fashion-MNIST.

The CNN with 2-bit weights (ternary, the L2-optimal step) and 2-bit PACT activations, first and last layers at
8 bits. Per seed:
  1. float weights trained for --fp-epochs (activations already quantized, so every later model has the same
     architecture), saved with --save-fp;
  2. QAT: BinaryConnect-style training from that checkpoint for --post-epochs epochs (lr --qat-lr, cosine);
  3. SQWA from the same checkpoint: --captures cycles of one epoch (rate 1e-2 -> 1e-4 within each), averaging
     of the captured ternary models, BatchNorm re-estimation, re-quantization, then fine-tuning for the
     remaining epochs at 1e-4 -- the same total epochs as QAT;
  4. a float model (bias head, float activations) trained for fp-epochs + post-epochs, for reference.
Seed 1's SQWA run also writes the loss on the plane through its first three captured models (the paper's
loss-surface picture) to docs/results/sqwa_surface.png (its values: docs/results/sqwa_surface.csv). Writes
docs/results/sqwa.md (with the study's provenance) and docs/results/sqwa_runs.json (every run's command, result
and curves).

Usage (from the repository root, after `cmake --workflow --preset release`):
    /usr/bin/python3 examples/experiments/sqwa.py [--seeds 3] [--train-limit 10000]
    /usr/bin/python3 examples/experiments/sqwa.py --report-only     # rewrite the report from the raw runs

Resumable: each finished run is kept under build/experiments/sqwa/ and reused by a later call with the same
command (with the float checkpoints it wrote there).

Settings fixed before any run: SGD (momentum 0.9); float training at lr 0.05 with a cosine schedule; QAT at
lr 0.01 with a cosine schedule (SQWA's cycles start at 0.01 too); batch 100; PACT alpha 4.
"""
import argparse, csv, os, shutil

from common import OUT, ROOT, check_binary, err_stats, load_runs, provenance_lines, run, save_runs

RAW = os.path.join(ROOT, "build", "experiments", "sqwa")
COMMON = ["--model", "cnn", "--optimizer", "sgd", "--schedule", "cosine", "--threads", "2", "--pact-alpha", "4"]
QUANT = ["--bits", "2", "--act-bits", "2", "--quantizer", "uniform"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fp-epochs", type=int, default=2)
    ap.add_argument("--captures", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=10000, help="first N training images (0: all)")
    ap.add_argument("--surface-grid", type=int, default=9)
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from docs/results/sqwa_runs.json")
    a = ap.parse_args()
    if a.report_only:
        write_report(load_runs("sqwa"))
        plot_surface(os.path.join(OUT, "sqwa_surface.csv"))
        return
    check_binary()
    post = a.captures + a.finetune_epochs
    lim = ["--train-limit", str(a.train_limit)]
    runs = {"FP": [], "QAT": [], "SQWA": []}
    surface = os.path.join(RAW, "surface.csv")
    for s in range(1, a.seeds + 1):
        seed = ["--seed", str(s)]
        ckpt = os.path.join(RAW, f"fp_s{s}.lbck")
        # Step 1 alone: SQWA with its first step saved (the rest of this run is not used).
        run(RAW, f"step1_s{s}", COMMON + QUANT + seed + lim + [
            "--method", "sqwa", "--lr", "0.05", "--fp-epochs", str(a.fp_epochs), "--captures", "1",
            "--cycle-epochs", "0.01", "--finetune-epochs", "0", "--save-fp", ckpt])
        runs["QAT"].append(run(RAW, f"qat_s{s}", COMMON + QUANT + seed + lim + [
            "--method", "bc", "--lr", "0.01", "--epochs", str(post), "--load-fp", ckpt]))
        extra = ["--surface", surface, "--surface-grid", str(a.surface_grid)] if s == 1 else []
        runs["SQWA"].append(run(RAW, f"sqwa_s{s}", COMMON + QUANT + seed + lim + [
            "--method", "sqwa", "--load-fp", ckpt, "--captures", str(a.captures), "--cycle-epochs", "1",
            "--cycle-high", "0.01", "--cycle-low", "0.0001", "--finetune-epochs", str(a.finetune_epochs),
            "--finetune-lr", "0.0001"] + extra))
        runs["FP"].append(run(RAW, f"fp_s{s}", COMMON + seed + lim + [
            "--method", "fp", "--head", "bias", "--lr", "0.05", "--epochs", str(a.fp_epochs + post)]))
    args = (f"--seeds {a.seeds} --fp-epochs {a.fp_epochs} --captures {a.captures} --finetune-epochs "
            f"{a.finetune_epochs} --train-limit {a.train_limit} --surface-grid {a.surface_grid}")
    doc = save_runs(RAW, "sqwa", runs, {"seeds": a.seeds, "fp_epochs": a.fp_epochs, "captures": a.captures,
                                        "finetune_epochs": a.finetune_epochs, "train_limit": a.train_limit, "args": args})
    shutil.copyfile(surface, os.path.join(OUT, "sqwa_surface.csv"))
    write_report(doc)
    plot_surface(surface)


def write_report(doc):
    runs, st = doc["runs"], doc["settings"]
    post = st["captures"] + st["finetune_epochs"]
    fp, qat, sq = (err_stats(runs[k]) for k in ("FP", "QAT", "SQWA"))
    gains = [100 * (s["result"]["test_acc"] - q["result"]["test_acc"]) for s, q in zip(runs["SQWA"], runs["QAT"])]
    data = f"the first {st['train_limit']} training images" if st["train_limit"] else "all 60000 training images"
    lines = ["# SQWA on Fashion-MNIST", "",
             f"The CNN on {data}, test error on all 10000 test images, seeds 1..{st['seeds']}. "
             "Weights: 2 bits (ternary, L2-optimal step per layer, `--quantizer uniform`); activations: 2-bit PACT; "
             f"first and last layers 8 bits. QAT and SQWA both start from the same float-weight checkpoint "
             f"({st['fp_epochs']} epochs) and train {post} more epochs; FP trains {st['fp_epochs'] + post} epochs in float. "
             "Provenance and the commands are at the end.", "",
             "## Test error (%), mean +- std over seeds", "",
             "| model | test error |", "|---|---|",
             f"| FP (float weights and activations) | {fp[0]:.2f} +- {fp[1]:.2f} |",
             f"| QAT (BinaryConnect, same quantizers) | {qat[0]:.2f} +- {qat[1]:.2f} |",
             f"| SQWA ({st['captures']} captures, {st['finetune_epochs']} fine-tuning epoch(s)) | {sq[0]:.2f} +- {sq[1]:.2f} |", "",
             "Gain of SQWA over QAT per seed (accuracy points, same seed and checkpoint): " +
             ", ".join(f"{g:+.2f}" for g in gains) + f"; mean {sum(gains) / len(gains):+.2f}.", "",
             "## The paper's claim, side by side", "",
             "| claim (Shin et al.) | here |", "|---|---|",
             f"| SQWA beats plain QAT at 2 bits | SQWA {sq[0]:.2f} vs QAT {qat[0]:.2f}: "
             f"{'yes' if sq[0] < qat[0] else 'no'} ({qat[0] - sq[0]:+.2f} points) |",
             f"| the SQWA model sits near the centre of a flat region of the quantized loss surface | see the picture |",
             "", "Differences smaller than the seeds' standard deviations are not evidence either way.", "",
             "## Loss surface (seed 1)", "",
             "![loss surface](sqwa_surface.png)", "",
             "Test loss (first 2000 test images, BatchNorm in training mode so that no point needs its own "
             "re-estimation) on the plane through the first three captured ternary models, with the forward pass "
             "quantizing each point's weights. Marked: the captures, their average (SQWA's step 4) and the "
             "final SQWA model (after re-quantization and fine-tuning), projected onto the plane.", ""]
    lines += provenance_lines(doc, "sqwa.py", st["args"])
    lines += ["## Commands (seed 1; the other seeds differ only in --seed, --log and the checkpoint's name)", ""]
    lines += [f"- `{runs[k][0]['cmd']}`" for k in ("QAT", "SQWA", "FP")]
    with open(os.path.join(OUT, "sqwa.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_surface(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts, marks = [], []
    with open(path) as f:
        for row in csv.reader(f):
            if row[0] == "a":
                continue
            if row[0].startswith("#"):
                marks.append((row[0][1:], float(row[1]), float(row[2])))
            else:
                pts.append(tuple(map(float, row)))
    a = sorted({p[0] for p in pts})
    b = sorted({p[1] for p in pts})
    z = [[0.0] * len(a) for _ in b]
    for pa, pb, loss in pts:
        z[b.index(pb)][a.index(pa)] = loss
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cs = ax.contourf(a, b, z, levels=20, cmap="viridis")
    fig.colorbar(cs, label="test loss")
    for name, x, y in marks:
        style = {"average": ("w*", 14), "sqwa_final": ("r*", 14)}.get(name, ("wo", 8))
        ax.plot(x, y, style[0], markersize=style[1], markeredgecolor="k")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), color="w", fontsize=8)
    ax.set_title("SQWA, CNN, 2-bit: test loss on the plane of three captures", fontsize=10)
    ax.set_xlabel("direction capture1 -> capture2")
    ax.set_ylabel("orthogonal direction towards capture3")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "sqwa_surface.png"), dpi=110)


if __name__ == "__main__":
    main()
