#!/usr/bin/env bash
# Checks tools/check_kernel_resources.py, ptxas's register and local-memory
# report for every CUDA kernel: the build's own kernels keep nothing in local
# memory (or say why in their source), and kernels written here to keep an
# array in local memory are named, file and kernel, unless marked. Exits 77
# (skipped) without python3.
#   tests/tools/test_kernel_resources.sh BUILD
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script check_kernel_resources.py
build=${1:?usage: test_kernel_resources.sh BUILD}

# The build's own kernels.
out=$("$py" "$script" "$build" --json "$tmp/own.json" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "the build's kernels keep values in local memory (status $rc):"$'\n'"$out"
summary=$(echo "$out" | tail -n 1)
echo "$summary"
n=$(echo "$summary" | sed -n 's/^check_kernel_resources.py: \([0-9]*\) kernels in .*/\1/p')
[ "${n:-0}" -ge 100 ] || fail "only ${n:-0} kernels reported (expected the ~400 instantiations of kernels/, optim/, data/): $summary"
"$py" - "$tmp/own.json" <<'PY' || fail "the JSON report lacks kernels or fields"
import json, sys
ks = json.load(open(sys.argv[1]))
names = {k["name"].split("<")[0] for k in ks}
for want in ("bn_apply_nhwc_kernel", "bn_grad_sums_nhwc_kernel", "fused_step_kernel"):
    assert want in names, want
for k in ks:
    assert k["registers"] > 0 and k["file"].endswith(".cu") and k["arch"].startswith("sm_"), k
PY

# Stand-in sources compiled with the build's own nvcc and architectures.
mkdir -p "$tmp/src" "$tmp/mixed" "$tmp/clean" "$tmp/broken" "$tmp/none"
cat >"$tmp/src/mixed.cu" <<'SRC'
// An array of 256 floats indexed at run time cannot live in registers.
__global__ void spills_kernel(const float* x, float* y, int n) {
  float a[256];
  for (int i = 0; i < 256; ++i) a[i] = x[i * n];
  y[threadIdx.x] = a[(threadIdx.x * 7 + n) & 255];
}

// lrt: stack frame allowed: the marker under test
__global__ void excused_kernel(const float* x, float* y, int n) {
  float a[256];
  for (int i = 0; i < 256; ++i) a[i] = x[i * n];
  y[threadIdx.x] = a[(threadIdx.x * 5 + n) & 255];
}

__global__ void clean_kernel(float* y) { y[threadIdx.x] = 1.0f; }

template <class T>
__global__ void templated_kernel(const T* x, T* y, int n) {
  T a[256];
  for (int i = 0; i < 256; ++i) a[i] = x[i * n];
  y[threadIdx.x] = a[(threadIdx.x * 3 + n) & 255];
}
template __global__ void templated_kernel<float>(const float*, float*, int);
SRC
cat >"$tmp/src/clean.cu" <<'SRC'
__global__ void scale_kernel(float* y, float s) { y[threadIdx.x] *= s; }
SRC
cat >"$tmp/src/broken.cu" <<'SRC'
__global__ void broken_kernel(float* y) { y[threadIdx.x] = undeclared; }
SRC
"$py" - "$build/compile_commands.json" "$tmp" <<'PY' || fail "could not write the stand-in compile_commands.json"
import json, os, shlex, sys
entries = json.load(open(sys.argv[1]))
cu = next(e for e in entries if e["file"].endswith(".cu"))
args = cu["arguments"] if "arguments" in cu else shlex.split(cu["command"])
archs = [a for a in args if a.startswith(("--generate-code", "-gencode", "-arch", "--gpu-architecture"))]
tmp = sys.argv[2]
def entry(name):
    src = os.path.join(tmp, "src", name)
    return {"directory": tmp, "file": src,
            "command": " ".join(shlex.quote(a) for a in [args[0], *archs, "-MD", "-MT", "x.o", "-MF", "x.d",
                                                         "-c", src, "-o", "x.o"])}
for folder, names in (("mixed", ["mixed.cu", "clean.cu"]), ("clean", ["clean.cu"]), ("broken", ["broken.cu"])):
    json.dump([entry(n) for n in names], open(os.path.join(tmp, folder, "compile_commands.json"), "w"))
json.dump([{"directory": tmp, "file": os.path.join(tmp, "src", "a.cpp"), "command": "g++ -c a.cpp"}],
          open(os.path.join(tmp, "none", "compile_commands.json"), "w"))
PY

out=$("$py" "$script" "$tmp/mixed" --list 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "kernels with local memory gave status $rc, not 1:"$'\n'"$out"
for k in "spills_kernel" "templated_kernel<float>"; do
  echo "$out" | grep -qE "^$tmp/src/mixed\\.cu: kernel $k \\(sm_[0-9a-z]+\\): [1-9][0-9]* bytes stack frame" ||
    fail "no line naming $k and its stack frame:"$'\n'"$out"
done
echo "$out" | grep -qE ": kernel (excused|clean|scale)_kernel" && fail "a marked or clean kernel was named:"$'\n'"$out"
echo "$out" | grep -qE "^ +[0-9]+ regs  stack +0  spills 0/0 .* $tmp/src/clean\\.cu  scale_kernel$" ||
  fail "--list lacks the clean kernel's line:"$'\n'"$out"
echo "$out" | tail -n 1 | grep -qFx \
  "check_kernel_resources.py: 5 kernels in 2 files; most registers $(echo "$out" | sed -n 's/^ *\([0-9]*\) regs.*/\1/p' | head -n 1) ($(echo "$out" | sed -n 's/^ *[0-9]* regs .*  //p' | head -n 1)); 2 with local memory, 1 allowed (excused_kernel)" ||
  fail "the summary is wrong:"$'\n'"$out"

out=$("$py" "$script" "$tmp/clean" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "a clean kernel gave status $rc:"$'\n'"$out"
echo "$out" | grep -qFx "check_kernel_resources.py: 1 kernels in 1 files; most registers $(echo "$out" | sed -n 's/.*most registers \([0-9]*\).*/\1/p') (scale_kernel); 0 with local memory" ||
  fail "the clean summary is wrong: $out"

# Bad input: exit 2 and one line naming the culprit.
expect_2() {
  local what=$1 want=$2
  shift 2
  out=$("$py" "$script" "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] || fail "$what gave status $rc, not 2: $out"
  echo "$out" | grep -qF -- "$want" || fail "$what: no '$want' in: $out"
}
expect_2 "a missing folder" "$tmp/nowhere: no such folder" "$tmp/nowhere"
expect_2 "a folder without compile_commands.json" "no $tmp/src/compile_commands.json" "$tmp/src"
expect_2 "no CUDA source" "lists no CUDA source" "$tmp/none"
expect_2 "a failing compile" "compiling $tmp/src/broken.cu failed" "$tmp/broken"
expect_2 "no folder" "no build folder given"
expect_2 "--jobs 0" "--jobs 0: give 1 or more" "$tmp/clean" --jobs 0

finish check_kernel_resources.py
