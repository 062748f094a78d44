#!/usr/bin/env bash
# resnet50_cifar's command line, end to end: every bad flag or file gives
# exit code 2 and one line on stderr, "resnet50_cifar: ...", naming the
# culprit; SIGINT during training saves a checkpoint that resumes.
# Usage: test_cli.sh RESNET50_CIFAR_BINARY
set -uo pipefail
bin=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/lrt-test-cli-XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

"$bin" make-synthetic --out "$work/data" --train 24 --test 8 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
data="$work/data"
mkdir -p "$work/empty"
# A safetensors file of some other model: one tensor named conv1.weight, shape (1).
printf '%s' '{"conv1.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   ' >"$work/header"
header_len=$(stat -c %s "$work/header")
{
  printf "\\x$(printf %02x "$header_len")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
  cat "$work/header"
  printf '\x00\x00\x80\x3f'
} >"$work/other.safetensors"
touch "$work/not-a-folder"

# expect_error DESCRIPTION SUBSTRING ARGS... : exit 2, exactly one stderr line
# starting "resnet50_cifar: " and containing SUBSTRING.
expect_error() {
  local what=$1 needle=$2
  shift 2
  local err rc lines
  err=$("$bin" "$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ "$rc" -ne 2 ]; then fail "$what: exit code $rc (expected 2): $err"; return; fi
  if [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr (expected 1): $err"; return; fi
  case "$err" in
    "resnet50_cifar: "*"$needle"*) echo "ok: $what -> $err" ;;
    *) fail "$what: message does not name '$needle': $err" ;;
  esac
}

expect_error "unknown flag" "--bogus" train --bogus
expect_error "unknown subcommand" "fly" fly
expect_error "missing value" "--lr" train --lr
expect_error "value of the wrong type" "--lr" train --lr abc
expect_error "negative learning rate" "--lr" train --lr -1
expect_error "zero epochs" "--epochs" train --epochs 0
expect_error "batch size not a number" "--batch-size" train --batch-size x
expect_error "unknown stem" "--stem" train --stem vgg
expect_error "unknown head" "--head" train --head mlp
expect_error "unknown optimizer" "--optimizer" train --optimizer rmsprop
expect_error "unknown schedule" "--schedule" train --schedule step
expect_error "unknown device" "--device" train --device tpu
expect_error "unknown precision" "--precision" train --precision fp16
expect_error "unknown preset" "--preset" train --preset imagenet
expect_error "missing data folder" "$work/nowhere" train --data "$work/nowhere"
expect_error "data folder without CIFAR files" "--data" train --data "$work/empty"
expect_error "data path is a file" "--data" train --data "$work/not-a-folder"
expect_error "split prefix matching nothing" "layer9" train --data "$data" --lr-groups layer9
expect_error "multiplier count" "--lr-mults" train --data "$data" --lr-groups layer3 --lr-mults 1,2,3
expect_error "SGDR T_mult below 1" "--sgdr-tmult" train --data "$data" --schedule sgdr --sgdr-tmult 0.5
expect_error "snapshots without SGDR" "--snapshots" train --data "$data" --snapshots
expect_error "missing init weights" "missing.safetensors" train --data "$data" --init-weights "$work/missing.safetensors"
expect_error "weights of another architecture" "--init-weights" train --data "$data" --init-weights "$work/other.safetensors"
expect_error "--no-strict alone" "--no-strict" train --data "$data" --no-strict
expect_error "missing checkpoint" "--resume" train --data "$data" --resume "$work/nothing"
expect_error "weights file given as a checkpoint" "not an lrt checkpoint" train --data "$data" --resume "$work/other.safetensors"
expect_error "checkpoint folder under a file" "--checkpoint-dir" train --data "$data" --checkpoint-dir "$work/not-a-folder/ck"
expect_error "log in a missing folder" "--log" train --data "$data" --log "$work/nowhere/run.jsonl"
expect_error "eval without weights" "--weights" eval --data "$data"
expect_error "eval of a missing file" "nothere.safetensors" eval --data "$data" --weights "$work/nothere.safetensors"
expect_error "eval without data" "--data" eval --weights "$work/other.safetensors"
expect_error "eval of another architecture" "--weights" eval --data "$data" --weights "$work/other.safetensors"
expect_error "predict without --out" "--out" predict --data "$data" --weights "$work/other.safetensors"
expect_error "lr-find with one step" "--steps" lr-find --data "$data" --steps 1
expect_error "lr-find with a negative start" "--start-lr" lr-find --data "$data" --start-lr -1
expect_error "lr-find ending below its start" "--end-lr" lr-find --data "$data" --start-lr 1 --end-lr 0.1

# SIGINT during training: a checkpoint, the resume command, exit 130; the
# checkpoint then resumes.
log="$work/run.jsonl"
"$bin" train --data "$data" --device cpu --batch-size 4 --epochs 50 --checkpoint-dir "$work/ck" --log "$log" \
  >"$work/train.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q '"event":"step"' "$log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -ne 130 ]; then fail "SIGINT: exit code $rc (expected 130): $(tail -3 "$work/train.out")"; fi
grep -q "resume with: resnet50_cifar train --resume" "$work/train.out" || fail "SIGINT: no resume command printed"
[ -f "$work/ck/checkpoint.safetensors" ] || fail "SIGINT: no checkpoint"
steps=$(grep -c '"event":"step"' "$log")
if "$bin" train --data "$data" --device cpu --batch-size 4 --epochs 50 --checkpoint-dir "$work/ck" \
     --resume "$work/ck" --max-steps $((steps + 1)) --log "$log" >"$work/resume.out" 2>&1; then
  grep -q "resumed from" "$work/resume.out" || fail "resume: no 'resumed from' line"
  [ "$(grep -c '"event":"step"' "$log")" -eq $((steps + 1)) ] || fail "resume: expected one more step in the log"
  echo "ok: SIGINT after $steps step(s) saved a checkpoint that resumed"
else
  fail "resume after SIGINT failed: $(tail -3 "$work/resume.out")"
fi

# A run that blows up: exit 3 naming the step, the last checkpoint untouched;
# with --skip-nonfinite the steps are skipped and counted instead.
before=$(md5sum "$work/ck/checkpoint.safetensors" | cut -d' ' -f1)
"$bin" train --data "$data" --device cpu --batch-size 4 --epochs 50 --checkpoint-dir "$work/ck" --resume "$work/ck" \
  --lr 1e38 --max-steps $((steps + 4)) >"$work/nan.out" 2>"$work/nan.err"
rc=$?
[ "$rc" -eq 3 ] || fail "non-finite loss: exit code $rc (expected 3): $(cat "$work/nan.err")"
grep -q "resnet50_cifar: step [0-9]* .*not finite" "$work/nan.err" || fail "non-finite loss: no message naming the step: $(cat "$work/nan.err")"
[ "$(md5sum "$work/ck/checkpoint.safetensors" | cut -d' ' -f1)" = "$before" ] || fail "non-finite loss: the checkpoint changed"
if "$bin" train --data "$data" --device cpu --batch-size 4 --epochs 1 --lr 1e38 --max-steps 4 --skip-nonfinite \
     --log "$work/skip.jsonl" >"$work/skip.out" 2>&1; then
  grep -q '"skipped":true' "$work/skip.jsonl" || fail "--skip-nonfinite: no skipped step in the log"
  grep -q "non-finite steps skipped" "$work/skip.out" || fail "--skip-nonfinite: no count in the summary"
  echo "ok: non-finite steps stop the run (exit 3) or are skipped with --skip-nonfinite"
else
  fail "--skip-nonfinite run failed: $(tail -3 "$work/skip.out")"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all command-line checks passed"
