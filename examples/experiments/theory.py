#!/usr/bin/env python3
"""Plots Li et al. 2017's convex theory on least squares from lowbit-theory's CSV output.

Usage (from the repository root, after `cmake --workflow --preset release`):
    /usr/bin/python3 examples/experiments/theory.py
Writes docs/results/theory.png and prints the final gaps (the numbers quoted in docs/results/li2017.md).
"""
import csv, io, os, subprocess
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# LOWBIT_THEORY overrides the binary (e.g. build/bench/examples/lowbit-theory).
theory = os.environ.get("LOWBIT_THEORY", os.path.join(ROOT, "build", "release", "examples", "lowbit-theory"))
out = subprocess.run([theory], check=True,
                     capture_output=True, text=True).stdout
runs = {}
for row in csv.DictReader(io.StringIO(out)):
    runs.setdefault(row["run"], ([], []))
    runs[row["run"]][0].append(int(row["step"]))
    runs[row["run"]][1].append(max(float(row["gap"]), 1e-12))
fig, ax = plt.subplots(figsize=(8, 5))
for name, (x, y) in runs.items():
    ax.plot(x, y, label=name, linestyle="--" if "lr" in name and "SR" in name else "-")
    tail = y[len(y) // 2:]
    print(f"{name}: mean gap over the last half {sum(tail) / len(tail):.3g}, final {y[-1]:.3g}")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("f(w) - f*  (kept weights: BC float shadow, SR/R grid values)")
ax.set_title("Least squares, d = 10: SR floors scale with the grid step, not the learning rate")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(ROOT, "docs", "results", "theory.png"), dpi=110)
