#!/usr/bin/env python3
"""The device check's row for a timed training run (`resnet50_cifar train
--log LOG`), from its JSON-lines log and its stderr:

    epoch_row.py LOG MODE [STDERR]

prints one line, `cifar epoch 50k MODE   STATUS   detail`: the last epoch's
training seconds (against the 2.5 s target) and with the test pass, its
images/s, test accuracy and peak memory (lrt's allocator: in use, and
reserved at the end); where the run had more than one epoch, the
first's training seconds too (it pays the one-off costs: eager first steps,
algorithm choice, captures); the steps and test batches that ran from CUDA
graphs (over the whole run); and where the last epoch's time went on the
device (its "time_split_ms": the steps by how they ran, each kind's median
and total, and the time between steps). STATUS is FAIL where STDERR says a
capture failed (the run then went on without a graph) or the log holds no
epoch, else info. Exits 0 whatever the log holds (the table goes on), 2 on
bad arguments.
"""

import json
import sys


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: epoch_row.py LOG MODE [STDERR]", file=sys.stderr)
        return 2
    name = f"cifar epoch 50k {argv[2]}"

    def out(status, detail):
        print(f"{name:<28} {status:<8} {detail}")

    try:
        with open(argv[1]) as f:
            log = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        out("FAIL", f"unreadable log ({e})")
        return 0
    epochs = [j for j in log if j.get("event") == "epoch"]
    if not epochs:
        out("FAIL", f"no epoch in {argv[1]}")
        return 0
    try:
        detail, capture_failed = describe(log, epochs, argv[3] if len(argv) == 4 else None)
    except (KeyError, TypeError, ValueError) as e:  # a field missing or null
        out("FAIL", f"unreadable epoch record ({type(e).__name__}: {e})")
        return 0
    out("FAIL" if capture_failed else "info", detail)
    return 0


def describe(log, epochs, stderr_path):
    """The row's detail, and whether stderr says a capture failed."""
    e = epochs[-1]
    end = [j for j in log if j.get("event") == "end"]
    start = next((j for j in log if j.get("event") == "start"), {})
    prec = start.get("precision", "?") + ", " + start.get("memory_format", "?")
    train = e.get("train_seconds", e["seconds"])
    graph = ""
    if end and "cuda_graph_steps" in end[-1]:
        whole = " (the whole run)" if len(epochs) > 1 else ""
        graph = f', {end[-1]["cuda_graph_steps"]} of {end[-1]["step"]} steps from the graph{whole}'
        if "cuda_graph_test_batches" in end[-1]:
            graph += f', {end[-1]["cuda_graph_test_batches"]} test batches from the test-pass graph'
    # A capture that failed is said on stderr, and the run goes on without it.
    failed = []
    if stderr_path:
        try:
            with open(stderr_path, errors="replace") as f:
                failed = [line.strip() for line in f if "without a graph" in line]
        except OSError:
            pass
    if failed:
        graph += f"; CAPTURE FAILED: {failed[0][:160]}"
    first = ""
    if len(epochs) > 1:
        f = epochs[0]
        first = f'; epoch 1 (one-off costs included): {f.get("train_seconds", f["seconds"]):.2f} s'
    which = f"epoch {e['epoch']}: " if len(epochs) > 1 else ""
    # Where the epoch's training time went on the device (the trainer's
    # marks): the steps by how they ran, and the time between steps.
    t = e.get("time_split_ms") or {}
    split = ""
    if t:
        kinds = [f'{t[k]["steps"]} {k} (median {t[k]["median"]:.1f} ms, {t[k]["total"] / 1e3:.2f} s)'
                 for k in ("replayed", "captured", "eager") if k in t]
        split = f'; on the device: {", ".join(kinds)}, {t["between_steps"] / 1e3:.2f} s between steps'
    acc = e.get("test_acc")
    # The epoch's memory (lrt's allocator on the training device): its peak
    # in use, and what it held at the end (logs from before these fields
    # have neither).
    mem = ""
    if "peak_memory_mib" in e:
        mem = f', peak memory {e["peak_memory_mib"]:.0f} MiB ({e["reserved_memory_mib"]:.0f} MiB reserved)'
    return (f"{which}{train:.2f} s training ({prec}; target <= 2.5 s), {e['seconds']:.2f} s with the test pass, "
            f"{e['images_per_s']:.0f} img/s, test acc {'-' if acc is None else f'{100 * acc:.1f}%'}{mem}{first}"
            f"{graph}{split}"), bool(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
