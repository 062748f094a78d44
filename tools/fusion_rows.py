#!/usr/bin/env python3
"""The device check's rows for probe_cudnn_fusion's JSON (tools/device_check.sh):

  fusion_rows.py FILE

One row for the run (cuDNN's version, the time it took, whether its
--deadline stopped it), then for each shape and 16-bit type a "fusion" row:
lrt's three passes on that shape (the previous batch norm's normalise +
ReLU, the convolution, the statistics pass) and each convolution graph's
median time, or "no" where cuDNN built none ("rtc" marks a runtime-compiled
engine), with what the graph replaces of lrt's passes set against it; and,
where the batch-norm graphs ran on the shape's output, a "bn" row: each
batch-norm graph's time against lrt's kernels doing the same work, and a
"bn legacy" row: the same for cuDNN's legacy batch-norm functions (each
named without its "legacy_" prefix; "spatial" marks one that ran in
cuDNN's plain spatial mode, the persistent one refused). A graph that ran
but whose outputs differ from lrt's makes its row a FAIL; an unreadable
file is a FAIL.
"""
import json
import sys

# What of lrt's passes each graph stands in for.
REPLACES = {
    "conv": ("conv_ms",),
    "conv_stats": ("conv_ms", "stats_ms"),
    "sbr_conv": ("apply_ms", "conv_ms"),
    "sbr_conv_stats": ("apply_ms", "conv_ms", "stats_ms"),
    "sbr_conv_sum": ("apply_ms", "conv_ms"),  # half the statistics: the sum alone
    "bn_relu": ("bn_relu_ms",),
    "bn_add_relu": ("bn_add_relu_ms",),
    "dbn": ("dbn_ms",),
    "bn_drelu_dbn": ("bn_drelu_dbn_ms",),
    "legacy_bn_relu": ("bn_relu_ms",),
    "legacy_bn_add_relu": ("bn_add_relu_ms",),
    "legacy_dbn": ("dbn_ms",),
    "legacy_dbn_relu": ("bn_drelu_dbn_ms",),  # lrt's backward through the ReLU
    "legacy_dbn_add_relu": ("dbn_add_relu_ms",),
}
LEGACY = ("legacy_bn_relu", "legacy_bn_add_relu", "legacy_dbn", "legacy_dbn_relu", "legacy_dbn_add_relu")
BN_GRAPHS = ("bn_relu", "bn_add_relu", "dbn", "bn_drelu_dbn") + LEGACY


def row(name, status, detail):
    return f"{name:<28} {status:<8} {detail}"


def graph_text(g, lrt):
    against = sum(lrt[k] for k in REPLACES.get(g["graph"], ()))
    vs = f" vs lrt {against:.3f}" if g["graph"] in BN_GRAPHS else ""
    name = g["graph"].removeprefix("legacy_")
    if not g.get("supported"):
        return f'{name} no' + (f" (lrt {against:.3f})" if vs else "")
    ms = g["median_ms"]
    text = f'{name} {ms:.3f}'
    if g.get("runtime_compiled"):
        text += " rtc"
    if g.get("mode") == "spatial":
        text += " spatial"
    text += vs
    if against > 0 and ms > 0:
        text += f" ({against / ms:.2f}x)"
    if not g.get("matches", False):
        text += " MISMATCH"
    return text


def rows(d):
    out = []
    shapes = d.get("shapes", [])
    ver = d.get("cudnn_version", "?")
    stop = ", stopped at its --deadline" if d.get("stopped_at_deadline") else ""
    out.append(row("fusion probe", "info",
                   f'cuDNN {ver}, {len(shapes)} shape(s) in {d.get("seconds", 0):.0f} s{stop}; '
                   "times in ms, (Nx) = lrt's passes the graph replaces over its time"))
    for s in shapes:
        lrt = s["lrt"]
        by_type = {}
        for g in s.get("graphs", []):
            by_type.setdefault(g["dtype"], []).append(g)
        for dtype, graphs in by_type.items():
            conv = [g for g in graphs if g["graph"] not in BN_GRAPHS]
            bn = [g for g in graphs if g["graph"] in BN_GRAPHS and g["graph"] not in LEGACY]
            legacy = [g for g in graphs if g["graph"] in LEGACY]
            if conv:
                head = (f'lrt {lrt["total_ms"]:.3f} (bn {lrt["apply_ms"]:.3f} + conv {lrt["conv_ms"]:.3f} '
                        f'+ stats {lrt["stats_ms"]:.3f}); ')
                out.append(group_row(f'fusion {s["shape"]} {dtype}', head, conv, lrt))
            head = f'{lrt.get("bn_channels", "?")} channels {lrt.get("bn_hw", "?")}x{lrt.get("bn_hw", "?")}: '
            if bn:
                out.append(group_row(f'bn {s["shape"]} {dtype}', head, bn, lrt))
            if legacy:
                out.append(group_row(f'bn legacy {s["shape"]} {dtype}', head, legacy, lrt))
    return out


def group_row(name, head, graphs, lrt):
    bad = [g["graph"] for g in graphs if g.get("supported") and not g.get("matches", False)]
    detail = head + ", ".join(graph_text(g, lrt) for g in graphs)
    if bad:
        detail += f' ({", ".join(bad)}: outputs differ from lrt\'s)'
    return row(name, "FAIL" if bad else "info", detail)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fusion_rows.py FILE")
    try:
        with open(sys.argv[1]) as f:
            d = json.load(f)
        lines = rows(d)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(row("fusion probe", "FAIL", f"unreadable JSON in {sys.argv[1]} ({type(e).__name__}: {e})"))
        return
    print("\n".join(lines))


if __name__ == "__main__":
    main()
