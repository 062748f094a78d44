#!/usr/bin/env bash
# Output folders that cannot be written: an existing read-only --checkpoint-dir,
# a missing one whose parent is read-only or is a file, and --save-weights,
# --log and lr-find --out in a read-only folder. Each run must stop with one
# line on stderr naming the folder (exit 2) before any training time is
# spent: quickly, before the "training ResNet50" line, with no "step" event in
# the log.
#
# chmod 555 does not stop root, who may run this test (CI containers often
# do). The script checks whether chmod really makes a folder read-only here
# and otherwise uses /proc, where nobody can create files, and says which way
# it used.
# Usage: test_readonly.sh RESNET50_CIFAR_BINARY
set -uo pipefail
. "$(dirname "$0")/lib.sh"
rel_init readonly "${1:-}"

"$bin" make-synthetic --out "$work/data" --train 8 --test 4 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
mkdir -p "$work/logs"
touch "$work/a-file"

mkdir "$work/ro"
chmod 555 "$work/ro"
if touch "$work/ro/probe" 2>/dev/null; then
  rm -f "$work/ro/probe"
  way="/proc (chmod 555 does not stop this user, uid $(id -u), from writing)"
  ro=/proc
else
  way="chmod 555"
  ro=$work/ro
fi
echo "read-only folders: $way"
# The read-only folder itself must refuse a new file, or the test means nothing.
if touch "$ro/lrt-probe-$$" 2>/dev/null; then
  rm -f "$ro/lrt-probe-$$"
  echo "FAIL: '$ro' is writable; cannot test read-only folders here"
  exit 1
fi

# The run would take minutes if it started training: 30 epochs.
train=(train --data "$work/data" --device cpu --batch-size 4 --train-subset 4 --test-subset 4 --epochs 30)
max_seconds=5  # far below the model's set-up and a training step

# refused WHAT NEEDLE ARGS...: the checks described at the top. A train run
# logs to $work/logs/run.jsonl unless ARGS give their own --log.
refused() {
  local what=$1 needle=$2
  shift 2
  local log=$work/logs/run.jsonl
  rm -f "$log"
  local args=("$@")
  if [ "$1" = train ]; then
    case " $* " in *" --log "*) ;; *) args+=(--log "$log") ;; esac
  fi
  local start end rc ms
  start=$(date +%s%N)
  "$bin" "${args[@]}" >"$work/case.out" 2>"$work/case.err"
  rc=$?
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  check_one_line_error "$what" "$rc" "$work/case.err" "$needle" || return
  if grep -q '"event":"step"' "$log" 2>/dev/null; then fail "$what: a step reached the log"; fi
  if grep -Eq '^training ResNet50|^epoch ' "$work/case.out"; then
    fail "$what: training started before the error: $(grep -E -m1 '^training ResNet50|^epoch ' "$work/case.out")"
  fi
  if [ "$ms" -gt $((max_seconds * 1000)) ]; then
    fail "$what: took $ms ms to refuse (expected under $max_seconds s: the check must come before the model is built)"
  else
    ok "$what: refused after $ms ms"
  fi
}

refused "existing read-only --checkpoint-dir" "'$ro'" "${train[@]}" --checkpoint-dir "$ro"
refused "missing --checkpoint-dir in a read-only folder" "$ro/ck" "${train[@]}" --checkpoint-dir "$ro/ck"
refused "missing --checkpoint-dir two levels under a read-only folder" "$ro/deeper/ck" "${train[@]}" \
  --checkpoint-dir "$ro/deeper/ck"
refused "missing --checkpoint-dir under a file" "$work/a-file/ck" "${train[@]}" --checkpoint-dir "$work/a-file/ck"
refused "--checkpoint-dir that is a file" "$work/a-file" "${train[@]}" --checkpoint-dir "$work/a-file"
refused "--save-weights in a read-only folder" "'$ro'" "${train[@]}" --save-weights "$ro/final.safetensors"
refused "--log in a read-only folder" "'$ro'" "${train[@]}" --log "$ro/run.jsonl"
refused "--snapshots into a read-only --checkpoint-dir" "'$ro'" "${train[@]}" --schedule sgdr --snapshots \
  --checkpoint-dir "$ro"
refused "lr-find --out in a read-only folder" "'$ro'" lr-find --data "$work/data" --device cpu --batch-size 4 \
  --train-subset 4 --steps 5 --out "$ro/lr.csv"

# Nothing was left behind in the read-only folder by the write probes.
if [ "$ro" = "$work/ro" ] && [ -n "$(ls -A "$work/ro")" ]; then fail "files left in the read-only folder: $(ls -A "$work/ro")"; fi

rel_finish
