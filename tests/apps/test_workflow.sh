#!/usr/bin/env bash
# resnet50_cifar's subcommands working together on tiny synthetic data:
# train with SGDR snapshots, eval of the snapshots and their ensemble,
# predict to CSV, lr-find to CSV, and the keras-seed preset's groups.
# Usage: test_workflow.sh RESNET50_CIFAR_BINARY
set -uo pipefail
bin=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/lrt-test-workflow-XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

"$bin" make-synthetic --out "$work/data" --train 16 --test 8 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
data="$work/data"
common=(--data "$data" --device cpu --batch-size 4 --no-augment)

# Two SGDR cycles of 2 steps each -> two snapshots.
if "$bin" train "${common[@]}" --epochs 1 --schedule sgdr --sgdr-t0-steps 2 --snapshots --checkpoint-dir "$work/ck" \
     --save-weights "$work/final.safetensors" --log "$work/run.jsonl" >"$work/train.out" 2>&1; then
  check "snapshot 1 written" test -f "$work/ck/snapshot-cycle1.safetensors"
  check "snapshot 2 written" test -f "$work/ck/snapshot-cycle2.safetensors"
  check "checkpoint written" test -f "$work/ck/checkpoint.safetensors"
  check "final weights written" test -f "$work/final.safetensors"
  check "cycle_end events name the snapshots" grep -q '"event":"cycle_end","cycle":2,"step":4,"snapshot":".*snapshot-cycle2.safetensors"' "$work/run.jsonl"
  check "epoch summary printed" grep -q "epoch 1/1: train loss" "$work/train.out"
else
  fail "train: $(tail -3 "$work/train.out")"
fi

if "$bin" eval --data "$data" --device cpu --no-cuda-graph \
     --weights "$work/ck/snapshot-cycle1.safetensors,$work/ck/snapshot-cycle2.safetensors" >"$work/eval.out" 2>&1; then
  check "eval reports each file" test "$(grep -c '.safetensors: accuracy ' "$work/eval.out")" -eq 2
  check "eval reports the ensemble" grep -q "ensemble of 2 (averaged softmax): accuracy" "$work/eval.out"
else
  fail "eval: $(tail -3 "$work/eval.out")"
fi

if "$bin" predict --data "$data" --device cpu --weights "$work/final.safetensors" --out "$work/pred.csv" >"$work/predict.out" 2>&1; then
  check "predict header" test "$(head -1 "$work/pred.csv")" = "index,label,pred,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9"
  check "predict has a row per test image" test "$(tail -n +2 "$work/pred.csv" | wc -l)" -eq 8
  # Each row's probabilities sum to 1 and pred is their argmax.
  check "predict rows are distributions" awk -F, 'NR > 1 { s = 0; best = 4; for (i = 4; i <= NF; ++i) { s += $i; if ($i > $best) best = i }
      if (s < 0.999 || s > 1.001 || best - 4 != $3) bad = 1 } END { exit bad }' "$work/pred.csv"
else
  fail "predict: $(tail -3 "$work/predict.out")"
fi

if "$bin" lr-find "${common[@]}" --steps 6 --start-lr 1e-5 --end-lr 1 --out "$work/lr.csv" >"$work/lr.out" 2>&1; then
  check "lr-find CSV header" test "$(head -1 "$work/lr.csv")" = "lr,loss,smoothed"
  check "lr-find CSV rows" test "$(tail -n +2 "$work/lr.csv" | wc -l)" -ge 2
  check "lr-find suggests a rate" grep -q "suggested lr:" "$work/lr.out"
else
  fail "lr-find: $(tail -3 "$work/lr.out")"
fi

# The keras-seed preset: three groups at 1e-7, 1e-4 and 1e-2 on the first step.
if "$bin" train --preset keras-seed --data "$data" --device cpu --max-steps 1 --log "$work/keras.jsonl" >"$work/keras.out" 2>&1; then
  check "keras-seed preset group rates" grep -q '"step":1,.*"lr":\[1e-07,0.0001,0.01\]' "$work/keras.jsonl"
else
  fail "keras-seed preset: $(tail -3 "$work/keras.out")"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all workflow checks passed"
