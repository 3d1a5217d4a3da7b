"""Shared by the study scripts: run lowbit-train, parse its JSON line and CSV log, summarise over seeds."""
import csv, json, os, statistics, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# LOWBIT_TRAIN overrides the binary (e.g. a second build while another study runs on the default one).
TRAIN = os.environ.get("LOWBIT_TRAIN", os.path.join(ROOT, "build", "release", "examples", "lowbit-train"))
OUT = os.path.join(ROOT, "docs", "results")


def run(raw_dir, tag, args):
    """Runs lowbit-train with args (plus --log); returns {"cmd", "result" (the JSON line), "curve" (test error/epoch)}."""
    os.makedirs(raw_dir, exist_ok=True)
    log = os.path.join(raw_dir, tag + ".csv")
    cmd = [TRAIN] + args + ["--log", log]
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    curve = []
    if os.path.exists(log):
        with open(log) as f:
            curve = [1.0 - float(r["test_acc"]) for r in csv.DictReader(f)]
    print(f"{tag}: test error {100 * (1 - result['test_acc']):.2f} % ({time.time() - t0:.0f} s)", flush=True)
    return {"cmd": " ".join(os.path.relpath(c, ROOT) if c == TRAIN or c.startswith(ROOT) else c for c in cmd),
            "result": result, "curve": curve}


def relative_cmds(runs):
    """Older runs.json files hold absolute paths in their commands: make them relative to the repository."""
    for rs in runs.values():
        for r in rs:
            r["cmd"] = r["cmd"].replace(ROOT + "/", "")
    return runs


def err_stats(rs):
    """Mean and sample standard deviation of the test error (%) over runs."""
    errs = [100.0 * (1.0 - r["result"]["test_acc"]) for r in rs]
    return statistics.mean(errs), (statistics.stdev(errs) if len(errs) > 1 else 0.0)


def mean_of(rs, key):
    return statistics.mean(r["result"][key] for r in rs)


def check_binary():
    if not os.path.exists(TRAIN):
        raise SystemExit(f"{TRAIN} not found: run `cmake --workflow --preset release` first")
