#!/usr/bin/env bash
# Checks tools/device_check.sh's choice of stages without a GPU: stand-in
# programs (nvidia-smi, cmake, a build folder whose bench_resnet50 and CUDA
# test binary print what the real ones would) take the place of the machine.
# --only runs the build and the named stages alone; the step's split and the
# speed features pass each run the flags its label stands for (the stand-in
# makes a step slower by each group's kernels repeated, so the rows show the
# flags took); torch.compile's caches are filled while the tests run, for
# the comparison's batch sizes, into the folder the comparison is given;
# --sanitize reads each tool's own summary, splits --deadline's time between
# the tools and says how far a stopped pass got; bad --only lists and
# clashing options are refused with exit 2; the whole check runs no
# experiment (--experiments adds them) and is judged against 8 minutes, each
# stage's time in the table. Exits 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
pick_python test_device_check
check="$(cd "$here/../.." && pwd)/tools/device_check.sh"

bin="$tmp/bin"
fake="$tmp/build"
mkdir -p "$bin" "$fake/apps" "$fake/tests"
printf '#!/bin/sh\necho "Stand-in GPU, 1.0, 1000 MiB"\n' >"$bin/nvidia-smi"
# cmake: configures and builds nothing; the baseline's build takes a second.
printf '#!/bin/sh\ncase "$*" in *baseline*) sleep 1 ;; esac\nexit 0\n' >"$bin/cmake"
# python3 as the test picked it (device_check calls python3 by name), but
# for the PyTorch benchmark, whose calls (with the compile cache folder they
# were given) go to calls.txt: the warm-up's succeed, the comparison fails.
cat >"$bin/python3" <<SH
#!/bin/sh
case "\$1" in
  *bench_pytorch_resnet50.py)
    echo "\$TORCHINDUCTOR_CACHE_DIR \$*" >>"$tmp/calls.txt"
    case "\$*" in *"--compile --repeat 1 --warmup 1"*) sleep 1; echo "warm-up done" >>"$tmp/calls.txt"; exit 0 ;; esac
    case "\$*" in *--matrix*) [ -n "\${COMPARE_JSON:-}" ] && { cat "\$COMPARE_JSON"; exit 0; } ;; esac
    exit 1 ;;
esac
exec $(command -v "$py") "\$@"
SH
cat >"$fake/tests/lrt_cuda_tests" <<SH
#!/bin/sh
echo "CUDA cases" >>"$tmp/calls.txt"
echo "/src/tests/layers/cuda/test_batch_norm_parity.cpp:391: MESSAGE: cuDNN's batch-norm cases so far (the process's): persistent: 16; refused: 8;"
echo "[doctest] test cases: 2 | 2 passed | 0 failed | 0 skipped"
echo "[doctest] assertions: 9 | 9 passed | 0 failed |"
SH
# A step of 10 ms, +3 ms a repeat of the batch-norm kernels, +5 ms a repeat
# of the convolutions; -1 ms without relu-from-x; -2 ms with cuDNN's batch norm.
cat >"$fake/apps/bench_resnet50" <<'SH'
#!/bin/bash
conv=1 bn=1 rx=true gb=true ct=true cb=false graph=false
while (($#)); do
  case "$1" in
    --cuda-graph) graph=true ;;
    --kernel-repeat) g=${2%%=*}; n=${2#*=}; [ "$g" = bn ] && bn=$n; [ "$g" = conv ] && conv=$n; shift ;;
    --no-relu-from-x) rx=false ;;
    --no-grad-blend) gb=false ;;
    --no-cast-together) ct=false ;;
    --cudnn-bn) cb=true ;;
  esac
  shift
done
ms=$((10 + 3 * (bn - 1) + 5 * (conv - 1))); [ $rx = false ] && ms=$((ms + 1)); [ $cb = true ] && ms=$((ms - 2))
echo "{\"images_per_s\": $((256000 / ms)), \"median_ms\": $ms, \"peak_memory_mib\": 100, \"cuda_graph\": $graph,"\
  "\"features\": {\"relu_from_x\": $rx, \"grad_blend\": $gb, \"cast_together\": $ct, \"cudnn_bn\": $cb},"\
  "\"kernel_repeat\": {\"conv\": $conv, \"bn\": $bn}}"
SH
# The fusion probe: its arguments go to calls.txt; one shape, one graph.
cat >"$fake/apps/probe_cudnn_fusion" <<SH
#!/bin/sh
echo "probe \$*" >>"$tmp/calls.txt"
echo '{"cudnn_version": 91900, "seconds": 3.0, "shapes": [{"shape": "A", "lrt": {"apply_ms": 0.1, "conv_ms": 0.2,'\
  '"stats_ms": 0.1, "total_ms": 0.4}, "graphs": [{"shape": "A", "dtype": "bf16", "graph": "conv_stats",'\
  '"supported": true, "median_ms": 0.25, "runtime_compiled": false, "matches": true}]}]}'
SH
# The trainer: its calls go to calls.txt; synthetic data is made, a
# training run fails.
cat >"$fake/apps/resnet50_cifar" <<SH
#!/bin/sh
echo "trainer \$*" >>"$tmp/calls.txt"
[ "\$1" = make-synthetic ] && exit 0
exit 1
SH
# The kernel benchmarks: two seconds, no results.
printf '#!/bin/sh\nsleep 2\necho '"'"'{"results": []}'"'"'\n' >"$fake/apps/bench_kernels"
chmod +x "$bin"/* "$fake/apps/bench_resnet50" "$fake/tests/lrt_cuda_tests" "$fake/apps/probe_cudnn_fusion" \
  "$fake/apps/bench_kernels" "$fake/apps/resnet50_cifar"
# A baseline source tree, whose build folder holds the same stand-in.
mkdir -p "$tmp/base" "$fake-baseline/apps"
echo "project(base)" >"$tmp/base/CMakeLists.txt"
cp "$fake/apps/bench_resnet50" "$fake-baseline/apps/"

# run ARGS...: the check with the stand-ins; its output in $out, status in $rc.
run() {
  rm -rf "$tmp/logs"
  out=$(PATH="$bin:$PATH" bash "$check" --build "$fake" --logs "$tmp/logs" "$@" 2>&1)
  rc=$?
}
has() { grep -qE -- "$1" <<<"$out" || fail "$2: no line matching '$1' in: $out"; }
lacks() { ! grep -qE -- "$1" <<<"$out" || fail "$2: a line matches '$1': $out"; }

run --only split,features
[ "$rc" -eq 0 ] || fail "--only split,features: exit $rc: $out"
has '^only +info +--only split,features' "--only split,features"
has '^build +ok' "--only split,features"
has '^r50 bf16 split bn +info +3\.00 ms of the 10\.00 ms step \(30%\): 13\.00 ms .*twice; 3\.00 ms by leaving them out' \
  "the split passes --kernel-repeat bn=2 and bn=0"
has '^r50 bf16 split conv +info +5\.00 ms of the 10\.00 ms step' "the split passes --kernel-repeat conv=2"
has '^r50 bf16 split rest +info +2\.00 ms' "the split's rest"
has '^r50 bf16 relu-from-x +info +1\.100x img/s with it' "the features pass --no-relu-from-x"
has '^r50 bf16 grad-blend +info' "the features"
has '^r50 bf16 cast-together +info' "the features"
has '^r50 bf16 cudnn-bn +info +1\.250x img/s with it' "the features pass --cudnn-bn"
for name in 'cuda parity cases' 'ctest' 'bench_kernels' 'bench_adam' 'bench_resnet50' 'r50 bf16 dependent launch' \
  'cifar epoch' 'bf16 vs fp32 accuracy' 'fusion'; do
  lacks "^$name" "--only split,features runs no other stage"
done

# Where the time went: each stage's seconds (with the time --deadline plans
# for it), in a row and in stage_times.json; a run of chosen stages is not
# judged against the whole check's 8 minutes.
has '^stage times +info +.*split [0-9]+ s \(usually 75\), features [0-9]+ s \(usually 90\)' "--only: the stage times"
has '^check time +info +[0-9]+s, not the whole check \(--only\)' "--only is not the whole check"
"$py" - "$tmp/logs/stage_times.json" <<'PY' || fail "stage_times.json after --only split,features"
import json, sys
d = json.load(open(sys.argv[1]))
st = {s["stage"]: s for s in d["stages"]}
assert st["split"]["usual_seconds"] == 75 and st["features"]["usual_seconds"] == 90, st
assert "usual_seconds" not in st["build"] and "kernels" in st and "usual_seconds" not in st["kernels"], st
assert 0 <= d["total_seconds"] - sum(s["seconds"] for s in d["stages"]) <= 1, d
PY
run --only kernels
has '^stage times +info +.*kernels ([2-9]|[1-9][0-9]) s \(usually 30\)' "--only kernels: the two seconds it took"
# Stopped by a signal: the table so far, the times too.
rm -rf "$tmp/logs"
PATH="$bin:$PATH" bash "$check" --build "$fake" --logs "$tmp/logs" --only kernels >"$tmp/stopped.txt" 2>&1 &
pid=$!
sleep 1.5
kill -TERM "$pid"
wait "$pid"
rc=$?
out=$(cat "$tmp/stopped.txt")
[ "$rc" -eq 1 ] || fail "stopped by a signal: exit $rc, not 1: $out"
has '^stopped +FAIL +by a signal' "stopped by a signal"
has '^stage times +info +.*stopped-in [0-9]+ s' "stopped by a signal: the times so far"
has '^check time +info +[0-9]+s, not the whole check \(--only, stopped by a signal\)' "stopped by a signal"
# The whole check (the stand-in build lacks most programs: their rows fail)
# is judged against 8 minutes only where nothing failed; it runs no
# experiment, and one epoch run at the defaults beside the two accuracy
# runs. Under a --deadline that leaves stages out, or with --experiments,
# it is not the whole check.
rm -f "$tmp/calls.txt"
run
has '^check time +info +[0-9]+s for the whole check, with failures above' "a whole check with failures"
has '^stage times +info +.*kernels [0-9]+ s \(usually 30\).*compare [0-9]+ s \(usually 180\)' "the whole check's stages"
has '^experiments +skip +without --experiments: dependent launch' "the whole check names the experiments it leaves"
lacks '^stage times.*(split|features|fusion|pdl)' "the whole check runs no experiment"
lacks '^(r50 bf16 (split|relu-from-x|cudnn-bn|dependent)|r50 fused|fusion)' "the whole check runs no experiment"
trains=$(grep -c '^trainer train' "$tmp/calls.txt")
((trains == 3)) || fail "the whole check: $trains training runs, not 3 (the epoch, the accuracy's two): $(cat "$tmp/calls.txt")"
grep -q '^trainer train .*--epochs 3 --device cuda --log' "$tmp/calls.txt" ||
  fail "the whole check's epoch run at the defaults: $(cat "$tmp/calls.txt")"
# The accuracy runs train on the 100-class synthetic set (the 10-class one
# saturates), each precision; the stand-in's failed runs give a FAIL row.
grep -q '^trainer make-synthetic --dataset cifar100 --out .*/synthetic100 --train 50000 --test 10000$' "$tmp/calls.txt" ||
  fail "the accuracy runs' data: $(cat "$tmp/calls.txt")"
for p in bf16 fp32; do
  grep -q "^trainer train --data .*/synthetic100 --dataset cifar100 --preset cifar --epochs 2 --device cuda --precision $p " \
    "$tmp/calls.txt" || fail "the $p accuracy run: $(cat "$tmp/calls.txt")"
done
has '^bf16 vs fp32 accuracy +FAIL +no result \(numerics_bf16\.jsonl: the run failed' "the accuracy runs failed"
rm -f "$tmp/calls.txt"
run --only accuracy
n10=$(grep -c '^trainer make-synthetic --out' "$tmp/calls.txt")
((n10 == 0)) || fail "--only accuracy makes the 10-class data it does not use: $(cat "$tmp/calls.txt")"
rm -f "$tmp/calls.txt"
run --experiments
has '^r50 bf16 split bn +info' "--experiments: the split"
has '^r50 bf16 cudnn-bn +info' "--experiments: the features"
has '^fusion probe +info' "--experiments: the fusion probe"
has '^r50 fused bn\+act b256 +info' "--experiments: the fused and unfused steps"
lacks '^experiments +skip' "--experiments"
has '^check time +info +[0-9]+s, not the whole check \(--experiments added\)' "--experiments is more than the check"
for flag in --cudnn-benchmark --no-channels-last "--no-channels-last --no-cuda-graph"; do
  grep -q -- "^trainer train .*--epochs 1 --device cuda $flag --log" "$tmp/calls.txt" ||
    fail "--experiments: no epoch with $flag: $(cat "$tmp/calls.txt")"
done
run --deadline 60
has '^bench_resnet50 +skip +out of time' "--deadline 60 leaves the comparison out"
has '^check time +info +[0-9]+s, not the whole check \(stages left out or stopped for --deadline\)' \
  "--deadline that left stages out"

# The fusion probe: at most two plans a graph, its own deadline inside the
# stage's timeout; its rows.
rm -f "$tmp/calls.txt"
run --only fusion
[ "$rc" -eq 0 ] || fail "--only fusion: exit $rc: $out"
has '^fusion probe +info +cuDNN 91900, 1 shape\(s\) in 3 s' "--only fusion"
has '^fusion A bf16 +info +lrt 0\.400 .*; conv_stats 0\.250 \(1\.20x\)$' "--only fusion"
grep -qE '^probe --max-plans 2 --deadline 160$' "$tmp/calls.txt" || fail "the probe's arguments: $(cat "$tmp/calls.txt")"
lacks '^r50 bf16 split' "--only fusion"

run --quick --only tests
[ "$rc" -eq 0 ] || fail "--quick --only tests: exit $rc: $out"
has '^cuda parity cases +ok +test cases: 2' "--only tests"
has '^cudnn bn cases in tests +info +persistent: 16; refused: 8;$' "--only tests: the cuDNN batch-norm cases' message"
lacks '^r50 bf16 split' "--only tests"
lacks '^bench_data' "--only tests (not even --quick's skip row)"

# torch.compile's caches filled beside the tests, before the comparison,
# which is given the same cache folder; each batch size of the comparison.
for mode in --quick ""; do
  rm -f "$tmp/calls.txt"
  run $mode --only compare,tests
  has '^compile warm-up +info +torch.compile.s caches filled while lrt built' "$mode --only compare: the warm-up"
  warm='--device cuda --batch 256 --adam --precision bf16 --channels-last --compile --repeat 1 --warmup 1$'
  grep -qE "^$fake/inductor-cache .*bench_pytorch_resnet50.py $warm" "$tmp/calls.txt" ||
    fail "$mode: no warm-up compile at batch 256 into the run's cache: $(cat "$tmp/calls.txt")"
  # The warm-up ends before the CUDA cases start, the comparison comes after.
  # (Without --quick the stand-in build has no CPU suites: no tests run.)
  order=$(grep -oE '^warm-up done|^CUDA cases|--matrix' "$tmp/calls.txt" | paste -sd'|' -)
  want="warm-up done|CUDA cases|--matrix"
  [ -n "$mode" ] || want="warm-up done|warm-up done|--matrix"
  [ "$order" = "$want" ] || fail "${mode:-full}: the order of calls is '$order', not '$want'"
  last=$(tail -1 "$tmp/calls.txt")
  grep -qE "^$fake/inductor-cache .*--matrix" <<<"$last" ||
    fail "$mode: the comparison is not last, or not given the cache: $last"
  # Told to start no run that cannot end 20 s before its own 900 s limit.
  stop_by=$(grep -oE -- '--stop-by [0-9]+' <<<"$last" | cut -d' ' -f2)
  now=$(date +%s)
  [ -n "$stop_by" ] && ((stop_by > now + 800 && stop_by <= now + 880)) ||
    fail "$mode: the comparison's --stop-by '$stop_by' is not within its 900 s limit (now $now): $last"
  if [ -z "$mode" ]; then
    grep -q -- "--batch 512 .*--compile --repeat 1" "$tmp/calls.txt" || fail "no warm-up at batch 512: $(cat "$tmp/calls.txt")"
    grep -q -- '--batches 256,512' <<<"$last" || fail "the full comparison's batches: $last"
    grep -q -- '--turns 2 --turns-at 256 ' <<<"$last" || fail "the full comparison's turns, at batch 256: $last"
  else
    ! grep -q -- "--batch 512" "$tmp/calls.txt" || fail "--quick warms batch 512 up, which it does not compare"
  fi
done
# The comparison's rows from its JSON: each configuration, each ratio, the
# judged one against its target with how far apart each side's own runs were.
cat >"$tmp/compare.json" <<'JSON'
{"results": [
 {"config": "lrt bf16", "framework": "lrt", "batch": 256, "images_per_s": 15800, "median_ms": 16.2,
  "peak_memory_mib": 3400, "turns_images_per_s": [15800, 15000]},
 {"config": "torch bf16 eager", "framework": "torch 2.11", "batch": 256, "images_per_s": 12150, "median_ms": 21.1,
  "peak_memory_mib": 3500, "turns_images_per_s": [12000, 12150]}],
 "bf16_matmul": null, "failures": [], "notes": [],
 "table": [{"batch": 256, "lrt": "lrt bf16", "torch": "torch bf16 eager", "runs": 2, "images_per_s_ratio": 1.3,
            "peak_memory_ratio": 0.97}]}
JSON
COMPARE_JSON="$tmp/compare.json" run --only compare
has '^r50 lrt bf16 b256 +info +15800 img/s, 16\.20 ms/step, peak 3400 MiB, NCHW, eager, the better of 2 runs in turns \(15800 and 15000 img/s\)$' \
  "the comparison's lrt row"
has "^r50 bf16 / bf16 eager b256 +ok +1\.30x img/s \(target >= 1\.3\), 0\.97x peak memory \(the better of 2 runs each, in turns; a side's own runs up to 5\.1% apart\)$" \
  "the judged ratio with its noise"
has '^r50 peak mem / bf16 eager +ok +0\.97x' "the judged memory ratio"
# A whole check where every program does its part (a second stand-in
# build: the CPU suites, the short benchmarks, a trainer that writes its
# logs, the comparison's JSON): judged, ok within 8 minutes.
full="$tmp/full"
mkdir -p "$full/apps" "$full/tests"
cp "$fake/apps/"* "$full/apps/"
cp "$fake/tests/lrt_cuda_tests" "$full/tests/"
printf '#!/bin/sh\nexit 0\n' >"$full/tests/lrt_tests"
printf '#!/bin/sh\necho "100%% tests passed, 0 tests failed out of 3"\n' >"$bin/ctest"
printf '#!/bin/sh\necho '"'"'{"results": []}'"'"'\n' >"$full/apps/bench_adam"
cat >"$full/apps/bench_data" <<'SH'
#!/bin/sh
echo '{"batch_size": 256, "targets": {"gpu_resident_images_per_s_min": 500000, "cpu_images_per_s_min": 1000},'\
  '"results": [{"path": "gpu-resident", "images_per_s": 900000, "setup_s": 0.1}]}'
SH
# The trainer: --log FILE gets an epoch record for each of --epochs N.
cat >"$full/apps/resnet50_cifar" <<'SH'
#!/bin/bash
[ "$1" = make-synthetic ] && exit 0
log="" epochs=1
while (($#)); do
  case "$1" in --log) log=$2; shift ;; --epochs) epochs=$2; shift ;; esac
  shift
done
for ((e = 1; e <= epochs; e++)); do
  echo "{\"event\":\"epoch\",\"epoch\":$e,\"step\":$((196 * e)),\"train_loss\":0.5,\"train_acc\":0.9,\"test_loss\":0.4,"\
    "\"test_acc\":0.9,\"images_per_s\":12000,\"train_seconds\":4.0,\"seconds\":4.5}" >>"$log"
done
SH
chmod +x "$bin/ctest" "$full/tests/lrt_tests" "$full/apps/"*
rm -rf "$tmp/logs"
out=$(COMPARE_JSON="$tmp/compare.json" PATH="$bin:$PATH" bash "$check" --build "$full" --logs "$tmp/logs" 2>&1)
rc=$?
lacks '^.{29}FAIL' "the whole check with every program doing its part"
has '^ctest +ok +100% tests passed' "the whole check's CPU suites"
has '^data gpu-resident +ok' "the whole check's data benchmark"
has '^cifar epoch 50k default +info +epoch 3: 4\.00 s training' "the whole check's epoch"
has '^bf16 vs fp32 accuracy +ok +test acc 90\.00% bf16, 90\.00% fp32: 0\.00 points apart \(target <= 1\) on synthetic CIFAR-100' \
  "the whole check's accuracy"
has '^check time +ok +[0-9]+s for the whole check \(target <= 480 s\)' "the whole check's time"
[ "$rc" -eq 0 ] || fail "the whole check with every program doing its part: exit $rc"
rm -f "$bin/ctest"
rm -f "$tmp/calls.txt"
run --only split
! grep -q bench_pytorch "$tmp/calls.txt" 2>/dev/null || fail "--only split warms torch.compile up: $(cat "$tmp/calls.txt")"

# --only baseline under --deadline: nothing runs beside the baseline's build,
# so it is waited for (not given up as when the tests end first) and compared.
run --only baseline --baseline "$tmp/base" --deadline 300
has '^r50 bf16 nhwc graph vs base +info +1\.000x img/s' "--only baseline --deadline"
lacks '^baseline build' "--only baseline --deadline"

# --sanitize: a stand-in compute-sanitizer runs the test program with the
# arguments it is given (recording them, whether API errors are reported,
# and LRT_CUDA_NO_CACHE), and reports
# as $SANITIZER_MODE says: clean (each tool's own summary: racecheck's is
# not memcheck's), errors, warnings (racecheck's alone), unsupported (the
# tool cannot attach), or hang (a case ends, then it runs on; with "report",
# a report first).
cat >"$bin/compute-sanitizer" <<SH
#!/bin/bash
tool=memcheck api=all
while ((\$#)); do
  case "\$1" in
    --tool) tool=\$2; shift 2 ;;
    --report-api-errors) api=\$2; shift 2 ;;
    --error-exitcode|--print-limit) shift 2 ;;
    *) break ;;
  esac
done
echo "sanitizer \$tool api-errors=\$api cache-off=\${LRT_CUDA_NO_CACHE:-} \$*" >>"$tmp/calls.txt"
echo "========= COMPUTE-SANITIZER"
mode=\${SANITIZER_MODE:-clean}
if [ "\$mode" = unsupported ]; then
  echo "========= Error: Device not supported"; exit 1
fi
if [[ "\$mode" == hang* ]]; then
  echo "0.250000 s: the first case"
  [ "\$mode" = hang-report ] && { echo "========= Invalid __global__ read of size 4 bytes"; echo "=========     at kernel+0x40"; }
  sleep 60 & wait; exit 0
fi
"\$@" >/dev/null
n=0 w=0
[ "\$mode" = errors ] && { echo "========= Invalid __global__ write of size 2 bytes"; n=1; }
[ "\$mode" = warnings ] && [ \$tool = racecheck ] && w=2
echo "0.250000 s: the first case"
echo "[doctest] test cases: 2 | 2 passed | 0 failed | 0 skipped"
if [ \$tool = racecheck ]; then
  echo "========= RACECHECK SUMMARY: \$((n + w)) hazards displayed (\$n errors, \$w warnings)"
else
  echo "========= ERROR SUMMARY: \$n errors"
fi
((n)) && exit 99
exit 0
SH
chmod +x "$bin/compute-sanitizer"
sanitize() { SANITIZER_MODE=$1 run --sanitize "${@:2}"; }
rm -f "$tmp/calls.txt"
sanitize clean
[ "$rc" -eq 0 ] || fail "--sanitize, clean: exit $rc: $out"
has '^compute-sanitizer memcheck +ok +0 errors; test cases: 2' "--sanitize, clean"
has '^compute-sanitizer racecheck +ok +0 errors; test cases: 2' "--sanitize reads racecheck's own summary"
lacks '^(cuda parity cases|bench_resnet50|r50 )' "--sanitize runs nothing else"
has '^check time +info +[0-9]+s, not the whole check \(--sanitize\)' "--sanitize's time is not the whole check's"
for tool in memcheck racecheck; do
  grep -qE "^sanitizer $tool api-errors=no cache-off=1 $fake/tests/lrt_cuda_tests --no-version --duration=true$" \
    "$tmp/calls.txt" ||
    fail "--sanitize: $tool's call: $(cat "$tmp/calls.txt")"
done
sanitize errors
[ "$rc" -eq 1 ] || fail "--sanitize with errors: exit $rc, not 1"
has '^compute-sanitizer memcheck +FAIL +1 error\(s\), exit 99' "--sanitize, memcheck's error"
has '^compute-sanitizer racecheck +FAIL +1 error\(s\), exit 99' "--sanitize, racecheck's error"
sanitize warnings
[ "$rc" -eq 0 ] || fail "--sanitize, racecheck warnings alone: exit $rc"
has '^compute-sanitizer racecheck +ok +0 errors, 2 warning\(s\)' "--sanitize names racecheck's warnings"
sanitize unsupported
[ "$rc" -eq 0 ] || fail "--sanitize, the tool unsupported: exit $rc"
has '^compute-sanitizer memcheck +skip +the tool does not support' "--sanitize, unsupported"
# Under --deadline memcheck takes half the time left, racecheck the rest; a
# pass stopped with nothing reported is a skip that says how far it got,
# one that reported something a FAIL.
t0=$(date +%s)
sanitize hang --deadline 16
took=$(( $(date +%s) - t0 ))
[ "$rc" -eq 0 ] || fail "--sanitize stopped by --deadline: exit $rc: $out"
has '^compute-sanitizer memcheck +skip +no report before --deadline: stopped after [0-9]+ s, 1 case\(s\) ended \(the last: the first case\)' \
  "--sanitize stopped at --deadline"
has '^compute-sanitizer racecheck +skip +no report before --deadline' "racecheck gets the time memcheck left"
((took <= 16)) || fail "--sanitize --deadline 16 took $took s"
sanitize hang-report --deadline 16
[ "$rc" -eq 1 ] || fail "--sanitize, a report before the stop: exit $rc, not 1"
has '^compute-sanitizer memcheck +FAIL +1 report\(s\) before it was stopped after' "--sanitize, a report before the stop"

# Refused, naming the culprit, before anything runs.
for args in "--only bogus" "--only split,bogus" "--only split,,features" "--only split --profile-only" \
  "--only split --sanitize" "--only split --baseline $tmp/base" "--experiments --sanitize" \
  "--experiments --profile-only"; do
  run $args
  [ "$rc" -eq 2 ] || fail "$args: exit $rc, not 2"
  grep -q '^device_check: ' <<<"$out" || fail "$args: no one-line error: $out"
  lacks '^build ' "$args runs nothing"
done
run --only bogus
has "unknown stage 'bogus'" "--only bogus names it"
run --only "split features"
[ "$rc" -eq 2 ] || fail "a space-separated --only list: exit $rc, not 2"
has "separated by commas, got 'split features'" "a space-separated --only list"
run --only split --baseline "$tmp/base"
has "which --only leaves out" "--baseline without stage baseline"

finish test_device_check
