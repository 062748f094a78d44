#!/usr/bin/env bash
# The main job until the training app lands: installs missing Debian
# packages, builds a Release lrt and runs the kernel benchmark, which prints
# JSON (elementwise add and sum over 2^26 floats, a 4096^3 float32 matmul, on
# CPU and on CUDA when a GPU is usable). Extra arguments go to bench_kernels
# (see build/apps/bench_kernels --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target bench_kernels
exec build/apps/bench_kernels "$@"
