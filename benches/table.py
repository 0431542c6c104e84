#!/usr/bin/env python3
"""Markdown tables of criterion results, one per benchmark group (benches/kernels.rs).

    cargo bench --bench kernels
    python3 benches/table.py                    # target/criterion, latest run ("new")
    python3 benches/table.py --baseline main    # a run saved with --save-baseline main
    python3 benches/table.py --filter conv_     # groups whose name contains "conv_"

Reads every <dir>/**/<baseline>/benchmark.json (group, function, throughput) and the
estimates.json beside it (median time in ns). <dir> defaults to $CRITERION_HOME, else
$CARGO_TARGET_DIR/criterion, else target/criterion next to this script's crate.

Columns, per function of a group:
- median: criterion's median time per iteration;
- throughput: bytes / median as GB/s (1e9 B/s) when the group declared Throughput::Bytes,
  elements / median as GFLOP/s when it declared Throughput::Elements (the convolution
  groups count 2*M*N*K*batch elements);
- vs scalar: t(scalar) / t, the speed-up over the scalar path. For `fast_avx2` the
  baseline is `fast_scalar` (likewise `general_*`); otherwise the group's `scalar`;
- vs reference: t(reference) / t, the speed-up over the reference library's algorithm;
- / copy_floor: t / t(copy_floor), the time in units of one copy of the kernel's output.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

# Groups in the order benches/kernels.rs runs them; unknown kernels follow alphabetically.
KERNEL_ORDER = [
    "im2col",
    "col2im",
    "relu_forward",
    "relu_backward",
    "bias_relu",
    "maxpool_forward",
    "maxpool_backward",
    "optimizer",
    "softmax_with_loss",
    "conv_relu_pool",
    "conv_forward",
]
ISAS = ["scalar", "avx2", "neon"]


def default_dir():
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def natural_key(s):
    """'conv10' after 'conv9': digits compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def group_key(group):
    kernel, _, rest = group.partition("/")
    rank = KERNEL_ORDER.index(kernel) if kernel in KERNEL_ORDER else len(KERNEL_ORDER)
    return (rank, natural_key(kernel), natural_key(rest))


def function_key(name):
    """scalar, the SIMD ISAs, fast_*, general_*, fused, unfused, other, reference, copy_floor."""
    prefix, _, isa = name.rpartition("_")
    if name in ISAS:
        return (0, ISAS.index(name), "")
    if isa in ISAS and prefix in ("fast", "general"):
        return (1 if prefix == "fast" else 2, ISAS.index(isa), "")
    fixed = {"fused": 3, "unfused": 4, "reference": 6, "copy_floor": 7}
    return (fixed.get(name, 5), 0, name)


def load(root, baseline):
    """{group: {function: (median_ns, throughput dict or None)}}"""
    groups = {}
    for bench in root.rglob("benchmark.json"):
        if bench.parent.name != baseline:
            continue
        est = bench.parent / "estimates.json"
        if not est.is_file():
            continue
        with open(bench) as f:
            meta = json.load(f)
        with open(est) as f:
            estimates = json.load(f)
        name = meta.get("function_id") or ""
        if meta.get("value_str"):
            name = f"{name}/{meta['value_str']}" if name else meta["value_str"]
        median = estimates["median"]["point_estimate"]
        groups.setdefault(meta["group_id"], {})[name] = (median, meta.get("throughput"))
    return groups


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_throughput(tp, ns):
    """Amount per nanosecond = giga-amount per second."""
    if not tp or ns <= 0:
        return ""
    kind, amount = next(iter(tp.items()))
    if kind in ("Bytes", "BytesDecimal"):
        return f"{amount / ns:.3g} GB/s"
    if kind == "Bits":
        return f"{amount / ns:.3g} Gbit/s"
    if kind == "Elements":
        return f"{amount / ns:.3g} GFLOP/s"
    if kind == "ElementsAndBytes":
        return f"{amount['elements'] / ns:.3g} GFLOP/s, {amount['bytes'] / ns:.3g} GB/s"
    return f"{amount / ns:.3g} {kind}/ns"


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else ""


def scalar_baseline(name, funcs):
    prefix, _, isa = name.rpartition("_")
    if prefix and isa in ISAS and f"{prefix}_scalar" in funcs:
        return funcs[f"{prefix}_scalar"][0]
    if "scalar" in funcs and name != "copy_floor":
        return funcs["scalar"][0]
    return None


def table(group, funcs):
    lines = [
        f"### {group}",
        "",
        "| function | median | throughput | vs scalar | vs reference | / copy_floor |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    ref = funcs.get("reference", (None,))[0]
    floor = funcs.get("copy_floor", (None,))[0]
    for name in sorted(funcs, key=function_key):
        ns, tp = funcs[name]
        base = scalar_baseline(name, funcs)
        vs_scalar = base / ns if base is not None and name != "reference" else None
        vs_ref = ref / ns if ref is not None and name != "copy_floor" else None
        per_floor = ns / floor if floor is not None else None
        lines.append(
            f"| {name} | {fmt_time(ns)} | {fmt_throughput(tp, ns)} | {fmt_ratio(vs_scalar)} "
            f"| {fmt_ratio(vs_ref)} | {fmt_ratio(per_floor)} |"
        )
    return "\n".join(lines)


def main():
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", type=Path, help="criterion output directory")
    ap.add_argument("--baseline", default="new", help='result set to read: "new" (latest run) or a saved baseline')
    ap.add_argument("--filter", default="", help="only groups whose name contains this")
    args = ap.parse_args()
    root = args.dir or default_dir()
    groups = load(root, args.baseline)
    groups = {g: f for g, f in groups.items() if args.filter in g}
    if not groups:
        print(f"no criterion results ({args.baseline}/benchmark.json) under {root}", file=sys.stderr)
        return 1
    print(f"Criterion results from `{root}` ({args.baseline}); ratios > 1 mean faster than the baseline,")
    print("`/ copy_floor` is the time in copies of the kernel's output.")
    for group in sorted(groups, key=group_key):
        print()
        print(table(group, groups[group]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
