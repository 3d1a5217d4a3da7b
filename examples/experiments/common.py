"""Shared by the study scripts: run lowbit-train, parse its JSON line and CSV log, summarise over seeds."""
import csv, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# LOWBIT_TRAIN overrides the binary (e.g. a second build while another study runs on the default one).
TRAIN = os.environ.get("LOWBIT_TRAIN", os.path.join(ROOT, "build", "release", "examples", "lowbit-train"))
OUT = os.path.join(ROOT, "docs", "results")


def git(*args):
    r = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def commit():
    """The checkout's commit, with '+changes' when tracked files differ from it."""
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run(raw_dir, tag, args):
    """Runs lowbit-train with args (plus --log); returns {"cmd", "result" (the JSON line), "curve" (test error per
    epoch), "flips" (flip_ratio per epoch, None where nothing is quantized), "commit", "finished"}.

    Resumable: each finished run is kept in raw_dir/<tag>.json, and a later call with the same command reuses it,
    so an interrupted study continues where it stopped (delete the file to run it again)."""
    os.makedirs(raw_dir, exist_ok=True)
    log = os.path.join(raw_dir, tag + ".csv")
    cmd = [TRAIN] + args + ["--log", log]
    shown = " ".join(os.path.relpath(c, ROOT) if c == TRAIN or c.startswith(ROOT) else c for c in cmd)
    kept = os.path.join(raw_dir, tag + ".json")
    if os.path.exists(kept):
        with open(kept) as f:
            r = json.load(f)
        if r.get("cmd") == shown:
            print(f"{tag}: test error {100 * (1 - r['result']['test_acc']):.2f} % (kept from {r.get('commit', '?')})",
                  flush=True)
            return r
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    curve, flips = [], []
    if os.path.exists(log):
        with open(log) as f:
            for row in csv.DictReader(f):
                curve.append(1.0 - float(row["test_acc"]))
                flips.append(float(row["flip_ratio"]) if row.get("flip_ratio") else None)
    print(f"{tag}: test error {100 * (1 - result['test_acc']):.2f} % ({time.time() - t0:.0f} s)", flush=True)
    r = {"cmd": shown, "result": result, "curve": curve, "flips": flips, "commit": commit(),
         "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with open(kept + ".tmp", "w") as f:
        json.dump(r, f, indent=1)
    os.replace(kept + ".tmp", kept)
    return r


def provenance():
    """Where a study ran: the commit, the build of lowbit-train (type, flags, compiler), the machine, OpenBLAS's
    environment."""
    build_dir = os.path.dirname(os.path.dirname(TRAIN))
    cache = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                cache[k.split(":")[0]] = v
    except OSError:
        pass
    cxx = cache.get("CMAKE_CXX_COMPILER", "c++")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1] if cxx else []
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"commit": commit(), "binary": os.path.relpath(TRAIN, ROOT), "preset": os.path.basename(build_dir),
            "build_type": cache.get("CMAKE_BUILD_TYPE", "?"), "cxx_flags": cache.get("CMAKE_CXX_FLAGS", ""),
            "compiler": version[0] if version else cxx, "machine": f"{model}, {os.cpu_count()} logical CPUs",
            "openblas": {k: os.environ.get(k, "") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")},
            "python": sys.executable, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def save_runs(raw_dir, name, runs, settings):
    """Writes the raw runs with their provenance to raw_dir/runs.json and docs/results/<name>_runs.json (committed)."""
    doc = {"provenance": provenance(), "settings": settings, "runs": runs}
    for path in (os.path.join(raw_dir, "runs.json"), os.path.join(OUT, f"{name}_runs.json")):
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
    return doc


def load_runs(name):
    """The committed raw runs of a study (docs/results/<name>_runs.json), for --report-only."""
    with open(os.path.join(OUT, f"{name}_runs.json")) as f:
        return json.load(f)


def provenance_lines(doc, script, args):
    """The report's provenance section."""
    p = doc["provenance"]
    commits = sorted({r.get("commit", "?") for rs in walk_runs(doc["runs"]) for r in rs})
    ob = ", ".join(f"{k}={v}" if v else f"{k} unset" for k, v in p["openblas"].items())
    return ["## Provenance", "",
            f"- Command: `{('/usr/bin/python3 examples/experiments/' + script + ' ' + args).strip()}` from the repository "
            f"root; the raw runs (every command, result, test-error and flip curve) are in `docs/results/{script[:-3]}_runs.json`.",
            f"- Runs made at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}; report written {p['date']} at {p['commit']}.",
            f"- Binary: `{p['binary']}`, CMake build type {p['build_type']}, CXX flags `{p['cxx_flags'] or '(none)'}`, "
            f"{p['compiler']} (`cmake --workflow --preset {p.get('preset', 'release')}`).",
            f"- Machine: {p['machine']}; {ob}.", ""]


def walk_runs(runs):
    """The lists of runs in a study's nested {model: {method: [run, ...]}} or {method: [run, ...]}."""
    for v in runs.values():
        if isinstance(v, list):
            yield v
        else:
            yield from walk_runs(v)


def err_stats(rs):
    """Mean and sample standard deviation of the test error (%) over runs."""
    errs = [100.0 * (1.0 - r["result"]["test_acc"]) for r in rs]
    return statistics.mean(errs), (statistics.stdev(errs) if len(errs) > 1 else 0.0)


def mean_of(rs, key):
    return statistics.mean(r["result"][key] for r in rs)


def check_binary():
    if not os.path.exists(TRAIN):
        raise SystemExit(f"{TRAIN} not found: run `cmake --workflow --preset release` first")
