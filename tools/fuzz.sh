#!/usr/bin/env bash
# Fuzzing with libFuzzer: builds the targets in tests/fuzz with clang
# (-DLRT_FUZZ=ON: AddressSanitizer, UndefinedBehaviorSanitizer and coverage
# instrumentation, CPU-only) in build-fuzz/ and runs each for N seconds on a
# copy of its seed corpus (tests/fuzz/corpus/<target>, copied to
# build-fuzz/corpus/<target>, where what a run finds is kept for the next).
#   tools/fuzz.sh [--seconds N] [TARGET...]
#     N        seconds per target (default 60)
#     TARGET   cifar safetensors checkpoint param_groups flags (default: all)
# A crash, a sanitizer report, an exception other than lrt::Error, a failed
# invariant, a leak or a hang (one input over 10 s) fails the run; the input
# that caused it is kept in build-fuzz/findings/<target>/ and its path is
# printed, with the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(cifar safetensors checkpoint param_groups flags)
seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds needs a whole number > 0" >&2; exit 2; }
      seconds=$2
      shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *)
      [[ " ${all[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target '$1' (targets: ${all[*]})" >&2; exit 2; }
      targets+=("$1")
      shift ;;
  esac
done
((${#targets[@]})) || targets=("${all[@]}")

# clang with libFuzzer and its sanitizer runtimes, and clang's OpenMP runtime.
tools/setup.sh clang libclang-rt-dev libomp-dev
build=build-fuzz
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  -DCMAKE_CXX_COMPILER=clang++ -DLRT_CUDA=OFF -DLRT_FUZZ=ON -DLRT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target lrt_fuzz

# The targets write each input to a file: in memory when /dev/shm is there.
scratch=$(mktemp -d -p "$([ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" lrt-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export LRT_FUZZ_SCRATCH="$scratch"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:print_stacktrace=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

failed=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t" findings="$build/findings/$t" log="$build/logs/$t.log"
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  for seed in tests/fuzz/corpus/"$t"/*; do
    [ -e "$corpus/${seed##*/}" ] || cp "$seed" "$corpus/"
  done
  rm -f "$findings"/*
  rc=0
  "$build/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc == 0)); then
    echo "fuzz_$t: ${runs:-?} inputs in $seconds s, corpus of $(ls "$corpus" | wc -l), no findings"
    continue
  fi
  failed+=("$t")
  echo "fuzz_$t: FAILED (exit code $rc) after ${runs:-?} inputs; the end of $log:"
  tail -n 60 "$log"
  for f in "$findings"/*; do
    [ -e "$f" ] || continue
    echo "fuzz_$t: reproducer $f"
    echo "  replay: $build/tests/fuzz/fuzz_$t $f"
  done
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
