#!/usr/bin/env python3
"""Writes PyTorch's answers for lrt's ResNet50 parity test.

For each stem (cifar, imagenet) it builds ResNet50 with torchvision's module
names (tools/torch_resnet50.py, so torchvision is not needed), draws random weights
and batch-norm affine parameters, runs one training-mode forward and backward
pass with cross-entropy loss on a random batch, in float64 and in float32 from
the same weights, and writes two safetensors files into OUT_DIR:

  <stem>_weights.safetensors    the state_dict (float64) before the pass
  <stem>_reference.safetensors  input, labels, and for p in (f64, f32):
                                logits.p, loss.p, grad.p.<param name>;
                                running statistics after the pass (f64)

Usage: pytorch_reference.py OUT_DIR [--batch N] [--seed S]
Needs PyTorch (Debian: apt-get install python3-torch) and NumPy.
"""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np  # noqa: F401  (tensor.numpy() needs it)
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the wrapper turns this into a skip
    print(f"pytorch_reference.py: {e} (install python3-torch and python3-numpy)", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet50 import ResNet50  # noqa: E402


DTYPES = {torch.float64: ("F64", "<f8"), torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        code, np_dtype = DTYPES[t.dtype]
        data = t.detach().contiguous().numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def run(model, x, labels):
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return logits.detach(), loss.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    for stem, size in (("cifar", 32), ("imagenet", 64)):
        torch.manual_seed(args.seed)
        model = ResNet50(stem).double()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".bn" in name or name.startswith("bn") or "downsample.1" in name:
                    # Random affine parameters, so a mistake in their gradients cannot hide.
                    p.copy_(1.0 + 0.2 * torch.randn_like(p) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            for name, b in model.named_buffers():
                if name.endswith("running_mean"):
                    b.copy_(0.1 * torch.randn_like(b))
                elif name.endswith("running_var"):
                    b.copy_(1.0 + 0.5 * torch.rand_like(b))
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        x = torch.randn(args.batch, 3, size, size, dtype=torch.float64)
        labels = torch.randint(0, 10, (args.batch,), dtype=torch.int64)

        out = {"input": x, "labels": labels}
        for tag, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            # Cast first, then load: the float64 weights round once, straight to dtype.
            m = ResNet50(stem).to(dtype)
            m.load_state_dict(weights)
            m.train()
            logits, loss = run(m, x.to(dtype), labels)
            out[f"logits.{tag}"] = logits
            out[f"loss.{tag}"] = loss.reshape(())
            for name, p in m.named_parameters():
                out[f"grad.{tag}.{name}"] = p.grad
            if dtype == torch.float64:
                for name, b in m.named_buffers():
                    if not name.endswith("num_batches_tracked"):
                        out[f"buffer.{tag}.{name}"] = b.detach()
        save_safetensors(os.path.join(args.out_dir, f"{stem}_weights.safetensors"), weights)
        save_safetensors(os.path.join(args.out_dir, f"{stem}_reference.safetensors"), out)
        print(f"pytorch_reference.py: {stem}: loss f64 {out['loss.f64'].item():.12g}, "
              f"f32 {out['loss.f32'].item():.8g}")


if __name__ == "__main__":
    main()
