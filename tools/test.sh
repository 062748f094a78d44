#!/usr/bin/env bash
# The test command: installs missing Debian packages, configures, builds and
# runs the whole ctest suite.
#   tools/test.sh              CUDA backend when the toolkit, cuBLAS and cuDNN
#                              are found (every .cu file is compiled; CUDA test
#                              cases run only where a GPU answers), build/
#   tools/test.sh --cpu-only   -DLRT_CUDA=OFF -DLRT_BLAS=OFF: the CPU-only
#                              framework with the built-in GEMM, build-cpu/
#                              (without the fault-injection scripts, ctest
#                              label reliability: the app's file handling is
#                              the same code in every build)
#   tools/test.sh --sanitize   -DLRT_SANITIZE=ON: the CPU-only framework, apps
#                              and tests under AddressSanitizer (with leak
#                              checking) and UndefinedBehaviorSanitizer,
#                              build-asan/; any report fails the run (all but
#                              reliability.kill, whose 50 restarts of the
#                              trainer take a quarter of an hour under ASan)
#   tools/test.sh --emulated-cuda
#                              -DLRT_EMULATED_CUDA=ON: the CUDA backend built
#                              as C++ over the emulated CUDA runtime, cuDNN and
#                              cuBLAS of tests/emulated, build-emulated/; only
#                              lrt, its CUDA suite, whose cases then run on
#                              the CPU against the CPU path, the cuDNN
#                              fusion probe's own path and bench_resnet50's
#                              peak memory on CUDA (ctest label cuda;
#                              the whole-ResNet50 cases, label slow, are left
#                              out: `ctest --test-dir build-emulated -L slow`)
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
flags=(-DCMAKE_BUILD_TYPE=Release)
sanitize=0
skip=()
targets=()
case "${1:-}" in
  "") ;;
  --cpu-only)
    build=build-cpu
    flags+=(-DLRT_CUDA=OFF -DLRT_BLAS=OFF)
    skip=(-LE reliability) ;;
  --sanitize)
    # -O1 with line tables: builds twice as fast as -O2 -g, and the time
    # under the sanitizers goes to the allocator and page faults, not to
    # code that -O2 would speed up. Stack traces keep file:line.
    build=build-asan
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DLRT_CUDA=OFF
           -DLRT_SANITIZE=ON)
    skip=(-E '^reliability[.]kill$')
    sanitize=1 ;;
  --emulated-cuda)
    build=build-emulated
    flags+=(-DLRT_EMULATED_CUDA=ON -DLRT_BLAS=OFF)
    targets=(--target lrt_cuda_tests probe_cudnn_fusion bench_resnet50)
    skip=(-L cuda -LE slow) ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

tools/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
# ctest runs several test programs at once, each with an OpenMP thread per
# core; threads that spin while they wait (libgomp's default) take the cores
# from the other programs. Waiting threads sleep instead (two ResNet50 CPU
# steps side by side on 2 cores: 2.4 s each spinning, 1.1 s sleeping). A
# value set by the caller is kept.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cmake -S . -B "$build" -G Ninja "${flags[@]}"
cmake --build "$build" -j "$jobs" "${targets[@]}"

((${#skip[@]} == 0)) || echo "test.sh: ctest ${skip[*]} (see --help)"
if ((!sanitize)); then
  ctest --test-dir "$build" --output-on-failure -j "$jobs" "${skip[@]}"
  exit 0
fi

# Every sanitizer report ends its program: UndefinedBehaviorSanitizer's with
# SIGABRT (exit code 134, no test expects that), AddressSanitizer's and
# LeakSanitizer's too, and they are also written to files in $reports, so a
# report from a program whose failure a test expects (a bad flag, a corrupt
# file) fails the run even if the test passes. OpenMP (libgomp), OpenBLAS and
# glibc run uninstrumented and need no suppressions: the suite leaks nothing.
reports="$PWD/$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
common="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="$common:log_path=$reports/report:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="$common"
status=0
ctest --test-dir "$build" --output-on-failure -j "$jobs" "${skip[@]}" || status=$?
if compgen -G "$reports/report*" >/dev/null; then
  for f in "$reports"/report*; do
    echo "==== sanitizer report $f"
    cat "$f"
  done
  echo "test.sh --sanitize: sanitizer reports above (kept in $reports)" >&2
  exit 1
fi
if grep -q "runtime error:" "$build/Testing/Temporary/LastTest.log"; then
  grep -B2 -A12 "runtime error:" "$build/Testing/Temporary/LastTest.log"
  echo "test.sh --sanitize: UndefinedBehaviorSanitizer reports above" >&2
  exit 1
fi
exit "$status"
