#!/usr/bin/env python3
"""Summarises an Nsight Compute CSV as rows of the device check's table.

    ncu_summary.py CSV LABEL [--top N] [--what TEXT] [--split] [--missing FAIL|skip]

CSV is what `ncu --csv --metrics ...` prints (its own lines first, then a
table of one row per kernel launch and metric). Launches are grouped by
kernel (the name without its arguments), costliest first, and the script
prints a total row, then one row per kernel (the N costliest, all by
default), each `LABEL #i   info   detail`. --split adds a row after the
total, `LABEL split`, with the time by kind of kernel (convolutions and
matrix products, batch norm, elementwise and copies, ...: CATEGORIES below,
told apart by name, for lrt's kernels, PyTorch's and the libraries'). What
a kernel's row says depends on the metrics the CSV holds:

  gpu__time_duration.sum            milliseconds, summed over the launches
  dram__bytes_read.sum and
  dram__bytes_write.sum             DRAM traffic (GB) and its rate (TB/s)
  launch__registers_per_thread      registers a thread (the range, if they differ)
  sm__maximum_warps_per_active_cycle_pct
                                    theoretical occupancy (the range)
  sm__warps_active.avg.pct_of_peak_sustained_active
                                    achieved occupancy
  sm__inst_issued.avg.pct_of_peak_sustained_active
                                    issue slots busy
  sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active
                                    the FP64 pipe's use
The last three are averaged over a kernel's launches, weighted by their time.

A launch's other metrics that ncu could not give ("n/a", an unknown unit)
are left out of its kernel's row (a range or average then covers the
launches that have them; bytes only where every launch has them); a launch
without a readable time is left out of the rows, and the total row counts
it; a CSV without a usable kernel table (ncu failed or was stopped, no
launch with a readable time) gives one row saying so, FAIL unless --missing skip, and status 0, so that the table
goes on; bad arguments exit with status 2.
"""

import argparse
import collections
import csv
import re
import sys

TIME = "gpu__time_duration.sum"
READ = "dram__bytes_read.sum"
WRITE = "dram__bytes_write.sum"
REGS = "launch__registers_per_thread"
THEORETICAL = "sm__maximum_warps_per_active_cycle_pct"
# Percentages averaged over a kernel's launches, weighted by their time,
# and how a row names them.
WEIGHTED = [("sm__warps_active.avg.pct_of_peak_sustained_active", "{:.0f}% achieved"),
            ("sm__inst_issued.avg.pct_of_peak_sustained_active", "issue slots {:.0f}% busy"),
            ("sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active", "FP64 pipe {:.0f}%")]

# ncu's units (auto-scaled or base), to milliseconds and to bytes. Nsight
# Compute's byte prefixes are decimal (Kbyte = 1000 bytes); the binary ones
# are spelt KiB.
MS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0, "second": 1e3, "s": 1e3}
BYTES = {"byte": 1.0, "B": 1.0, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6, "MB": 1e6, "Gbyte": 1e9, "GB": 1e9,
         "Tbyte": 1e12, "TB": 1e12, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30}


# Kinds of kernel, by a lowercase pattern of the name; the first that matches
# names a kernel's kind (so BN kernels whose names say "reduce" count as batch
# norm), anything else is "other".
CATEGORIES = [
    ("layout transposes", re.compile(r"nchwtonhwc|nhwctonchw|transpose")),
    ("optimizer", re.compile(r"adam|multi_tensor|fused_step|upload_kernel")),
    ("batch norm", re.compile(r"(^|[^a-z])bn_|batch_?norm|welford")),
    ("loss", re.compile(r"softmax|nll_loss|cross_entropy")),
    ("convolutions and matrix products", re.compile(r"xmma|gemm|conv|cutlass|splitk|dgrad|wgrad|fprop")),
    ("reductions and pooling", re.compile(r"reduce|pool|avg")),
    ("elementwise and copies", re.compile(r"elementwise|binary|unary|copy|fill|cast|vec|nonfinite")),
]


def category(name):
    low = name.lower()
    return next((c for c, pattern in CATEGORIES if pattern.search(low)), "other")


def kernel_name(raw):
    """The kernel's name without 'void', its arguments and lrt's namespaces."""
    name = raw.removeprefix("void ")
    for ns in ("lrt::kernels::cuda::(anonymous namespace)::", "lrt::kernels::cuda::<unnamed>::",
               "kernels::<unnamed>::", "lrt::kernels::cuda::", "(anonymous namespace)::", "<unnamed>::"):
        name = name.replace(ns, "")
    depth = 0
    for i, ch in enumerate(name):  # cut at the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return name[:i]
    return name


def number(value):
    if value is None:  # a row cut short (ncu stopped while writing)
        raise ValueError("no value")
    return float(value.replace(",", ""))


def scaled(row, table):
    unit = row.get("Metric Unit")
    if unit not in table:
        raise ValueError(f"unit '{unit}' of {row['Metric Name']}")
    try:
        value = number(row["Metric Value"])
    except ValueError:
        raise ValueError(f"value '{row['Metric Value']}' of {row['Metric Name']}") from None
    return value * table[unit]


def readable(metrics, name, table=None):
    """The value of metric `name` (scaled by table), or None where the launch
    lacks it or ncu gave no number ("n/a") or an unknown unit: such a value is
    left out of the row rather than failing the table."""
    if name not in metrics:
        return None
    try:
        return scaled(metrics[name], table) if table else number(metrics[name]["Metric Value"])
    except ValueError:
        return None


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else fmt.format(lo) + "-" + fmt.format(hi)


def main():
    ap = argparse.ArgumentParser(description="Nsight Compute CSV to device-check rows.")
    ap.add_argument("csv")
    ap.add_argument("label")
    ap.add_argument("--top", type=int, default=0, help="rows for the N costliest kernels only (default: all)")
    ap.add_argument("--what", default="", help="added to the total row, in parentheses")
    ap.add_argument("--split", action="store_true", help="a row with the time by kind of kernel")
    ap.add_argument("--missing", default="FAIL", choices=["FAIL", "skip"],
                    help="the status of the row that says the CSV holds no usable table (default FAIL)")
    a = ap.parse_args()
    if a.top < 0:
        print("ncu_summary.py: --top must be 0 or more", file=sys.stderr)
        return 2
    label = a.label

    def out(n, status, detail):
        print(f"{n:<28} {status:<8} {detail}")

    try:
        with open(a.csv, newline="") as f:
            lines = f.read().splitlines()
    except OSError as e:
        out(label, a.missing, f"no kernel table ({e.strerror}: {a.csv})")
        return 0
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        out(label, a.missing, "no kernel table (see the ncu log beside the CSV)")
        return 0

    launches = collections.OrderedDict()  # ID -> (name, {metric: row})
    try:
        for r in csv.DictReader(lines[start:]):
            if r.get("ID") is None or r.get("Metric Name") is None:
                continue
            launches.setdefault(r["ID"], (kernel_name(r["Kernel Name"]), {}))[1][r["Metric Name"]] = r
        by = collections.OrderedDict()
        untimed, untimed_why = 0, ""  # launches without a readable time, and the first one's reason
        for name, metrics in launches.values():
            try:
                if TIME not in metrics:
                    raise ValueError(f"a launch of {name} has no {TIME}")
                ms = scaled(metrics[TIME], MS)
            except ValueError as e:
                untimed += 1
                untimed_why = untimed_why or str(e)
                continue
            k = by.setdefault(name, {"ms": 0.0, "n": 0, "bytes": 0.0, "has_bytes": True, "regs": [], "theo": [],
                                     "weighted": {m: [0.0, 0.0] for m, _ in WEIGHTED}})
            k["ms"] += ms
            k["n"] += 1
            read, written = readable(metrics, READ, BYTES), readable(metrics, WRITE, BYTES)
            if read is not None and written is not None:
                k["bytes"] += read + written
            else:
                k["has_bytes"] = False
            if (regs := readable(metrics, REGS)) is not None:
                k["regs"].append(regs)
            if (theo := readable(metrics, THEORETICAL)) is not None:
                k["theo"].append(theo)
            for m, _ in WEIGHTED:
                if (v := readable(metrics, m)) is not None:
                    k["weighted"][m][0] += v * ms
                    k["weighted"][m][1] += ms
    except (ValueError, KeyError, csv.Error) as e:
        out(label, a.missing, f"unreadable kernel table ({e})")
        return 0
    if not by:
        if untimed:
            out(label, a.missing, f"unreadable kernel table ({untimed_why})")
        else:
            out(label, a.missing, "the kernel table is empty (no kernel matched)")
        return 0

    def traffic(ms, nbytes):
        return f"{nbytes / 1e9:.2f} GB at {nbytes / 1e9 / ms:.2f} TB/s" if ms > 0 else f"{nbytes / 1e9:.2f} GB"

    total_ms = sum(k["ms"] for k in by.values())
    timed = len(launches) - untimed
    total = f"{total_ms:.2f} ms of kernels in {timed} launch{'' if timed == 1 else 'es'}"
    if all(k["has_bytes"] for k in by.values()):
        total += ", " + traffic(total_ms, sum(k["bytes"] for k in by.values()))
    if a.what:
        total += f" ({a.what})"
    if untimed:
        total += f"; {untimed} more launch{'' if untimed == 1 else 'es'} left out, no readable time ({untimed_why})"
    out(label, "info", total)
    if a.split:
        kinds = collections.defaultdict(lambda: [0.0, 0])
        for name, k in by.items():
            kinds[category(name)][0] += k["ms"]
            kinds[category(name)][1] += k["n"]
        out(label + " split", "info", ", ".join(f"{c} {ms:.2f} ms ({n})" for c, (ms, n) in
                                                 sorted(kinds.items(), key=lambda kv: -kv[1][0])))
    ranked = sorted(by.items(), key=lambda kv: -kv[1]["ms"])
    for i, (name, k) in enumerate(ranked[: a.top or None]):
        parts = [f"{k['ms']:.2f} ms", f"{k['n']} launch" + ("" if k["n"] == 1 else "es")]
        if k["has_bytes"]:
            parts.append(traffic(k["ms"], k["bytes"]))
        if k["regs"]:
            parts.append(span(k["regs"], "{:.0f}") + " registers")
        if k["theo"]:
            parts.append("occupancy " + span(k["theo"], "{:.0f}") + "% theoretical")
        for m, fmt in WEIGHTED:
            total_value, weight = k["weighted"][m]
            if weight > 0:
                parts.append(fmt.format(total_value / weight))
        out(f"{label} #{i + 1}", "info", ", ".join(parts) + ": " + name[:110])
    return 0


if __name__ == "__main__":
    sys.exit(main())
