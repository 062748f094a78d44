#!/usr/bin/env bash
# Damaged files through resnet50_cifar's command line: single bit flips at
# chosen offsets (the header length, the JSON header's structure, names,
# dtypes, shapes, offsets, checksums, and the tensor data) and truncations at
# several lengths, in a training checkpoint (train --resume) and in a weights
# file (train --init-weights, eval --weights). Each must be refused with one
# line "resnet50_cifar: ..." naming the file and exit code 2: no crash (no
# signal), no sanitizer report, no other exit code.
#
# A checkpoint carries checksums over every tensor and every metadata entry,
# and a weights file written by lrt one over every tensor (in its metadata),
# so any flip anywhere is caught: in the header by validation or the
# checksums, in the data by the checksums.
# Usage: test_corrupt.sh RESNET50_CIFAR_BINARY
set -uo pipefail
. "$(dirname "$0")/lib.sh"
rel_init corrupt "${1:-}"

"$bin" make-synthetic --out "$work/data" --train 8 --test 4 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
run=(--data "$work/data" --device cpu --batch-size 4 --train-subset 4 --test-subset 4)
if ! "$bin" train "${run[@]}" --max-steps 1 --checkpoint-dir "$work/ck" --save-weights "$work/w.safetensors" \
     >"$work/setup.out" 2>&1; then
  echo "FAIL: could not make the checkpoint and weights to damage: $(tail -3 "$work/setup.out")"
  exit 1
fi
ck=$work/ck/checkpoint.safetensors
w=$work/w.safetensors

# header_length FILE: the little-endian uint64 at the start.
header_length() { od -An -t u8 -N 8 "$1" | tr -d ' '; }
# offset_of FILE TEXT [NTH]: the file offset of the NTH (default 1st)
# occurrence of TEXT inside the JSON header.
offset_of() {
  local file=$1 text=$2 nth=${3:-1} hlen at
  hlen=$(header_length "$file")
  at=$(head -c $((8 + hlen)) "$file" | grep -aboF -- "$text" | sed -n "${nth}p" | cut -d: -f1)
  [ -n "$at" ] || { echo "FAIL: '$text' not found in the header of $file" >&2; return 1; }
  echo "$at"
}
# flip FILE OFFSET MASK: XORs one byte in place (flipping twice restores it).
flip() {
  local file=$1 at=$2 mask=$3 byte
  byte=$(od -An -t u1 -j "$at" -N 1 "$file" | tr -d ' ')
  printf "\\x$(printf %02x $((byte ^ mask)))" | dd of="$file" bs=1 seek="$at" conv=notrunc status=none
}

# expect_refused WHAT NEEDLE ARGS...: the run is refused cleanly (see above).
expect_refused() {
  local what=$1 needle=$2
  shift 2
  "$bin" "$@" >"$work/case.out" 2>"$work/case.err"
  check_one_line_error "$what" "$?" "$work/case.err" "$needle"
}

# flip_case FILE LABEL OFFSET MASK ARGS...: flips, expects a refusal naming
# the file, flips back. The way in is the flag just before FILE in ARGS.
flip_case() {
  local file=$1 label=$2 at=$3 mask=$4 via
  shift 4
  via=$(printf '%s\n' "$@" | grep -x -B1 -F -- "$file" | head -1)
  flip "$file" "$at" "$mask"
  expect_refused "$(basename "$file"): bit flip (mask $mask) at byte $at, $label, via $1 $via" "$(basename "$file")" "$@"
  flip "$file" "$at" "$mask"
}

ck_md5=$(md5sum <"$ck")
w_md5=$(md5sum <"$w")
resume=(train "${run[@]}" --max-steps 2 --resume "$ck")

# ---- the checkpoint, through train --resume -------------------------------------
ck_hlen=$(header_length "$ck")
ck_size=$(stat -c %s "$ck")
ck_data=$((8 + ck_hlen))  # first byte of the tensor data
flip_case "$ck" "header length, lowest byte" 0 0x01 "${resume[@]}"
flip_case "$ck" "header length, top byte (a huge length)" 7 0x80 "${resume[@]}"
flip_case "$ck" "the header's opening brace" 8 0x01 "${resume[@]}"
flip_case "$ck" "the format version" "$(($(offset_of "$ck" '"lrt-checkpoint-1"') + 15))" 0x02 "${resume[@]}"
flip_case "$ck" "a digit of the tensor checksum" "$(($(offset_of "$ck" '"checksum":"') + 12))" 0x01 "${resume[@]}"
flip_case "$ck" "a digit of the training step" "$(($(offset_of "$ck" '"state.step":"') + 14))" 0x02 "${resume[@]}"
flip_case "$ck" "a tensor name" "$(($(offset_of "$ck" '"model.conv1.weight"') + 8))" 0x01 "${resume[@]}"
flip_case "$ck" "a dtype" "$(($(offset_of "$ck" '"dtype":"F32"') + 10))" 0x04 "${resume[@]}"
flip_case "$ck" "a shape" "$(($(offset_of "$ck" '"shape":[64,3,3,3]') + 9))" 0x01 "${resume[@]}"
flip_case "$ck" "a data offset" "$(($(offset_of "$ck" '"data_offsets":[') + 17))" 0x01 "${resume[@]}"
flip_case "$ck" "the header's last byte" "$((ck_data - 1))" 0x20 "${resume[@]}"
flip_case "$ck" "the first data byte" "$ck_data" 0x01 "${resume[@]}"
flip_case "$ck" "a data byte in the middle" "$(((ck_data + ck_size) / 2))" 0x10 "${resume[@]}"
flip_case "$ck" "the last byte" "$((ck_size - 1))" 0x80 "${resume[@]}"
[ "$(md5sum <"$ck")" = "$ck_md5" ] || fail "flipping the checkpoint's bits back did not restore it"

# Truncations, longest first, on one copy (each cut shortens the last).
cp "$ck" "$work/cut.safetensors"
for len in $((ck_size - 1)) $(((ck_data + ck_size) / 2)) $((ck_data + 1000)) $ck_data $((ck_data - 1)) 100 9 8 4 0; do
  truncate -s "$len" "$work/cut.safetensors"
  expect_refused "checkpoint truncated to $len of $ck_size bytes, via train --resume" "cut.safetensors" \
    train "${run[@]}" --max-steps 2 --resume "$work/cut.safetensors"
done

# ---- the weights file, through train --init-weights and eval --weights ----------
w_hlen=$(header_length "$w")
w_size=$(stat -c %s "$w")
w_data=$((8 + w_hlen))
init=(train "${run[@]}" --max-steps 1 --init-weights)
ev=(eval --data "$work/data" --device cpu --batch-size 4 --weights)
flip_case "$w" "header length, lowest byte" 0 0x01 "${init[@]}" "$w"
flip_case "$w" "header length, top byte (a huge length)" 7 0x80 "${ev[@]}" "$w"
flip_case "$w" "the header's opening brace" 8 0x01 "${init[@]}" "$w"
flip_case "$w" "a tensor name" "$(($(offset_of "$w" '"layer2.0.conv1.weight"') + 3))" 0x01 "${ev[@]}" "$w"
flip_case "$w" "a dtype" "$(($(offset_of "$w" '"dtype":"F32"' 3) + 10))" 0x04 "${init[@]}" "$w"
flip_case "$w" "a shape" "$(($(offset_of "$w" '"shape":[64,3,3,3]') + 9))" 0x01 "${ev[@]}" "$w"
flip_case "$w" "a data offset" "$(($(offset_of "$w" '"data_offsets":[' 2) + 17))" 0x01 "${init[@]}" "$w"
flip_case "$w" "the header's last byte" "$((w_data - 1))" 0x20 "${ev[@]}" "$w"
[ "$(md5sum <"$w")" = "$w_md5" ] || fail "flipping the weights' bits back did not restore them"

cp "$w" "$work/cutw.safetensors"
n=0
for len in $((w_size - 1)) $(((w_data + w_size) / 2)) $((w_data + 4)) $w_data $((w_data - 1)) 100 9 8 4 0; do
  truncate -s "$len" "$work/cutw.safetensors"
  # Alternate the two ways in, so both see short and long cuts.
  if [ $((n++ % 2)) -eq 0 ]; then
    expect_refused "weights truncated to $len of $w_size bytes, via train --init-weights" "cutw.safetensors" \
      "${init[@]}" "$work/cutw.safetensors"
  else
    expect_refused "weights truncated to $len of $w_size bytes, via eval --weights" "cutw.safetensors" \
      "${ev[@]}" "$work/cutw.safetensors"
  fi
done

# Flips inside the tensor data leave a well-formed safetensors file; the
# checksum lrt stores in its weights files' metadata catches them.
flip_case "$w" "the first data byte" "$w_data" 0x01 "${init[@]}" "$w"
flip_case "$w" "the lowest mantissa bit of a float in the middle" "$(((w_data + w_size) / 2 / 4 * 4))" 0x01 \
  "${ev[@]}" "$w"
flip_case "$w" "the last byte" "$((w_size - 1))" 0x80 "${ev[@]}" "$w"
flip_case "$w" "a digit of the checksum" "$(($(offset_of "$w" '"lrt.checksum":"') + 20))" 0x01 "${init[@]}" "$w"
[ "$(md5sum <"$w")" = "$w_md5" ] || fail "flipping the weights' bits back did not restore them"

rel_finish
