#!/usr/bin/env python3
"""The device check's row for the bf16-against-fp32 accuracy runs (the same
`resnet50_cifar train --log LOG` run in each precision), from their
JSON-lines logs:

    accuracy_row.py BF16_LOG FP32_LOG [--epochs N] [--data WHAT]

prints one line, `bf16 vs fp32 accuracy   STATUS   detail`: both runs'
test accuracies after their last epoch and how many points apart they are
(ok within 1 point, else MISS), their test losses and last-epoch training
losses (which still differ where both accuracies have reached 100%, so the
row says when the accuracies alone cannot tell the precisions apart).
STATUS is FAIL where a run failed (a file LOG with .failed in place of
.jsonl exists beside it), its log holds no epoch, or it stopped before
epoch N (default 2). Exits 0 whatever the logs hold (the table goes on), 2
on bad arguments.
"""

import argparse
import json
import math
import os
import sys

NAME = "bf16 vs fp32 accuracy"
TARGET_POINTS = 1.0
# Both accuracies at or above this: the task no longer separates them.
SATURATED = 0.995


def last_epoch(path, epochs):
    """The log's last epoch record; raises ValueError saying what is wrong."""
    base = os.path.basename(path)
    failed = path[:-len(".jsonl")] + ".failed" if path.endswith(".jsonl") else path + ".failed"
    if os.path.exists(failed):
        raise ValueError(f"{base}: the run failed")
    try:
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        raise ValueError(f"{base}: {e.strerror}") from None
    except json.JSONDecodeError:
        raise ValueError(f"{base}: not a JSON-lines log") from None
    ends = [r for r in records if isinstance(r, dict) and r.get("event") == "epoch"]
    if not ends:
        raise ValueError(f"{base}: no epoch ended")
    e = ends[-1]
    if e.get("epoch") != epochs or e.get("partial"):
        raise ValueError(f"{base}: stopped at epoch {e.get('epoch')} of {epochs}")
    if not isinstance(e.get("test_acc"), (int, float)):
        raise ValueError(f"{base}: no test accuracy (was there a test set?)")
    return e


def loss_text(a, b):
    """'x bf16, y fp32' for two losses, either of which may be missing."""
    def one(v):
        return f"{v:.4f}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"
    return f"{one(a)} bf16, {one(b)} fp32"


def main(argv):
    ap = argparse.ArgumentParser(prog="accuracy_row.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("bf16_log")
    ap.add_argument("fp32_log")
    ap.add_argument("--epochs", type=int, default=2, help="the epochs each run was to train (default 2)")
    ap.add_argument("--data", default="", help="what the runs trained on, for the row (e.g. 'synthetic CIFAR-100')")
    args = ap.parse_args(argv[1:])
    if args.epochs < 1:
        print(f"accuracy_row.py: --epochs expects a positive integer, got {args.epochs}", file=sys.stderr)
        return 2

    def out(status, detail):
        print(f"{NAME:<28} {status:<8} {detail}")

    try:
        b = last_epoch(args.bf16_log, args.epochs)
        f = last_epoch(args.fp32_log, args.epochs)
    except ValueError as e:
        out("FAIL", f"no result ({e}; see numerics_*.err)")
        return 0
    ab, af = b["test_acc"], f["test_acc"]
    d = 100 * abs(ab - af)
    status = "ok" if d <= TARGET_POINTS else "MISS"
    on = f" on {args.data}" if args.data else ""
    test_loss = loss_text(b.get("test_loss"), f.get("test_loss"))
    train_loss = loss_text(b.get("train_loss"), f.get("train_loss"))
    detail = (f"test acc {100 * ab:.2f}% bf16, {100 * af:.2f}% fp32: {d:.2f} points apart (target <= "
              f"{TARGET_POINTS:g}){on} after {args.epochs} epoch(s); test loss {test_loss}; last epoch's "
              f"training loss {train_loss}")
    if min(ab, af) >= SATURATED:
        detail += "; both at or near 100%: the accuracies cannot tell the precisions apart here, the losses can"
    out(status, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
