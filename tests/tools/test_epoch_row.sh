#!/usr/bin/env bash
# Checks tools/epoch_row.py (the device check's epoch rows) on the log of a
# real training run (two epochs of two batches of 8 on the CPU, so the field
# names are the trainer's own), on a hand-written log of a CUDA run with
# graphs, and on what a run leaves when it fails. Exits 77 (skipped)
# without python3.
#   tests/tools/test_epoch_row.sh RESNET50_CIFAR_BINARY
set -u
here=$(cd "$(dirname "$0")" && pwd)
app=${1:?usage: test_epoch_row.sh RESNET50_CIFAR_BINARY}
[ -x "$app" ] || { echo "FAIL: $app is not an executable"; exit 1; }
. "$here/lib.sh"
tool_script epoch_row.py
# matches FILE REGEX: FILE's one line matches the extended REGEX.
matches() {
  [ "$(wc -l <"$1")" -eq 1 ] || fail "$(basename "$1"): $(wc -l <"$1") lines, not 1: $(cat "$1")"
  grep -qE -- "$2" "$1" || fail "$(basename "$1") does not match '$2'; it holds: $(cat "$1")"
}

# A real run: two epochs of two batches of 8, one test batch of 8.
"$app" make-synthetic --out "$tmp/data" --train 16 --test 8 >/dev/null 2>"$tmp/make.err" ||
  { echo "FAIL: make-synthetic: $(cat "$tmp/make.err")"; exit 1; }
OMP_NUM_THREADS=2 "$app" train --data "$tmp/data" --epochs 2 --batch-size 8 --device cpu --log "$tmp/cpu.jsonl" \
  >/dev/null 2>"$tmp/cpu.err" || { echo "FAIL: train: $(cat "$tmp/cpu.err")"; exit 1; }
"$py" "$script" "$tmp/cpu.jsonl" cpu "$tmp/cpu.err" >"$tmp/cpu.out" || fail "cpu log: status $?"
n='[0-9]+\.[0-9]+'
matches "$tmp/cpu.out" "^cifar epoch 50k cpu +info +epoch 2: $n s training \(fp32, contiguous; target <= 2\.5 s\), $n s with the test pass, [0-9]+ img/s, test acc $n%, peak memory [0-9]+ MiB \([0-9]+ MiB reserved\); epoch 1 \(one-off costs included\): $n s; on the device: 2 eager \(median $n ms, $n s\), $n s between steps$"

# A CUDA run with graphs (hand-written, as the trainer writes it): the
# replayed, captured and eager steps of the last epoch, the whole run's
# graph steps and test batches.
cat >"$tmp/cuda.jsonl" <<'LOG'
{"event":"start","step":0,"device":"cuda:0","precision":"bf16","memory_format":"channels_last"}
{"event":"epoch","epoch":1,"step":196,"test_acc":0.5,"images_per_s":11000,"train_seconds":4.4,"seconds":5.1,"time_split_ms":{"span":4400,"between_steps":300,"eager":{"steps":2,"total":150,"median":75},"captured":{"steps":1,"total":80,"median":80},"replayed":{"steps":193,"total":3200,"median":16.2}}}
{"event":"epoch","epoch":2,"step":392,"test_acc":0.9,"images_per_s":14000,"train_seconds":3.4,"seconds":4.0,"peak_memory_mib":3512.3,"reserved_memory_mib":4102.0,"time_split_ms":{"span":3400,"between_steps":200,"eager":{"steps":1,"total":60,"median":60},"replayed":{"steps":195,"total":3150,"median":16.1}}}
{"event":"end","step":392,"cuda_graph_steps":389,"cuda_graph_test_batches":77}
LOG
: >"$tmp/cuda.err"
"$py" "$script" "$tmp/cuda.jsonl" default "$tmp/cuda.err" >"$tmp/cuda.out" || fail "cuda log: status $?"
want="$(printf '%-28s %-8s %s' "cifar epoch 50k default" info "epoch 2: 3.40 s training (bf16, channels_last; target <= 2.5 s), 4.00 s with the test pass, 14000 img/s, test acc 90.0%, peak memory 3512 MiB (4102 MiB reserved); epoch 1 (one-off costs included): 4.40 s, 389 of 392 steps from the graph (the whole run), 77 test batches from the test-pass graph; on the device: 195 replayed (median 16.1 ms, 3.15 s), 1 eager (median 60.0 ms, 0.06 s), 0.20 s between steps")"
[ "$(cat "$tmp/cuda.out")" = "$want" ] || fail "cuda log: got '$(cat "$tmp/cuda.out")', want '$want'"

# A capture that failed (the run went on without a graph): FAIL, saying so.
echo "resnet50_cifar: --cuda-graph: the test pass: out of memory; it goes on without a graph" >"$tmp/failed.err"
"$py" "$script" "$tmp/cuda.jsonl" default "$tmp/failed.err" >"$tmp/failed.out"
matches "$tmp/failed.out" "^cifar epoch 50k default +FAIL +epoch 2: .*; CAPTURE FAILED: resnet50_cifar: --cuda-graph: the test pass: out of memory; it goes on without a graph;"

# A log without an epoch, an unreadable one, a missing one: one FAIL row, status 0.
head -1 "$tmp/cuda.jsonl" >"$tmp/noepoch.jsonl"
"$py" "$script" "$tmp/noepoch.jsonl" default >"$tmp/noepoch.out" || fail "noepoch: status $?"
matches "$tmp/noepoch.out" "^cifar epoch 50k default +FAIL +no epoch in "
echo '{"event":' >"$tmp/bad.jsonl"
"$py" "$script" "$tmp/bad.jsonl" default >"$tmp/bad.out" || fail "bad: status $?"
matches "$tmp/bad.out" "^cifar epoch 50k default +FAIL +unreadable log "
"$py" "$script" "$tmp/absent.jsonl" default >"$tmp/absent.out" || fail "absent: status $?"
matches "$tmp/absent.out" "^cifar epoch 50k default +FAIL +unreadable log "

# A null where a number belongs (the trainer writes null for a non-finite
# value): one FAIL row saying so.
sed 's/"median":16.1/"median":null/' "$tmp/cuda.jsonl" >"$tmp/null.jsonl"
"$py" "$script" "$tmp/null.jsonl" default >"$tmp/null.out" || fail "null: status $?"
matches "$tmp/null.out" "^cifar epoch 50k default +FAIL +unreadable epoch record \(TypeError: "

# Bad arguments: status 2.
"$py" "$script" "$tmp/cuda.jsonl" >/dev/null 2>&1
[ $? -eq 2 ] || fail "one argument did not exit with status 2"
finish epoch_row.py
