#!/usr/bin/env bash
# A save that cannot finish: a file-size limit (ulimit -f) far below a
# checkpoint's 280 MB makes the write fail halfway, as a full disk or quota
# would. The run must end with a clear error, not die from SIGXFSZ (exit
# 153): exit code 2, one stderr line "resnet50_cifar: ..." naming the file and
# "File too large"; the previous checkpoint (or weights file) byte-identical;
# no temporary file left behind.
# Usage: test_disk_full.sh RESNET50_CIFAR_BINARY
set -uo pipefail
. "$(dirname "$0")/lib.sh"
rel_init disk-full "${1:-}"

"$bin" make-synthetic --out "$work/data" --train 8 --test 4 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
run=(train --data "$work/data" --device cpu --batch-size 4 --train-subset 4 --test-subset 4)
ck=$work/ck/checkpoint.safetensors
w=$work/final.safetensors

# A good checkpoint and weights file first, with no limit.
if ! "$bin" "${run[@]}" --max-steps 1 --checkpoint-dir "$work/ck" --save-weights "$w" >"$work/setup.out" 2>&1; then
  echo "FAIL: the run without a limit failed: $(tail -3 "$work/setup.out")"
  exit 1
fi
ck_md5=$(md5sum <"$ck")
w_md5=$(md5sum <"$w")

# bash's ulimit -f counts 1024-byte blocks: 10 MiB, a few percent of a
# checkpoint and a tenth of the weights.
limit_kib=10240

# limited WHAT FILE OLD_MD5 ARGS...: runs ARGS under the limit and checks the
# outcome described at the top for FILE.
limited() {
  local what=$1 file=$2 old_md5=$3
  shift 3
  (ulimit -f "$limit_kib" && exec "$bin" "$@") >"$work/case.out" 2>"$work/case.err"
  local rc=$?
  if [ "$rc" -eq 153 ]; then
    fail "$what: killed by SIGXFSZ (exit 153) instead of reporting the failed write"
  elif check_one_line_error "$what" "$rc" "$work/case.err" "$file"; then
    grep -q "File too large" "$work/case.err" || fail "$what: the message does not say 'File too large': $(cat "$work/case.err")"
  fi
  if [ "$(md5sum <"$file")" = "$old_md5" ]; then
    ok "$what: the previous $(basename "$file") is byte-identical"
  else
    fail "$what: the previous $(basename "$file") changed"
  fi
  local left
  left=$(find "$work" -name '*.tmp')
  if [ -z "$left" ]; then ok "$what: no temporary file left"; else fail "$what: left behind: $left"; fi
}

# The resumed run trains one more step, then its checkpoint save hits the limit.
limited "checkpoint save over the file-size limit" "$ck" "$ck_md5" \
  "${run[@]}" --resume "$work/ck" --checkpoint-dir "$work/ck" --max-steps 2 --log "$work/run.jsonl"
# The final weights, with no checkpoint in the way.
limited "--save-weights over the file-size limit" "$w" "$w_md5" "${run[@]}" --max-steps 1 --save-weights "$w"

# The intact checkpoint still resumes once there is room again.
if "$bin" "${run[@]}" --resume "$work/ck" --checkpoint-dir "$work/ck" --max-steps 2 >"$work/resume.out" 2>&1 &&
   grep -q "resumed from" "$work/resume.out"; then
  ok "the checkpoint kept through the failed save resumes and saves"
else
  fail "resuming after the failed save: $(tail -3 "$work/resume.out")"
fi

rel_finish
