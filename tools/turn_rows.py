#!/usr/bin/env python3
"""The device check's rows for bench_resnet50 runs made in turns
(tools/device_check.sh): each run's JSON is LOGDIR/bench_KIND_LABEL_TURN.json,
and a label's best run (most images/s) counts.

  turn_rows.py pdl LOGDIR       labels 0 and 1 (LRT_PDL): dependent launch
                                against plain launches
  turn_rows.py features LOGDIR  label default against relu-from-x,
                                grad-blend, cast-together (each run with
                                --no-LABEL): what each speed feature brings;
                                and against cudnn-bn (run with --cudnn-bn,
                                a feature off by default): what it would
  turn_rows.py split LOGDIR     label default against bn2, bn0 and conv2
                                (--kernel-repeat bn=2, bn=0, conv=2): the
                                step's time in batch-norm kernels, in
                                convolutions, and the rest

Prints one summary row per comparison (name, status, detail, as the device
check's table), FAIL where a side gave no result or a switch did not take.
Where a label ran more than once, a row also gives the noise: how far
apart a side's own runs were (the most of either side's), and whether the
difference between the sides is within it (then it is not a measured
difference) or beyond it.
"""
import glob
import json
import os
import sys

FEATURES = ("relu-from-x", "grad-blend", "cast-together")
OPT_IN = ("cudnn-bn",)  # off by default: the labelled run turns it on


def best_runs(logdir, kind):
    """{label: best run} over LOGDIR/bench_KIND_LABEL_TURN.json, the number
    of turns seen, and {label: every run with a result}."""
    best, turns, runs = {}, set(), {}
    prefix = f"bench_{kind}_"
    for f in sorted(glob.glob(os.path.join(logdir, prefix + "*_*.json"))):
        label, turn = os.path.basename(f)[len(prefix):-len(".json")].rsplit("_", 1)
        turns.add(turn)
        try:
            r = json.load(open(f))
        except (ValueError, OSError):
            continue
        if not isinstance(r, dict) or "images_per_s" not in r:
            continue
        runs.setdefault(label, []).append(r)
        if label not in best or r["images_per_s"] > best[label]["images_per_s"]:
            best[label] = r
    return best, len(turns), runs


def largest_spread(runs, labels, key, relative):
    """How far apart the runs of each label were in KEY (max - min; over max
    where relative), the most of the labels; None where no label ran twice."""
    spreads = []
    for label in labels:
        v = [r[key] for r in runs.get(label, []) if key in r]
        if len(v) >= 2 and (not relative or max(v) > 0):
            spreads.append((max(v) - min(v)) / (max(v) if relative else 1))
    return max(spreads) if spreads else None


def noise(runs, labels, on, off):
    """'; ...' saying how far apart each side's own runs were (in images/s,
    the most of the two sides, as a share of the faster run) and whether the
    difference between the sides' best runs is within that; '' where no side
    ran twice."""
    spread = largest_spread(runs, labels, "images_per_s", True)
    if spread is None or off["images_per_s"] <= 0:
        return ""
    diff = abs(on["images_per_s"] / off["images_per_s"] - 1)
    verdict = "within it: no measured difference" if diff <= spread else "beyond it"
    return f"; noise: a side's own runs {100 * spread:.1f}% apart, the difference {100 * diff:.1f}%, {verdict}"


def noise_ms(runs, labels, share):
    """As noise, for a share of the step in ms against how far apart (in ms)
    each side's own runs were."""
    spread = largest_spread(runs, labels, "median_ms", False)
    if spread is None:
        return ""
    verdict = "within it: no measured share" if abs(share) <= spread else "beyond it"
    return f"; noise: a side's own runs {spread:.2f} ms apart, {verdict}"


def row(name, status, detail):
    return f"{name:<28} {status:<8} {detail}"


def pdl_rows(best, turns, runs):
    on, off = best.get("1"), best.get("0")
    name = "r50 bf16 dependent launch"
    if not on or not off:
        return [row(name, "FAIL", "a run gave no result (see bench_pdl.err)")]
    if off.get("dependent_launch"):
        return [row(name, "FAIL", "LRT_PDL=0 left it on")]
    if not on.get("dependent_launch"):
        return [row(name, "skip", "LRT_PDL=1 left it off (a device before sm_90?)")]
    return [row(name, "info", f'{on["images_per_s"] / off["images_per_s"]:.3f}x img/s: LRT_PDL=1 '
                f'{on["images_per_s"]:.0f} ({on["median_ms"]:.2f} ms), plain {off["images_per_s"]:.0f} '
                f'({off["median_ms"]:.2f} ms), CUDA graph, heuristic algorithms, best of {turns} each'
                + noise(runs, ("1", "0"), on, off))]


def feature_rows(best, turns, runs):
    rows = []
    for feat in FEATURES + OPT_IN:
        name = f"r50 bf16 {feat}"
        on, off = best.get("default"), best.get(feat)
        if feat in OPT_IN:
            on, off = off, on
        if not on or not off:
            rows.append(row(name, "FAIL", "a run gave no result (see bench_features.err)"))
            continue
        key = feat.replace("-", "_")
        if off.get("features", {}).get(key, True) or not on.get("features", {}).get(key, False):
            why = (f"--{feat} did not switch it on (or the default is on)" if feat in OPT_IN
                   else f"--no-{feat} did not switch it off (or the default is off)")
            rows.append(row(name, "FAIL", why))
            continue
        # cuDNN's batch norm: how many of the step's cases it ran in each
        # mode, and refused (lrt's kernels ran those).
        modes = on.get("cudnn_bn_modes") or {}
        cases = ", ".join(f"{m} {n}" for m, n in sorted(modes.items()))
        rows.append(row(name, "info", f'{on["images_per_s"] / off["images_per_s"]:.3f}x img/s with it: '
                        f'{on["images_per_s"]:.0f} ({on["median_ms"]:.2f} ms) against {off["images_per_s"]:.0f} '
                        f'({off["median_ms"]:.2f} ms) without, peak {on["peak_memory_mib"]:.0f} vs '
                        f'{off["peak_memory_mib"]:.0f} MiB; ' + (f"cases {cases}; " if cases else "") +
                        f'CUDA graph, heuristic algorithms, best of {turns} each' +
                        noise(runs, ("default", feat), on, off)))
    return rows


def repeats(run):
    """The run's --kernel-repeat counts, {"conv": n, "bn": n} (1 if absent)."""
    r = run.get("kernel_repeat") or {}
    return {g: r.get(g, 1) for g in ("conv", "bn")}


def split_rows(best, turns, runs):
    """The default step against the same with a group's kernels run twice
    (the difference: the group's time as it runs) and, for batch norm, left
    out (a second estimate, the difference the other way: a repeated kernel
    may find its inputs in L2, a left-out one changes what the next kernel
    finds there, so the two can differ). Each run must report the counts its
    label asks for, and no other; a missing or wrong run is a FAIL."""
    base = best.get("default")
    how = f"CUDA graph, heuristic algorithms, best of {turns} each"
    if not base:
        return [row("r50 bf16 split", "FAIL", "the default step gave no result (see bench_split.err)")]
    if repeats(base) != {"conv": 1, "bn": 1}:
        return [row("r50 bf16 split", "FAIL", "the default step ran with kernels repeated")]
    step = base["median_ms"]

    def variant(group, times):
        """The run of label GROUPTIMES, or why it cannot be used."""
        r = best.get(f"{group}{times}")
        if not r:
            return None, f"the step with --kernel-repeat {group}={times} gave no result (see bench_split.err)"
        if repeats(r) != {"conv": 1, "bn": 1, group: times}:
            return None, f"--kernel-repeat {group}={times} did not take"
        return r, None

    shares, rows = {}, []
    for group, what, left_out in (("bn", "batch-norm kernels", True), ("conv", "convolutions", False)):
        name = f"r50 bf16 split {group}"
        twice, why = variant(group, 2)
        if why:
            rows.append(row(name, "FAIL", why))
            continue
        shares[group] = twice["median_ms"] - step
        detail = (f"{shares[group]:.2f} ms of the {step:.2f} ms step ({100 * shares[group] / step:.0f}%): "
                  f"{twice['median_ms']:.2f} ms with its {what} twice")
        status = "info"
        if left_out:
            none, why = variant(group, 0)
            if why:
                status, detail = "FAIL", f"{detail}; {why}"
            else:
                shares[group + "0"] = step - none["median_ms"]
                detail += f"; {shares[group + '0']:.2f} ms by leaving them out ({none['median_ms']:.2f} ms)"
        rows.append(row(name, status, f"{detail}; {how}" + noise_ms(runs, ("default", f"{group}2"), shares[group])))
    if "bn" in shares and "conv" in shares:
        rest = step - shares["bn"] - shares["conv"]
        also = ""
        if "bn0" in shares:
            also = f" ({step - shares['bn0'] - shares['conv']:.2f} ms with the batch-norm share of leaving them out)"
        rows.append(row("r50 bf16 split rest", "info",
                        f"{rest:.2f} ms ({100 * rest / step:.0f}%){also}: the other kernels (casts, adds, pooling, "
                        f"loss, optimizer) and the gaps between kernels"))
    return rows


def main(argv):
    kinds = {"pdl": pdl_rows, "features": feature_rows, "split": split_rows}
    if len(argv) != 3 or argv[1] not in kinds:
        print("usage: turn_rows.py pdl|features|split LOGDIR", file=sys.stderr)
        return 2
    best, turns, runs = best_runs(argv[2], argv[1])
    for line in kinds[argv[1]](best, turns, runs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
