#!/usr/bin/env bash
# A catalogue of bad inputs to resnet50_cifar: flags, data folders, weights
# files, checkpoints and output paths. For each: exit code 2, exactly one
# stderr line "resnet50_cifar: ..." naming the culprit, and no file changed:
# every file under the test's folder (data, weights, checkpoints and existing
# --log / --save-weights / --out targets) has the same md5 and mtime after the
# run as before, and nothing was created or removed.
# Usage: test_bad_inputs.sh RESNET50_CIFAR_BINARY
set -uo pipefail
. "$(dirname "$0")/lib.sh"
rel_init bad-inputs "${1:-}"

# Everything the runs could damage lives under $F; their own output goes to
# $work/out, outside the snapshots.
F=$work/files
mkdir -p "$F" "$work/out"

# ---- fixtures ----------------------------------------------------------------
"$bin" make-synthetic --out "$F/data" --train 16 --test 8 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
"$bin" make-synthetic --out "$F/data100" --dataset cifar100 --train 8 --test 4 >/dev/null ||
  { echo "FAIL: make-synthetic cifar100"; exit 1; }
D=$F/data/cifar-10-batches-bin
# One step gives a real checkpoint, a real weights file and a non-empty log.
small=(--device cpu --batch-size 4 --train-subset 4 --test-subset 4)
if ! "$bin" train --data "$F/data" "${small[@]}" --max-steps 1 --checkpoint-dir "$F/ck" \
     --save-weights "$F/w.safetensors" --log "$F/existing.jsonl" >"$work/out/setup.out" 2>&1; then
  echo "FAIL: could not make the fixture checkpoint: $(tail -3 "$work/out/setup.out")"
  exit 1
fi
ck=$F/ck/checkpoint.safetensors
w=$F/w.safetensors

# A safetensors file of some other model: one tensor conv1.weight of shape (1).
printf '%s' '{"conv1.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   ' >"$work/out/header"
{
  printf "\\x$(printf %02x "$(stat -c %s "$work/out/header")")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
  cat "$work/out/header"
  printf '\x00\x00\x80\x3f'
} >"$F/other.safetensors"
printf 'these are notes, not tensors\n' >"$F/notes.txt"
: >"$F/empty.safetensors"
head -c 1000000 "$w" >"$F/trunc-w.safetensors"
head -c 100000000 "$ck" >"$F/trunc-ck.safetensors"
mkdir -p "$F/folder.safetensors" "$F/empty-folder" "$F/a-folder"
touch "$F/not-a-folder"
# Existing output targets that a failed run must not truncate.
cp "$F/other.safetensors" "$F/existing.safetensors"
printf 'lr,loss,smoothed\n0.1,2.3,2.3\n' >"$F/existing.csv"

# Broken copies of the CIFAR-10 folder, one defect each.
broken() {  # broken NAME: a fresh copy of the data folder as $F/NAME
  cp -r "$D" "$F/$1"
  echo "$F/$1"
}
rm "$(broken missing-file)/data_batch_3.bin"
truncate -s -100 "$(broken truncated)/data_batch_2.bin"
printf 'x' >>"$(broken one-byte-more)/test_batch.bin"
: >"$(broken empty-file)/data_batch_1.bin"
bad_label=$(broken bad-label)
printf '\xc8' | dd of="$bad_label/data_batch_1.bin" bs=1 seek=3073 conv=notrunc status=none  # record 1's label: 200
bf=$(broken batch-is-folder)
rm "$bf/data_batch_4.bin" && mkdir "$bf/data_batch_4.bin"
printf 'cat\ndog\nbird\n' >"$(broken three-names)/batches.meta.txt"

# ---- the catalogue -------------------------------------------------------------
cases=0
# bad [--cwd DIR] WHAT NEEDLE ARGS...: one bad run, checked as described at
# the top, with the files under $F compared before and after.
bad() {
  local cwd=$work/out
  if [ "$1" = --cwd ]; then
    cwd=$2
    shift 2
  fi
  local what=$1 needle=$2
  shift 2
  cases=$((cases + 1))
  local rc
  # Not before=$(snapshot ...): a subshell would lose snapshot's md5 cache.
  snapshot "$F" >"$work/out/before"
  (cd "$cwd" && exec "$bin" "$@") >"$work/out/case.out" 2>"$work/out/case.err"
  rc=$?
  snapshot "$F" >"$work/out/after"
  check_one_line_error "$what" "$rc" "$work/out/case.err" "$needle" || return
  if ! cmp -s "$work/out/before" "$work/out/after"; then
    fail "$what: files changed: $(diff "$work/out/before" "$work/out/after" | grep '^[<>]' | head -6)"
  fi
}

T=(train --data "$F/data" "${small[@]}")

# Flags (refused while parsing, or by the checks before any data is read).
bad "unknown flag" "--bogus" train --bogus
bad "unknown command" "fly" fly
bad "learning rate not a number" "--lr" "${T[@]}" --lr abc
bad "zero learning rate" "--lr" "${T[@]}" --lr 0
bad "NaN learning rate" "--lr" "${T[@]}" --lr nan
bad "zero epochs" "--epochs" "${T[@]}" --epochs 0
bad "zero batch size" "--batch-size" train --batch-size 0
bad "huge batch size" "--batch-size" train --batch-size 100000
bad "negative --max-steps" "--max-steps" "${T[@]}" --max-steps -1
bad "negative --train-subset" "--train-subset" train --train-subset -5
bad "unknown dataset" "--dataset" train --dataset imagenet
bad "unknown normalisation" "--normalize" train --normalize zscore
bad "unknown optimizer" "--optimizer" train --optimizer rmsprop
bad "unknown schedule" "--schedule" train --schedule step
bad "unknown stem" "--stem" train --stem vgg
bad "unknown preset" "--preset" train --preset imagenet
bad "unknown device" "--device" train --device tpu
LRT_PDL=yes bad "bad LRT_PDL" "LRT_PDL='yes'" "${T[@]}"
bad "flag given twice" "--lr" "${T[@]}" --lr 1 --lr 2
bad "lr-find with one step" "--steps" lr-find --data "$F/data" --steps 1
bad "make-synthetic without --out" "--out" make-synthetic
# Flags refused once the model exists.
bad "split prefix matching nothing" "layer9" "${T[@]}" --lr-groups layer9
bad "multiplier count" "--lr-mults" "${T[@]}" --lr-groups layer3 --lr-mults 1,2,3
bad "multiplier not a number" "--lr-mults" "${T[@]}" --lr-mults abc
bad "SGDR T_mult below 1" "--sgdr-tmult" "${T[@]}" --schedule sgdr --sgdr-tmult 0.5
bad "SGDR decay above 1" "--sgdr-decay" "${T[@]}" --schedule sgdr --sgdr-decay 2
bad "snapshots without SGDR" "--snapshots" "${T[@]}" --snapshots
bad "--no-strict without --init-weights" "--no-strict" "${T[@]}" --no-strict
bad "Adam beta1 of 1.5" "--beta1" "${T[@]}" --beta1 1.5
bad "negative Adam epsilon" "--eps" "${T[@]}" --eps -1

# Data folders.
bad "missing data folder" "$F/nowhere" train --data "$F/nowhere" --device cpu
bad "empty data folder" "--data" train --data "$F/empty-folder"
bad "data path is a file" "--data" train --data "$F/not-a-folder"
bad "a batch file missing" "data_batch_3.bin" train --data "$F/missing-file" --device cpu
bad "a truncated batch file" "data_batch_2.bin" train --data "$F/truncated" --device cpu
bad "test file one byte too long" "test_batch.bin" train --data "$F/one-byte-more" --device cpu
bad "an empty batch file" "data_batch_1.bin" train --data "$F/empty-file" --device cpu
bad "a label out of range" "record 1 has label 200" train --data "$F/bad-label" --device cpu
bad "a batch file that is a folder" "data_batch_4.bin" train --data "$F/batch-is-folder" --device cpu
bad "class-name file with 3 names" "batches.meta.txt" train --data "$F/three-names" --device cpu
bad "CIFAR-100 folder read as CIFAR-10" "CIFAR-10" train --data "$F/data100" --device cpu
bad "CIFAR-10 folder read as CIFAR-100" "CIFAR-100" train --data "$F/data" --dataset cifar100 --device cpu
bad "eval of a missing data folder" "$F/nowhere" eval --data "$F/nowhere" --device cpu --weights "$w"

# Weights files.
bad "missing --init-weights" "missing.safetensors" "${T[@]}" --init-weights "$F/missing.safetensors"
bad "--init-weights of another model" "--init-weights" "${T[@]}" --init-weights "$F/other.safetensors"
bad "--init-weights a text file" "notes.txt" "${T[@]}" --init-weights "$F/notes.txt"
bad "--init-weights an empty file" "empty.safetensors" "${T[@]}" --init-weights "$F/empty.safetensors"
bad "--init-weights truncated" "trunc-w.safetensors" "${T[@]}" --init-weights "$F/trunc-w.safetensors"
bad "--init-weights a folder" "folder.safetensors" "${T[@]}" --init-weights "$F/folder.safetensors"
bad "--init-weights a checkpoint" "--init-weights" "${T[@]}" --init-weights "$ck"
bad "eval of a truncated file" "trunc-w.safetensors" eval --data "$F/data" --device cpu --weights "$F/trunc-w.safetensors"
bad "eval of a good and a missing file" "missing.safetensors" eval --data "$F/data" --device cpu \
  --weights "$w,$F/missing.safetensors"
bad "eval with an empty list item" "--weights" eval --data "$F/data" --device cpu --weights "$w,,$w"
bad "eval --cuda-graph on the CPU" "--cuda-graph" eval --data "$F/data" --device cpu --weights "$w" --cuda-graph
bad "predict --cuda-graph on the CPU over an existing CSV" "--cuda-graph" predict --data "$F/data" --device cpu \
  --weights "$w" --cuda-graph --out "$F/existing.csv"
bad "eval with the wrong stem" "--weights" eval --data "$F/data" --device cpu --weights "$w" --stem imagenet
bad "eval of 10-class weights on CIFAR-100" "--weights" eval --data "$F/data100" --dataset cifar100 --device cpu \
  --weights "$w"
bad "predict of a truncated file over an existing CSV" "trunc-w.safetensors" predict --data "$F/data" --device cpu \
  --weights "$F/trunc-w.safetensors" --out "$F/existing.csv"
bad "predict --out a folder" "--out" predict --data "$F/data" --device cpu --weights "$w" --out "$F/a-folder"
bad "predict --out in a missing folder" "--out" predict --data "$F/data" --device cpu --weights "$w" \
  --out "$F/nowhere/p.csv"
bad --cwd /proc "predict --out in an unwritable folder" "--out" predict --data "$F/data" --device cpu --weights "$w" \
  --out p.csv

# Checkpoints.
bad "--resume of a missing path" "--resume" "${T[@]}" --resume "$F/nothing"
bad "--resume of a weights file" "not an lrt checkpoint" "${T[@]}" --resume "$w"
bad "--resume of a truncated checkpoint" "trunc-ck.safetensors" "${T[@]}" --resume "$F/trunc-ck.safetensors"
bad "--resume of an empty file" "empty.safetensors" "${T[@]}" --resume "$F/empty.safetensors"
bad "--resume with another batch size" "batch_size" train --data "$F/data" --device cpu --train-subset 4 \
  --test-subset 4 --batch-size 2 --resume "$F/ck"
bad "--resume with another training subset" "train_subset" train --data "$F/data" --device cpu --train-subset 8 \
  --test-subset 4 --batch-size 4 --resume "$F/ck"
bad "--resume with another seed" "seed" "${T[@]}" --seed 5 --resume "$F/ck"
bad "--resume with another optimizer" "--resume" "${T[@]}" --optimizer sgd --resume "$F/ck"
bad "--resume with another stem" "--resume" "${T[@]}" --stem imagenet --resume "$F/ck"
bad "--resume with another group split" "--resume" "${T[@]}" --lr-groups layer3 --resume "$F/ck"
bad "--checkpoint-dir under a file" "--checkpoint-dir" "${T[@]}" --checkpoint-dir "$F/not-a-folder/ck"

# Output paths: existing files must survive a run that fails early.
bad "bad --lr-groups with an existing --log" "layer9" "${T[@]}" --log "$F/existing.jsonl" --lr-groups layer9
bad "incompatible --resume with an existing --log" "batch_size" train --data "$F/data" --device cpu \
  --train-subset 4 --test-subset 4 --batch-size 2 --resume "$F/ck" --log "$F/existing.jsonl"
bad "bad data with an existing --save-weights" "data_batch_2.bin" train --data "$F/truncated" --device cpu \
  --save-weights "$F/existing.safetensors" --log "$F/existing.jsonl"
bad "bad --init-weights with existing outputs" "--init-weights" "${T[@]}" --init-weights "$F/other.safetensors" \
  --save-weights "$F/existing.safetensors" --log "$F/existing.jsonl" --checkpoint-dir "$F/ck"
bad "lr-find: bad --lr-groups with an existing --out" "layer9" lr-find --data "$F/data" "${small[@]}" \
  --lr-groups layer9 --out "$F/existing.csv"
bad "lr-find: missing data with an existing --out" "$F/nowhere" lr-find --data "$F/nowhere" --out "$F/existing.csv"
bad "--log a folder" "--log" "${T[@]}" --log "$F/a-folder"
bad "--save-weights a folder" "--save-weights" "${T[@]}" --save-weights "$F/a-folder"
bad "--log in a missing folder" "--log" "${T[@]}" --log "$F/nowhere/run.jsonl"
# --snapshots without --checkpoint-dir or --save-weights writes into the
# current folder; an unwritable one must be refused before the log is opened.
bad --cwd /proc "snapshots into an unwritable current folder, existing --log" "--snapshots" "${T[@]}" \
  --schedule sgdr --snapshots --log "$F/existing.jsonl"
# A new --checkpoint-dir must not be left behind by a run refused later.
bad "new --checkpoint-dir with a bad --lr-groups" "layer9" "${T[@]}" --checkpoint-dir "$F/new-ck" --lr-groups layer9

[ "$cases" -ge 40 ] || fail "only $cases cases in the catalogue (expected at least 40)"
echo "$cases bad inputs checked"
rel_finish
