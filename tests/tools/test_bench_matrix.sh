#!/usr/bin/env bash
# Checks the bookkeeping of tools/bench_pytorch_resnet50.py --matrix --turns
# (the device check's ResNet50 comparison) with its runs replaced by scripted
# results, so no GPU, lrt binary or PyTorch is needed: each configuration's
# result is its fastest run with all runs listed; a ratio compares equal
# numbers of runs (PyTorch's compile, run once, against lrt's first run); a
# configuration that failed in one turn but was measured in another gives a
# note, one never measured a failure; the matrix rate comes first; a child
# whose output is no JSON result is a failure, not the end of the matrix;
# a torch.compile run is not started with less than 45 s left before
# --stop-by, the runs after it are; --turns-at limits the turns to the
# batch sizes it names. Exits 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script bench_pytorch_resnet50.py

"$py" - "$script" >"$tmp/out.txt" 2>&1 <<'PY'
import argparse, importlib.util, json, subprocess, sys, types

spec = importlib.util.spec_from_file_location("bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
calls = []
# images/s by configuration, one entry a turn; None: that run fails.
lrt_speeds = {"lrt fp32": [100.0], "lrt bf16": [300.0, 330.0]}
torch_speeds = {"torch fp32 eager": [90.0], "torch bf16 eager": [None, 250.0], "torch bf16 compile": [280.0]}


def fake_lrt(args, extra):
    config = "lrt bf16" if "bf16" in extra else "lrt fp32"
    calls.append(config)
    ips = lrt_speeds[config][calls.count(config) - 1]
    return {"images_per_s": ips, "peak_memory_mib": 10.0, "batch": args.batch}


def fake_run(cmd, **kw):
    if "--matmul-rate" in cmd:
        calls.append("matmul")
        return types.SimpleNamespace(returncode=0, stdout=json.dumps({"tflops": 100.0}), stderr="")
    name = "torch bf16 compile" if "--compile" in cmd else \
        "torch bf16 eager" if "bf16" in cmd else "torch fp32 eager"
    calls.append(name)
    ips = torch_speeds[name][calls.count(name) - 1]
    if ips is None:
        return types.SimpleNamespace(returncode=1, stdout="", stderr="boom")
    out = {"results": [{"images_per_s": ips, "peak_memory_mib": 20.0, "batch": 256}]}
    return types.SimpleNamespace(returncode=0, stdout=json.dumps(out), stderr="")


bench.run_lrt = fake_lrt
bench.subprocess.run = fake_run
args = argparse.Namespace(device="cpu", stem="cifar", repeat=1, warmup=0, threads=0, batches=[256], lrt="lrt",
                          lrt_eager=False, turns=2, turns_at=None, skip_compile=False, stop_by=None,
                          config_timeout=60)
d = bench.run_matrix(args)
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)

check(calls[0] == "matmul", f"the matrix rate first: {calls}")
check(calls[1:] == ["lrt fp32", "lrt bf16", "torch fp32 eager", "torch bf16 eager", "torch bf16 compile",
                    "lrt bf16", "torch bf16 eager"], f"the turns: {calls}")
res = {r["config"]: r for r in d["results"]}
check(list(res) == ["lrt fp32", "lrt bf16", "torch fp32 eager", "torch bf16 eager", "torch bf16 compile"],
      f"results order: {list(res)}")
check(res["lrt bf16"]["images_per_s"] == 330.0 and res["lrt bf16"]["turns_images_per_s"] == [300.0, 330.0],
      f"lrt bf16: {res['lrt bf16']}")
check(res["torch bf16 eager"]["turns_images_per_s"] == [250.0], f"torch bf16 eager: {res['torch bf16 eager']}")
check(abs(res["lrt bf16"]["mfu_bf16"] - 330.0 * 7.8e9 / 100e12) < 1e-4, "mfu")
table = {(t["lrt"], t["torch"]): t for t in d["table"]}
check(set(table) == {("lrt fp32", "torch fp32 eager"), ("lrt bf16", "torch bf16 eager"),
                     ("lrt bf16", "torch bf16 compile")}, f"table pairs: {sorted(table)}")
# torch bf16 eager was measured once (its first turn failed): lrt's first run only.
check(table[("lrt bf16", "torch bf16 eager")]["images_per_s_ratio"] == round(300.0 / 250.0, 3),
      f"eager ratio: {table[('lrt bf16', 'torch bf16 eager')]}")
check(table[("lrt bf16", "torch bf16 compile")]["images_per_s_ratio"] == round(300.0 / 280.0, 3),
      f"compile ratio: {table[('lrt bf16', 'torch bf16 compile')]}")
check(d["failures"] == [], f"failures: {d['failures']}")
check(len(d["notes"]) == 1 and "torch bf16 eager batch 256 (turn 1): exit 1" in d["notes"][0], f"notes: {d['notes']}")

# Both turns failing: a failure for each turn, no result, no ratio.
calls.clear()
torch_speeds["torch bf16 eager"] = [None, None]
lrt_speeds["lrt bf16"] = [300.0, 360.0]
d = bench.run_matrix(args)
check(len([f for f in d["failures"] if f.startswith("torch bf16 eager")]) == 2, f"failures: {d['failures']}")
check(not any(t["torch"] == "torch bf16 eager" for t in d["table"]), "a ratio without a result")
# Two runs of each side: the better of each.
calls.clear()
torch_speeds["torch bf16 eager"] = [240.0, 200.0]
d = bench.run_matrix(args)
table = {(t["lrt"], t["torch"]): t for t in d["table"]}
check(table[("lrt bf16", "torch bf16 eager")]["images_per_s_ratio"] == round(360.0 / 240.0, 3)
      and table[("lrt bf16", "torch bf16 eager")]["runs"] == 2, f"two runs: {table[('lrt bf16', 'torch bf16 eager')]}")
# A child that exits 0 but prints no JSON object (the matrix rate, one
# torch run): a failure (or a note, where another turn measured it), the
# rest kept, no MFU without a rate.
calls.clear()
real_run = fake_run
def garbled_run(cmd, **kw):
    if "--matmul-rate" in cmd:
        calls.append("matmul")
        return types.SimpleNamespace(returncode=0, stdout="a warning\n", stderr="")
    if "--compile" in cmd:
        calls.append("torch bf16 compile")
        return types.SimpleNamespace(returncode=0, stdout='{"results": []}', stderr="")
    return real_run(cmd, **kw)
bench.subprocess.run = garbled_run
d = bench.run_matrix(args)
res = {r["config"]: r for r in d["results"]}
check("torch bf16 compile" not in res and "torch bf16 eager" in res and "lrt bf16" in res, f"results: {list(res)}")
check(any(f.startswith("bf16 matmul rate: no result in its output: a warning") for f in d["failures"]),
      f"the rate's failure: {d['failures']}")
check(any(f.startswith("torch bf16 compile batch 256 (turn 1): no result") for f in d["failures"]),
      f"the compile run's failure: {d['failures']}")
check(d["bf16_matmul"] is None and all("mfu_bf16" not in r for r in d["results"]), "no MFU without a rate")
# 30 s left before --stop-by: every run but torch.compile's (which needs
# about 45) is started, the judged pair's second turn included.
import time
calls.clear()
bench.subprocess.run = real_run
torch_speeds.update({"torch bf16 eager": [250.0, 260.0], "torch bf16 compile": [280.0]})
lrt_speeds["lrt bf16"] = [300.0, 330.0]
d = bench.run_matrix(argparse.Namespace(**{**vars(args), "stop_by": time.time() + 30}))
check(calls == ["matmul", "lrt fp32", "lrt bf16", "torch fp32 eager", "torch bf16 eager", "lrt bf16",
                "torch bf16 eager"], f"--stop-by 30 s ahead: {calls}")
check(len(d["failures"]) == 1 and d["failures"][0].startswith("torch bf16 compile batch 256 (turn 1): not started: "
                                                             "out of time (--stop-by; 30 s left, it needs about 45 s)"),
      f"--stop-by 30 s ahead: {d['failures']}")
# --turns-at 256 with batches 256 and 512: the pair's second turn at 256
# alone; at 512 each configuration once, and its rows say one run.
calls.clear()
torch_speeds.update({"torch bf16 eager": [250.0, 260.0, 255.0], "torch bf16 compile": [280.0, 285.0],
                     "torch fp32 eager": [90.0, 95.0]})
lrt_speeds.update({"lrt bf16": [300.0, 330.0, 310.0], "lrt fp32": [100.0, 105.0]})
d = bench.run_matrix(argparse.Namespace(**{**vars(args), "batches": [256, 512], "turns_at": [256]}))
one = ["lrt fp32", "lrt bf16", "torch fp32 eager", "torch bf16 eager", "torch bf16 compile"]
check(calls == ["matmul"] + one + ["lrt bf16", "torch bf16 eager"] + one, f"--turns-at 256: {calls}")
t512 = [t for t in d["table"] if t["batch"] == 512]
check(len(t512) == 3 and all(t["runs"] == 1 for t in t512), f"--turns-at 256, batch 512's rows: {t512}")
check(d["failures"] == [] and d["notes"] == [], f"--turns-at 256: {d['failures']} {d['notes']}")
json.dumps(d)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
status=$?
cat "$tmp/out.txt"
((status == 0)) || fail "the matrix's bookkeeping (status $status)"
# Bad --turns-at values are refused, naming the option.
for v in x 256,0 ""; do
  err=$("$py" "$script" --matrix --turns-at "$v" 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] && grep -qF -- "--turns-at expects positive integers like 256, got '$v'" <<<"$err" ||
    fail "--turns-at '$v': exit $rc: $err"
done
finish test_bench_matrix
