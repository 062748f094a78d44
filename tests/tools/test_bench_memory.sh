#!/usr/bin/env bash
# Checks bench_resnet50's CUDA peak memory over the emulated CUDA (usage:
# test_bench_memory.sh BENCH_RESNET50, a build with LRT_EMULATED_CUDA): the
# peak it reports is the allocator's over the steps after warm-up, as
# tools/bench_pytorch_resnet50.py reports PyTorch's after
# reset_peak_memory_stats, so warm-up's algorithm searches (their
# workspaces) are left out, and the peak since the start is printed beside
# it. A graph's capture follows warm-up and is counted: the blocks its
# capture freed stay the graph's, so its peak is an eager step's.
# Exits 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
pick_python test_bench_memory "import json"
bench=${1:?usage: test_bench_memory.sh BENCH_RESNET50}

# run NAME ARGS...: one step of batch 1 on the emulated GPU; its JSON in
# $tmp/NAME.json
run() {
  local name=$1
  shift
  "$bench" --device cuda --batch 1 --repeat 1 --precision fp32 "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" ||
    fail "$name ($*): exit $?: $(cat "$tmp/$name.err")"
}
# holds CONDITION: it holds for e (eager, warmed up), c (eager, no warm-up),
# g (graph, warmed up)
holds() {
  "$py" - "$tmp" "$1" <<'PY' || fail "'$1' does not hold"
import json, sys
tmp, cond = sys.argv[1], sys.argv[2]
e, c, g = (json.load(open(f"{tmp}/{n}.json")) for n in ("eager", "cold", "graph"))
if eval(cond):
    sys.exit(0)
for name, d in (("e", e), ("c", c), ("g", g)):
    print(name, {k: v for k, v in d.items() if "peak" in k or k == "memory_kind"})
sys.exit(1)
PY
}

run eager --warmup 1           # the searches run in warm-up
run cold --warmup 0            # the timed step runs them
run graph --warmup 1 --cuda-graph
holds 'all(d["memory_kind"] == "cuda_allocator_peak" and d["peak_memory_mib"] == d["allocator_peak_mib"] > 0 for d in (e, c, g))'
holds 'e["allocator_peak_mib"] < e["allocator_peak_since_start_mib"]'  # the search's workspace left out
holds 'c["allocator_peak_mib"] == c["allocator_peak_since_start_mib"] == e["allocator_peak_since_start_mib"]'
holds 'g["allocator_peak_mib"] == e["allocator_peak_mib"]'  # the capture counted, as an eager step
holds 'g["allocator_peak_since_start_mib"] == e["allocator_peak_since_start_mib"]'

finish test_bench_memory
