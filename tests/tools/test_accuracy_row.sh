#!/usr/bin/env bash
# Checks tools/accuracy_row.py (the device check's bf16-against-fp32
# accuracy row) on the log of a real training run on the 100-class synthetic
# set (two epochs of two batches of 8 on the CPU, so the field names are the
# trainer's own), on hand-written logs (within the point, beyond it, both at
# 100%), and on what failed or stopped runs leave. Exits 77 (skipped)
# without python3.
#   tests/tools/test_accuracy_row.sh RESNET50_CIFAR_BINARY
set -u
here=$(cd "$(dirname "$0")" && pwd)
app=${1:?usage: test_accuracy_row.sh RESNET50_CIFAR_BINARY}
[ -x "$app" ] || { echo "FAIL: $app is not an executable"; exit 1; }
. "$here/lib.sh"
tool_script accuracy_row.py
name='bf16 vs fp32 accuracy'
# row BF16_LOG FP32_LOG [ARGS...]: the tool's one line in $got, its status in $rc.
row() {
  got=$("$py" "$script" "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] || fail "$*: status $rc: $got"
  [ "$(wc -l <<<"$got")" -eq 1 ] || fail "$*: not one line: $got"
}
# epoch FILE EPOCH TEST_ACC TEST_LOSS TRAIN_LOSS [EXTRA]: appends an epoch record.
epoch() {
  printf '{"event":"epoch","epoch":%s,"step":%s,"train_loss":%s,"train_acc":0.9,"test_loss":%s,"test_acc":%s%s}\n' \
    "$2" "$((196 * $2))" "$5" "$4" "$3" "${6:-}" >>"$1"
}

# A real run: the trainer's own field names.
"$app" make-synthetic --dataset cifar100 --out "$tmp/data" --train 16 --test 8 >/dev/null 2>"$tmp/make.err" ||
  { echo "FAIL: make-synthetic: $(cat "$tmp/make.err")"; exit 1; }
OMP_NUM_THREADS=2 "$app" train --data "$tmp/data" --dataset cifar100 --epochs 2 --batch-size 8 --device cpu \
  --precision bf16 --log "$tmp/real.jsonl" >/dev/null 2>"$tmp/real.err" ||
  { echo "FAIL: train: $(cat "$tmp/real.err")"; exit 1; }
row "$tmp/real.jsonl" "$tmp/real.jsonl" --data "synthetic CIFAR-100"
n='[0-9]+\.[0-9]+'
grep -qE "^$name +ok +test acc $n% bf16, $n% fp32: 0\.00 points apart \(target <= 1\) on synthetic CIFAR-100 after 2 epoch\(s\); test loss $n bf16, $n fp32; last epoch's training loss $n bf16, $n fp32$" \
  <<<"$got" || fail "the real run's row: $got"

# Within the point, beyond it, both at 100% (said so), another epoch count.
epoch "$tmp/a.jsonl" 1 0.5 2.0 3.0
epoch "$tmp/a.jsonl" 2 0.955 0.2 0.25
epoch "$tmp/b.jsonl" 1 0.5 2.0 3.0
epoch "$tmp/b.jsonl" 2 0.95 0.21 0.26
row "$tmp/a.jsonl" "$tmp/b.jsonl"
want=$(printf '%-28s %-8s %s' "$name" ok "test acc 95.50% bf16, 95.00% fp32: 0.50 points apart (target <= 1) after 2 epoch(s); test loss 0.2000 bf16, 0.2100 fp32; last epoch's training loss 0.2500 bf16, 0.2600 fp32")
[ "$got" = "$want" ] || fail "within the point: got '$got', want '$want'"
epoch "$tmp/c.jsonl" 2 0.93 0.3 0.35
row "$tmp/a.jsonl" "$tmp/c.jsonl"
grep -qE "^$name +MISS +test acc 95\.50% bf16, 93\.00% fp32: 2\.50 points apart \(target <= 1\)" <<<"$got" ||
  fail "beyond the point: $got"
epoch "$tmp/d.jsonl" 2 1.0 0.001 0.002
epoch "$tmp/e.jsonl" 2 0.998 0.003 0.004
row "$tmp/d.jsonl" "$tmp/e.jsonl"
grep -qE "^$name +ok +test acc 100\.00% bf16, 99\.80% fp32: 0\.20 points .*; both at or near 100%: the accuracies cannot tell the precisions apart here, the losses can$" \
  <<<"$got" || fail "both saturated: $got"
row "$tmp/a.jsonl" "$tmp/b.jsonl" --epochs 3
grep -qE "^$name +FAIL +no result \(a\.jsonl: stopped at epoch 2 of 3;" <<<"$got" || fail "--epochs 3: $got"

# What failed or stopped runs leave: one FAIL row naming the log, status 0.
echo failed >"$tmp/a.failed"
row "$tmp/a.jsonl" "$tmp/b.jsonl"
grep -qE "^$name +FAIL +no result \(a\.jsonl: the run failed;" <<<"$got" || fail "a failed run: $got"
rm "$tmp/a.failed"
epoch "$tmp/partial.jsonl" 2 0.95 0.2 0.25 ',"partial":true'
row "$tmp/a.jsonl" "$tmp/partial.jsonl"
grep -qE "^$name +FAIL +no result \(partial\.jsonl: stopped at epoch 2 of 2;" <<<"$got" || fail "a partial epoch: $got"
epoch "$tmp/notest.jsonl" 2 null 0.2 0.25
row "$tmp/notest.jsonl" "$tmp/a.jsonl"
grep -qE "^$name +FAIL +no result \(notest\.jsonl: no test accuracy" <<<"$got" || fail "no test set: $got"
: >"$tmp/empty.jsonl"
row "$tmp/empty.jsonl" "$tmp/a.jsonl"
grep -qE "^$name +FAIL +no result \(empty\.jsonl: no epoch ended;" <<<"$got" || fail "no epoch: $got"
echo "not json" >"$tmp/garbled.jsonl"
row "$tmp/a.jsonl" "$tmp/garbled.jsonl"
grep -qE "^$name +FAIL +no result \(garbled\.jsonl: not a JSON-lines log;" <<<"$got" || fail "a garbled log: $got"
row "$tmp/missing.jsonl" "$tmp/a.jsonl"
grep -qE "^$name +FAIL +no result \(missing\.jsonl: No such file or directory;" <<<"$got" || fail "a missing log: $got"

# Bad arguments: exit 2.
for args in "" "$tmp/a.jsonl" "$tmp/a.jsonl $tmp/b.jsonl --epochs 0" "$tmp/a.jsonl $tmp/b.jsonl --epochs x"; do
  # shellcheck disable=SC2086
  "$py" "$script" $args >/dev/null 2>&1
  rc=$?
  [ "$rc" -eq 2 ] || fail "arguments '$args': status $rc, not 2"
done

finish test_accuracy_row
