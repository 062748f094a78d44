#!/usr/bin/env bash
# Checks tools/turn_rows.py (the device check's rows for bench_resnet50 runs
# made in turns: dependent launch, each speed feature against the step
# without it, and the step's split by kernel group) on hand-written run
# files: the best run of a label counts, a
# side with no result or a switch that did not take is a FAIL, a device
# that cannot queue dependent launches is a skip; a row says how far apart
# a side's own runs were and whether the difference is within that. Exits
# 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script turn_rows.py

# run FILE IMAGES_PER_S [JSON FIELDS]: one run's JSON.
run() { echo "{\"images_per_s\": $2, \"median_ms\": $("$py" -c "print(round(256000/$2, 2))"), \"peak_memory_mib\": 100${3:+, $3}}" >"$1"; }
# row_is LINE REGEX
row_is() { grep -qE -- "$2" <<<"$1" || fail "'$1' does not match '$2'"; }

# Dependent launch: three turns, the better run of each side.
d="$tmp/pdl"; mkdir -p "$d"
for t in 1 2 3; do
  run "$d/bench_pdl_0_$t.json" $((1000 + t)) '"dependent_launch": false'
  run "$d/bench_pdl_1_$t.json" $((1100 - t)) '"dependent_launch": true'
done
out=$("$py" "$script" pdl "$d")
row_is "$out" '^r50 bf16 dependent launch +info +1\.096x img/s: LRT_PDL=1 1099 \([0-9.]+ ms\), plain 1003 .*best of 3 each; noise: a side.s own runs 0\.2% apart, the difference 9\.6%, beyond it$'
# A difference smaller than how far a side's own runs are apart is said to
# be no measured difference.
d2="$tmp/pdl-noise"; mkdir -p "$d2"
run "$d2/bench_pdl_0_1.json" 1000 '"dependent_launch": false'
run "$d2/bench_pdl_0_2.json" 980 '"dependent_launch": false'
run "$d2/bench_pdl_1_1.json" 1005 '"dependent_launch": true'
run "$d2/bench_pdl_1_2.json" 1001 '"dependent_launch": true'
row_is "$("$py" "$script" pdl "$d2")" '1\.005x img/s: .*best of 2 each; noise: a side.s own runs 2\.0% apart, the difference 0\.5%, within it: no measured difference$'
# One turn: no noise to give.
rm "$d2"/bench_pdl_*_2.json
row_is "$("$py" "$script" pdl "$d2")" 'best of 1 each$'
# A failed run (no JSON) of one turn leaves the others; no run of a side fails the row.
: >"$d/bench_pdl_1_3.json"
row_is "$("$py" "$script" pdl "$d")" 'info +1\.096x'
rm "$d"/bench_pdl_1_*.json
row_is "$("$py" "$script" pdl "$d")" '^r50 bf16 dependent launch +FAIL +a run gave no result'
# LRT_PDL=1 that did not take: a device before sm_90.
for t in 1 2 3; do run "$d/bench_pdl_1_$t.json" 1000 '"dependent_launch": false'; done
row_is "$("$py" "$script" pdl "$d")" '^r50 bf16 dependent launch +skip +LRT_PDL=1 left it off'
# LRT_PDL=0 that left it on is a FAIL.
for t in 1 2 3; do run "$d/bench_pdl_0_$t.json" 1000 '"dependent_launch": true'; done
row_is "$("$py" "$script" pdl "$d")" 'FAIL +LRT_PDL=0 left it on'

# Speed features: two turns; each feature's row against the default.
d="$tmp/features"; mkdir -p "$d"
all='"features": {"relu_from_x": true, "grad_blend": true, "cast_together": true, "cudnn_bn": false}'
for t in 1 2; do
  run "$d/bench_features_default_$t.json" $((1200 + t)) "$all"
  run "$d/bench_features_relu-from-x_$t.json" 1100 "${all/\"relu_from_x\": true/\"relu_from_x\": false}"
  run "$d/bench_features_grad-blend_$t.json" 1150 "${all/\"grad_blend\": true/\"grad_blend\": false}"
  # cuDNN's batch norm, off by default: the labelled run turns it on.
  run "$d/bench_features_cudnn-bn_$t.json" 1500 "${all/\"cudnn_bn\": false/\"cudnn_bn\": true}, \"cudnn_bn_modes\": {\"refused\": 3, \"persistent\": 50}"
done
run "$d/bench_features_cast-together_1.json" 1300 "$all"  # the flag did not take
out=$("$py" "$script" features "$d")
[ "$(wc -l <<<"$out")" -eq 4 ] || fail "features: $(wc -l <<<"$out") rows, not 4: $out"
row_is "$(sed -n 1p <<<"$out")" '^r50 bf16 relu-from-x +info +1\.093x img/s with it: 1202 .* against 1100 .*best of 2 each; noise: a side.s own runs 0\.1% apart, the difference 9\.3%, beyond it$'
row_is "$(sed -n 2p <<<"$out")" '^r50 bf16 grad-blend +info +1\.045x img/s with it'
row_is "$(sed -n 3p <<<"$out")" '^r50 bf16 cast-together +FAIL +--no-cast-together did not switch it off'
row_is "$(sed -n 4p <<<"$out")" '^r50 bf16 cudnn-bn +info +1\.248x img/s with it: 1500 .* against 1202 .* without, .* MiB; cases persistent 50, refused 3; CUDA graph'
for t in 1 2; do run "$d/bench_features_cudnn-bn_$t.json" 1500 "$all"; done  # --cudnn-bn did not take
row_is "$("$py" "$script" features "$d" | sed -n 4p)" '^r50 bf16 cudnn-bn +FAIL +--cudnn-bn did not switch it on'
rm "$d"/bench_features_default_*.json
row_is "$("$py" "$script" features "$d" | sed -n 1p)" '^r50 bf16 relu-from-x +FAIL +a run gave no result'

# The step's split: two turns; the default step against the same with a
# group's kernels twice (bn2, conv2) or left out (bn0). run() makes
# median_ms 256000 / images_per_s: 16.00 ms at 16000 img/s.
d="$tmp/split"; mkdir -p "$d"
rep() { echo "\"kernel_repeat\": {\"conv\": $1, \"bn\": $2}"; }
for t in 1 2; do
  run "$d/bench_split_default_$t.json" $((16000 - t)) "$(rep 1 1)"   # best: 15999 img/s, 16.00 ms
  run "$d/bench_split_bn2_$t.json" 12800 "$(rep 1 2)"                 # 20.00 ms: +4.00
  run "$d/bench_split_conv2_$t.json" 10240 "$(rep 2 1)"               # 25.00 ms: +9.00
  run "$d/bench_split_bn0_$t.json" 20480 "$(rep 1 0)"                 # 12.50 ms: -3.50
done
out=$("$py" "$script" split "$d")
[ "$(wc -l <<<"$out")" -eq 3 ] || fail "split: $(wc -l <<<"$out") rows, not 3: $out"
row_is "$(sed -n 1p <<<"$out")" '^r50 bf16 split bn +info +4\.00 ms of the 16\.00 ms step \(25%\): 20\.00 ms with its batch-norm kernels twice; 3\.50 ms by leaving them out \(12\.50 ms\); .*best of 2 each; noise: a side.s own runs 0\.00 ms apart, beyond it$'
row_is "$(sed -n 2p <<<"$out")" '^r50 bf16 split conv +info +9\.00 ms of the 16\.00 ms step \(56%\): 25\.00 ms with its convolutions twice; CUDA'
row_is "$(sed -n 3p <<<"$out")" '^r50 bf16 split rest +info +3\.00 ms \(19%\) \(3\.50 ms with the batch-norm share of leaving them out\): the other kernels'
# A share smaller than how far a side's own runs are apart (bn2's two runs
# 16.50 and 20.00 ms: the share 0.50 ms, the runs 3.50 ms apart).
d3="$tmp/split-noise"; mkdir -p "$d3"
for t in 1 2; do
  run "$d3/bench_split_default_$t.json" 16000 "$(rep 1 1)"
  run "$d3/bench_split_conv2_$t.json" 10240 "$(rep 2 1)"
done
run "$d3/bench_split_bn2_1.json" 15515 "$(rep 1 2)"
run "$d3/bench_split_bn2_2.json" 12800 "$(rep 1 2)"
row_is "$("$py" "$script" split "$d3" | sed -n 1p)" '^r50 bf16 split bn +FAIL .*; noise: a side.s own runs 3\.50 ms apart, within it: no measured share$'
# A repeat that did not take is a FAIL, and leaves no rest row.
for t in 1 2; do run "$d/bench_split_conv2_$t.json" 10240 "$(rep 1 1)"; done
out=$("$py" "$script" split "$d")
row_is "$(sed -n 2p <<<"$out")" '^r50 bf16 split conv +FAIL +--kernel-repeat conv=2 did not take'
[ "$(wc -l <<<"$out")" -eq 2 ] || fail "split: a rest row without the convolutions' share: $out"
for t in 1 2; do run "$d/bench_split_conv2_$t.json" 10240 "$(rep 2 1)"; done
# A bn0 run that did not take, or gave nothing, fails the bn row (its twice
# figure still shown) and leaves the rest row to the twice figures.
for t in 1 2; do run "$d/bench_split_bn0_$t.json" 20480 "$(rep 1 1)"; done
out=$("$py" "$script" split "$d")
row_is "$(sed -n 1p <<<"$out")" '^r50 bf16 split bn +FAIL +4\.00 ms .*twice; --kernel-repeat bn=0 did not take; CUDA graph'
row_is "$(sed -n 3p <<<"$out")" '^r50 bf16 split rest +info +3\.00 ms \(19%\): the other kernels'
rm "$d"/bench_split_bn0_*.json
row_is "$("$py" "$script" split "$d" | sed -n 1p)" '^r50 bf16 split bn +FAIL +.*twice; the step with --kernel-repeat bn=0 gave no result'
# No default step: one FAIL row; a default step with kernels repeated: FAIL.
for t in 1 2; do run "$d/bench_split_default_$t.json" 16000 "$(rep 1 2)"; done
row_is "$("$py" "$script" split "$d")" '^r50 bf16 split +FAIL +the default step ran with kernels repeated$'
rm "$d"/bench_split_default_*.json
row_is "$("$py" "$script" split "$d")" '^r50 bf16 split +FAIL +the default step gave no result'

# Bad usage: exit 2.
"$py" "$script" bogus "$d" >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown kind is not refused with exit 2"
finish test_turn_rows
