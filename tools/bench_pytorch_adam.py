#!/usr/bin/env python3
"""Times torch.optim.Adam(fused=True) over the parameter shapes of a
CIFAR-stem ResNet50 (161 tensors, 23,520,842 floats), for comparison with
bench_adam's fused step on the same GPU. Prints one JSON object; the time is
the median of CUDA-event timings after warm-up."""
import argparse
import json
import sys


def resnet50_param_sizes(classes=10):
    sizes = [3 * 64 * 9, 64, 64]
    inp = 64
    for layer, blocks in enumerate([3, 4, 6, 3]):
        w = 64 << layer
        for b in range(blocks):
            sizes += [inp * w, w, w, w * w * 9, w, w, w * 4 * w, 4 * w, 4 * w]
            if b == 0:
                sizes += [inp * 4 * w, 4 * w, 4 * w]
            inp = 4 * w
    return sizes + [2048 * classes, classes]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="timed steps (median reported)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("bench_pytorch_adam: PyTorch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_pytorch_adam: no CUDA device", file=sys.stderr)
        return 2
    sizes = resnet50_param_sizes()
    params = [torch.randn(n, device="cuda", requires_grad=True) for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    results = []
    for variant, kwargs in [("fused", {"fused": True}), ("foreach", {"foreach": True})]:
        opt = torch.optim.Adam(params, lr=1e-3, **kwargs)
        for _ in range(3):
            opt.step()
        times = []
        for _ in range(args.repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            opt.step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        ms = times[len(times) // 2]
        results.append({"device": "cuda:0", "variant": "torch_" + variant, "median_ms": round(ms, 4),
                        "gbps": round(28.0 * sum(sizes) / (ms * 1e-3) * 1e-9, 1)})
    print(json.dumps({"benchmark": "bench_pytorch_adam", "torch": torch.__version__, "tensors": len(sizes),
                      "parameters": sum(sizes), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
