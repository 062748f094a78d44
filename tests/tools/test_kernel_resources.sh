#!/usr/bin/env bash
# Checks tools/check_kernel_resources.py, ptxas's register and local-memory
# report for every CUDA kernel: the build's own kernels keep nothing in local
# memory (or say why in their source), and kernels written here to keep an
# array in local memory are named, file and kernel, unless marked. Exits 77
# (skipped) without python3 or c++filt, or where the build made no GPU code.
#   tests/tools/test_kernel_resources.sh BUILD
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script check_kernel_resources.py
build=${1:?usage: test_kernel_resources.sh BUILD}
command -v c++filt >/dev/null || { echo "SKIPPED: check_kernel_resources.py (no c++filt)"; exit 77; }

# The build's own kernels.
out=$("$py" "$script" "$build" --json "$tmp/own.json" 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && echo "$out" | grep -q "no GPU code was built"; then
  echo "SKIPPED: check_kernel_resources.py (the build has PTX only: $out)"
  exit 77
fi
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
mkdir -p "$tmp/src" "$tmp/mixed" "$tmp/clean" "$tmp/broken" "$tmp/none" "$tmp/ptxonly" "$tmp/nocompiler"
cat >"$tmp/src/mixed.cu" <<'SRC'
// An array of 256 floats indexed at run time cannot live in registers.
#define LOCAL_ARRAY(k)                                  \
  float a[256];                                         \
  for (int i = 0; i < 256; ++i) a[i] = x[i * n];        \
  y[threadIdx.x] = a[(threadIdx.x * k + n) & 255];

__global__ void spills_kernel(const float* x, float* y, int n) { LOCAL_ARRAY(7) }

// A marked kernel; the one right after it is not.
// lrt: stack frame allowed: the marker under test
__global__ void excused_kernel(const float* x, float* y, int n) { LOCAL_ARRAY(5) }
__global__ void next_kernel(const float* x, float* y, int n) { LOCAL_ARRAY(11) }

__global__ void clean_kernel(float* y) { y[threadIdx.x] = 1.0f; }

// 48 values live at once (y may alias x, so every load comes before the
// first store) under a 32-register cap: spills.
__global__ void __launch_bounds__(1024, 2) pressure_kernel(const float* x, float* y, int n) {
  float a[48];
#pragma unroll
  for (int i = 0; i < 48; ++i) a[i] = x[i * n + threadIdx.x];
#pragma unroll
  for (int i = 0; i < 48; ++i) y[i * n + threadIdx.x] = a[i] * a[47 - i] + a[(i + 5) % 48];
}

// Local memory in a function the kernel calls.
__device__ __noinline__ float helper(const float* x, float* y, int n) { LOCAL_ARRAY(13) return y[0]; }
__global__ void caller_kernel(const float* x, float* y, int n) { y[1] = helper(x, y, n); }

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
tmp = sys.argv[2]
# One GPU architecture, the first the build made code for, so that each
# kernel is reported once; the build's host compiler, if it names one.
arch = sorted({k["arch"] for k in json.load(open(os.path.join(tmp, "own.json")))})[0]
host = []
for i, a in enumerate(args):
    if a in ("-ccbin", "--compiler-bindir") and i + 1 < len(args):
        host = [a, args[i + 1]]
    elif a.startswith(("-ccbin=", "--compiler-bindir=")):
        host = [a]
# The output and dependency-file options, in short forms or long ones,
# must not reach the report's compile: no x.o or x.d may appear.
short = ["-MD", "-MT", "x.o", "-MF", "x.d", "-o", "x.o"]
long = ["--generate-dependencies-with-compile", "--dependency-output", "x.d", "--output-file=x.o"]
def entry(name, outputs, key="command", target=None, compiler=args[0]):
    src = os.path.join(tmp, "src", name)
    cmd = [compiler, *host, target or f"-arch={arch}", "-c", src, *outputs]
    e = {"directory": tmp, "file": src}
    e[key] = cmd if key == "arguments" else " ".join(shlex.quote(a) for a in cmd)
    return e
for folder, es in (("mixed", [entry("mixed.cu", short), entry("clean.cu", short)]),
                   ("clean", [entry("clean.cu", long, "arguments")]), ("broken", [entry("broken.cu", short)]),
                   ("ptxonly", [entry("clean.cu", short, target="--generate-code=arch=compute_90,code=compute_90")]),
                   ("nocompiler", [entry("clean.cu", short, compiler=os.path.join(tmp, "no-nvcc"))])):
    json.dump(es, open(os.path.join(tmp, folder, "compile_commands.json"), "w"))
json.dump([{"directory": tmp, "file": os.path.join(tmp, "src", "a.cpp"), "command": "g++ -c a.cpp"}],
          open(os.path.join(tmp, "none", "compile_commands.json"), "w"))
PY

out=$("$py" "$script" "$tmp/mixed" --list 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "kernels with local memory gave status $rc, not 1:"$'\n'"$out"
for k in "spills_kernel" "next_kernel" "templated_kernel<float>" "caller_kernel"; do
  echo "$out" | grep -qE "^$tmp/src/mixed\\.cu: kernel $k \\(sm_[0-9a-z]+\\): [1-9][0-9]* bytes stack frame" ||
    fail "no line naming $k and its stack frame:"$'\n'"$out"
done
echo "$out" | grep -qE "^$tmp/src/mixed\\.cu: kernel pressure_kernel \\(sm_[0-9a-z]+\\): [0-9]+ bytes stack frame, [1-9][0-9]* bytes spill stores, [1-9][0-9]* bytes spill loads" ||
  fail "no line naming pressure_kernel and its spills:"$'\n'"$out"
echo "$out" | grep -qE ": kernel (excused|clean|scale)_kernel" && fail "a marked or clean kernel was named:"$'\n'"$out"
[ "$(echo "$out" | grep -c ': kernel .* local memory')" -eq 5 ] || fail "5 kernels should be named:"$'\n'"$out"
echo "$out" | grep -qE "^ +[0-9]+ regs  stack +0  spills 0/0 .* $tmp/src/clean\\.cu  scale_kernel$" ||
  fail "--list lacks the clean kernel's line:"$'\n'"$out"
echo "$out" | tail -n 1 | grep -qFx \
  "check_kernel_resources.py: 8 kernels in 2 files; most registers $(echo "$out" | sed -n 's/^ *\([0-9]*\) regs.*/\1/p' | head -n 1) ($(echo "$out" | sed -n 's/^ *[0-9]* regs .*  //p' | head -n 1)); 5 with local memory, 1 allowed (excused_kernel)" ||
  fail "the summary is wrong:"$'\n'"$out"

out=$("$py" "$script" "$tmp/clean" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "a clean kernel gave status $rc:"$'\n'"$out"
for f in x.o x.d; do [ -e "$tmp/$f" ] && fail "the report's compiles wrote the build's own $f"; done
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
expect_2 "a compiler that is not there" "compiling $tmp/src/clean.cu: cannot run $tmp/no-nvcc" "$tmp/nocompiler"
expect_2 "PTX only" "no GPU code was built" "$tmp/ptxonly"
expect_2 "a --json path in no folder" "--json $tmp/nowhere/r.json: No such file or directory" "$tmp/clean" --json "$tmp/nowhere/r.json"
expect_2 "no folder" "no build folder given"
expect_2 "--jobs 0" "--jobs 0: give 1 or more" "$tmp/clean" --jobs 0

finish check_kernel_resources.py
