#!/usr/bin/env python3
"""Writes docs/benchmarks.md whole from the results of one `scripts/bench` run (build/bench/results/*), so that
every number in it comes from that command, and the figures of the README's speed summary (the block between
its bench:speed markers) from the same results.

  /usr/bin/python3 bench/report.py [--results DIR] [--out FILE] [--readme README.md | --readme-block FILE]

scripts/bench calls it last; run by hand it only re-formats the results that are there."""
import argparse, json, os, re, statistics, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = os.path.join(ROOT, "build", "bench", "results")
OUT = os.path.join(ROOT, "docs", "benchmarks.md")
README_BEGIN = "<!-- bench:speed:begin (written by bench/report.py from scripts/bench's results; do not edit) -->"
README_END = "<!-- bench:speed:end -->"
FIG = {}  # figures the README block quotes, filled by the sections


def text(name, default=None):
    try:
        with open(os.path.join(RES, name)) as f:
            return f.read()
    except FileNotFoundError:
        if default is None:
            raise
        return default


def jsonl(name):
    return [json.loads(l) for l in text(name, "").splitlines() if l.strip().startswith("{")]


def load(name):
    return json.loads(text(name))


def medians(data):
    """name -> median bytes_per_second / items_per_second / FLOPS over repetitions."""
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") != "median":
                continue
            name = b["run_name"]
        else:
            name = b.get("run_name", b["name"])
            if any(x.get("run_name") == name and x.get("run_type") == "aggregate" for x in data["benchmarks"]):
                continue
        runs[name] = b
    return runs


def load_average(name):
    """The load averages recorded by scripts/bench (the first and the last line of the file), or '?'."""
    lines = [l.split("load average:")[1].strip() for l in text(name, "").splitlines() if "load average:" in l]
    if not lines:
        return "?"
    return lines[0] if len(lines) == 1 else f"{lines[0]} (first section) ... {lines[-1]} (last)"


def lscpu():
    """CPU model, a line on its CPUs, and the instruction-set flags that matter here."""
    t = text("lscpu.txt")
    field = lambda name: (re.search(rf"^\s*{name}:\s*(.*)$", t, re.M) or [None, "?"])[1].strip()
    flags = field("Flags").split()
    want = ["avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq", "avx512_vnni", "avx_vnni"]
    n, per_core = field(r"CPU\(s\)"), field(r"Thread\(s\) per core")
    cpus = f"{n} CPUs ({per_core} thread(s) per core"
    hyper = field("Hypervisor vendor")
    cpus += f", {hyper} guest)" if hyper != "?" else ")"
    return field("Model name"), cpus, ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in want)


def run_info():
    """scripts/bench's run.txt as a dict (command, started, commit, quick)."""
    info = {}
    for line in text("run.txt", "").splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            info.setdefault(k, v)
    return info


def peer_versions():
    """name -> version of the peers' environment (pip freeze), plus 'python'."""
    out = {}
    for line in text("peer_versions.txt", "").splitlines():
        if "==" in line:
            k, v = line.split("==", 1)
            out[k.lower()] = v
        elif line.startswith("Python "):
            out["python"] = line.split()[1]
    return out


def pack_section(lines):
    data = load("pack.json")
    m = medians(data)
    gb = lambda name: m[name]["bytes_per_second"] / 1e9 if name in m else None
    sizes = [4096, 65536, 1048576, 16777216]
    label = {4096: "16 KiB", 65536: "256 KiB", 1048576: "4 MiB", 16777216: "64 MiB"}
    lines += ["## Quantize+pack and unpack+dequantize (issue 2)", "",
              "`bench/pack.cpp`: the fused kernels of `kernels/pack.hpp` against a `memcpy` of the same float bytes, in "
              "the same binary. bytes/s count **float bytes** (n x 4): the input of quantize+pack, the output of "
              "unpack+dequantize. Grid symmetric_even with bound 1, inputs uniform on [-1.25, 1.25]. With 2 threads "
              "memcpy is split in the same two halves as the kernels. Median of 3 repetitions; GB/s = 1e9 B/s.", "",
              "| kernel | bits | threads | " + " | ".join(f"{label[s]}" for s in sizes) + " |",
              "|---|---|---|" + "---|" * len(sizes)]
    for t in (1, 2):
        row = [f"{gb(f'memcpy/n:{s}/nthreads:{t}/real_time'):.2f}" for s in sizes]
        lines.append(f"| memcpy | - | {t} | " + " | ".join(row) + " |")
    for kern in ("quantize_pack<nearest_even,{b}>", "quantize_pack<stochastic,{b}>", "unpack_dequantize<{b}>"):
        for b in (1, 2, 4, 8):
            for t in (1, 2):
                cells = []
                for s in sizes:
                    v = gb(kern.format(b=b) + f"/n:{s}/nthreads:{t}/real_time")
                    base = gb(f"memcpy/n:{s}/nthreads:{t}/real_time")
                    cells.append(f"{v:.2f} ({100 * v / base:.0f}%)" if v else "-")
                label = kern.split("<")[0] + (" nearest" if "nearest" in kern else " stochastic" if "stochastic" in kern else "")
                lines.append(f"| {label} | {b} | {t} | " + " | ".join(cells) + " |")
    lines += ["", "Targets on large arrays (64 MiB), ratio to memcpy at the same thread count:", ""]
    for name, kern, target in (("nearest quantize+pack", "quantize_pack<nearest_even,{b}>", 50),
                               ("stochastic quantize+pack", "quantize_pack<stochastic,{b}>", 25),
                               ("unpack+dequantize", "unpack_dequantize<{b}>", 50)):
        for t in (1, 2):
            ratios = [100 * gb(kern.format(b=b) + f"/n:16777216/nthreads:{t}/real_time") /
                      gb(f"memcpy/n:16777216/nthreads:{t}/real_time") for b in (1, 2, 4, 8)]
            ok = all(r >= target for r in ratios)
            FIG[("pack", name, t)] = (min(ratios), max(ratios), target, ok)
            lines.append(f"- {name}, {t} thread(s): {min(ratios):.0f}%..{max(ratios):.0f}% of memcpy "
                         f"(target >= {target}%): **{'met' if ok else 'missed'}**")
    refs = [(k, v) for k, v in m.items() if k.startswith("ref_")]
    if refs:
        lines += ["", "Scalar references (1 thread, 64 MiB), for the speed-up of the SIMD kernels:", ""]
        for k, v in sorted(refs):
            lines.append(f"- `{k.split('/')[0]}`: {v['bytes_per_second'] / 1e9:.2f} GB/s")
    lines.append("")


def openblas_env():
    """How the environment sets OpenBLAS (scripts/bench records it), as text for the tables."""
    try:
        t = text("openblas_env.txt").split()
    except FileNotFoundError:
        return "unknown"
    return ", ".join(t) if t else "nothing set"


def gemm_section(lines):
    data = load("gemm.json")
    try:
        env = {b["name"]: b["FLOPS"] for b in load("gemm_env.json")["benchmarks"] if "FLOPS" in b}
    except FileNotFoundError:
        env = {}
    lines += ["## Float GEMM", "", "`bench/gemm.cpp`: `cblas_sgemm` (OpenBLAS) against lowbit's xsimd GEMM "
              "(`kernels::sgemm_fallback`), square sizes, GFLOP/s (2 m n k per call). The main run has "
              "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS picks its native kernels); the last column "
              f"repeats the OpenBLAS rows with the environment as this machine sets it ({openblas_env()}).", "",
              "| benchmark | GFLOP/s (native OpenBLAS) | GFLOP/s, environment as set |", "|---|---|---|"]
    for b in data["benchmarks"]:
        if "FLOPS" in b and b.get("run_type", "iteration") == "iteration":
            h = env.get(b["name"])
            lines.append(f"| `{b['name']}` | {b['FLOPS'] / 1e9:.1f} | {h / 1e9:.1f} |" if h else
                         f"| `{b['name']}` | {b['FLOPS'] / 1e9:.1f} | - |")
    lines.append("")


def int_section(lines):
    m = medians(load("int_gemm.json"))
    mac = lambda name: m[name]["MACs"] / 1e9 if name in m else float("nan")
    try:
        env = medians(load("int_gemm_env.json"))
    except FileNotFoundError:
        env = {}
    bound = mac("bound/xor_popcnt_add/avx512/real_time")
    bound2 = mac("bound/xor_popcnt_add/avx2/real_time")
    vnni = mac("bound/vpdpbusd/avx512/real_time")
    g = lambda kind, n, t: mac(f"{kind}/n:{n}/threads:{t}/real_time")
    lines += ["## Integer kernels (issue 5)", "",
              "`bench/int_gemm.cpp`, one binary: the instruction bounds (register-only loops of xor + popcount + add, "
              "and of vpdpbusd), the binary microkernel on cache-resident tiles, the whole GEMMs, and OpenBLAS sgemm "
              "on the same shapes and threads. Rates are GMAC/s: one MAC is one multiply-accumulate of a value pair "
              "(a 512-bit xor+popcount+add is 512 binary MACs). Median of 3 repetitions, wall time. OpenBLAS native "
              f"(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset); the environment as set ({openblas_env()}) in the last "
              "column.", "",
              f"Instruction bounds, 1 thread: xor+popcount+add AVX-512 {bound:.0f} GMAC/s, AVX2 {bound2:.0f}; "
              f"vpdpbusd {vnni:.0f} GMAC/s.", "",
              "| kernel | threads | 256^3 | 1024^3 | 4096^3 | sgemm 1024^3 (native) | x sgemm at 1024^3 | sgemm 1024^3 (env as set) |",
              "|---|---|---|---|---|---|---|---|"]
    for kind in ("binary_gemm/avx512", "binary_gemm/avx2", "binary_gemm/scalar"):
        for t in (1, 2):
            s1024 = g("sgemm", 1024, t)
            e = env.get(f"sgemm/n:1024/threads:{t}/real_time")
            lines.append(f"| `{kind}` | {t} | {g(kind, 256, t):.0f} | {g(kind, 1024, t):.0f} | {g(kind, 4096, t):.0f} | "
                         f"{s1024:.1f} | {g(kind, 1024, t) / s1024:.1f} | {e['MACs'] / 1e9 if e else float('nan'):.1f} |")
    for kind in ("bitserial/2x2/avx512", "bitserial/4x4/avx512", "int8/avx512", "int8/avx2"):
        for t in (1, 2):
            s1024 = g("sgemm", 1024, t)
            lines.append(f"| `{kind}` | {t} | - | {g(kind, 1024, t):.0f} | - | {s1024:.1f} | {g(kind, 1024, t) / s1024:.1f} | - |")
    micro = mac("micro/binary/avx512/kw:32/real_time"), mac("micro/binary/avx512/kw:128/real_time")
    gemm1 = g("binary_gemm/avx512", 1024, 1)
    scaling = g("binary_gemm/avx512", 1024, 2) / gemm1
    lines += ["", "Targets (AVX-512 VPOPCNTDQ path):", "",
              "| target | measured | status |", "|---|---|---|",
              f"| microkernel >= 80 % of the xor+popcount+add bound | {100 * micro[0] / bound:.0f} % (1024-bit rows), "
              f"{100 * micro[1] / bound:.0f} % (4096-bit rows) | {'met' if min(micro) >= 0.8 * bound else 'NOT met'} |",
              f"| binary GEMM 1024^3 >= 60 % of the bound | {100 * gemm1 / bound:.0f} % | {'met' if gemm1 >= 0.6 * bound else 'NOT met'} |"]
    for t in (1, 2):
        r = g("binary_gemm/avx512", 1024, t) / g("sgemm", 1024, t)
        lines.append(f"| binary GEMM >= 15x sgemm at 1024^3, {t} thread(s) | {r:.1f}x | {'met' if r >= 15 else 'NOT met'} |")
    lines.append(f"| 2-thread scaling >= 1.8x (binary GEMM 1024^3) | {scaling:.2f}x | {'met' if scaling >= 1.8 else 'NOT met'} |")
    FIG["int"] = dict(bound_pct=100 * gemm1 / bound, x1=g("binary_gemm/avx512", 1024, 1) / g("sgemm", 1024, 1),
                      x2=g("binary_gemm/avx512", 1024, 2) / g("sgemm", 1024, 2), scaling=scaling)
    b1, b2 = mac("bound_threads/xor_popcnt_add/avx512/threads:1/real_time"), mac("bound_threads/xor_popcnt_add/avx512/threads:2/real_time")
    for kind, want in (("bitserial/2x2/avx512", 4.0), ("int8/avx512", 2.5)):
        r = min(g(kind, 1024, t) / g("sgemm", 1024, t) for t in (1, 2))
        lines.append(f"| `{kind}` >= {want}x sgemm (worse of 1 and 2 threads) | {r:.1f}x | {'met' if r >= want else 'NOT met'} |")
    if b1 == b1 and b2 == b2:  # not NaN: the two-thread bound was measured
        lines += ["", f"The instruction bound itself, run on 1 and on 2 pool threads at once (`bound_threads`, about 1 ms "
                  f"per call): {b1:.0f} and {b2:.0f} GMAC/s, a ceiling of {b2 / b1:.2f}x for any 2-thread scaling on this "
                  f"machine. Binary GEMM 1024^3 reaches {scaling:.2f}x, {100 * scaling / (b2 / b1):.0f} % of that ceiling; "
                  f"at 4096^3 {g('binary_gemm/avx512', 4096, 2) / g('binary_gemm/avx512', 4096, 1):.2f}x."]
    lines += ["", "![achieved vs bound](int_gemm_roofline.png)", ""]
    unit = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    us = lambda n: m[n]["real_time"] * unit[m[n].get("time_unit", "ns")] if n in m else float("nan")
    for family, fast, slow, label in (("mlp", "binary", "sgemm", "MLP layers (binary GEMM vs sgemm)"),
                                      ("conv", "binary", "float", "The CNN's convolutions (binary conv2d vs float im2col + sgemm)")):
        keys = sorted({n.split("/", 2)[2] for n in m if n.startswith(family + f"/{fast}/")})
        if not keys:
            continue
        lines += [f"{label}, time per call in microseconds:", "",
                  f"| shape | {fast} us | {slow} us | speed-up |", "|---|---|---|---|"]
        for k in keys:
            a, b = us(f"{family}/{fast}/{k}"), us(f"{family}/{slow}/{k}")
            lines.append(f"| `{k.replace('/real_time', '')}` | {a:.1f} | {b:.1f} | {b / a:.1f}x |")
        lines.append("")
    plot_roofline(bound, vnni, micro, {k: g(k, 1024, 1) for k in ("binary_gemm/avx512", "bitserial/2x2/avx512",
                                                                 "bitserial/4x4/avx512", "int8/avx512")})


def plot_roofline(bound, vnni, micro, gemms):
    """Bar chart: each kernel's achieved rate against the instruction bound it runs on."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Bit-serial b x b does b*b binary plane products per MAC, so its bound is the binary bound / b^2.
    items = [("binary micro 1024b", micro[0], bound), ("binary micro 4096b", micro[1], bound),
             ("binary GEMM 1024^3", gemms["binary_gemm/avx512"], bound),
             ("bit-serial 2x2 1024^3", gemms["bitserial/2x2/avx512"], bound / 4),
             ("bit-serial 4x4 1024^3", gemms["bitserial/4x4/avx512"], bound / 16),
             ("int8 VNNI 1024^3", gemms["int8/avx512"], vnni)]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(items))
    ax.bar([i - 0.2 for i in x], [b for _, _, b in items], width=0.4, label="instruction bound", color="#bbbbbb")
    ax.bar([i + 0.2 for i in x], [a for _, a, _ in items], width=0.4, label="achieved", color="#2a7ab0")
    for i, (_, a, b) in enumerate(items):
        ax.text(i + 0.2, a, f"{100 * a / b:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([n for n, _, _ in items], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("GMAC/s, 1 thread")
    ax.set_title("Integer kernels: achieved vs instruction bound (AVX-512)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(os.path.dirname(os.path.abspath(OUT)), "int_gemm_roofline.png"), dpi=110)


def lowbit_key(o):
    """A lowbit-train JSON line -> (model, row): fp, bc, sr, or pact (bc with the PACT recipe)."""
    if o.get("kernels") == "reference":
        return o["model"], o["method"] + "-reference"
    return o["model"], "pact" if o.get("quantizer") == "pact" else o["method"]


TRAIN_ROWS = (  # (model, row, label, peer, peer's method, peer's label)
    ("mlp", "fp", "MLP fp", "pytorch", "fp", "PyTorch fp"),
    ("mlp", "bc", "MLP bc", "pytorch", "bc", "PyTorch bc (sign + STE)"),
    ("mlp", "bc", "MLP bc", "brevitas", "bc", "Brevitas bc (binary weights)"),
    ("mlp", "sr", "MLP sr", "pytorch", "sr", "PyTorch sr"),
    ("mlp", "pact", "MLP PACT 2/2", "brevitas", "pact", "Brevitas 2-bit weights, 2-bit activations"),
    ("cnn", "fp", "CNN fp", "pytorch", "fp", "PyTorch fp"),
    ("cnn", "bc", "CNN bc", "pytorch", "bc", "PyTorch bc (sign + STE)"),
    ("cnn", "fp-reference", "CNN fp, convolutions on im2col + sgemm (`--kernels reference`)", "pytorch", "fp",
     "PyTorch fp"),
)


def summary_macs(model):
    """Forward float MACs per image of lowbit-train's model and those of its first layer, from its --summary
    (the float MAC column, fourth from the right: the total row and the first row with a figure there)."""
    total = first = None
    for line in text(f"summary_{model}.txt", "").splitlines():
        cells = line.split()
        if len(cells) < 5 or not cells[-4].isdigit():
            continue
        if line.startswith("total"):
            total = int(cells[-4])
        elif first is None:
            first = int(cells[-4])
    return total, first


def limit_section(lines):
    """Issue 13's physical limit: training MACs per image against the measured FMA peak, for lowbit and PyTorch."""
    conv = load("conv.json")
    rate = {}
    for b in conv["benchmarks"]:
        if b.get("run_type", "iteration") == "iteration" or b.get("aggregate_name") == "median":
            rate[b["name"].split("/repeats")[0].split("_median")[0]] = b
    peak = {t: rate.get(f"fma_peak/{t}/real_time", {}).get("GMAC/s") for t in (1, 2)}
    ours = {lowbit_key(o): o for o in jsonl("train_lowbit.jsonl")}
    peer = {(p["peer"], p["model"], p["method"]): p for p in jsonl("peer_train.jsonl")}
    lines += ["## The physical limit of float training (issue 13)", "",
              "`bench/conv.cpp`'s `fma_peak` runs 12 independent chains of float FMAs in registers on each thread: the "
              "instruction bound of float multiply-adds on this CPU "
              f"({peak[1] or 0:.1f} GMAC/s on 1 thread, {peak[2] or 0:.1f} on 2). A training image costs 3x the "
              "forward MACs (forward, input gradient, weight gradient; `lowbit-train --summary`'s float MACs) less the "
              "first layer's input gradient, which neither lowbit (`nn::no_input_gradient`) nor PyTorch (the images "
              "do not require a gradient) computes; the bound in images/s is the 2-thread peak over that, and each "
              "row's fraction is its images/s over the bound. The rows are the training table's (2 threads, batch 100, Adam); BatchNorm, activations, pooling "
              "and the optimizer are not MACs, so no real training step reaches 100 %.", "",
              "| model | forward MACs / image | training MACs / image | bound images/s (2 threads) | lowbit fp images/s "
              "| lowbit fraction | PyTorch fp images/s | PyTorch fraction |", "|---|---|---|---|---|---|---|---|"]
    for model, label in (("mlp", "MLP 784-1024-1024-10"), ("cnn", "CNN 16-16-32-32, fc 128")):
        macs, first = summary_macs(model)
        if not macs or not first or not peak[2]:
            continue
        train_macs = 3 * macs - first
        bound = peak[2] * 1e9 / train_macs
        o, p = ours.get((model, "fp")), peer.get(("pytorch", model, "fp"))
        ol = f"{o['train_images_per_s']:.0f} | {100 * o['train_images_per_s'] / bound:.1f} %" if o else "- | -"
        pl = f"{p['train_images_per_s']:.0f} | {100 * p['train_images_per_s'] / bound:.1f} %" if p else "- | -"
        lines.append(f"| {label} | {macs:,} | {train_macs:,} | {bound:.0f} | {ol} | {pl} |")
    try:
        m = medians(load("int_gemm.json"))
    except FileNotFoundError:
        m = {}
    kinds = (("float (`vfmadd231ps`, `bench_conv`'s `fma_peak`)", lambda t: peak[t]),
             ("bf16 (`vdpbf16ps`, AVX512-BF16)", "bound_threads/vdpbf16ps/avx512"),
             ("int8, u8 x s8 (`vpdpbusd`, AVX-512 VNNI)", "bound_threads/vpdpbusd/avx512"),
             ("binary, one xor+popcount per bit (`vpxord`, `vpopcntd`, `vpaddd`)", "bound_threads/xor_popcnt_add/avx512"))
    rows = []
    for label, src in kinds:
        got = [src(t) if callable(src) else (m.get(f"{src}/threads:{t}/real_time") or {}).get("MACs", 0) / 1e9
               for t in (1, 2)]
        if all(got):
            rows.append(f"| {label} | {got[0]:.1f} | {got[1]:.1f} | {got[0] / peak[1]:.2f}x |")
            FIG[("peak", label.split()[0])] = got
    if rows and peak[1]:
        lines += ["", "The machine's peak for each kind of multiply-add, measured the same way (register-only loops "
                  "of independent accumulators, `bench/int_gemm.cpp`'s `bound_threads/...` on 1 and 2 pool threads at "
                  "once; GMAC/s, a binary MAC being one bit of an xor-popcount):", "",
                  "| kind | 1 thread | 2 threads | vs float, 1 thread |", "|---|---|---|---|"] + rows
        bf = FIG.get(("peak", "bf16"))
        if bf:
            amx = "amx_bf16" in text("lscpu.txt", "")
            lines += ["", f"On this CPU `vdpbf16ps` does {bf[0]:.1f} GMAC/s per thread, {bf[0] / peak[1]:.2f}x the float "
                      f"FMA peak: two products per lane (32 per instruction against the FMA's 16), at {bf[0] / (2 * peak[1]):.2f}x "
                      "its instruction rate. A bf16 mode on it cannot reach issue 13's 1.7x over fp32, whatever the "
                      "kernel, which is why `--precision bf16` is not built"
                      + ("; AMX-BF16 tiles (`amx_bf16`, present on this CPU) are the instructions that could." if amx else ".")]
    lines += ["", "The CNN's convolution layers alone (`conv_layer/<layer>/<reference>/<threads>`: forward + backward "
              "of one `nn::conv2d` of `nn::cnn` on a batch of 100, 3x the forward MACs), on lowbit's direct kernels "
              "(`kernels/plane_conv.hpp`) and on the im2col + sgemm reference (OpenBLAS as the environment sets it), "
              "with the fraction of the FMA peak at the same thread count:", "",
              "| layer | threads | kernels GMAC/s | kernels % of peak | reference GMAC/s | kernels / reference |",
              "|---|---|---|---|---|---|"]
    names = ("conv 1 -> 16, 28x28", "conv 16 -> 16, 28x28", "conv 16 -> 32, 14x14", "conv 32 -> 32, 14x14")
    for layer, name in enumerate(names):
        for t in (1, 2):
            k = rate.get(f"conv_layer/layer:{layer}/reference:0/threads:{t}/real_time")
            r = rate.get(f"conv_layer/layer:{layer}/reference:1/threads:{t}/real_time")
            if not k or not r:
                continue
            FIG[("conv_layer", layer, t)] = k["GMAC/s"] / r["GMAC/s"]
            lines.append(f"| {name} | {t} | {k['GMAC/s']:.1f} | {100 * k['GMAC/s'] / peak[t]:.0f} % | "
                         f"{r['GMAC/s']:.1f} | {k['GMAC/s'] / r['GMAC/s']:.2f}x |")
    lines.append("")


def train_section(lines):
    ours = {lowbit_key(o): o for o in jsonl("train_lowbit.jsonl")}
    if not ours:
        raise FileNotFoundError(2, "missing", os.path.join(RES, "train_lowbit.jsonl"))
    skipped = text("peers_skipped.txt", "").strip()
    peer = {(p["peer"], p["model"], p["method"]): p for p in jsonl("peer_train.jsonl")}
    images = {p["model"]: p["train_images"] for p in peer.values()}
    v = next(iter(peer.values()), {})
    bv = next((p["brevitas"] for p in peer.values() if "brevitas" in p), "?")
    lines += ["## Training throughput against PyTorch 2.x and Brevitas (issue 3)", "",
              "lowbit-train (bench build; GEMMs on OpenBLAS as the environment sets it) against its peers "
              f"`bench/peers/torch_train.py` (PyTorch {v.get('torch', '?')} from PyPI; MKL "
              f"{'yes' if v.get('mkl') else 'no'}, oneDNN {'yes' if v.get('onednn') else 'no'}) and "
              f"`bench/peers/brevitas_train.py` (Brevitas {bv}), one after the other in the same "
              "run: the same models (`nn::mlp` 784-1024-1024-10 and `nn::cnn` 16/32/128, BatchNorm), Adam (lr 0.01, "
              "constant), batch 100, 2 threads, one epoch of Fashion-MNIST"
              + (f" ({images.get('mlp', '?')} training images for the MLP, {images.get('cnn', '?')} for the CNN)"
                 if images else "") + ". Images/s over the epoch's training steps (batch gathering "
              "included, data loading and evaluation not); test accuracy on the 10000 test images after the epoch. "
              "fp, bc, sr: Li et al.'s methods with 1-bit weights in every layer and the dense + BatchNorm head. PACT "
              "2/2: `--method bc --quantizer pact --bits 2 --act-bits 2` (DoReFa 2-bit hidden weights, 8-bit first "
              "and last layers, 2-bit PACT activations, dense head with bias), against Brevitas with the same layer "
              "bit widths (`Int8WeightPerTensorFloat` at 2 / 8 bits, `QuantReLU` at 2 bits with a learned scale).", ""]
    if skipped:
        lines += [f"**{skipped}.** Only lowbit's own figures follow.", ""]
    rss = {}
    for (model, row), o in ours.items():
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text(f"time_{model}_{row}.txt", ""))
        if m:
            rss[(model, row)] = int(m.group(1))
    mib = lambda kib: f"{kib / 1024:.0f}" if kib else "-"
    lines += ["Peak RSS: the process's maximum resident set size in MiB (lowbit-train under `/usr/bin/time -v`; "
              "each peer configuration in its own Python process, its `ru_maxrss`), data loading included.", "",
              "| model, method | lowbit images/s | peer | peer images/s | lowbit / peer | lowbit test acc | peer test acc "
              "| lowbit peak RSS | peer peak RSS |",
              "|---|---|---|---|---|---|---|---|---|"]
    for model, row, label, who, method, plabel in TRAIN_ROWS:
        o, p = ours.get((model, row)), peer.get((who, model, method))
        if not o:
            continue
        ours_rss = mib(rss.get((model, row)))
        if p:
            r = o["train_images_per_s"] / p["train_images_per_s"]
            FIG[("vs_train", model, row, who)] = r
            lines.append(f"| {label} | {o['train_images_per_s']:.0f} | {plabel} | {p['train_images_per_s']:.0f} | "
                         f"{r:.2f}x | {o['test_acc']:.4f} | {p['test_acc']:.4f} | {ours_rss} | "
                         f"{mib(p.get('peak_rss_kib'))} |")
        else:
            lines.append(f"| {label} | {o['train_images_per_s']:.0f} | {plabel} | - | - | {o['test_acc']:.4f} | - | "
                         f"{ours_rss} | - |")
    if peer:
        FIG["peer_versions"] = (v.get("torch", "?"), bv)
    lines.append("")
    rss = {row: kib for (model, row), kib in rss.items() if model == "mlp"}
    mlp = {row: o for (model, row), o in ours.items() if model == "mlp"}
    if rss:
        lines += ["The MLP rows' peak memory and the bytes their weights take (the JSON line's weight_bytes):", "",
                  "| method | peak RSS (MiB) | weight bytes |", "|---|---|---|"]
        for row in ("fp", "bc", "sr"):
            if row in rss:
                lines.append(f"| {row} | {rss[row] / 1024:.1f} | {mlp[row]['weight_bytes']} |")
        if "fp" in rss and "sr" in rss:
            wb = {row: o["weight_bytes"] for row, o in mlp.items()}
            lines += ["", f"SR stores the weights only as 1-bit codes ({wb['sr']} bytes against "
                      f"{wb['fp']} for fp), but the peak RSS changes by {(rss['sr'] - rss['fp']) / 1024:+.1f} MiB "
                      f"({100 * (rss['sr'] - rss['fp']) / rss['fp']:+.1f} %): the peak is reached while the data set is "
                      "read and standardised (60000 x 784 floats = 188 MB, with temporaries), before training allocates "
                      "anything, and during training Adam's two float moments per weight (14.9 MB) outweigh the 7.2 MB "
                      "the packed weights save. The weight bytes themselves are bits/32 of float (tested)."]
        lines.append("")
    try:
        steps = load("train.json")
        lines += ["`bench/train.cpp` (Google Benchmark) times single training steps of the same MLP on one batch of "
                  "100 test images, without data loading and shuffling:", "",
                  "| benchmark | images/s | weight bytes |", "|---|---|---|"]
        for b in steps["benchmarks"]:
            if b.get("run_type", "iteration") == "iteration" or b.get("aggregate_name") == "median":
                lines.append(f"| `{b['name']}` | {b['items_per_second']:.0f} | {b['weight_bytes']:.0f} |")
        lines.append("")
    except FileNotFoundError:
        pass


US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def infer_rows():
    """name -> {(threads, batch): (latency us, images/s, model bytes)} from bench_infer."""
    m = medians(load("infer.json"))
    out = {}
    for k, b in m.items():
        parts = re.match(r"(.*)/threads:(\d+)/batch:(\d+)/real_time$", k)
        if parts:
            out.setdefault(parts.group(1), {})[(int(parts.group(2)), int(parts.group(3)))] = (
                b["real_time"] * US[b.get("time_unit", "ns")], b["images_per_s"], b.get("model_bytes", float("nan")))
    return out


def infer_section(lines):
    r = infer_rows()
    complete = lambda name: all(k in r.get(name, {}) for k in ((1, 1), (1, 256), (2, 1), (2, 256)))
    missing = lambda names: [n for n in names if not complete(n)]

    def ratio(name, base, t):
        """name's images/s (batch 256) over base's, or None where either row is missing."""
        a, b = r.get(name, {}).get((t, 256)), r.get(base, {}).get((t, 256))
        return a[1] / b[1] if a and b else None

    lines += ["## Packed inference, end to end (issue 5)", "",
              "`bench/infer.cpp`: the binarized MLP 784-1024-1024-10 (XNOR hidden layer, sign activations) lowered layer "
              "by layer by `deploy::compile` into a `deploy::packed_model` and run on the integer kernels, against our "
              "float inference of the same model (the nn forward pass with Q(w) as float weights, OpenBLAS native). "
              "The packed rows start from float input, as a caller's would: the model's first step maps the floats to "
              "8-bit codes (the input map), and its time is included; the MLPs' `.../codes` rows start from the 8-bit "
              "codes themselves (images as they are stored, `packed_model::forward` of uint8 rows). `packed`: 8-bit "
              "first and last layers; `packed_all_binary`: every layer binary. Model bytes: the packed model's file (`deploy::packed_bytes`) or the float checkpoint. Median "
              "of 3 repetitions. The PyTorch 2.x float models are compared in the next section.", ""]

    def table(names, base):
        """Rows of these models; base: the float model (or a function of the name giving it) they are set against."""
        base_of = base if callable(base) else (lambda name: base)
        lines.extend(["| model | threads | latency, batch 1 (us) | images/s, batch 256 | model bytes | bytes vs float | "
                      "throughput vs float |", "|---|---|---|---|---|---|---|"])
        for name in names:
            for t in (1, 2):
                one, big = r.get(name, {}).get((t, 1)), r.get(name, {}).get((t, 256))
                if not one or not big:
                    continue
                fb = r.get(base_of(name), {}).get((t, 256))
                size = "1" if name == base_of(name) else f"1/{fb[2] / big[2]:.1f}" if fb else "-"
                x = ratio(name, base_of(name), t)
                lines.append(f"| `{name}` | {t} | {one[0]:.1f} | {big[1]:.0f} | {big[2]:.0f} | {size} | "
                             + (f"{x:.1f}x |" if x is not None else "- |"))
        gone = missing(names)
        if gone:
            lines.append("")
            lines.append("(rows missing from `infer.json`: " + ", ".join(f"`{n}`" for n in gone) + ")")
        lines.append("")

    mlp = ("float", "packed", "packed_all_binary")
    table(mlp + tuple(n for n in ("packed/codes", "packed_all_binary/codes") if n in r), "float")
    if missing(mlp):
        lines += ["(the MLP's targets are not evaluated: their rows are missing)", ""]
    else:
        fb = r["float"][(1, 256)][2]
        worst = min(ratio("packed", "float", t) for t in (1, 2))
        worst_bin = min(ratio("packed_all_binary", "float", t) for t in (1, 2))
        size_bin = fb / r["packed_all_binary"][(1, 256)][2]
        size_8 = fb / r["packed"][(1, 256)][2]
        FIG["infer_mlp"] = dict(worst_bin=worst_bin, size_bin=size_bin, worst=worst, size_8=size_8)
        lines += ["Targets, for the packed binary MLP (`packed_all_binary`: binary weights in every layer; the first "
                  "layer reads the input map's 8-bit codes):", "",
                  f"- throughput >= 10x float (worse of 1 and 2 threads): {worst_bin:.1f}x -- "
                  f"{'met' if worst_bin >= 10 else 'NOT met'};",
                  f"- model file <= 1/25 of the float model's bytes: 1/{size_bin:.1f} -- "
                  f"{'met' if size_bin >= 25 else 'NOT met'}.", "",
                  f"The variant with 8-bit first and last layers (`packed`; the models may say so): {worst:.1f}x "
                  f"float, 1/{size_8:.1f} of the float bytes. Its 8-bit first layer alone (784 x 1024 bytes) is "
                  f"1/{fb / (784 * 1024):.1f} of the float model, so 1/25 is out of reach for it by construction.", ""]
    if "cnn/float" in r or "cnn/packed" in r:
        lines += ["The binarized CNN (`nn::cnn` widths 16/32/128, sign activations, binary hidden layers, 8-bit first "
                  "and last layers) lowered the same way (images as rows of c x h x w floats), against our float "
                  "inference of the same model (im2col + sgemm per convolution). The CNN has no throughput target in "
                  "issue 5.", ""]
        table(("cnn/float", "cnn/packed"), "cnn/float")
        if not missing(("cnn/float", "cnn/packed")):
            FIG["infer_cnn"] = {t: ratio("cnn/packed", "cnn/float", t) for t in (1, 2)}
    if "kbit/float" in r or "kbit/packed" in r:
        lines += ["**k-bit (PACT) models.** 4-bit PACT activations, 2-bit DoReFa hidden weights, 8-bit first and last "
                  "layers, lowered the same way (int8 GEMM steps, level thresholds); the float twins run the same PACT "
                  "activations with Q(w) as float weights. There are no targets for these; they are here so that what "
                  "the k-bit layers cost is on record.", ""]
        table(("kbit/float", "kbit/packed", "kbit_cnn/float", "kbit_cnn/packed"),
              lambda name: name.split("/")[0] + "/float")
        lines += ["What limits them: every k-bit layer is u8 x s8 on the int8 GEMM (VNNI), about 4x fewer "
                  "operations per instruction than XNOR-popcount, plus one integer compare per threshold and output "
                  "(15 at 4 bits), and 2-bit weights are stored as one int8 code each (so the MLP file is not 1/16 "
                  "of the float model). The k-bit CNN is further limited by its scalar parts: the im2col of byte "
                  "codes, the odd-level row sums and the pooling run outside the GEMM, and its convolutions have "
                  "only 16 or 32 output channels, narrow for the int8 kernel's tiles.", ""]


def peer_infer_section(lines):
    """lowbit's float and packed models against PyTorch 2.x's float inference of the same architectures."""
    skipped = text("peers_skipped.txt", "").strip()
    lines += ["## Inference against PyTorch 2.x", ""]
    if skipped:
        lines += [f"**{skipped}.**", ""]
        return
    peer = {(p["model"], p["threads"], p["batch"]): p for p in jsonl("peer_infer.jsonl")}
    if not peer:
        lines += ["(no peer results: `peer_infer.jsonl` is missing or empty)", ""]
        return
    r = infer_rows()
    v = next(iter(peer.values()))
    lines += [f"`bench/peers/torch_infer.py` (PyTorch {v['torch']} from PyPI; MKL "
              f"{'yes' if v['mkl'] else 'no'}, oneDNN {'yes' if v['onednn'] else 'no'}): the float MLP "
              "784-1024-1024-10 and the float CNN (`nn::cnn` 16/32/128) with BatchNorm, ReLU and a dense head "
              "with bias, eval mode under `torch.inference_mode()`, timed as Google Benchmark times `bench_infer` "
              "(calls repeated for at least the same minimum time, median of the same repetitions). The lowbit "
              "rows are the previous section's, from the same run. Ratios: PyTorch's latency / lowbit's (batch 1) "
              "and lowbit's images/s / PyTorch's (batch 256); above 1 lowbit is faster.", "",
              "| lowbit model | threads | lowbit latency (us) | PyTorch float latency (us) | latency ratio | "
              "lowbit images/s | PyTorch float images/s | throughput ratio |",
              "|---|---|---|---|---|---|---|---|"]
    rows = (("mlp", ("float", "packed", "packed_all_binary", "kbit/packed")),
            ("cnn", ("cnn/float", "cnn/packed", "kbit_cnn/packed")))
    for model, names in rows:
        for name in names:
            for t in (1, 2):
                ours, p1, p256 = r.get(name, {}), peer.get((model, t, 1)), peer.get((model, t, 256))
                if (t, 1) not in ours or (t, 256) not in ours or not p1 or not p256:
                    continue
                lat, ips = ours[(t, 1)][0], ours[(t, 256)][1]
                lines.append(f"| `{name}` | {t} | {lat:.1f} | {p1['latency_us']:.1f} | {p1['latency_us'] / lat:.2f}x | "
                             f"{ips:.0f} | {p256['images_per_s']:.0f} | {ips / p256['images_per_s']:.2f}x |")
                FIG[("vs_torch_infer", name, t)] = (p1["latency_us"] / lat, ips / p256["images_per_s"])
    FIG["torch_version"] = v["torch"]
    lines.append("")


def issue13_section(lines):
    """Issue 13's targets against this run's figures (the rows above), each with its status."""
    tr = lambda model, row, who: FIG.get(("vs_train", model, row, who))
    tv = lambda name, t: (FIG.get(("vs_torch_infer", name, t)) or (None, None))[1]
    rows = []

    def row(what, figure, ok):
        rows.append(f"| {what} | {figure} | {'met' if ok else '**NOT met**'} |")

    def ratio_row(what, values, target):
        have = [v for v in values if v is not None]
        if len(have) == len(values):
            row(what, " / ".join(f"{v:.2f}x" for v in values), min(values) >= target)

    ratio_row("CNN fp training >= 1.0x PyTorch fp", [tr("cnn", "fp", "pytorch")], 1.0)
    ratio_row("CNN bc training >= 2x PyTorch bc (sr: no CNN sr row yet)", [tr("cnn", "bc", "pytorch")], 2.0)
    ratio_row("MLP fp training >= 1.3x PyTorch fp", [tr("mlp", "fp", "pytorch")], 1.3)
    ratio_row("MLP bc / sr training >= 1.5x PyTorch", [tr("mlp", "bc", "pytorch"), tr("mlp", "sr", "pytorch")], 1.5)
    ratio_row("MLP 2-bit weights and activations (PACT) >= 3x Brevitas (4/4, 1/8, 1/1 and the CNN: no rows yet)",
              [tr("mlp", "pact", "brevitas")], 3.0)
    ours = {lowbit_key(o): o for o in jsonl("train_lowbit.jsonl")}
    if ("mlp", "pact") in ours and ("mlp", "fp") in ours:
        q, f = ours[("mlp", "pact")]["train_images_per_s"], ours[("mlp", "fp")]["train_images_per_s"]
        row("MLP PACT 2/2 faster than lowbit's own fp step", f"{q:.0f} vs {f:.0f} images/s", q > f)
    rss = [("time_" + m + "_" + r + ".txt") for m, r in ours]
    have_rss = sum(1 for f in rss if "Maximum resident set size" in text(f, ""))
    row("peak RSS reported for each training row", f"{have_rss} of {len(rss)} lowbit rows", have_rss == len(rss))
    ratio_row("packed binarized CNN >= 8x PyTorch float (batch 256; 1 / 2 threads)",
              [tv("cnn/packed", 1), tv("cnn/packed", 2)], 8.0)
    ratio_row("packed binary MLP >= 12x PyTorch float (batch 256; 1 / 2 threads)",
              [tv("packed_all_binary", 1), tv("packed_all_binary", 2)], 12.0)
    r = infer_rows()
    for name, label in (("cnn/packed", "binarized CNN"), ("packed_all_binary", "binary MLP")):
        one, two = r.get(name, {}).get((1, 256)), r.get(name, {}).get((2, 256))
        if one and two:
            row(f"packed {label}: 2-thread scaling >= 1.8x (batch 256)", f"{two[1] / one[1]:.2f}x", two[1] / one[1] >= 1.8)
    row("accuracy over 3 seeds within 0.5 points of lowbit's fp32 path", "one seed per row in this run: not assessed",
        False)
    rows.append("| 1 vs 2 threads bit-identical at the same settings | tested, not benchmarked: "
                "tests/unit/train/test_trainer.cpp (MLP; CNN on both convolution paths) | met (tested) |")
    bf = FIG.get(("peak", "bf16"))
    fl = FIG.get(("peak", "float"))
    row("`--precision bf16` >= 1.7x lowbit's fp32 step",
        "not built: " + (f"`vdpbf16ps` peaks at {bf[0] / fl[0]:.2f}x the float FMA here (table above)" if bf and fl
                         else "no bf16 kernel"), False)
    if not rows:
        return
    lines += ["### Issue 13's targets in this run", "",
              "Each target of issue 13 against the figures above (training: 2 threads, batch 100, Adam, one epoch; "
              "ratios are lowbit's images/s over the peer's). Accuracy is the training table's.", "",
              "| target | measured | status |", "|---|---|---|"] + rows + [""]


def qat_section(lines):
    m = medians(load("train_qat.json"))
    ips = lambda name, t: m[f"qat_step/{name}/{t}/real_time"]["items_per_second"]
    lines += ["## Quantization-aware training steps: SAT, SQWA, PACT, LSQ against BinaryConnect (issue 4)", "",
              "`bench/train_qat.cpp`: training steps (forward, loss, backward, SGD update) of the MLP "
              "784-1024-1024-10 with BatchNorm and a classifier with bias, one batch of 100 test images; hidden "
              "weights and activations at 4 bits (SQWA: ternary weights, 2-bit activations), first and last "
              "layers at 8 bits. bc is BinaryConnect with Li et al.'s 16-level weight grid and float activations, "
              "the baseline; sqwa is a step of SQWA's retraining (its captures and averaging run once per "
              "cycle). Median of 3 repetitions. Overhead = bc images/s / method images/s - 1.", "",
              "| method | 1 thread images/s | overhead vs bc | 2 threads images/s | overhead vs bc |",
              "|---|---|---|---|---|"]
    worst = []
    for name in ("fp", "bc", "dorefa", "pact", "lsq", "sat", "sqwa"):
        o1, o2 = ips("bc", 1) / ips(name, 1) - 1, ips("bc", 2) / ips(name, 2) - 1
        if name in ("pact", "lsq", "sat", "sqwa"):
            worst.append((max(o1, o2), name))
        lines.append(f"| {name} | {ips(name, 1):.0f} | {100 * o1:+.1f} % | {ips(name, 2):.0f} | {100 * o2:+.1f} % |")
    w, name = max(worst)
    FIG["qat"] = (w, name, max((o, n) for o, n in worst if n != "sqwa"), dict((n, o) for o, n in worst)["sqwa"])
    lines += ["", f"Target: the PACT / LSQ / SAT (and SQWA) overhead over bc stays under 25 %. Largest measured: "
              f"{name}, {100 * w:+.1f} % -- {'met' if w < 0.25 else 'NOT met'}.", ""]


def dist_section(lines):
    rows = {r["row"]: r for r in jsonl("distributed.jsonl")}
    if not rows:
        raise FileNotFoundError(os.path.join(RES, "distributed.jsonl"))
    mpi = text("mpi_version.txt", "?").strip()
    lines += ["## Data-parallel training over MPI (issue 14)", "",
              f"`lowbit-train --distributed` under `mpirun --bind-to none` ({mpi}), the MLP 784-1024-1024-10 with "
              "1-bit weights (sr) and in float (fp), Adam, global batch 100, one epoch of Fashion-MNIST, on this "
              "machine's cores: one process with 2 threads (the plain run), two processes with 1 thread each, and one "
              "process with 2 threads and 2 shards (the shards of -np 2 in one process: the same bits). Bytes and "
              "seconds are rank 0's (the JSON line's), per optimizer step: every gradient once, BatchNorm's statistics and the "
              "loss, summed in the binomial tree (reduce to rank 0, then broadcast).", "",
              "| row | processes x threads | shards | gradients | images/s | bytes rank 0 sent per step | "
              "seconds in sums per step | share of the step | test accuracy |", "|---|---|---|---|---|---|---|---|---|"]
    for m in ("sr", "fp"):
        for cfg, label in (("np1x2", "1 x 2"), ("np2x1", "2 x 1"), ("np1x2-shards2", "1 x 2"), ("np2x1-grad8", "2 x 1")):
            r = rows.get(f"{m}/{cfg}")
            if r is None:
                continue
            steps = max(1, r.get("steps", 1))
            ips = r["train_images_per_s"]
            step_s = r["batch"] / ips if ips else float("nan")
            per = r.get("allreduce_seconds", 0.0) / steps
            lines.append(f"| {m} {cfg} | {label} | {r.get('shards', 1)} | {r.get('gradient_bits', 32)}-bit | {ips:.0f} | "
                         f"{r.get('allreduce_bytes_per_step', 0):.0f} | {per * 1e3:.2f} ms | "
                         f"{100 * per / step_s:.0f} % | {r['test_acc']:.4f} |")
    base, two = rows.get("sr/np1x2"), rows.get("sr/np2x1")
    if base and two:
        FIG["dist"] = (two["train_images_per_s"] / base["train_images_per_s"], two.get("allreduce_bytes_per_step", 0))
        lines += ["", f"sr: 2 processes x 1 thread run at {FIG['dist'][0]:.2f}x the images/s of 1 process x 2 threads on "
                  "the same two cores. Accuracies of -np 2 and of 1 x 2 with 2 shards are the same bits (ctest "
                  "lowbit-train.distributed.*: the saved models are byte-identical).", ""]
        g8 = rows.get("sr/np2x1-grad8")
        if g8:
            lines += [f"8-bit gradients (`--gradient-bits 8`, stochastic rounding and error feedback): rank 0 sent "
                      f"{g8['allreduce_bytes_per_step'] / two['allreduce_bytes_per_step']:.2f}x the bytes of the "
                      f"float sums per step (the codes gathered up the tree come back down whole), test accuracy "
                      f"{g8['test_acc']:.4f} against {two['test_acc']:.4f} with floats (one run each).", ""]
    # A model of scaling out, from the measured step time of one node and the measured bytes per step.
    if base and two:
        t_c = base["batch"] / base["train_images_per_s"]
        g = two["allreduce_bytes_per_step"]
        alpha = 20e-6
        lines += ["### Scaling out: a model", "",
                  f"Weak scaling: each node trains a batch of 100 per step in t_c = {t_c * 1e3:.2f} ms (sr, 1 x 2 above; "
                  f"this machine's 2 cores as a node), and the step's sums move G = {g / 1e6:.2f} MB per process "
                  "(the measured bytes per step of -np 2). With p nodes, link bandwidth B and a per-message latency "
                  f"alpha = {alpha * 1e6:.0f} us (assumed), a step takes t_c + T(p) (the sums do not overlap the "
                  "backward pass yet), and the efficiency is E = t_c / (t_c + T(p)):", "",
                  "- lowbit's tree (as built): T = 2 log2(p) (alpha + G / B): up to rank 0, then down;",
                  "- a ring allreduce (bandwidth-optimal; not built): T = 2 (p - 1) (alpha + G / (p B));",
                  "- 8-bit gradients in a ring: G / 4 (lowbit's `--gradient-bits 8` gathers the codes instead, which "
                  "sends more; measured above);",
                  "- SQWA's captures as 2-bit codes (not built): G / 16 per exchanged model.", "",
                  "| nodes | link | tree fp32 (built) | ring fp32 | ring 8-bit | ring 2-bit codes |",
                  "|---|---|---|---|---|---|"]
        import math
        for p in (8, 64, 512):
            for gbps in (10, 25, 100):
                bw = gbps * 1e9 / 8
                tree = 2 * math.log2(p) * (alpha + g / bw)
                ring = lambda gg: 2 * (p - 1) * (alpha + gg / (p * bw))
                e = lambda t: f"{100 * t_c / (t_c + t):.0f} %"
                lines.append(f"| {p} | {gbps} Gb/s | {e(tree)} | {e(ring(g))} | {e(ring(g / 4))} | {e(ring(g / 16))} |")
        lines += ["", "The compute time is this VM's; a faster node shortens t_c and lowers every efficiency. "
                  "docs/distributed.md explains the model and how to run on a cluster.", ""]


def header(lines):
    global QUICK
    model, cpus, flags = lscpu()
    info, pv = run_info(), peer_versions()
    versions = dict(l.split(": ", 1) for l in text("versions.txt", "").splitlines() if ": " in l)
    ver = lambda pkg: versions.get(pkg, "?")
    QUICK = info.get("quick") == "1"
    memory = (re.search(r"Mem:\s+(\d+)", text("memory.txt", "")) or [0, "?"])[1]
    command = info.get("command", "bash scripts/bench all")
    lines += ["# Benchmarks", ""]
    if QUICK:
        lines += ["> **QUICK RUN -- NOT FOR PUBLICATION.** `scripts/bench --quick` ran every step on tiny inputs "
                  "(training on a few hundred images, benchmarks for about 10 ms each) to check the pipeline; "
                  "none of these figures measures anything.", ""]
    partial = text("partial.txt", "").split()
    if partial:
        lines += [f"> **MIXED RESULTS.** Sections were re-run on their own after the whole run ({', '.join(partial)}): "
                  "this document does not come from one run. Run `bash scripts/bench all` before quoting it.", ""]
    skipped = text("peers_skipped.txt", "").strip()
    if skipped:
        lines += [f"> **{skipped}.**", ""]
    lines += [f"Every number here was produced by one command, `{command}` (started {info.get('started', '?')}, "
              f"commit {info.get('commit', '?')}), which builds the `bench` preset (Release, `-march=native`), runs "
              "each benchmark and then its peers one after the other on the same machine, and formats the results "
              f"with `bench/report.py`; the raw results are in `{os.path.relpath(RES, ROOT)}/`.", "",
              f"- Machine: `{model}`, {cpus} (lscpu). Flags: {flags}.",
              f"- Memory: {memory} MiB.",
              f"- Compiler: {ver('compiler')}, `-O3 -march=native`; {ver('cmake')}. Debian packages: OpenBLAS "
              f"{ver('libopenblas0-pthread')}, xsimd {ver('libxsimd-dev')}, xtensor {ver('libxtensor-dev')}, Google "
              f"Benchmark {ver('libbenchmark-dev')}.",
              f"- OpenBLAS settings in the environment: {openblas_env()}. The OpenBLAS baselines run with its native "
              "kernels (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that command) and again with the environment "
              "as set; lowbit-train and the training-step benchmarks run with the environment as set.",
              "- Peers: " + (f"PyTorch {pv.get('torch', '?')} and Brevitas {pv.get('brevitas', '?')} from PyPI (numpy "
                             f"{pv.get('numpy', '?')}, Python {pv.get('python', '?')}), pinned by `scripts/bench` and "
                             f"installed in `build/peer-venv` ({text('peer_venv_size.txt', '?').strip()} on disk: PyPI's "
                             "Linux torch wheel is the CUDA build, which pulls the NVIDIA libraries; it runs on the "
                             "CPU here). Their scripts are `bench/peers/`." if pv else "none in this run."),
              "- Debian's libbenchmark was built without NDEBUG and prints `Library was built as DEBUG`: that is the "
              "library, not lowbit's code.",
              f"- Load average (`uptime`) when the first section started / after the last one: "
              f"{load_average('load_before.txt')} / {load_average('load_after.txt')}. Anything above about 0.5 at the "
              "start means other jobs shared the cores.", ""]
    return model, cpus, info


def readme_block(model, cpus, info):
    """The README's speed summary: every figure from FIG, i.e. from this run's results."""
    out = [README_BEGIN, ""]
    if QUICK:
        out += ["**QUICK RUN -- NOT FOR PUBLICATION** (`scripts/bench --quick`): the figures below mean nothing.", ""]
    out += [f"From `{info.get('command', 'bash scripts/bench all')}` on `{model}`, {cpus}, started "
            f"{info.get('started', '?')} (commit {info.get('commit', '?')}); every figure below is in "
            "[docs/benchmarks.md](docs/benchmarks.md), from the same run, with the machine, the versions and the "
            "commands:", ""]
    pk = lambda name, t: FIG.get(("pack", name, t))
    if pk("nearest quantize+pack", 1):
        f = lambda name, t: f"{pk(name, t)[0]:.0f}-{pk(name, t)[1]:.0f} %"
        ok = all(v[3] for k, v in FIG.items() if k[0] == "pack")
        out.append(f"- on 64 MiB, quantize+pack runs at {f('nearest quantize+pack', 1)} of `memcpy` bandwidth with "
                   f"nearest rounding and {f('stochastic quantize+pack', 1)} with stochastic rounding (1 thread; "
                   f"{f('nearest quantize+pack', 2)} and {f('stochastic quantize+pack', 2)} on 2), unpack+dequantize "
                   f"at {f('unpack+dequantize', 1)} ({f('unpack+dequantize', 2)} on 2): issue 2's targets (50 / 25 / "
                   f"50 %) are {'met' if ok else 'NOT all met'};")
    if "int" in FIG:
        i = FIG["int"]
        out.append(f"- binary (XNOR-popcount) GEMM at 1024^3: {i['bound_pct']:.0f} % of the measured xor+popcount+add "
                   f"instruction bound, {i['x1']:.1f}x OpenBLAS sgemm on 1 thread and {i['x2']:.1f}x on 2; 2-thread "
                   f"scaling {i['scaling']:.2f}x (target 1.8x: {'met' if i['scaling'] >= 1.8 else 'NOT met'});")
    tv = lambda name, t: FIG.get(("vs_torch_infer", name, t))
    torch_v = FIG.get("torch_version", "2.x")
    if "infer_mlp" in FIG:
        m = FIG["infer_mlp"]
        line = (f"- the packed binary MLP infers {m['worst_bin']:.1f}x faster than our float inference of the same "
                f"model (batch 256, the worse of 1 and 2 threads; target 10x: {'met' if m['worst_bin'] >= 10 else 'NOT met'}) "
                f"from a file 1/{m['size_bin']:.1f} of the float model's bytes; with 8-bit first and last layers "
                f"{m['worst']:.1f}x and 1/{m['size_8']:.1f}")
        if tv("packed_all_binary", 1) and tv("packed_all_binary", 2):
            line += (f". Against PyTorch {torch_v}'s float MLP the packed binary MLP's throughput is "
                     f"{tv('packed_all_binary', 1)[1]:.1f}x (1 thread) and {tv('packed_all_binary', 2)[1]:.1f}x "
                     f"(2 threads), its batch-1 latency {tv('packed_all_binary', 1)[0]:.1f}x lower (1 thread)")
        out.append(line + ";")
    if tv("float", 1):
        out.append(f"- lowbit's own float inference of the MLP runs at {tv('float', 1)[1]:.2f}x PyTorch {torch_v}'s "
                   f"throughput (batch 256, 1 thread) and {tv('float', 2)[1]:.2f}x on 2 threads, with "
                   f"{1 / tv('float', 1)[0]:.1f}x its batch-1 latency (1 thread)"
                   + ("; the packed paths, not the float one, are where lowbit is faster;" if tv("float", 1)[1] < 1 else ";"))
    if "infer_cnn" in FIG:
        c = FIG["infer_cnn"]
        line = f"- the packed binarized CNN: {c[1]:.1f}x (1 thread) and {c[2]:.1f}x (2 threads) our float CNN"
        if tv("cnn/packed", 1) and tv("cnn/packed", 2):
            line += (f", {tv('cnn/packed', 1)[1]:.1f}x and {tv('cnn/packed', 2)[1]:.1f}x PyTorch "
                     f"{torch_v}'s float CNN")
        out.append(line + ";")
    tr = lambda model, row, who: FIG.get(("vs_train", model, row, who))
    if tr("mlp", "fp", "pytorch"):
        tv_, bv = FIG.get("peer_versions", ("2.x", "?"))
        parts = [f"{tr('mlp', r, 'pytorch'):.2f}x ({r})" for r in ("fp", "bc", "sr") if tr("mlp", r, "pytorch")]
        line = (f"- training the MLP (batch 100, Adam, 2 threads, one epoch) runs at {', '.join(parts)} PyTorch "
                f"{tv_}'s images/s on the same machine and model")
        cnn = [f"{tr('cnn', r, 'pytorch'):.2f}x ({r})" for r in ("fp", "bc") if tr("cnn", r, "pytorch")]
        if cnn:
            line += f"; the CNN at {', '.join(cnn)}"
        brev = [f"{tr('mlp', r, 'brevitas'):.2f}x ({label})" for r, label in (("bc", "binary weights"), ("pact", "PACT, 2-bit weights and activations"))
                if tr("mlp", r, "brevitas")]
        if brev:
            line += f"; against Brevitas {bv}: {', '.join(brev)}"
        out.append(line + ";")
    elif text("peers_skipped.txt", "").strip():
        out.append(f"- training against PyTorch and Brevitas: **not measured in this run** ({text('peers_skipped.txt').strip()});")
    if "qat" in FIG:
        w, name, (w3, name3), sq = FIG["qat"]
        out.append(f"- a training step with PACT, LSQ or SAT costs at most {100 * w3:+.0f} % over BinaryConnect's "
                   f"({name3}, the worse of 1 and 2 threads), SQWA's retraining step {100 * sq:+.0f} % (issue 4's "
                   f"target: under 25 %: {'met' if w < 0.25 else 'NOT met'}).")
    out += ["", README_END]
    return out


def write_readme(path, block):
    with open(path) as f:
        readme = f.read()
    a, b = readme.find(README_BEGIN), readme.find(README_END)
    if a < 0 or b < a:
        raise SystemExit(f"report.py: {path} has no bench:speed markers ({README_BEGIN} ... {README_END})")
    with open(path, "w") as f:
        f.write(readme[:a] + "\n".join(block) + readme[b + len(README_END):])


def main():
    global RES, OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=RES, help="scripts/bench's results folder (default build/bench/results)")
    ap.add_argument("--out", default=OUT, help="the document to write (default docs/benchmarks.md)")
    ap.add_argument("--readme", help="README to update: the block between its bench:speed markers")
    ap.add_argument("--readme-block", help="write that block to this file instead")
    a = ap.parse_args()
    RES, OUT = os.path.abspath(a.results), os.path.abspath(a.out)
    lines = []
    model, cpus, info = header(lines)
    for section in (pack_section, gemm_section, int_section, infer_section, peer_infer_section, train_section,
                    limit_section, issue13_section, qat_section, dist_section):
        try:
            section(lines)
        except FileNotFoundError as e:
            lines += [f"({section.__name__}: no results: {os.path.relpath(e.filename, RES) if e.filename else e})", ""]
    lines += ["## Notes", "",
              "- Unpack+dequantize of 1-, 2- and 4-bit codes copies each packed byte's floats from a 256-entry "
              "table. With the copy's size known only at run time GCC called the library memcpy per byte, which ran "
              "at 1-4 GB/s on the AMD EPYC (it had met its target on an Intel Xeon); the size is now a compile-time "
              "constant per bit width.",
              "- Stochastic quantize+pack is bound by Philox4x32-10 (ten rounds of two 32x32->64-bit multiplies per "
              "4 draws), not by memory: it runs at about the same speed in L1 as at 64 MiB. Running the rounds on "
              "32-bit lanes (two pmuludq per vector of 16 counters instead of 8) is the next step if its margin over "
              "the 25 % target matters.",
              "- OpenBLAS inside lowbit: `kernels::sgemm` runs OpenBLAS single-threaded, over column (or row) ranges "
              "of C on lowbit's pool. With OpenBLAS's own threads, its idle threads spun (sched_yield) for about 2^28 "
              "cycles after each call and took half of the second core from lowbit's pool whenever element-wise "
              "kernels ran between GEMMs (an earlier `bench_train_qat` run, 2026-12-03: a SAT step at 2 threads "
              "+39 % over bc, PACT +25 %; with OPENBLAS_THREAD_TIMEOUT=4 +2 % and +4 %, which located the cause). The "
              "baselines (sgemm rows, the float sides of int_gemm) still call OpenBLAS with its own threading "
              "(bench/support/openblas_native.hpp).",
              "- BatchNorm, ReLU and max pooling split channels, elements or planes between lowbit's threads "
              "(each result summed by one thread in a fixed order); the dense layers' BatchNorm and the loss stay on "
              "one thread.",
              "- The microkernel and the instruction bound are timed in separate benchmarks; the clock (boost) "
              "differs between them, which is how the microkernel can show a little over 100 % of the bound.",
              "- The CNN's convolutions run on `kernels/plane_conv.hpp` (no im2col: each image's zero-padded planes "
              "are read through a table of tap offsets, one image per task); the im2col + sgemm path they replaced is "
              "`--kernels reference`, measured above. PyTorch runs its convolutions on oneDNN.",
              "- 2-thread figures vary most between runs on a shared VM.", ""]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    block = readme_block(model, cpus, info)
    if a.readme_block:
        with open(a.readme_block, "w") as f:
            f.write("\n".join(block) + "\n")
    if a.readme:
        if QUICK:
            raise SystemExit("report.py: a quick run's figures do not go into the README (use --readme-block)")
        write_readme(a.readme, block)


QUICK = False

if __name__ == "__main__":
    main()
