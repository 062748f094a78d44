#!/usr/bin/env bash
# Checks bench_resnet50's command line and JSON on the CPU (usage:
# test_bench_resnet50.sh BENCH_RESNET50): a tiny step with the timing
# probe's repeat counts (--kernel-repeat) prints valid JSON that reports
# them and the speed features (a loss that is not finite as null); bad
# values are refused with exit 2 and a one-line error naming the flag.
# Exits 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
pick_python test_bench_resnet50 "import json"
bench=${1:?usage: test_bench_resnet50.sh BENCH_RESNET50}

# json_has OUTPUT PYTHON_CONDITION: the output is one JSON object d for
# which the condition holds.
json_has() {
  "$py" -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" ||
    fail "'$2' does not hold for: $1"
}
tiny=(--batch 2 --repeat 1 --warmup 0)

out=$("$bench" "${tiny[@]}" 2>&1) || fail "a plain run failed: $out"
json_has "$out" 'd["kernel_repeat"] == {"conv": 1, "bn": 1}'
json_has "$out" 'isinstance(d["loss"], float) and d["loss"] > 0'
json_has "$out" 'd["features"] == {"relu_from_x": True, "grad_blend": True, "cast_together": True, "cudnn_bn": False}'
out=$("$bench" "${tiny[@]}" --kernel-repeat bn=0 --kernel-repeat conv=2 --no-grad-blend 2>&1) ||
  fail "a run with --kernel-repeat failed: $out"
json_has "$out" 'd["kernel_repeat"] == {"conv": 2, "bn": 0}'
json_has "$out" 'd["loss"] is None or isinstance(d["loss"], float)'  # wrong values, still valid JSON
json_has "$out" 'd["features"]["grad_blend"] is False'

for args in "--kernel-repeat bn=9" "--kernel-repeat bn=-1" "--kernel-repeat x=1" "--kernel-repeat bn" \
  "--kernel-repeat conv=two" "--kernel-repeat"; do
  err=$("$bench" "${tiny[@]}" $args 2>&1 >/dev/null)
  rc=$?
  [ "$rc" -eq 2 ] || fail "$args: exit $rc, not 2"
  [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q -- '--kernel-repeat' <<<"$err" ||
    fail "$args: not a one-line error naming --kernel-repeat: $err"
done

# cuDNN's batch norm is a CUDA path: refused on the CPU, naming the flag.
err=$("$bench" "${tiny[@]}" --cudnn-bn 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 2 ] || fail "--cudnn-bn on the CPU: exit $rc, not 2"
[ "$(wc -l <<<"$err")" -eq 1 ] && grep -q -- '--cudnn-bn needs --device cuda' <<<"$err" ||
  fail "--cudnn-bn on the CPU: not a one-line error naming it: $err"

finish test_bench_resnet50
