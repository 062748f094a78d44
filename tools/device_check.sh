#!/usr/bin/env bash
# device_check.sh: the one script to run on a GPU machine. Finds cuDNN (the
# CUDA toolkit's, CUDNN_ROOT, or the Python nvidia/cudnn package), configures a
# Release build for sm_90 with ninja, builds, runs the ctest suite (all but
# the CPU fault-injection suites, which CI runs) at a lower priority beside
# the CUDA cases, which have their own row (a CUDA case skipped is a failure
# here), runs the benchmarks (the comparison's torch.compile models
# compiled beforehand, while lrt builds), the epoch and the bf16-against-
# fp32 accuracy runs, and prints a summary table last: the whole check of
# lrt against its targets. The experiments, which measure what each speed
# feature or choice brings (to decide what to keep), run with
# --experiments. Full logs go to the log folder. The table's "stage times"
# row says where the run's time went, stage by stage (with the time
# --deadline plans for each; stage_times.json in the log folder), and
# "check time" judges a run of the whole check (no --quick, --only,
# --experiments, --profile, --baseline, nothing left out for --deadline)
# against its 8 minutes.
#
# usage: tools/device_check.sh [--quick] [--experiments] [--sanitize] [--logs DIR] [--deps DIR] [--build DIR]
#                              [--arch ARCHS] [--baseline DIR] [--deadline SECONDS] [--profile | --profile-only]
#                              [--only STAGES]
#   --quick       for a short lease: the CUDA test cases (lrt_cuda_tests)
#                 instead of the whole ctest suite (whose CPU suites CI runs),
#                 the ResNet50 comparison at batch 256 only, no bench_data,
#                 no bf16-against-fp32 accuracy runs; with --experiments,
#                 no fused-against-unfused or per-default step rows, and
#                 of the epochs' experiments the algorithm search only
#   --experiments  also the experiments: dependent launch against plain
#                 launches (pdl), fused against unfused and each default
#                 against the step without it (steps), the step's split
#                 (split), each speed feature against the step without it
#                 (features), cuDNN's fusions (fusion), and the epochs
#                 without channels_last, eager, and with cuDNN's timed
#                 algorithm search (epochs)
#   --deadline SECONDS  finish within SECONDS of the start: each later stage
#                 runs only if its usual time still fits (else its row says
#                 "skip: out of time"), and every run's timeout is cut to end
#                 10 s before the deadline (a run it stops is a skip, not a
#                 FAIL), so the table is always printed. Stages run in this
#                 order: build, tests, the short benchmarks (kernels, data,
#                 Adam), the PyTorch comparison, the dependent-launch
#                 turns, the fused and per-default steps (these two and
#                 the split, features and fusion: --experiments), the epochs, the
#                 bf16-against-fp32 accuracy, the step's split (batch norm,
#                 convolutions, the rest), the baseline, the speed features
#                 one by one, the fusion probe, then the profiles. Every
#                 program runs under a timeout even without --deadline, and
#                 a signal (TERM, INT) stops the running one and prints the
#                 table so far.
#   --profile     also profile with Nsight Compute (ncu), last: each kernel
#                 of one bf16 step of lrt (the ten costliest, the time by
#                 kind of kernel), lrt's batch-norm kernels with their DRAM
#                 bytes, registers, occupancy, issue and FP64 use, and
#                 PyTorch's bf16 eager step as lrt's (a few minutes more)
#   --profile-only  the build and --profile's passes alone: no tests, no
#                 benchmarks, no epochs (a second short run on a machine
#                 that has the build already)
#   --only STAGES  the build and these stages alone (comma-separated),
#                 experiments included: tests (the CUDA cases, and ctest's
#                 suites without --quick), kernels, data, adam (the short
#                 benchmarks), compare (the PyTorch comparison), pdl
#                 (dependent launch), steps (fused and per-default; not
#                 with --quick), epochs (with their experiments), accuracy
#                 (bf16 against fp32; not with --quick), split, baseline,
#                 features, fusion (probe_cudnn_fusion: cuDNN's
#                 convolution + batch-norm fusions and batch-norm engines);
#                 with --profile, the profiles too. For a second short run
#                 on a machine that has the build already, e.g. the stages
#                 a first run's --deadline left out
#   --sanitize    instead of the suite and the benchmarks, run the CUDA test
#                 cases (lrt_cuda_tests) under compute-sanitizer (found in
#                 PATH, beside nvcc or in /usr/local/cuda): memcheck
#                 and racecheck, the CUDA allocator's
#                 cache off (LRT_CUDA_NO_CACHE=1) so every overrun and use
#                 after free reaches the tool; any reported error is a FAIL
#                 (racecheck's warnings are named, not failed; CUDA calls
#                 that return an error, some on purpose in the tests, are
#                 not reported: lrt checks every call). Under
#                 --deadline memcheck takes half the time left and
#                 racecheck the rest; a pass stopped by its time says how
#                 many cases ended first, and is a FAIL if the tool reported
#                 anything before the stop
#   --logs DIR    where logs and benchmark JSON go (default device-logs)
#   --deps DIR    include folder holding header-only dependencies (doctest/,
#                 CLI/, nlohmann/) for machines without them installed; see
#                 tools/vendor_deps.sh
#   --build DIR   build folder (default build-device)
#   --arch ARCHS  CMAKE_CUDA_ARCHITECTURES (default 90)
#   --baseline DIR  the source tree of another revision (tools/make_baseline.sh
#                 REV writes one): its bench_resnet50 is built beside this
#                 tree's (in the background, while the tests run) and the
#                 default bf16 step of both is timed in turns in this run,
#                 replayed and eager ("vs baseline" rows): what the changes
#                 since REV bring, measured side by side (after the epochs,
#                 so that a --deadline drops these rows rather than theirs;
#                 under --deadline a baseline build not done when the tests
#                 end is given up, rather than keep the GPU waiting)
set -uo pipefail
cd "$(dirname "$0")/.."

logs=device-logs
deps=""
build=build-device
arch=90
sanitize=0
quick=0
experiments=0
baseline=""
deadline=""
profile=0
profile_only=0
only=""
while (($#)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --experiments) experiments=1; shift ;;
    --profile) profile=1; shift ;;
    --profile-only) profile=1; profile_only=1; shift ;;
    --sanitize) sanitize=1; shift ;;
    --logs) logs=${2:?--logs needs a folder}; shift 2 ;;
    --deps) deps=${2:?--deps needs a folder}; shift 2 ;;
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --baseline) baseline=${2:?--baseline needs a folder}; shift 2 ;;
    --deadline) deadline=${2:?--deadline needs seconds}; shift 2 ;;
    --only) only=${2:?--only needs a list of stages}; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "device_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
((profile_only && sanitize)) && { echo "device_check: --profile-only and --sanitize are separate runs" >&2; exit 2; }
((experiments && (profile_only || sanitize))) &&
  { echo "device_check: --experiments adds to the checks that --profile-only and --sanitize do not run" >&2; exit 2; }
((profile_only)) && [ -n "$baseline" ] &&
  { echo "device_check: --profile-only runs no benchmark to compare with --baseline" >&2; exit 2; }
all_stages="tests kernels data adam compare pdl steps epochs accuracy split baseline features fusion"
if [ -n "$only" ]; then
  [[ "$only" =~ ^[a-z]+(,[a-z]+)*$ ]] ||
    { echo "device_check: --only takes stage names separated by commas, got '$only'" >&2; exit 2; }
  for key in ${only//,/ }; do
    [[ " $all_stages " == *" $key "* ]] ||
      { echo "device_check: --only: unknown stage '$key' (one of: ${all_stages// /, })" >&2; exit 2; }
  done
  ((profile_only || sanitize)) &&
    { echo "device_check: --only picks stages of the checks that --profile-only and --sanitize do not run" >&2; exit 2; }
  [ -z "$baseline" ] || [[ ",$only," == *",baseline,"* ]] ||
    { echo "device_check: --baseline is compared in stage 'baseline', which --only leaves out" >&2; exit 2; }
fi
[[ -z "$deadline" || "$deadline" =~ ^[1-9][0-9]*$ ]] ||
  { echo "device_check: --deadline takes whole seconds, got '$deadline'" >&2; exit 2; }
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
[ -z "$deps" ] || deps=$(cd "$deps" && pwd) || { echo "device_check: --deps folder not found" >&2; exit 2; }
if [ -n "$baseline" ]; then
  [ -f "$baseline/CMakeLists.txt" ] ||
    { echo "device_check: --baseline '$baseline' holds no source tree (see tools/make_baseline.sh)" >&2; exit 2; }
  baseline=$(cd "$baseline" && pwd)
fi
export PATH="$PATH:/usr/local/cuda/bin"
start=$(date +%s)

declare -a rows=()
# Each row also goes to rows.txt in the log folder as it is made, so a run
# stopped early still says how far it got.
: >"$logs/rows.txt"
add_row() { rows+=("$1"); printf '%s\n' "$1" >>"$logs/rows.txt"; }
row() { add_row "$(printf '%-28s %-8s %s' "$1" "$2" "$3")"; }
elapsed() { echo "$(( $(date +%s) - start ))s"; }
# Seconds left before --deadline.
left() { echo $(( start + deadline - $(date +%s) )); }
# cap N: a timeout of N seconds, cut to end 10 s before --deadline (at least 1).
cap() {
  local t=$1 l
  if [ -n "$deadline" ]; then
    l=$(( $(left) - 10 ))
    (( l < t )) && t=$l
    (( t < 1 )) && t=1
  fi
  echo "$t"
}
# Where the run's time goes: mark NAME closes a section of the run (named
# by the --only key of what it ran, or setup, build, warm-up, ...), from the
# previous mark to now. The "stage times" row lists the sections that took a
# second or more or were planned (stage's SECONDS, which --deadline plans
# with, given as "usually"), and stage_times.json in the log folder holds
# them all. dropped=1 once a stage was left out or stopped for --deadline:
# the run was then not the whole check.
mark_t=$start
declare -a marks=()
declare -A planned=()
dropped=0
signalled=0
mark() {
  local now
  now=$(date +%s)
  marks+=("$1 $((now - mark_t))")
  mark_t=$now
}
# timing_rows: the "stage times" row, and with it "check time", judged
# against the 8 minutes the whole check is to take where this run was the
# whole check (no --quick, --only, --sanitize, --experiments, --profile or
# --baseline, nothing left out for --deadline, not stopped);
# stage_times.json.
timing_rows() {
  local total=$(( $(date +%s) - start )) m name secs list="" json="" usual
  for m in "${marks[@]}"; do
    read -r name secs <<<"$m"
    usual=${planned[$name]:-}
    ((secs > 0)) || [ -n "$usual" ] && list+="${list:+, }$name $secs s${usual:+ (usually $usual)}"
    json+="${json:+, }{\"stage\": \"$name\", \"seconds\": $secs${usual:+, \"usual_seconds\": $usual}}"
  done
  printf '{"total_seconds": %d, "stages": [%s]}\n' "$total" "$json" >"$logs/stage_times.json"
  row "stage times" "info" "${list:-none took a second}"
  local why=""
  ((sanitize)) && why="--sanitize"
  ((quick)) && why="${why:+$why, }--quick"
  [ -n "$only" ] && why="${why:+$why, }--only"
  ((experiments)) && why="${why:+$why, }--experiments added"
  if ((profile_only)); then
    why="${why:+$why, }--profile-only"
  elif ((profile)); then
    why="${why:+$why, }--profile added"
  fi
  [ -n "$baseline" ] && why="${why:+$why, }--baseline added"
  ((dropped)) && why="${why:+$why, }stages left out or stopped for --deadline"
  ((signalled)) && why="${why:+$why, }stopped by a signal"
  if [ -n "$why" ]; then
    row "check time" "info" "${total}s, not the whole check ($why); the whole check is to take <= 480 s"
  elif printf '%s\n' "${rows[@]}" | grep -qE '^.{29}FAIL'; then
    why="a failed stage may end early; the whole check is to take <= 480 s"
    row "check time" "info" "${total}s for the whole check, with failures above ($why)"
  else
    row "check time" "$( ((total <= 480)) && echo ok || echo MISS)" "${total}s for the whole check (target <= 480 s)"
  fi
}
# The experiments: stages that measure what each speed feature or choice
# brings, to decide what to keep, rather than check lrt against its
# targets; they run with --experiments or where --only names them.
experiment_stages="pdl steps split features fusion"
# wanted KEY: whether stage KEY runs: --only (if given) names it; else it is
# not an experiment, or --experiments was given.
wanted() {
  if [ -n "$only" ]; then
    [[ ",$only," == *",$1,"* ]]
  else
    ((experiments)) || [[ " $experiment_stages " != *" $1 "* ]]
  fi
}
# The --only key of a stage's NAME (the synthetic data's is epochs, whose
# runs it serves); none for the profiles, which run with --profile.
stage_key() {
  case "$1" in
    bench_kernels) echo kernels ;;
    bench_data) echo data ;;
    bench_adam) echo adam ;;
    bench_resnet50) echo compare ;;
    "r50 dependent launch") echo pdl ;;
    "cifar epoch"* | "synthetic data") echo epochs ;;
    "bf16 vs fp32 accuracy") echo accuracy ;;
    "r50 bf16 split") echo split ;;
    "r50 vs baseline") echo baseline ;;
    "r50 bf16 features") echo features ;;
    "fusion probe") echo fusion ;;
  esac
}
# stage NAME SECONDS: whether a stage runs: --only names it (or is not
# given; no row where it does not), and it takes about SECONDS, which still
# fit before --deadline (always, without one; a row says where they do not).
stage() {
  local key
  key=$(stage_key "$1")
  [ -z "$key" ] || wanted "$key" || return 1
  if [ -n "$deadline" ] && (( $(left) < $2 )); then
    row "$1" "skip" "out of time: $(left) s left before --deadline, it takes about $2 s"
    dropped=1
    return 1
  fi
  [ -z "$key" ] || planned[$key]=$(( ${planned[$key]:-0} + $2 ))
  return 0
}
# bounded SECONDS COMMAND...: runs COMMAND under a timeout of SECONDS, cut
# by cap to end before --deadline, in the background with the script
# waiting for it, so that a signal reaches the trap at once (the trap stops
# it). Its status is COMMAND's (124 or 137 when stopped); cut=1 where it was
# stopped by a timeout that --deadline had shortened.
cur=""
cut=0
bounded() {
  local nominal=$1 t rc
  shift
  t=$(cap "$nominal")
  timeout -k 5 "$t" "$@" &
  cur=$!
  wait "$cur"
  rc=$?
  cur=""
  cut=0
  ((rc == 124 || rc == 137)) && ((t < nominal)) && cut=1 && dropped=1
  return $rc
}
# failed NAME DETAIL: the row of a stage whose program failed: FAIL, or skip
# where --deadline stopped it.
failed() {
  if ((cut)); then row "$1" "skip" "stopped at --deadline ($(elapsed))"; else row "$1" "FAIL" "$2"; fi
}
# bench_turns KIND TURNS LABEL...: the default bf16 step (channels_last,
# replayed from the graph, cuDNN's heuristics, so every variant runs the same
# convolution kernels; 60 steps) for each LABEL, TURNS times in turns, each
# run's JSON in bench_KIND_LABEL_TURN.json for tools/turn_rows.py. KIND pdl:
# the label is LRT_PDL's value; features: default, or the speed feature the
# run turns off (--no-LABEL), or for a feature off by default (cudnn-bn)
# the one it turns on (--LABEL); split: default, or a kernel group and how many
# times its kernels run (bn2: --kernel-repeat bn=2). Returns 1 where
# --deadline stopped a run.
bench_turns() {
  local kind=$1 turns=$2 turn label
  local -a env_args flag_args
  shift 2
  rm -f "$logs"/bench_"$kind"_*.json
  for ((turn = 1; turn <= turns; turn++)); do
    for label in "$@"; do
      env_args=()
      flag_args=()
      if [ "$kind" = pdl ]; then
        env_args=("LRT_PDL=$label")
      elif [ "$label" = default ]; then
        :
      elif [ "$kind" = split ]; then
        flag_args=(--kernel-repeat "${label%[0-9]}=${label##*[a-z]}")
      elif [ "$label" = cudnn-bn ]; then
        flag_args=("--$label")
      else
        flag_args=("--no-$label")
      fi
      bounded 60 env "${env_args[@]}" "$build/apps/bench_resnet50" --device cuda --batch 256 --adam \
        --precision bf16 --channels-last --cuda-graph --no-conv-benchmark --repeat 60 "${flag_args[@]}" \
        >"$logs/bench_${kind}_${label}_$turn.json" 2>>"$logs/bench_$kind.err"
      ((cut)) && return 1
    done
  done
  return 0
}
# The table, last (also where the run is stopped by a signal).
summary() {
  echo
  echo "==== lrt device check summary$1 ($(date -u +%Y-%m-%dT%H:%MZ)) ===="
  printf '%-28s %-8s %s\n' "check" "status" "detail"
  printf '%s\n' "${rows[@]}"
}
baseline_pid=""
ctest_pid=""
warm_pid=""
# The script's own output, for the trap: it may run inside a redirected call.
exec 3>&1
on_signal() {
  trap '' TERM INT
  [ -n "$cur" ] && kill -TERM "$cur" 2>/dev/null
  [ -n "$baseline_pid" ] && kill -TERM "$baseline_pid" 2>/dev/null
  [ -n "$ctest_pid" ] && kill -TERM "$ctest_pid" 2>/dev/null
  [ -n "$warm_pid" ] && kill -TERM "$warm_pid" 2>/dev/null
  row "stopped" "FAIL" "by a signal after $(elapsed)"
  signalled=1
  mark stopped-in
  timing_rows
  summary "" >&3
  exit 1
}
trap on_signal TERM INT

# ---- environment ----
[ -z "$only" ] || row "only" "info" "--only $only: the build and these stages alone"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
if [ -n "$gpu" ]; then row "gpu" "ok" "$gpu"; else row "gpu" "FAIL" "nvidia-smi found no GPU"; fi
cudnn_root=""
if [ -n "${CUDNN_ROOT:-}" ]; then
  cudnn_root=$CUDNN_ROOT
elif py_cudnn=$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null); then
  cudnn_root=$py_cudnn
fi
if [ -n "$cudnn_root" ]; then
  export CUDNN_ROOT=$cudnn_root
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
row "cudnn search" "info" "${cudnn_root:-toolkit default locations}"
mark setup

# ---- torch.compile's caches, filled while lrt builds ----
# Each torch.compile run of the comparison first compiles the model (about a
# minute of CPU work, the GPU idle). The same configurations (bf16 +
# channels_last, each batch size of the comparison) are compiled first, in
# the background while lrt builds (the GPU idle anyway), into a cache folder
# in the build folder, and waited for before the tests start (no second
# process on the GPU while they run): the timed runs then find the compiled
# kernels and graphs (Dynamo still traces the model). What is timed, the
# steps after warm-up, is the same either way; a warm-up that fails only
# leaves the timed runs to compile on their own.
mkdir -p "$build"
export TORCHINDUCTOR_CACHE_DIR
TORCHINDUCTOR_CACHE_DIR="$(cd "$build" && pwd)/inductor-cache"
if wanted compare && ((!sanitize && !profile_only)); then
  warm_batches=(256 512)
  ((quick)) && warm_batches=(256)
  (
    child=""
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 1' TERM
    for b in "${warm_batches[@]}"; do
      timeout -k 5 "$(cap 300)" nice -n 10 python3 tools/bench_pytorch_resnet50.py --device cuda --batch "$b" --adam \
        --precision bf16 --channels-last --compile --repeat 1 --warmup 1 &
      child=$!
      wait "$child" || exit 1
    done
  ) >"$logs/compile_warm.json" 2>"$logs/compile_warm.err" &
  warm_pid=$!
fi

# ---- configure and build ----
cfg=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLRT_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch")
[ -z "$deps" ] || cfg+=("-DLRT_DEPS_INCLUDE=$deps")
[ -z "$cudnn_root" ] || cfg+=("-DCUDNN_ROOT=$cudnn_root")
if cmake "${cfg[@]}" >"$logs/configure.log" 2>&1; then
  row "configure" "ok" "$(grep -E 'lrt: (CUDA backend|CPU GEMM)' "$logs/configure.log" | sed 's/^-- lrt: //' | paste -sd';' -)"
else
  row "configure" "FAIL" "see $logs/configure.log"
fi
if cmake --build "$build" -j "$(nproc)" >"$logs/build.log" 2>&1; then
  row "build" "ok" "$(elapsed) so far; warnings: $(grep -c 'warning' "$logs/build.log")"
else
  row "build" "FAIL" "see $logs/build.log"
  grep -m 20 -E 'error|FAILED' "$logs/build.log"
fi
mark build

# The compile warm-up ends before the tests: the time it still needs is
# time the timed compile runs would otherwise spend compiling, the GPU as
# idle.
if [ -n "$warm_pid" ]; then
  if wait "$warm_pid"; then
    row "compile warm-up" "info" "torch.compile's caches filled while lrt built ($(elapsed) so far)"
  else
    row "compile warm-up" "info" "failed (see compile_warm.err): the timed runs compile on their own"
  fi
  warm_pid=""
  mark warm-up
fi

# ---- the baseline's benchmark (--baseline), built while the tests run ----
if [ -n "$baseline" ] && ((!sanitize && !profile_only)); then
  bbuild="$build-baseline"
  bcfg=(-S "$baseline" -B "$bbuild" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLRT_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch")
  [ -z "$deps" ] || bcfg+=("-DLRT_DEPS_INCLUDE=$deps")
  [ -z "$cudnn_root" ] || bcfg+=("-DCUDNN_ROOT=$cudnn_root")
  # At the lowest priority (the CUDA tests run meanwhile), and bounded.
  timeout -k 5 "$(cap 600)" bash -c 'nice -n 19 cmake "${@:3}" && nice -n 19 cmake --build "$1" -j "$2" --target bench_resnet50' \
    _ "$bbuild" "$(nproc)" "${bcfg[@]}" >"$logs/baseline_build.log" 2>&1 &
  baseline_pid=$!
fi

# ---- compute-sanitizer (--sanitize) ----
# One pass of the CUDA test cases per tool. Where the tool cannot attach to
# the GPU at all ("Device not supported", as on some sandboxed machines) the
# row says so and is not counted as a failure; any other failure to run is.
# Each tool prints its own summary: memcheck "ERROR SUMMARY: N errors",
# racecheck "RACECHECK SUMMARY: H hazards displayed (E errors, W warnings)".
# CUDA API calls that return an error are not reported (--report-api-errors
# no): the test cases make some on purpose (an impossible allocation, a
# capture that must fail), and the libraries probe the driver; lrt checks
# every call it makes, so an unexpected one fails its test case instead.
# The cases print their times as each ends (--duration, line-buffered by
# the test program), so a pass stopped by its time limit still says how far
# it got and whether anything was reported before that.
sanitizer=""
for cand in "$(command -v compute-sanitizer 2>/dev/null)" "$(dirname "$(command -v nvcc 2>/dev/null || echo .)")/compute-sanitizer" \
  /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -n "$cand" ] && [ -x "$cand" ] && { sanitizer=$cand; break; }
done
# sanitizer_pass TOOL SHARE: one pass; under --deadline it may take 1/SHARE
# of the time left (memcheck half, racecheck the rest), else 900 s.
sanitizer_pass() {
  local tool=$1 share=$2 log="$logs/sanitize_$1.log" name="compute-sanitizer $1" rc limit=900 errors="" warnings=0
  local cases reports last tests summary
  if [ -n "$deadline" ]; then
    limit=$(( ($(left) - 10) / share ))
    ((limit > 900)) && limit=900
    ((limit < 1)) && limit=1
  fi
  LRT_CUDA_NO_CACHE=1 bounded "$limit" "$sanitizer" --tool "$tool" --report-api-errors no --error-exitcode 99 \
    --print-limit 20 "$build/tests/lrt_cuda_tests" --no-version --duration=true >"$log" 2>&1
  rc=$?
  summary=$(grep -E '^========= (RACECHECK|ERROR) SUMMARY' "$log" | tail -1)
  if [[ "$summary" =~ RACECHECK\ SUMMARY:\ [0-9]+\ hazards?\ displayed\ \(([0-9]+)\ errors?,\ ([0-9]+)\ warnings? ]]; then
    errors=${BASH_REMATCH[1]} warnings=${BASH_REMATCH[2]}
  elif [[ "$summary" =~ ERROR\ SUMMARY:\ ([0-9]+)\ error ]]; then
    errors=${BASH_REMATCH[1]}
  fi
  cases=$(grep -cE '^[0-9.]+ s: ' "$log")
  last=$(grep -E '^[0-9.]+ s: ' "$log" | tail -1 | sed -E 's/^[0-9.]+ s: //' | cut -c1-80)
  # The tool's reports: its lines that start a message (not the banner, the
  # summaries or a report's indented detail lines).
  reports=$(grep -E '^========= [A-Za-z]' "$log" | grep -cvE '^========= (COMPUTE-SANITIZER|(ERROR|RACECHECK|LEAK) SUMMARY)')
  tests=$(grep -E '^\[doctest\] test cases' "$log" | sed 's/\[doctest\] //')
  if grep -q "Device not supported" "$log"; then
    row "$name" "skip" "the tool does not support this machine's GPU: $(grep -m1 'not supported' "$log")"
  elif ((rc == 124 || rc == 137)); then
    local how="stopped after $limit s, $cases case(s) ended${last:+ (the last: $last)}"
    if ((reports > 0)); then
      row "$name" "FAIL" "$reports report(s) before it was $how (see $log)"
    elif [ -n "$deadline" ]; then
      row "$name" "skip" "no report before --deadline: $how"
    else
      row "$name" "FAIL" "over its time limit, no report before that: $how"
    fi
  elif [ -z "$errors" ]; then
    row "$name" "FAIL" "no summary from the tool, exit $rc: $(grep -m1 -iE 'error|not supported' "$log")"
  elif ((errors == 0 && rc == 0)); then
    row "$name" "ok" "0 errors$( ((warnings)) && echo ", $warnings warning(s) (see $log)"); $tests"
  else
    row "$name" "FAIL" "$errors error(s)$( ((warnings)) && echo ", $warnings warning(s)"), exit $rc; $tests (see $log)"
  fi
}
if ((sanitize)); then
  if [ -z "$sanitizer" ]; then
    row "compute-sanitizer" "FAIL" "not found (PATH, beside nvcc, /usr/local/cuda): it ships with the CUDA toolkit"
  elif [ ! -x "$build/tests/lrt_cuda_tests" ]; then
    row "compute-sanitizer" "FAIL" "lrt_cuda_tests not built"
  else
    sanitizer_pass memcheck 2
    mark memcheck
    sanitizer_pass racecheck 1
    mark racecheck
  fi
  trap '' TERM INT
  timing_rows
  row "total time" "info" "$(elapsed)"
  summary ", compute-sanitizer"
  printf '%s\n' "${rows[@]}" | grep -qE '^.{29}(FAIL|MISS)' && exit 1
  exit 0
fi

if ((!profile_only)); then
# ---- tests ----
# ctest's CPU suites (not with --quick) run in the background while the CUDA
# cases run, as fewer jobs than cores at a lower priority (nice 10), so that
# the CUDA cases' host side comes first; only results are checked there (the
# one timing-sensitive case, the dependent-launch probe, gives the host 50 ms
# to queue its second kernel). Both end before anything is timed.
ctest_pid=""
if ! wanted tests; then
  :
elif [ ! -x "$build/tests/lrt_cuda_tests" ] || { ((!quick)) && [ ! -x "$build/tests/lrt_tests" ]; }; then
  row "ctest" "FAIL" "not built"
else
  if ((quick)); then
    row "ctest" "skip" "--quick: the CUDA test cases only (CI runs the CPU suites)"
  else
    # Waiting OpenMP threads sleep rather than spin, as in tools/test.sh:
    # the suites run side by side, each with a thread per core. The CUDA
    # cases (ctest's "cuda" entry) run once, at the same time, in their own
    # row; the fault-injection suites (label reliability: kills, full disks,
    # damaged files, minutes of CPU work that no GPU changes) are left to CI.
    ctest_limit=$(cap 1500)
    jobs=$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))
    OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" timeout -k 5 "$ctest_limit" nice -n 10 ctest --test-dir "$build" \
      --output-on-failure -j "$jobs" -E '^cuda$' -LE reliability >"$logs/ctest.log" 2>&1 &
    ctest_pid=$!
  fi
  # Bounded, so that a hang in a CUDA case cannot take the whole run; each
  # case's time is logged as it ends (line-buffered), so a stopped run says
  # which case it was in.
  limit=$(cap 360)
  lb=()
  command -v stdbuf >/dev/null && lb=(stdbuf -oL)
  bounded 360 "${lb[@]}" "$build/tests/lrt_cuda_tests" --duration=true >"$logs/cuda_tests.log" 2>&1
  rc=$?
  status=$([ $rc -eq 0 ] && echo ok || echo FAIL)
  ((cut)) && status=skip
  detail=$(grep -E '^\[doctest\] (test cases|assertions)' "$logs/cuda_tests.log" | sed 's/\[doctest\] //' | paste -sd';' -)
  if ((rc == 124 || rc == 137)); then
    detail="stopped after $limit s$( ((cut)) && echo " (--deadline)"); the case after this one hung or ran long: "
    detail+="$(grep -E '^[0-9.]+ s: ' "$logs/cuda_tests.log" | tail -1 | cut -c1-120)"
    [[ "$detail" == *": " ]] && detail+="(no case had ended)"
  fi
  row "cuda parity cases" "$status" "${detail:-$(head -1 "$logs/cuda_tests.log")}"
  # Which batch-norm cases cuDNN took in the cuDNN batch-norm case (its
  # message): whether the fused ReLU and add ran on cuDNN or fell back.
  bn_modes=$(sed -n "s/.*cuDNN's batch-norm cases so far (the process's): *//p" "$logs/cuda_tests.log" | head -1)
  [ -z "$bn_modes" ] || row "cudnn bn cases in tests" "info" "$bn_modes"
  # The failed checks, above the summary (the full log is in the logs folder).
  [ "$status" = ok ] || grep -B2 -A6 -m 12 -E 'ERROR|FATAL|exception' "$logs/cuda_tests.log" | head -120
  if [ -n "$ctest_pid" ]; then
    wait "$ctest_pid"
    rc=$?
    ctest_pid=""
    summary=$(grep -E 'tests passed|tests failed' "$logs/ctest.log" | tail -1)
    # Suites that skip themselves where a tool is missing (python3,
    # matplotlib) are named, not failed.
    skipped=$(grep -E '\*\*\*Skipped' "$logs/ctest.log" | sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*/\1/' | paste -sd, -)
    if ((rc == 124 || rc == 137)) && ((ctest_limit < 1500)); then
      row "ctest" "skip" "stopped at --deadline ($(elapsed))"
    elif grep -q '100% tests passed' "$logs/ctest.log"; then
      row "ctest" "ok" "$summary (not the reliability suites: CI's; beside the CUDA cases)${skipped:+; skipped: $skipped}"
    else
      row "ctest" "FAIL" "$summary (see $logs/ctest.log)"
    fi
  fi
  mark tests
fi

# The baseline's build ends before anything is timed: it would take CPU
# time from the benchmarks' host threads. Without --deadline it is waited
# for; under one, a build still running when the tests end is given up
# rather than keep the GPU idle (its comparison comes last anyway), unless
# --only left the tests out (then nothing ran beside it: it is waited for).
baseline_built=0
if [ -n "$baseline_pid" ]; then
  if [ -n "$deadline" ] && wanted tests && kill -0 "$baseline_pid" 2>/dev/null; then
    kill -TERM "$baseline_pid" 2>/dev/null
    wait "$baseline_pid" 2>/dev/null
    row "baseline build" "skip" "not built when the tests ended ($(elapsed)); under --deadline it is not waited for"
  elif wait "$baseline_pid" && [ -x "$bbuild/apps/bench_resnet50" ]; then
    baseline_built=1
  else
    row "baseline build" "FAIL" "see $logs/baseline_build.log"
  fi
  baseline_pid=""
  mark baseline-build
fi

# ---- benchmarks ----
if ! stage "bench_kernels" 30; then
  :
elif [ -x "$build/apps/bench_kernels" ]; then
  if bounded 180 "$build/apps/bench_kernels" >"$logs/bench_kernels.json" 2>"$logs/bench_kernels.err"; then
    while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_kernels.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    rate = f'{r["gbps"]:.1f} GB/s' if "gbps" in r else f'{r["gflops"]:.0f} GFLOP/s'
    print(f'{"bench " + r["device"] + " " + r["op"]:<28} {"info":<8} {r["median_ms"]:.3f} ms, {rate} ({r["detail"]})')
ratios = d.get("ratios", {})
t = d.get("targets", {})
if ratios:
    a, m = ratios["cuda_add_over_copy_bandwidth"], ratios["cuda_matmul_over_cublas"]
    print(f'{"add / d2d copy bandwidth":<28} {"ok" if a >= t["add_over_copy_min"] else "MISS":<8} {a:.3f} (target >= {t["add_over_copy_min"]})')
    print(f'{"matmul / cublasSgemm":<28} {"ok" if m >= t["matmul_over_cublas_min"] else "MISS":<8} {m:.3f} (target >= {t["matmul_over_cublas_min"]})')
PY
)
  else
    failed "bench_kernels" "see $logs/bench_kernels.err"
  fi
else
  row "bench_kernels" "FAIL" "not built"
fi
mark kernels
if ((quick)) && wanted data; then
  row "bench_data" "skip" "--quick"
elif ((quick)) || ! stage "bench_data" 40; then
  :
elif [ -x "$build/apps/bench_data" ]; then
  if bounded 180 "$build/apps/bench_data" >"$logs/bench_data.json" 2>"$logs/bench_data.err"; then
    while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_data.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["targets"]
for r in d["results"]:
    target = t["gpu_resident_images_per_s_min"] if r["path"] == "gpu-resident" else t["cpu_images_per_s_min"]
    ok = "ok" if r["images_per_s"] >= target else "MISS"
    print(f'{"data " + r["path"]:<28} {ok:<8} {r["images_per_s"]:.0f} images/s at batch {d["batch_size"]} (target >= {target}; setup {r["setup_s"]:.3f} s)')
PY
)
  else
    failed "bench_data" "see $logs/bench_data.err"
  fi
else
  row "bench_data" "FAIL" "not built"
fi
mark data
if ! stage "bench_adam" 30; then
  :
elif [ -x "$build/apps/bench_adam" ]; then
  bounded 120 "$build/apps/bench_adam" >"$logs/bench_adam.json" 2>"$logs/bench_adam.err" ||
    failed "bench_adam" "see $logs/bench_adam.err"
  bounded 120 python3 tools/bench_pytorch_adam.py >"$logs/bench_pytorch_adam.json" 2>"$logs/bench_pytorch_adam.err" ||
    true
  while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_adam.json" "$logs/bench_pytorch_adam.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f'{"bench_adam":<28} {"FAIL":<8} unreadable JSON ({e})'); sys.exit()
r = {x["variant"]: x for x in d["results"] if x["device"].startswith("cuda")}
for x in d["results"]:
    print(f'{"adam " + x["device"] + " " + x["variant"]:<28} {"info":<8} {x["median_ms"]:.3f} ms, {x["gbps"]:.0f} GB/s')
kernel = "fused-apply" if "fused-apply" in r else "fused"  # the update kernel without prepare()'s upload
if kernel in r and "copy_d2d" in r:
    ratio = r[kernel]["gbps"] / r["copy_d2d"]["gbps"]
    print(f'{"adam fused / d2d copy":<28} {"ok" if ratio >= 0.8 else "MISS":<8} {ratio:.3f} (target >= 0.8; {kernel})')
try:
    t = {x["variant"]: x for x in json.load(open(sys.argv[2]))["results"]}
    if "fused" in r and "torch_fused" in t:
        sp = t["torch_fused"]["median_ms"] / r["fused"]["median_ms"]
        print(f'{"adam fused vs torch fused":<28} {"ok" if sp >= 1.0 else "MISS":<8} {sp:.2f}x ({t["torch_fused"]["median_ms"]:.3f} ms in PyTorch)')
except Exception:
    print(f'{"bench_pytorch_adam":<28} {"info":<8} not run (see bench_pytorch_adam.err)')
PY
)
else
  row "bench_adam" "FAIL" "not built"
fi
mark adam
if [ -x "$build/apps/bench_resnet50" ]; then
  if stage "bench_resnet50" 180; then
  # ResNet50 training steps (forward, loss, backward, Adam) at batch 256 and
  # 512: lrt at the trainer's CUDA defaults (channels_last features, the step
  # replayed as a CUDA graph) beside PyTorch float32 eager, bf16 +
  # channels_last eager and the same under torch.compile, each in a fresh
  # process (the pair the 1.3x target judges, lrt's bf16 step and PyTorch's
  # bf16 eager one, twice each in turns at batch 256, which is judged, the
  # better run of each counting);
  # ratios and model FLOP utilisation against the bf16 matrix rate measured
  # in the same run.
  matrix=(--batches 256,512)
  ((quick)) && matrix=(--batches 256)
  # Each run (a configuration, compilation included) is bounded, and so is
  # the whole (900 s, cut by --deadline); the script is told to stop 20 s
  # before that limit (--stop-by), starts no run with less than 20 s left
  # before then (a torch.compile run 45 s; the runs after one not started
  # still run where they fit), cuts the last one's timeout to end by then,
  # and keeps and prints what it measured: the limit itself, which would
  # lose it all, is never reached.
  rm -f "$logs/bench_resnet50.json"
  stop_by=$(( $(date +%s) + $(cap 900) - 20 ))
  bounded 900 python3 tools/bench_pytorch_resnet50.py --device cuda --matrix --turns 2 --turns-at 256 "${matrix[@]}" \
    --stop-by "$stop_by" --lrt "$build/apps/bench_resnet50" >"$logs/bench_resnet50.json" 2>"$logs/bench_resnet50.err"
  while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_resnet50.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f'{"bench_resnet50":<28} {"FAIL":<8} no result ({e}; see bench_resnet50.err)'); sys.exit()
rate = d.get("bf16_matmul") or {}
if rate:
    print(f'{"bf16 matmul (torch)":<28} {"info":<8} {rate["tflops"]:.3g} TFLOP/s ({rate["n"]}^3)')
for x in d["results"]:
    mfu = f', MFU {100 * x["mfu_bf16"]:.1f}%' if "mfu_bf16" in x else ""
    if "host_ms" in x:
        mfu += f', host {x["host_ms"]:.1f} ms/step'  # near ms/step: bound by the host issuing work
    if x.get("framework") == "lrt":
        mfu += ", " + ("channels_last" if x.get("memory_format") == "channels_last" else "NCHW") + \
            (" + CUDA graph" if x.get("cuda_graph") else ", eager")
    if x.get("cudnn_allow_tf32") and x.get("precision") == "fp32":
        mfu += ", TF32 convolutions (PyTorch's default)"
    turns = x.get("turns_images_per_s", [])
    if len(turns) > 1:
        mfu += f", the better of {len(turns)} runs in turns ({' and '.join(f'{t:.0f}' for t in turns)} img/s)"
    print(f'{"r50 " + x["config"] + " b" + str(x["batch"]):<28} {"info":<8} {x["images_per_s"]:.0f} img/s, '
          f'{x["median_ms"]:.2f} ms/step, peak {x["peak_memory_mib"]:.0f} MiB{mfu}')
# Targets (batch 256): >= 1.3x bf16 eager, >= 1.0x compile, >= 1.0x fp32
# eager, peak memory <= bf16 eager's. Batch 512 is reported, not judged.
targets = {"torch fp32 eager": 1.0, "torch bf16 eager": 1.3, "torch bf16 compile": 1.0}
by = {(x.get("config"), x.get("batch")): x for x in d["results"]}
for t in d.get("table", []):
    judged = t["batch"] == 256
    need = targets.get(t["torch"], 1.0)
    ok = ("ok" if t["images_per_s_ratio"] >= need else "MISS") if judged else "info"
    target = f' (target >= {need})' if judged else ""
    runs = ""
    if t.get("runs", 1) > 1:
        # The noise: how far apart each side's own runs were (the most of the two).
        spreads = []
        for c in (t["lrt"], t["torch"]):
            ips = by.get((c, t["batch"]), {}).get("turns_images_per_s", [])
            if len(ips) >= 2 and max(ips) > 0:
                spreads.append((max(ips) - min(ips)) / max(ips))
        noise = f"; a side's own runs up to {100 * max(spreads):.1f}% apart" if spreads else ""
        runs = f' (the better of {t["runs"]} runs each, in turns{noise})'
    print(f'{"r50 " + t["lrt"][4:] + " / " + t["torch"][6:] + " b" + str(t["batch"]):<28} {ok:<8} {t["images_per_s_ratio"]:.2f}x img/s{target}, '
          f'{t["peak_memory_ratio"]:.2f}x peak memory{runs}')
    if judged and t["torch"] == "torch bf16 eager":
        mem_ok = "ok" if t["peak_memory_ratio"] <= 1.0 else "MISS"
        print(f'{"r50 peak mem / bf16 eager":<28} {mem_ok:<8} {t["peak_memory_ratio"]:.2f}x (target <= 1.0)')
for f in d.get("failures", []):
    print(f'{"bench_resnet50":<28} {"FAIL":<8} {f[:200]}')
for f in d.get("notes", []):  # a repeated run that failed where another run of its configuration counted
    print(f'{"bench_resnet50":<28} {"info":<8} {f[:200]}')
PY
)
  fi
  mark compare
  # Programmatic dependent launch of lrt's kernels (LRT_PDL=1) against
  # plain launches: the default bf16 step replayed from the graph,
  # in turns (three each, the better run counts), in one run. cuDNN's
  # heuristics pick the convolutions' algorithms (no timed search), so both
  # sides run the same kernels and each run takes a few seconds. A run cut
  # by --deadline makes the row a skip.
  if stage "r50 dependent launch" 45; then
    if bench_turns pdl 3 0 1; then
      while IFS= read -r line; do add_row "$line"; done < <(python3 tools/turn_rows.py pdl "$logs")
    else
      row "r50 bf16 dependent launch" "skip" "stopped at --deadline ($(elapsed))"
    fi
  fi
  mark pdl
  if ! wanted steps; then
    :
  elif ((quick)); then
    row "r50 fused bn+act" "skip" "--quick"
    row "r50 per-default steps" "skip" "--quick"
  else
  # Fused BN + ReLU / BN + add + ReLU against separate ops, side by side.
  for mode in "" --no-fuse; do
    timeout -k 5 "$(cap 120)" "$build/apps/bench_resnet50" --device cuda --batch 256 --adam $mode \
      2>>"$logs/bench_fuse.err" || echo '{"failed": true}'
  done >"$logs/bench_fuse.json"
  while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_fuse.json" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if len(runs) != 2 or any("failed" in r for r in runs):
    print(f'{"r50 fused bn+act":<28} {"FAIL":<8} see bench_fuse.err'); sys.exit()
f, u = runs
print(f'{"r50 fused bn+act b256":<28} {"info":<8} {f["images_per_s"] / u["images_per_s"]:.3f}x img/s '
      f'({f["images_per_s"]:.0f} vs {u["images_per_s"]:.0f} unfused), peak {f["peak_memory_mib"]:.0f} vs '
      f'{u["peak_memory_mib"]:.0f} MiB')
PY
)
  # What each default contributes: the same step without the CUDA graph
  # (eager), without channels_last (NCHW), and without both, against
  # PyTorch's figures from the comparison above.
  for mode in "--precision bf16" "--precision bf16 --channels-last" "--precision bf16 --cuda-graph" \
    "--tf32 --cuda-graph"; do
    timeout -k 5 "$(cap 120)" "$build/apps/bench_resnet50" --device cuda --batch 256 --adam $mode \
      2>>"$logs/bench_graph.err" ||
      echo '{"failed": true}'
  done >"$logs/bench_graph.json"
  while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_graph.json" "$logs/bench_resnet50.json" <<'PY'
import json, sys
runs = []
for l in open(sys.argv[1]):
    try:
        runs.append(json.loads(l)) if l.strip() else None
    except ValueError:
        runs.append({"failed": True})
try:
    torch = {x["config"]: x for x in json.load(open(sys.argv[2]))["results"] if x["batch"] == 256}
except Exception:
    torch = {}
for r in runs:
    if "failed" in r:
        print(f'{"r50 cuda graph":<28} {"FAIL":<8} see bench_graph.err'); continue
    nhwc = " nhwc" if r.get("memory_format") == "channels_last" else ""
    name = f'r50 {r["precision"]}{nhwc}{" graph" if r.get("cuda_graph") else " eager"} b256'
    vs = {"bf16": ["torch bf16 eager", "torch bf16 compile"], "tf32": ["torch fp32 eager"]}.get(r["precision"], [])
    # One run each: PyTorch's first (the comparison may have run it twice).
    first = {t: x.get("turns_images_per_s", [x["images_per_s"]])[0] for t, x in torch.items()}
    ratios = ", ".join(f'{r["images_per_s"] / first[t]:.2f}x {t[6:]}' for t in vs if t in torch)
    print(f'{name:<28} {"info":<8} {r["images_per_s"]:.0f} img/s, {r["median_ms"]:.2f} ms/step'
          f'{"; " + ratios if ratios else ""}{" (CUDA graph replays)" if r.get("cuda_graph") else ""}')
PY
)
  fi
  mark steps
else
  row "bench_resnet50" "FAIL" "not built"
fi
if [ -x "$build/apps/resnet50_cifar" ]; then
  # One full CIFAR-10-sized epoch (50,000 synthetic images) of the cifar
  # preset, test pass included, at the trainer's CUDA defaults (bf16,
  # channels_last, the step replayed from a CUDA graph: "default"). The
  # default runs three epochs: the first pays the one-off costs (eager first
  # steps, algorithm choice, the capture), the second captures the last,
  # smaller batch's graph, the third is what every later epoch costs; the
  # row gives the first and the last. Experiments (--experiments, or --only
  # naming epochs): one epoch without channels_last (--no-channels-last),
  # without either (--no-cuda-graph too: eager), and the defaults with
  # cuDNN's timed algorithm search (--cudnn-benchmark) instead of its
  # heuristics (--quick: the search only).
  modes=(default)
  if ((experiments)) || [ -n "$only" ]; then
    if ((quick)); then modes+=(search); else modes+=(graph-nchw eager search); fi
  fi
  wanted epochs || modes=()
  synthetic=0
  if ((${#modes[@]})) && stage "synthetic data" 15; then
    if bounded 120 "$build/apps/resnet50_cifar" make-synthetic --out "$logs/synthetic" --train 50000 --test 10000 \
      >/dev/null 2>"$logs/epoch.err"; then
      synthetic=1
    else
      failed "synthetic data" "see $logs/epoch.err"
    fi
  fi
  ((synthetic)) || modes=()
  for mode in "${modes[@]}"; do
    stage "cifar epoch 50k $mode" "$([ "$mode" = default ] && echo 60 || echo 40)" || continue
    flag=""
    [ "$mode" = search ] && flag="--cudnn-benchmark"
    [ "$mode" = graph-nchw ] && flag="--no-channels-last"
    [ "$mode" = eager ] && flag="--no-channels-last --no-cuda-graph"
    epochs=1
    [ "$mode" = default ] && epochs=3
    rm -f "$logs/epoch_$mode.jsonl"
    if bounded 240 "$build/apps/resnet50_cifar" train --data "$logs/synthetic" --preset cifar --epochs $epochs \
         --device cuda $flag --log "$logs/epoch_$mode.jsonl" >"$logs/epoch_$mode.out" 2>"$logs/epoch_$mode.err"; then
      line=$(python3 tools/epoch_row.py "$logs/epoch_$mode.jsonl" "$mode" "$logs/epoch_$mode.err" 2>>"$logs/epoch.err")
      if [ -n "$line" ]; then add_row "$line"; else row "cifar epoch 50k $mode" "FAIL" "no row (see epoch.err)"; fi
    else
      failed "cifar epoch 50k $mode" "see $logs/epoch_$mode.err"
    fi
  done
  mark epochs
  if ! wanted accuracy; then
    :
  elif ((quick)); then
    row "bf16 vs fp32 accuracy" "skip" "--quick (4 epochs of training; run without --quick)"
  elif stage "bf16 vs fp32 accuracy" 135; then
    # Numerics: the same run (the cifar preset for 2 epochs: its first SGDR
    # cycle, ending at the minimum rate; same seed and steps) in bf16 and in
    # fp32; the test accuracies on the 10,000 test images must agree within
    # 1 point. On the 100-class synthetic set (shape and colour both needed):
    # on the 10-class one, whose colour alone gives the class, both runs
    # reach 100% (a small CNN on the CPU does after one epoch) and the check
    # could not tell them apart; the row also gives the losses, and says
    # where the accuracies saturate anyway.
    if bounded 120 "$build/apps/resnet50_cifar" make-synthetic --dataset cifar100 --out "$logs/synthetic100" \
      --train 50000 --test 10000 >/dev/null 2>"$logs/numerics_data.err"; then
      acc_cut=0
      for p in bf16 fp32; do
        rm -f "$logs/numerics_$p.jsonl" "$logs/numerics_$p.failed"
        bounded 300 "$build/apps/resnet50_cifar" train --data "$logs/synthetic100" --dataset cifar100 --preset cifar \
          --epochs 2 --device cuda --precision "$p" --log "$logs/numerics_$p.jsonl" \
          >"$logs/numerics_$p.out" 2>"$logs/numerics_$p.err" || echo "failed" >"$logs/numerics_$p.failed"
        ((cut)) && { acc_cut=1; break; }
      done
      if ((acc_cut)); then
        row "bf16 vs fp32 accuracy" "skip" "the $p run stopped at --deadline ($(elapsed))"
      else
        line=$(python3 tools/accuracy_row.py "$logs/numerics_bf16.jsonl" "$logs/numerics_fp32.jsonl" --epochs 2 \
          --data "synthetic CIFAR-100" 2>>"$logs/numerics_row.err" | head -1)
        if [[ "$line" =~ ^bf16\ vs\ fp32\ accuracy\ +(ok|MISS|FAIL)\  ]]; then
          add_row "$line"
        else
          row "bf16 vs fp32 accuracy" "FAIL" "no row from tools/accuracy_row.py (see $logs/numerics_row.err)"
        fi
      fi
    else
      failed "bf16 vs fp32 accuracy" "the synthetic CIFAR-100 data: see $logs/numerics_data.err"
    fi
  fi
  mark accuracy
fi
# Where the default bf16 step's time goes as it runs (a CUDA graph replay,
# warm caches, the gaps between kernels), which a profiler timing kernels
# one by one cannot say: the step with every batch-norm kernel run twice, or
# left out, and with every convolution run twice (bench_resnet50
# --kernel-repeat; the values are then wrong), against the step as it is,
# in turns, the better of two runs each; the differences are each group's
# share, and what is left is the other kernels and the gaps.
if [ -x "$build/apps/bench_resnet50" ] && stage "r50 bf16 split" 75; then
  if bench_turns split 2 default bn2 conv2 bn0; then
    while IFS= read -r line; do add_row "$line"; done < <(python3 tools/turn_rows.py split "$logs")
  else
    row "r50 bf16 split" "skip" "stopped at --deadline ($(elapsed))"
  fi
  mark split
fi
# This tree against the baseline revision, after the epochs (which a
# --deadline must not squeeze out for it): the default bf16 step
# (channels_last), replayed from a CUDA graph and eager, the two binaries
# in turns (graph: twice each, the better run counts) in one run.
if ((baseline_built)) && [ -x "$build/apps/bench_resnet50" ] && stage "r50 vs baseline" 100; then
  rev=$(cat "$baseline/REVISION" 2>/dev/null || basename "$baseline")
  base_cut=0
  for turn in "this --cuda-graph" "baseline --cuda-graph" "this --cuda-graph" "baseline --cuda-graph" "this" \
    "baseline"; do
    read -r side mode <<<"$turn"
    bin="$build/apps/bench_resnet50"
    [ "$side" = baseline ] && bin="$bbuild/apps/bench_resnet50"
    echo "$side"
    bounded 120 "$bin" --device cuda --batch 256 --adam --precision bf16 --channels-last $mode \
      >"$logs/bench_baseline_run.json" 2>>"$logs/bench_baseline.err"
    ((cut)) && { base_cut=1; break; }
    tr -d '\n' <"$logs/bench_baseline_run.json"
    echo
  done >"$logs/bench_baseline.txt"
  if ((base_cut)); then
    row "r50 bf16 nhwc vs base" "skip" "stopped at --deadline ($(elapsed))"
  else
  while IFS= read -r line; do add_row "$line"; done < <(python3 - "$logs/bench_baseline.txt" "$rev" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().split("\n")
best = {}
for side, out in zip(lines[0::2], lines[1::2]):
    try:
        r = json.loads(out)
    except ValueError:
        continue
    key = (side, "graph" if r.get("cuda_graph") else "eager")
    if key not in best or r["images_per_s"] > best[key]["images_per_s"]:
        best[key] = r
for mode in ("graph", "eager"):
    t, b = best.get(("this", mode)), best.get(("baseline", mode))
    name = f"r50 bf16 nhwc {mode} vs base"
    if not t or not b:
        print(f'{name:<28} {"FAIL":<8} a run gave no result (see bench_baseline.err)'); continue
    host = f', host {t["host_ms"]:.1f} vs {b["host_ms"]:.1f} ms/step' if "host_ms" in t and "host_ms" in b else ""
    print(f'{name:<28} {"info":<8} {t["images_per_s"] / b["images_per_s"]:.3f}x img/s: this tree '
          f'{t["images_per_s"]:.0f} ({t["median_ms"]:.2f} ms), {sys.argv[2]} {b["images_per_s"]:.0f} '
          f'({b["median_ms"]:.2f} ms), peak {t["peak_memory_mib"]:.0f} vs {b["peak_memory_mib"]:.0f} MiB{host}')
PY
)
  fi
  mark baseline
fi
# What each speed feature brings (bench_resnet50 --no-relu-from-x,
# --no-grad-blend, --no-cast-together; the same values, but for the blend's
# one rounding of a bf16 sum): the default bf16
# step against the same without it, replayed from the graph with cuDNN's
# heuristics (both sides run the same convolution kernels), in turns, the
# better of two runs each; and what cuDNN's batch norm would bring
# (--cudnn-bn, off by default), the step with it against the default.
# Last of the timings: a --deadline drops it first.
if [ -x "$build/apps/bench_resnet50" ] && stage "r50 bf16 features" 90; then
  if bench_turns features 2 default relu-from-x grad-blend cast-together cudnn-bn; then
    while IFS= read -r line; do add_row "$line"; done < <(python3 tools/turn_rows.py features "$logs")
  else
    row "r50 bf16 features" "skip" "stopped at --deadline ($(elapsed))"
  fi
  mark features
fi
# Which of cuDNN's convolution + batch-norm fusions and batch-norm engines
# (graph API and legacy functions)
# the installed cuDNN builds for five of the step's convolutions, in bf16
# and fp16, against lrt's own passes on the same data (probe_cudnn_fusion;
# docs/performance.md, "Not done yet"). After the timings of the step: a
# --deadline drops it before them. The probe starts no graph after its own
# --deadline, 40 s before the stage's timeout (a runtime-compiled plan may
# take seconds to build); it runs bf16 over every shape first.
if [ -x "$build/apps/probe_cudnn_fusion" ] && stage "fusion probe" 120; then
  probe_s=$(cap 200)
  if bounded 200 "$build/apps/probe_cudnn_fusion" --max-plans 2 --deadline $(( probe_s > 50 ? probe_s - 40 : 10 )) \
    >"$logs/probe_cudnn_fusion.json" 2>"$logs/probe_cudnn_fusion.err" || ((!cut)); then
    while IFS= read -r line; do add_row "$line"; done < <(python3 tools/fusion_rows.py "$logs/probe_cudnn_fusion.json")
    [ -s "$logs/probe_cudnn_fusion.err" ] && row "fusion probe stderr" "info" "$(tail -n 1 "$logs/probe_cudnn_fusion.err")"
  else
    failed "fusion probe" "see $logs/probe_cudnn_fusion.err"
  fi
  mark fusion
fi
# Last, as the slowest and least essential: profiles (--profile).
if [ -z "$only" ] && ((!experiments)); then
  what="dependent launch, fused vs unfused and per-default steps, the split, the speed features, the fusion probe,"
  row "experiments" "skip" "without --experiments: $what the epochs without each default and with the algorithm search"
fi
fi  # !profile_only

if ((!profile)); then
  row "ncu profiles" "skip" "without --profile"
elif [ -x "$build/apps/bench_resnet50" ]; then
  if command -v ncu >/dev/null; then
    # Where one bf16 step's GPU time goes: Nsight Compute times each kernel
    # of one step after warm-up (alone, caches flushed: an upper bound per
    # kernel), with channels_last features (NCHW ones cost layout transposes
    # around every convolution, 5.0 ms of a 20 ms step when last profiled).
    if stage "ncu bf16 step" 60; then
      bounded 150 ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum \
        --csv "$build/apps/bench_resnet50" --device cuda --batch 256 --adam --precision bf16 --channels-last \
        --profile-step --repeat 1 >"$logs/ncu_bf16_step.csv" 2>"$logs/ncu.err"
      while IFS= read -r line; do add_row "$line"; done < <(python3 tools/ncu_summary.py "$logs/ncu_bf16_step.csv" \
        "ncu bf16 step" --top 10 --split --what "each timed alone; channels_last")
    fi
    # Why the batch-norm kernels take what they take: the same step again,
    # only lrt's batch-norm kernels, with the DRAM bytes each moves (so its
    # achieved bandwidth, against the copy's 4.16 TB/s), registers a thread,
    # theoretical and achieved occupancy, issue slots busy and the FP64
    # pipe's use (the reductions sum in double). Should ncu give no table
    # without having been stopped (a metric name it does not know), the pass
    # runs again with the first six metrics alone.
    if stage "ncu bn" 50; then
      bn_metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__registers_per_thread
      bn_metrics+=,sm__maximum_warps_per_active_cycle_pct,sm__warps_active.avg.pct_of_peak_sustained_active
      bn_extra=,sm__inst_issued.avg.pct_of_peak_sustained_active
      bn_extra+=,sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active
      for extra in "$bn_extra" ""; do
        [ -z "$extra" ] && { stage "ncu bn (core metrics)" 50 || break; }
        bounded 100 ncu --clock-control none --profile-from-start off --kernel-name regex:bn_ \
          --metrics "$bn_metrics$extra" --csv "$build/apps/bench_resnet50" --device cuda --batch 256 --adam \
          --precision bf16 --channels-last --profile-step --repeat 1 >"$logs/ncu_bn.csv" 2>"$logs/ncu_bn.err"
        rc=$?
        grep -q '^"ID"' "$logs/ncu_bn.csv" && break
        ((rc == 124 || rc == 137)) && break  # stopped: a second pass would be no quicker
        [ -n "$extra" ] && cp "$logs/ncu_bn.err" "$logs/ncu_bn_first.err"
      done
      while IFS= read -r line; do add_row "$line"; done < <(python3 tools/ncu_summary.py "$logs/ncu_bn.csv" "ncu bn" \
        --missing skip)
    fi
    # PyTorch's bf16 autocast + channels_last eager step (the comparison's
    # "torch bf16 eager") under the same profiler: where its time goes, by
    # kind of kernel beside lrt's split above, and its ten costliest kernels.
    if stage "ncu torch bf16 step" 70; then
      bounded 120 ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum \
        --csv python3 tools/bench_pytorch_resnet50.py --device cuda --batch 256 --adam --precision bf16 \
        --channels-last --profile-step --repeat 1 >"$logs/ncu_torch_step.csv" 2>"$logs/ncu_torch.err"
      while IFS= read -r line; do add_row "$line"; done < <(python3 tools/ncu_summary.py "$logs/ncu_torch_step.csv" \
        "ncu torch bf16 step" --top 10 --split --missing skip --what "each timed alone; PyTorch bf16 eager, channels_last")
    fi
  else
    row "ncu bf16 step" "skip" "ncu not found"
  fi
  mark profile
fi
trap '' TERM INT
timing_rows
row "total time" "info" "$(elapsed)${deadline:+ (deadline ${deadline}s)}"
summary ""
printf '%s\n' "${rows[@]}" | grep -qE '^.{29}(FAIL|MISS)' && exit 1
exit 0
