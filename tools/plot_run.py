#!/usr/bin/env python3
"""Plots a resnet50_cifar training log or an lr-find sweep as one PNG.

Training log (written by `resnet50_cifar train --log LOG.jsonl`):

    plot_run.py LOG.jsonl [-o run.png] [--title T]

draws three panels stacked vertically:
  (a) the learning rate of each parameter group against the optimizer step,
      log y-scale, one line per group (labelled "group i (xM)" where M is the
      group's rate relative to the last group, when that ratio is constant);
      SGDR cycle ends are marked with faint vertical lines;
  (b) the training loss against the step: raw loss faint, plus its
      bias-corrected exponential moving average (smoothing 0.98, as fastai);
  (c) test accuracy (and train accuracy when logged) per finished epoch.

Learning-rate sweep (written by `resnet50_cifar lr-find`):

    plot_run.py --lr-find LRFIND.csv [-o lr_find.png] [--suggestion LR]

draws the loss against the learning rate (log x-scale), raw loss faint and
smoothed loss bold, with the suggested learning rate marked. The suggestion
is --suggestion when given, else the `# suggestion_steepest=` and
`# suggestion_min_div10=` comment lines of the CSV when present, else the
point of steepest descent of the smoothed loss against log(lr).

Errors are reported as one line on stderr and exit with status 2.
"""

import argparse
import json
import math
import os
import sys
import tempfile

PROG = "plot_run.py"
SMOOTHING = 0.98  # EMA factor for losses, as fastai's Recorder / LRFinder


class UsageError(Exception):
    """A problem with the inputs or the command line: reported, exit 2."""


def fail(message):
    raise UsageError(message)


# ----------------------------------------------------------------- helpers

def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v):
    return is_number(v) and math.isfinite(v)


def ema_debiased(values, beta=SMOOTHING, hold=True):
    """Bias-corrected exponential moving average (fastai's smoothing).
    Non-finite inputs do not enter the average; their output is the running
    average so far when hold is true, else NaN (and always NaN before the
    first finite value)."""
    out = []
    avg = 0.0
    n = 0
    for v in values:
        good = v is not None and math.isfinite(v)
        if good:
            n += 1
            avg = beta * avg + (1.0 - beta) * v
        out.append(avg / (1.0 - beta ** n) if n and (good or hold) else float("nan"))
    return out


def read_text_lines(path, what):
    if not os.path.exists(path):
        fail("%s: no such file" % path)
    if os.path.isdir(path):
        fail("%s: is a folder, expected a %s file" % (path, what))
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        fail("%s: not UTF-8 text (%s)" % (path, e.reason))
    except OSError as e:
        fail("%s: cannot read (%s)" % (path, e.strerror or e))
    if not text.strip():
        fail("%s: file is empty" % path)
    return text.splitlines()


def save_atomically(fig, out_path):
    """Saves fig as PNG to a temporary file next to out_path, then renames
    it over out_path, so readers never see a half-written image."""
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        fail("%s: output folder %s does not exist" % (out_path, folder))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out_path) + ".",
                                   suffix=".tmp", dir=folder)
    except OSError as e:
        fail("%s: cannot write in %s (%s)" % (out_path, folder, e.strerror or e))
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            fail("%s: cannot write (%s)" % (out_path, e.strerror or e))
        raise


def format_lr(v):
    return "%.2e" % v


def format_mult(m):
    if m >= 0.1:
        s = "%.3g" % m
    else:
        s = "%.2g" % m
    return "\u00d7" + s


# --------------------------------------------------------- training log

class TrainLog:
    def __init__(self):
        self.steps = {}    # step -> (epoch or None, loss or None, [lr...], skipped)
        self.epochs = {}   # epoch k -> dict of the epoch event
        self.cycles = {}   # cycle -> step


def read_train_log(path):
    lines = read_text_lines(path, "JSONL log")
    log = TrainLog()
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError as e:
            fail("%s:%d: not valid JSON (%s)" % (path, lineno, getattr(e, "msg", e)))
        if not isinstance(ev, dict):
            fail("%s:%d: expected a JSON object, got %s" % (path, lineno, type(ev).__name__))
        kind = ev.get("event")
        if kind == "step":
            step = ev.get("step")
            if not finite(step):
                fail("%s:%d: step event without a numeric \"step\"" % (path, lineno))
            epoch = ev.get("epoch")
            epoch = float(epoch) if finite(epoch) else None
            loss = ev.get("loss")
            loss = float(loss) if finite(loss) else None
            lr = ev.get("lr")
            if is_number(lr):
                lr = [lr]
            if not isinstance(lr, list):
                lr = []
            lr = [float(v) if finite(v) else float("nan") for v in lr]
            # A resumed run logs the steps after its checkpoint again: the
            # later record wins.
            log.steps[int(step)] = (epoch, loss, lr, ev.get("skipped") is True)
        elif kind == "epoch":
            k = ev.get("epoch")
            if not finite(k):
                fail("%s:%d: epoch event without a numeric \"epoch\"" % (path, lineno))
            log.epochs[float(k)] = ev
        elif kind == "cycle_end":
            step = ev.get("step")
            if not finite(step):
                fail("%s:%d: cycle_end event without a numeric \"step\"" % (path, lineno))
            cycle = ev.get("cycle")
            key = cycle if finite(cycle) else len(log.cycles)
            log.cycles[key] = int(step)
        # other events (start, end, resume, ...) carry nothing plotted here
    if not log.steps:
        fail("no step events in %s" % path)
    return log


def accuracy_series(epochs, key):
    xs, ys = [], []
    for k in sorted(epochs):
        v = epochs[k].get(key)
        if finite(v):
            xs.append(k)
            ys.append(float(v))
    return xs, ys


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_train_log(path, out_path, title):
    log = read_train_log(path)  # before importing matplotlib: errors come fast
    import numpy as np
    plt = pyplot()

    step_ids = sorted(log.steps)
    steps = np.array(step_ids, dtype=float)
    n_groups = max(len(log.steps[s][2]) for s in step_ids)
    lrs = np.full((len(step_ids), max(n_groups, 1)), np.nan)
    for i, s in enumerate(step_ids):
        row = log.steps[s][2]
        lrs[i, :len(row)] = row
    losses = np.array([np.nan if log.steps[s][1] is None else log.steps[s][1]
                       for s in step_ids])
    skipped = np.array([log.steps[s][3] for s in step_ids], dtype=bool)
    smooth = np.array(ema_debiased(list(losses)))

    # step -> fractional epoch, for drawing the cycle ends on the epoch panel
    ep_pairs = [(s, log.steps[s][0]) for s in step_ids if log.steps[s][0] is not None]

    def step_to_epoch(s):
        if len(ep_pairs) < 2:
            return None
        xs = np.array([p[0] for p in ep_pairs], dtype=float)
        ys = np.array([p[1] for p in ep_pairs], dtype=float)
        return float(np.interp(s, xs, ys))

    cycle_steps = [log.cycles[c] for c in sorted(log.cycles)]
    few = len(step_ids) <= 30  # draw the points too, or a single step is invisible

    fig, (ax_lr, ax_loss, ax_acc) = plt.subplots(
        3, 1, figsize=(10, 11), dpi=120,
        gridspec_kw={"height_ratios": [1.0, 1.0, 0.9]})
    if title:
        fig.suptitle(title, fontsize=13)

    # (a) learning rates
    last = lrs[:, n_groups - 1] if n_groups else None
    colors = plt.get_cmap("viridis")
    any_lr = False
    for g in range(n_groups):
        col = lrs[:, g]
        ok = np.isfinite(col) & (col > 0)
        if not ok.any():
            continue
        any_lr = True
        label = "group %d" % g
        if n_groups > 1:
            both = ok & np.isfinite(last) & (last > 0)
            if both.any():
                ratio = col[both] / last[both]
                if np.allclose(ratio, ratio[0], rtol=1e-3, atol=0):
                    label += " (%s)" % format_mult(float(ratio[0]))
        color = colors(g / max(n_groups - 1, 1) * 0.85) if n_groups > 1 else "tab:blue"
        y = np.where(ok, col, np.nan)
        ax_lr.plot(steps, y, color=color, linewidth=1.6, label=label,
                   marker="o" if few else None, markersize=3)
    if any_lr:
        ax_lr.set_yscale("log")
        ax_lr.legend(loc="best", fontsize=9, title="parameter group",
                     title_fontsize=9, framealpha=0.85)
    else:
        ax_lr.text(0.5, 0.5, "no positive learning rates logged",
                   ha="center", va="center", transform=ax_lr.transAxes)
    ax_lr.set_ylabel("learning rate (log)")
    ax_lr.set_title("(a) learning rate per parameter group", loc="left", fontsize=11)

    # (b) training loss
    ok = np.isfinite(losses)
    if ok.any():
        ax_loss.plot(steps[ok], losses[ok], color="tab:blue", alpha=0.3,
                     linewidth=0.8, label="loss (per step)",
                     marker="o" if few else None, markersize=3)
        ax_loss.plot(steps, smooth, color="tab:blue", linewidth=2.0,
                     label="loss (EMA %.2f, bias-corrected)" % SMOOTHING,
                     marker="o" if few else None, markersize=3)
        # keep early spikes from flattening the rest of the curve
        lo = float(np.nanmin(losses[ok]))
        hi = max(float(np.nanpercentile(losses[ok], 99.5)), float(np.nanmax(smooth)))
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.05)
        ax_loss.set_ylim(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)
    else:
        ax_loss.text(0.5, 0.5, "no finite losses logged",
                     ha="center", va="center", transform=ax_loss.transAxes)
    if skipped.any():
        ymin = ax_loss.get_ylim()[0]
        ax_loss.plot(steps[skipped], np.full(int(skipped.sum()), ymin), "x",
                     color="tab:red", markersize=5, clip_on=False,
                     label="skipped step (%d)" % int(skipped.sum()))
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("(b) training loss", loc="left", fontsize=11)
    if ok.any() or skipped.any():
        ax_loss.legend(loc="upper right", fontsize=9, framealpha=0.85)

    for ax in (ax_lr, ax_loss):
        ax.set_xlabel("optimizer step")
        ax.grid(True, which="major", alpha=0.3)
        if steps[-1] > steps[0]:
            margin = 0.02 * (steps[-1] - steps[0]) if few else 0.0
            ax.set_xlim(steps[0] - margin, steps[-1] + margin)
        else:
            ax.set_xlim(steps[0] - 1, steps[0] + 1)
        for s in cycle_steps:
            ax.axvline(s, color="0.4", alpha=0.35, linewidth=1.0, linestyle="--")
    if cycle_steps:
        # what the dashed lines mean, without crowding the legend
        ax_lr.text(0.995, 0.02, "dashed: SGDR cycle ends (%d)" % len(cycle_steps),
                   transform=ax_lr.transAxes, ha="right", va="bottom",
                   fontsize=8, color="0.35")

    # (c) accuracy per epoch
    tx, ty = accuracy_series(log.epochs, "test_acc")
    rx, ry = accuracy_series(log.epochs, "train_acc")
    all_acc = ty + ry
    percent_input = bool(all_acc) and max(all_acc) > 1.0 + 1e-9
    scale = 1.0 if percent_input else 100.0
    if tx or rx:
        if rx:
            ax_acc.plot(rx, [v * scale for v in ry], "s-", color="tab:orange",
                        markersize=4, linewidth=1.3, alpha=0.85, label="train accuracy")
        if tx:
            best = int(np.argmax(ty))
            ax_acc.plot(tx, [v * scale for v in ty], "o-", color="tab:green",
                        markersize=5, linewidth=1.8,
                        label="test accuracy (best %.2f%% at epoch %g)"
                        % (ty[best] * scale, tx[best]))
            ax_acc.plot([tx[best]], [ty[best] * scale], "*", color="tab:red",
                        markersize=12, zorder=5)
        ax_acc.set_ylim(0, 100)
        ax_acc.legend(loc="lower right", fontsize=9, framealpha=0.85)
        xs = tx + rx
        lo_x, hi_x = min(xs), max(xs)
        if hi_x > lo_x:
            ax_acc.set_xlim(lo_x - 0.03 * (hi_x - lo_x) - 0.2,
                            hi_x + 0.03 * (hi_x - lo_x) + 0.2)
        else:
            ax_acc.set_xlim(lo_x - 1, hi_x + 1)
        if hi_x - lo_x <= 30:
            ax_acc.set_xticks(sorted(set(xs)))
        for s in cycle_steps:
            e = step_to_epoch(s)
            if e is not None:
                ax_acc.axvline(e, color="0.4", alpha=0.35, linewidth=1.0, linestyle="--")
    else:
        msg = "no accuracy logged" if log.epochs else "no epoch events in the log"
        ax_acc.text(0.5, 0.5, msg, ha="center", va="center", transform=ax_acc.transAxes)
        ax_acc.set_ylim(0, 100)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.grid(True, alpha=0.3)
    ax_acc.set_title("(c) accuracy per epoch", loc="left", fontsize=11)

    fig.tight_layout()
    save_atomically(fig, out_path)
    plt.close(fig)


# -------------------------------------------------------------- lr-find

def read_lr_find(path):
    lines = read_text_lines(path, "CSV")
    comments = {}
    header = None
    rows = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if "=" in body:
                key, _, value = body.partition("=")
                comments[key.strip()] = value.strip()
            continue
        fields = [f.strip() for f in line.split(",")]
        if header is None:
            names = [f.lower() for f in fields]
            if "lr" not in names or "loss" not in names:
                fail("%s:%d: bad column names %r: expected a header with lr and loss "
                     "(and optionally smoothed)" % (path, lineno, line))
            if len(set(names)) != len(names):
                fail("%s:%d: repeated column names in %r" % (path, lineno, line))
            header = names
            continue
        if len(fields) != len(header):
            fail("%s:%d: expected %d columns, found %d"
                 % (path, lineno, len(header), len(fields)))
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            fail("%s:%d: not a number in %r" % (path, lineno, line))
    if header is None:
        fail("%s: no header line (expected lr,loss)" % path)
    if not rows:
        fail("%s: no data rows" % path)
    col = {name: i for i, name in enumerate(header)}
    lr = [r[col["lr"]] for r in rows]
    loss = [r[col["loss"]] for r in rows]
    smoothed = [r[col["smoothed"]] for r in rows] if "smoothed" in col else None
    return lr, loss, smoothed, comments


def steepest_point(lr, smoothed, skip_start=None):
    """Index of the steepest descent of smoothed against log(lr), over the
    points before the smoothed minimum, skipping the first few; None when
    there are too few usable points."""
    import numpy as np
    lr = np.asarray(lr, dtype=float)
    s = np.asarray(smoothed, dtype=float)
    ok = np.isfinite(lr) & (lr > 0) & np.isfinite(s)
    idx = np.nonzero(ok)[0]
    if len(idx) < 3:
        return None
    if skip_start is None:
        skip_start = min(10, len(idx) // 10)
    i_min = idx[int(np.argmin(s[idx]))]
    use = idx[(idx >= idx[min(skip_start, len(idx) - 1)]) & (idx <= i_min)]
    if len(use) < 3:
        use = idx[idx <= i_min]
    if len(use) < 3:
        return None
    x = np.log(lr[use])
    if not np.all(np.diff(x) > 0):
        order = np.argsort(x, kind="stable")
        use, x = use[order], x[order]
        keep = np.concatenate(([True], np.diff(x) > 0))
        use, x = use[keep], x[keep]
        if len(use) < 3:
            return None
    grad = np.gradient(s[use], x)
    # the minimum itself (one-sided difference) is not a candidate
    cand = grad[:-1] if use[-1] == i_min else grad
    return int(use[int(np.argmin(cand))])


def plot_lr_find(path, out_path, title, suggestion):
    lr, loss, smoothed, comments = read_lr_find(path)
    import numpy as np
    plt = pyplot()

    lr = np.array(lr)
    loss = np.array(loss)
    if smoothed is None:
        # a diverged (inf/nan) loss ends the smoothed curve there
        smoothed = np.array(ema_debiased(list(loss), hold=False))
        smooth_label = "smoothed loss (EMA %.2f, bias-corrected)" % SMOOTHING
    else:
        smoothed = np.array(smoothed)
        smooth_label = "smoothed loss"
    ok_lr = np.isfinite(lr) & (lr > 0)
    if not ok_lr.any():
        fail("%s: no row with a positive learning rate" % path)
    ok_raw = ok_lr & np.isfinite(loss)
    ok_s = ok_lr & np.isfinite(smoothed)
    if not (ok_raw.any() or ok_s.any()):
        fail("%s: no row with a finite loss" % path)

    # (label, lr, color, style)
    marks = []
    if suggestion is not None:
        marks.append(("suggestion", suggestion, "tab:red", "-"))
    else:
        for key, name, color, style in (("suggestion_steepest", "steepest", "tab:red", "-"),
                                        ("suggestion_min_div10", "min/10", "tab:purple", "--")):
            if key in comments:
                try:
                    v = float(comments[key])
                except ValueError:
                    fail("%s: bad value %r for %s" % (path, comments[key], key))
                if math.isfinite(v) and v > 0:
                    marks.append((name, v, color, style))
        if not marks:
            i = steepest_point(lr, smoothed)
            if i is not None:
                marks.append(("steepest", float(lr[i]), "tab:red", "-"))

    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    if ok_raw.any():
        ax.plot(lr[ok_raw], loss[ok_raw], color="tab:blue", alpha=0.3,
                linewidth=0.9, label="loss (per step)")
    if ok_s.any():
        ax.plot(lr[ok_s], smoothed[ok_s], color="tab:blue", linewidth=2.2,
                label=smooth_label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("training loss")
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.1)

    # y range: the smoothed curve up to its minimum, with room; the
    # divergence at the end of the sweep would otherwise squash it.
    ref = smoothed if ok_s.any() else loss
    ok_ref = ok_s if ok_s.any() else ok_raw
    ridx = np.nonzero(ok_ref)[0]
    i_min = ridx[int(np.argmin(ref[ridx]))]
    head = ridx[ridx <= i_min]
    lo = float(np.min(ref[ridx]))
    hi = float(np.max(ref[head]))
    if ok_raw.any():
        lo = min(lo, float(np.min(loss[ok_raw & (np.arange(len(loss)) <= i_min)]))
                 if (ok_raw & (np.arange(len(loss)) <= i_min)).any() else lo)
    span = hi - lo if hi > lo else max(abs(hi) * 0.1, 0.1)
    ax.set_ylim(lo - 0.1 * span, hi + 0.35 * span)
    ax.plot([lr[i_min]], [ref[i_min]], "o", color="0.3", markersize=5,
            label="minimum %s at lr %s" % ("smoothed loss" if ok_s.any() else "loss",
                                            format_lr(lr[i_min])))

    for k, (name, v, color, style) in enumerate(marks):
        ax.axvline(v, color=color, linestyle=style, linewidth=1.6,
                   label="%s: lr = %s" % (name, format_lr(v)))
        # stagger the labels so that close suggestions stay readable
        ax.annotate("%s\n%s" % (name, format_lr(v)), xy=(v, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(4, -4 - 30 * k),
                    textcoords="offset points", ha="left", va="top",
                    fontsize=9, color=color)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.85)
    ax.set_title(title if title else "learning-rate finder", fontsize=12)
    fig.tight_layout()
    save_atomically(fig, out_path)
    plt.close(fig)


# ------------------------------------------------------------------ main

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message + " (see --help)")


def build_parser():
    p = Parser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Plot a resnet50_cifar training log (JSONL) or an lr-find sweep (CSV) "
            "as one PNG image."),
        epilog="""\
training log mode (LOG):
  One JSON object per line, as written by `resnet50_cifar train --log`:
    {"event":"step","step":N,"epoch":E,"loss":L,"lr":[LR0,LR1,...]}
        every optimizer step (N 1-based, E fractional, one rate per
        parameter group); a non-finite or null loss is not drawn; a step
        with "skipped": true is marked under the loss curve.
    {"event":"epoch","epoch":K,"train_loss":..,"train_acc":..,
     "test_loss":..,"test_acc":..,"images_per_s":..,"seconds":..}
        every finished epoch; test_* may be null. Accuracies may be
        fractions (0..1) or percentages; they are drawn in percent.
    {"event":"cycle_end","cycle":I,"step":N,"snapshot":PATH}
        end of an SGDR cycle, drawn as a faint dashed vertical line.
  Other events are ignored, as are blank lines and extra keys. When a
  resumed run logs a step again, the last record of that step is used.
  The image has three panels: (a) learning rate per group vs step, log
  scale, labelled "group i (xM)" with M the rate relative to the last group
  when that ratio is constant; (b) training loss vs step, raw and a
  bias-corrected EMA (smoothing 0.98); (c) test/train accuracy vs epoch.

lr-find mode (--lr-find CSV):
  Header `lr,loss` (optionally with a `smoothed` column, used as is;
  otherwise the bias-corrected EMA with smoothing 0.98 is computed), one
  row per step; lines starting with '#' are comments. The suggestion drawn
  is --suggestion when given, else the comment lines
  `# suggestion_steepest=LR` and `# suggestion_min_div10=LR` when present,
  else the steepest descent of the smoothed loss against log(lr) before
  its minimum (skipping the first points).

The PNG is written to a temporary file in the output folder and renamed
into place. Errors are one line on stderr, prefixed "plot_run.py:", with
exit status 2.

examples:
  plot_run.py runs/sgdr.jsonl -o runs/sgdr.png --title "ResNet50 CIFAR-10, SGDR"
  plot_run.py --lr-find runs/lr_find.csv -o runs/lr_find.png
""")
    p.add_argument("log", nargs="?", metavar="LOG",
                   help="training log (JSONL) to plot")
    p.add_argument("--lr-find", metavar="CSV", dest="lr_find",
                   help="plot this lr-find CSV instead of a training log")
    p.add_argument("-o", "--output", metavar="PNG",
                   help="output image (default: the input path with .png as extension)")
    p.add_argument("--title", metavar="T",
                   help="figure title (default: the input file name for a log, "
                        "'learning-rate finder' for lr-find; '' for none on a log)")
    p.add_argument("--suggestion", metavar="LR", type=float,
                   help="lr-find mode: learning rate to mark as the suggestion")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.lr_find is not None and args.log is not None:
        fail("give either a training LOG or --lr-find CSV, not both")
    if args.lr_find is None and args.log is None:
        fail("nothing to plot: give a training LOG or --lr-find CSV (see --help)")
    if args.suggestion is not None:
        if args.lr_find is None:
            fail("--suggestion only applies with --lr-find")
        if not (math.isfinite(args.suggestion) and args.suggestion > 0):
            fail("--suggestion must be a positive learning rate, got %r" % args.suggestion)
    source = args.lr_find if args.lr_find is not None else args.log
    out = args.output
    if out is None:
        out = os.path.splitext(source)[0] + ".png"
        if os.path.abspath(out) == os.path.abspath(source):
            fail("%s: give -o, the default output would overwrite the input" % source)
    elif os.path.isdir(out):
        fail("%s: output is a folder, expected a file name" % out)

    if args.lr_find is not None:
        plot_lr_find(args.lr_find, out, args.title, args.suggestion)
    else:
        title = args.title if args.title is not None else os.path.basename(args.log)
        plot_train_log(args.log, out, title)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        sys.exit(2)
    except ImportError as e:
        print("%s: needs matplotlib and numpy (%s)" % (PROG, e), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
