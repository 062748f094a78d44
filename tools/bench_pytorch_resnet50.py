#!/usr/bin/env python3
"""Times PyTorch training steps of the same CIFAR-stem ResNet50 as
bench_resnet50 (tools/torch_resnet50.py: forward, cross-entropy, backward;
--adam adds a fused Adam step) on 32x32 images, and with --lrt BINARY also
runs lrt's bench_resnet50 with the same settings right before, so the ratio
is measured side by side on one machine. Prints JSON: each framework's
images/s and peak memory, then the ratios.

--matrix runs the comparison the speed work is judged by: for each batch
size of --batches, lrt (--lrt: float32, on CUDA also float32 with TF32
convolutions, and bf16 mixed precision; on CUDA at resnet50_cifar train's
defaults there, channels_last features and the step replayed as a CUDA
graph, --lrt-eager for neither) and PyTorch at its best practical
settings (cudnn.benchmark, fused Adam; float32 eager, then bf16 autocast +
channels_last eager, then the same under torch.compile), each configuration
in a fresh process, all with the Adam step (--turns N: the judged bf16 pair,
lrt's step and PyTorch's eager one, N times each in turns, at the batch
sizes of --turns-at or all; each result is a
configuration's fastest run, and a ratio compares the better of equal
numbers of runs). It prints JSON with every result
and, last, a "table" of lrt's images/s and peak memory over PyTorch's at the
same precision: lrt fp32 and tf32 over torch fp32 eager, lrt bf16 over torch
bf16 eager and compile.

Memory: on CUDA the peak of each framework's allocator over the timed steps
(PyTorch's max_memory_allocated after reset_peak_memory_stats, lrt's
caching-allocator peak after its reset; each resets after warm-up, so
neither counts its algorithm searches); on CPU each process's
peak resident set (ru_maxrss), so both include the model, its gradients and
the framework's own footprint.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time


def run_torch(args):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_resnet50 import ResNet50

    torch.manual_seed(1)
    dev = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    if args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    else:
        torch.backends.cudnn.benchmark = True
        # PyTorch's default lets cuDNN convolutions use TF32 in "fp32" runs;
        # --no-tf32 makes them true float32, as lrt's are without --tf32.
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cuda.matmul.allow_tf32 = False if args.no_tf32 else torch.backends.cuda.matmul.allow_tf32
    model = ResNet50(args.stem).to(dev).train()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(args.batch, 3, 32, 32, device=dev).to(memory_format=fmt)
    labels = (torch.arange(args.batch, device=dev) * 7) % 10
    # fused Adam is CUDA-only (PyTorch 1.13 refuses it on the CPU)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=dev.type == "cuda") if args.adam else None
    fwd = torch.compile(model) if args.compile else model
    use_bf16 = args.precision == "bf16"

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(fwd(x), labels)
        loss.backward()
        if opt is not None:
            opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    if args.profile_step:
        # One step after warm-up between cudaProfilerStart and cudaProfilerStop,
        # for `ncu --profile-from-start off` (as bench_resnet50 --profile-step).
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        step()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
    times = []
    loss = None
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.repeat):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            loss = step()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "torch_max_memory_allocated"
    else:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            loss = step()
            times.append((time.perf_counter() - t0) * 1e3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        kind = "process_peak_rss"
    ms = statistics.median(times)  # as lrt's benchmarks take it (the mean of the middle two of an even count)
    lv = float(loss)
    return {"benchmark": "bench_pytorch_resnet50", "framework": "torch " + torch.__version__,
            "device": str(dev), "stem": args.stem, "batch": args.batch, "precision": args.precision,
            "channels_last": args.channels_last, "compile": args.compile, "optimizer": "adam" if args.adam else None,
            "steps": args.repeat, "median_ms": round(ms, 3), "images_per_s": round(args.batch / (ms * 1e-3), 1),
            "peak_memory_mib": round(peak, 1), "memory_kind": kind, "loss": lv if math.isfinite(lv) else None,
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32) if dev.type == "cuda" else None}


def child_json(text):
    """The JSON object a child run printed, or None where its output is not one."""
    try:
        d = json.loads(text)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


# The least time left before --stop-by in which a run is started: any run
# (a process start, warm-up, the timed steps), and a torch.compile one,
# which first traces the model and compiles or loads its kernels (some 45 s
# with torch.compile's caches filled beforehand, as tools/device_check.sh
# does). A run that could not end in time is not started, so the runs after
# it (the judged pair's second turn) still get the time.
MIN_SECONDS_A_RUN = 20
MIN_SECONDS_A_COMPILE_RUN = 45


def time_for_a_run(args, need=MIN_SECONDS_A_RUN):
    """Seconds the next run may take: --config-timeout, cut to end by
    --stop-by; None where less than `need` seconds are left to start one."""
    if args.stop_by is None:
        return args.config_timeout
    left = args.stop_by - time.time()
    return min(args.config_timeout, left) if left >= need else None


def run_lrt(args, extra=()):
    timeout = time_for_a_run(args)
    if timeout is None:
        raise subprocess.TimeoutExpired("bench_resnet50", 0)
    cmd = [args.lrt, "--device", args.device, "--batch", str(args.batch), "--repeat", str(args.repeat),
           "--warmup", str(args.warmup), "--stem", args.stem]
    if args.adam:
        cmd.append("--adam")
    cmd += list(extra)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    return json.loads(out.stdout)


def matmul_rate(args):
    """bf16 matrix rate (TFLOP/s) of this device as PyTorch measures it: the
    median of 20 square 8192 products (1024 on the CPU), for model FLOP
    utilisation."""
    import torch
    dev = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    n = 8192 if dev.type == "cuda" else 1024
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    times = []
    for i in range(25):
        if dev.type == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            torch.mm(a, b)
            e1.record()
            e1.synchronize()
            ms = e0.elapsed_time(e1)
        else:
            t0 = time.perf_counter()
            torch.mm(a, b)
            ms = (time.perf_counter() - t0) * 1e3
        if i >= 5:
            times.append(ms)
    ms = statistics.median(times)
    return {"benchmark": "bf16_matmul", "n": n, "median_ms": round(ms, 4), "tflops": round(2 * n**3 / (ms * 1e-3) / 1e12, 2)}


# Training FLOPs per image of the CIFAR-stem ResNet50: 1.30 GMAC forward,
# x2 FLOPs per MAC, x3 for forward + backward.
FLOP_PER_TRAINING_IMAGE = 7.8e9


def torch_configs():
    """The PyTorch configurations of --matrix: (name, extra flags)."""
    return [("torch fp32 eager", ["--precision", "fp32"]),
            ("torch bf16 eager", ["--precision", "bf16", "--channels-last"]),
            ("torch bf16 compile", ["--precision", "bf16", "--channels-last", "--compile"])]


# The pair the headline target judges (lrt's bf16 step over PyTorch's bf16
# eager one): with --turns N each runs N times, in turns (PyTorch's eager
# step moved by a quarter between runs on one machine). torch.compile is not
# repeated: its compilation costs a minute a run.
TURNS_PAIR = ("lrt bf16", "torch bf16 eager")


def best(runs):
    """The fastest of a configuration's runs, listing every run's images/s."""
    r = dict(max(runs, key=lambda x: x["images_per_s"]))
    r["turns_images_per_s"] = [x["images_per_s"] for x in runs]
    return r


def run_matrix(args):
    """Each configuration in its own process (clean peak memory, no cuDNN
    autotuning shared between them; torch.compile's on-disk cache may hold
    the same configuration's compiled code, as tools/device_check.sh fills
    it beforehand, which spares the compilation, not what is timed). A ratio compares equal
    numbers of runs: the better of each side's first n, n the runs of the
    PyTorch configuration (one for those --turns does not repeat)."""
    base = [sys.executable, os.path.abspath(__file__), "--device", args.device, "--stem", args.stem,
            "--repeat", str(args.repeat), "--warmup", str(args.warmup)]
    if args.threads:
        base += ["--threads", str(args.threads)]
    me = base + ["--adam"]
    results, table, failures, notes = [], [], [], []
    # The matrix rate first: the runs of the matrix may reach --stop-by.
    rate = None
    timeout = time_for_a_run(args)
    try:
        if timeout is None:
            raise subprocess.TimeoutExpired("--matmul-rate", 0)
        out = subprocess.run(base + ["--matmul-rate"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        out = None
        failures.append("the bf16 matrix rate: " + (f"over {timeout:.0f} s" if timeout else "not started: out of time"))
    if out is not None and out.returncode == 0:
        rate = child_json(out.stdout)
        if rate is None or "tflops" not in rate:
            failures.append("bf16 matmul rate: no result in its output: " + out.stdout.strip()[-300:])
            rate = None
    elif out is not None:
        failures.append(f"bf16 matmul rate: exit {out.returncode}: {out.stderr.strip()[-300:]}")
    for batch in args.batches:
        # lrt in plain fp32, on CUDA also with TF32 convolutions (compared
        # with PyTorch's fp32, which uses TF32 convolutions by default), and
        # in bf16 mixed precision (compared with PyTorch's bf16 autocast).
        runs, problems = {}, {}  # by configuration: its runs; what went wrong, by turn
        lrt_configs = [("lrt fp32", [])] + ([("lrt tf32", ["--tf32"])] if args.device == "cuda" else []) + \
            [("lrt bf16", ["--precision", "bf16"])]
        # The trainer's CUDA defaults (resnet50_cifar train --channels-last --cuda-graph).
        defaults = ["--channels-last", "--cuda-graph"] if args.device == "cuda" and not args.lrt_eager else []
        order = []
        turns = args.turns if args.turns_at is None or batch in args.turns_at else 1
        for turn in range(turns):
            for config, extra in lrt_configs if args.lrt else []:
                if turn > 0 and config not in TURNS_PAIR:
                    continue
                order.append(config)
                try:
                    run = run_lrt(argparse.Namespace(**{**vars(args), "batch": batch, "adam": True}),
                                  extra + defaults)
                    run["config"] = config
                    runs.setdefault(config, []).append(run)
                except subprocess.TimeoutExpired as e:
                    problems.setdefault(config, []).append(
                        (turn, f"over {e.timeout:.0f} s" if e.timeout else "not started: out of time (--stop-by)"))
                except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
                    problems.setdefault(config, []).append((turn, str(e)))
            for name, flags in torch_configs():
                if (args.skip_compile and "--compile" in flags) or (turn > 0 and name not in TURNS_PAIR):
                    continue
                order.append(name)
                need = MIN_SECONDS_A_COMPILE_RUN if "--compile" in flags else MIN_SECONDS_A_RUN
                timeout = time_for_a_run(args, need)
                if timeout is None:
                    left = max(0.0, args.stop_by - time.time())
                    problems.setdefault(name, []).append(
                        (turn, f"not started: out of time (--stop-by; {left:.0f} s left, it needs about {need} s)"))
                    continue
                try:
                    out = subprocess.run(me + ["--batch", str(batch)] + flags, capture_output=True, text=True,
                                         timeout=timeout)
                except subprocess.TimeoutExpired:
                    problems.setdefault(name, []).append((turn, f"over {timeout:.0f} s"))
                    continue
                if out.returncode != 0:
                    problems.setdefault(name, []).append((turn, f"exit {out.returncode}: {out.stderr.strip()[-300:]}"))
                    continue
                got = child_json(out.stdout)
                if not got or not got.get("results"):
                    what = "no result in its output: " + out.stdout.strip()[-300:]
                    problems.setdefault(name, []).append((turn, what))
                    continue
                run = got["results"][-1]
                run["config"] = name
                runs.setdefault(name, []).append(run)
        # A configuration measured at least once has a result: what went wrong
        # in its other turns is a note; one never measured is a failure.
        for config, what in problems.items():
            for turn, text in what:
                tag = f"{config} batch {batch}" + (f" (turn {turn + 1})" if turns > 1 else "")
                (notes if config in runs else failures).append(f"{tag}: {text}")
        for config in dict.fromkeys(order):
            if config in runs:
                results.append(best(runs[config]))
        for name, theirs in runs.items():
            if not name.startswith("torch "):
                continue
            for config, ours in runs.items():
                if not config.startswith("lrt ") or (config == "lrt bf16") != (" bf16 " in name + " "):
                    continue  # compare like with like: fp32 with fp32, bf16 with bf16
                mine = best(ours[:len(theirs)])
                other = best(theirs)
                table.append({"batch": batch, "lrt": config, "torch": name, "runs": len(theirs),
                              "images_per_s_ratio": round(mine["images_per_s"] / other["images_per_s"], 3),
                              "peak_memory_ratio": round(mine["peak_memory_mib"] / other["peak_memory_mib"], 3)})
    if rate:
        for r in results:
            r["mfu_bf16"] = round(r["images_per_s"] * FLOP_PER_TRAINING_IMAGE / (rate["tflops"] * 1e12), 4)
    return {"results": results, "bf16_matmul": rate, "failures": failures, "notes": notes, "table": table}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 32 on cpu, 256 on cuda")
    ap.add_argument("--repeat", type=int, default=None, help="timed steps (default 5 on cpu, 30 on cuda)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stem", choices=["cifar", "imagenet"], default="cifar")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile (default mode)")
    ap.add_argument("--adam", action="store_true", help="include a fused Adam step")
    ap.add_argument("--no-tf32", action="store_true",
                    help="CUDA: forbid TF32 in cuDNN convolutions and matmuls (PyTorch allows it in convolutions by "
                         "default; lrt's float32 uses it only with bench_resnet50 --tf32)")
    ap.add_argument("--lrt", metavar="BINARY", help="bench_resnet50 to run first with the same settings")
    ap.add_argument("--matrix", action="store_true",
                    help="lrt (fp32, on CUDA fp32 with TF32 convolutions, and bf16) and three PyTorch configurations "
                         "at each --batches size, ratios last (like precision over like)")
    ap.add_argument("--batches", default="256,512", help="batch sizes of --matrix (comma-separated)")
    ap.add_argument("--skip-compile", action="store_true", help="--matrix without torch.compile")
    ap.add_argument("--turns", type=int, default=1,
                    help="--matrix: run lrt's bf16 step and PyTorch's bf16 eager one (the pair the 1.3x target "
                         "judges) this many times each, in turns; each result is the fastest run and lists all its "
                         "runs' images/s, and a ratio compares the better of equal numbers of runs (default 1)")
    ap.add_argument("--turns-at", default=None, metavar="BATCHES",
                    help="--matrix: the batch sizes (comma-separated) at which --turns applies; the others run each "
                         "configuration once (default: all)")
    ap.add_argument("--lrt-eager", action="store_true",
                    help="--matrix on CUDA: lrt with NCHW features and no CUDA graph (default: the trainer's CUDA "
                         "defaults, channels_last and the graph)")
    ap.add_argument("--config-timeout", type=float, default=300,
                    help="seconds one run may take: a PyTorch configuration of --matrix, compilation included, "
                         "and each run of --lrt (default 300)")
    ap.add_argument("--stop-by", type=float, default=None, metavar="UNIX_TIME",
                    help="start no run with less than 20 s left before this time (seconds since the epoch; 45 s "
                         "for a torch.compile run), and cut each run's timeout to end by it; what was measured is "
                         "kept, and the runs after one not started still run where they fit")
    ap.add_argument("--matmul-rate", action="store_true", help="only measure the bf16 matrix rate (JSON)")
    ap.add_argument("--profile-step", action="store_true",
                    help="CUDA, PyTorch alone: after warm-up, one step between cudaProfilerStart and cudaProfilerStop, "
                         "for ncu --profile-from-start off")
    args = ap.parse_args()
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
        assert all(b > 0 for b in args.batches)
    except (ValueError, AssertionError):
        print(f"bench_pytorch_resnet50: --batches expects positive integers like 256,512, got '{args.batches}'",
              file=sys.stderr)
        return 2
    raw = args.turns_at
    try:
        args.turns_at = None if raw is None else [int(b) for b in raw.split(",")]
        assert args.turns_at is None or all(b > 0 for b in args.turns_at)
    except (ValueError, AssertionError):
        print(f"bench_pytorch_resnet50: --turns-at expects positive integers like 256, got '{raw}'", file=sys.stderr)
        return 2
    if args.turns < 1:
        print(f"bench_pytorch_resnet50: --turns expects a positive integer, got {args.turns}", file=sys.stderr)
        return 2
    if args.profile_step and (args.device != "cuda" or args.matrix or args.lrt or args.matmul_rate):
        print("bench_pytorch_resnet50: --profile-step needs --device cuda, without --matrix, --lrt or --matmul-rate",
              file=sys.stderr)
        return 2
    args.batch = args.batch or (256 if args.device == "cuda" else 32)
    args.repeat = args.repeat or (30 if args.device == "cuda" else 5)
    try:
        import torch
    except ImportError:
        print("bench_pytorch_resnet50: PyTorch is not installed (apt-get install python3-torch)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_pytorch_resnet50: no CUDA device", file=sys.stderr)
        return 2
    if args.matmul_rate:
        print(json.dumps(matmul_rate(args)))
        return 0
    if args.matrix:
        result = run_matrix(args)
        print(json.dumps(result, indent=2))
        return 1 if result["failures"] else 0
    result = {"results": []}
    if args.lrt:
        try:
            result["results"].append(run_lrt(args))
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            print(f"bench_pytorch_resnet50: running {args.lrt} failed: {e}", file=sys.stderr)
            return 2
    result["results"].append(run_torch(args))
    if args.lrt:
        ours, theirs = result["results"]
        result["ratios"] = {"images_per_s_lrt_over_torch": round(ours["images_per_s"] / theirs["images_per_s"], 3),
                            "peak_memory_lrt_over_torch": round(ours["peak_memory_mib"] / theirs["peak_memory_mib"], 3)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
