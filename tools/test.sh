#!/usr/bin/env bash
# The test command: installs missing Debian packages, configures, builds and
# runs the whole ctest suite.
#   tools/test.sh              CUDA backend when the toolkit, cuBLAS and cuDNN
#                              are found (every .cu file is compiled; CUDA test
#                              cases run only where a GPU answers), build/
#   tools/test.sh --cpu-only   -DLRT_CUDA=OFF -DLRT_BLAS=OFF: the CPU-only
#                              framework with the built-in GEMM, build-cpu/
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
flags=()
case "${1:-}" in
  "") ;;
  --cpu-only) build=build-cpu; flags=(-DLRT_CUDA=OFF -DLRT_BLAS=OFF) ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

tools/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${flags[@]}"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
