#!/usr/bin/env python3
"""The device check's rows for probe_cudnn_fusion's JSON (tools/device_check.sh):

  fusion_rows.py FILE

One row for the run (cuDNN's version, the time it took, whether its
--deadline stopped it), then one per shape and 16-bit type: lrt's three
passes on that shape (the previous batch norm's normalise + ReLU, the
convolution, the statistics pass) and each fused graph's median time, or
"no" where cuDNN built none ("rtc" marks a runtime-compiled engine), with
what the graph replaces of lrt's passes set against it. A graph that ran
but whose outputs differ from lrt's makes its row a FAIL; an unreadable file
is a FAIL.
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
}


def row(name, status, detail):
    return f"{name:<28} {status:<8} {detail}"


def graph_text(g, lrt):
    if not g.get("supported"):
        return f'{g["graph"]} no'
    ms = g["median_ms"]
    against = sum(lrt[k] for k in REPLACES.get(g["graph"], ()))
    text = f'{g["graph"]} {ms:.3f}'
    if g.get("runtime_compiled"):
        text += " rtc"
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
            bad = [g["graph"] for g in graphs if g.get("supported") and not g.get("matches", False)]
            head = (f'lrt {lrt["total_ms"]:.3f} (bn {lrt["apply_ms"]:.3f} + conv {lrt["conv_ms"]:.3f} '
                    f'+ stats {lrt["stats_ms"]:.3f})')
            detail = head + "; " + ", ".join(graph_text(g, lrt) for g in graphs)
            if bad:
                detail += f' ({", ".join(bad)}: outputs differ from lrt\'s)'
            out.append(row(f'fusion {s["shape"]} {dtype}', "FAIL" if bad else "info", detail))
    return out


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
