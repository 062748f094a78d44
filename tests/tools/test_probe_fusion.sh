#!/usr/bin/env bash
# Checks apps/probe_cudnn_fusion over the emulated CUDA (the build's cuDNN
# has no graph API and refuses every graph): its own path runs through on
# the CPU, each 16-bit type over every shape in turn (bf16 first), lrt's
# passes timed for each shape and the batch-norm work once per distinct
# convolution output (shapes A and B share theirs), every graph
# reported as refused with cuDNN's message rather than failing the run; the
# legacy batch-norm candidates, which the emulated cuDNN computes (in
# double, apart from lrt's kernels), run in the persistent mode and agree
# with lrt's outputs in both types (the probe's data, layouts, reserve space
# and checks end to end); one JSON object that tools/fusion_rows.py reads
# into rows; and bad arguments are refused before anything runs. Exits 77
# (skipped) without python3.
# usage: test_probe_fusion.sh PROBE
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script fusion_rows.py
probe=${1:?usage: test_probe_fusion.sh PROBE}

"$probe" --batch 2 --repeat 1 --shapes A,B,D --max-plans 1 >"$tmp/probe.json" 2>"$tmp/probe.err"
rc=$?
[ "$rc" -eq 0 ] || fail "the probe exited $rc: $(cat "$tmp/probe.err")"
"$py" - "$tmp/probe.json" <<'PY' || fail "the probe's JSON: see above"
import json, sys
d = json.load(open(sys.argv[1]))
problems = []
# Each type over every shape in turn, bf16 (lrt's) first.
order = [(s["shape"], s["dtype"]) for s in d["shapes"]]
if order != [("A", "bf16"), ("B", "bf16"), ("D", "bf16"), ("A", "fp16"), ("B", "fp16"), ("D", "fp16")]:
    problems.append(f"shapes {order}")
conv = ["conv", "conv_stats", "sbr_conv", "sbr_conv_stats", "sbr_conv_sum"]
bn = ["bn_relu", "bn_add_relu", "dbn", "bn_drelu_dbn"]
legacy = ["legacy_bn_relu", "legacy_bn_add_relu", "legacy_dbn", "legacy_dbn_relu", "legacy_dbn_add_relu"]
bn += legacy
errs = {"legacy_bn_relu": {"y_err", "mean_err_std", "invstd_rel_err"},
        "legacy_dbn": {"dx_err", "dscale_err", "dbias_err"}}
errs["legacy_bn_add_relu"] = errs["legacy_bn_relu"]
errs["legacy_dbn_relu"] = errs["legacy_dbn"]
errs["legacy_dbn_add_relu"] = errs["legacy_dbn"] | {"dz_err"}
want = {"A": conv + bn, "B": conv, "D": conv + bn}  # B's output is A's shape: its batch norm runs once
for s in d["shapes"]:
    name = s["shape"]
    graphs = [g["graph"] for g in s["graphs"]]
    if graphs != want[name]:
        problems.append(f"{name}: graphs {graphs}")
    lrt = s["lrt"]
    for key in ("apply_ms", "conv_ms", "stats_ms"):
        if not lrt.get(key, 0) > 0:
            problems.append(f"{name}: lrt {key} {lrt.get(key)}")
    has_bn = "bn_relu_ms" in lrt
    if has_bn != (name != "B"):
        problems.append(f"{name}: batch-norm times {'present' if has_bn else 'missing'}")
    bn_times = ("bn_relu_ms", "bn_add_relu_ms", "dbn_ms", "bn_drelu_dbn_ms", "dbn_add_relu_ms")
    if has_bn and not all(lrt.get(k, 0) > 0 for k in bn_times):
        problems.append(f"{name}: batch-norm times {lrt}")
    for g in s["graphs"]:
        if g["dtype"] != s["dtype"]:
            problems.append(f"{name} {g['graph']}: {g}")
        elif g["graph"] in legacy:
            ok = g["supported"] and g["matches"] and g["mode"] == "persistent" and g["median_ms"] > 0
            ok = ok and {k for k in g if k.endswith("_err") or k.endswith("_std")} == errs[g["graph"]]
            ok = ok and (g["reserve_bytes"] > 0) == ("relu" in g["graph"]) and "error" not in g
            if not ok:
                problems.append(f"{name} {g['graph']}: {g}")
        elif g["supported"] or "no graph (backend) API" not in g.get("error", ""):
            problems.append(f"{name} {g['graph']}: {g}")
if d["stopped_at_deadline"] or d["batch"] != 2:
    problems.append(f"run: stopped {d['stopped_at_deadline']}, batch {d['batch']}")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
rows=$("$py" "$script" "$tmp/probe.json")
grep -qE '^fusion A bf16 +info +lrt [0-9.]+ \(bn [0-9.]+ \+ conv [0-9.]+ \+ stats [0-9.]+\); conv no, conv_stats no' \
  <<<"$rows" || fail "no fusion row for A: $rows"
grep -qE '^bn D bf16 +info +256 channels 8x8: bn_relu no \(lrt [0-9.]+\)' <<<"$rows" || fail "no bn row for D: $rows"
grep -qE '^bn D fp16 +info ' <<<"$rows" || fail "no fp16 bn row for D: $rows"
grep -qE '^bn legacy A fp16 +info +64 channels 32x32: bn_relu [0-9.]+ vs lrt [0-9.]+ \([0-9.]+x\), bn_add_relu .*, dbn_add_relu [0-9.]+ vs lrt [0-9.]+ \([0-9.]+x\)$' \
  <<<"$rows" || fail "no legacy bn row for A: $rows"
! grep -q '^bn B' <<<"$rows" || fail "a bn row for B, whose output is A's shape: $rows"

# Refused before anything runs, naming the culprit.
for args in "--shapes A,Z" "--dtypes fp32" "--graphs conv,,dbn" "--graphs bn" "--graphs legacy_bn" "--repeat 0" \
  "--max-plans 65" "--batch" "stray"; do
  out=$("$probe" $args 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] || fail "$args: exit $rc, not 2"
  grep -qE '^probe_cudnn_fusion: ' <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ] || fail "$args: not one line: $out"
done

finish test_probe_fusion
