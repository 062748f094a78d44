#!/usr/bin/env bash
# Checks tools/check_kernel_launches.py, the rule that every CUDA kernel is
# queued through launch() and calls dependent_launch_enter() before it
# touches memory, and declares shared arrays with LRT_SHARED: the
# repository's sources pass, and hand-written sources
# that break the rule are named, file and line. Exits 77 (skipped) without
# python3.
#   tests/tools/test_kernel_launches.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script check_kernel_launches.py

# The repository's own kernels.
out=$("$py" "$script" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "the repository's kernels break the rule (status $rc):"$'\n'"$out"
echo "$out" | grep -qE '^check_kernel_launches.py: [0-9]+ kernels in [0-9]+ files' ||
  fail "no count of the kernels checked: $out"
n=$(echo "$out" | sed -n 's/^check_kernel_launches.py: \([0-9]*\) kernels.*/\1/p')
[ "${n:-0}" -ge 30 ] || fail "only ${n:-0} kernels found in the repository (expected the ~40 of kernels/, optim/, data/)"

# A tree that keeps the rule: the launcher may hold <<<, a comment may say
# <<< or __global__, and a register read marked "no memory" may come first.
good="$tmp/good"
mkdir -p "$good/kernels/cuda" "$good/ops/cuda"
cat >"$good/kernels/cuda/launch.cuh" <<'SRC'
#define LRT_SHARED(type, name, dims) __shared__ type name dims
template <class K> void launch(K k) { k<<<1, 1>>>(); }
SRC
cat >"$good/ops/cuda/fine.cu" <<'SRC'
// Not a launch: kernel<<<grid, block>>>(...) in a comment; __global__ too.
__global__ void plain_kernel(float* y) {
  dependent_launch_enter();
  LRT_SHARED(float, sh, [32]);  // not a __shared__ declaration of its own
  sh[0] = 1.0f;
  y[0] = sh[0];
}
__global__ void qualified_kernel(float* y)
{
  // a comment line first is fine
  kernels::cuda::dependent_launch_enter();
  y[0] = 2.0f;
}
__global__ void clock_first_kernel(unsigned long long* y) {
  const unsigned long long t = clock64();  // a register, no memory
  lrt::kernels::cuda::dependent_launch_enter();
  y[0] = t;
}
/* A block comment may say
   other_kernel<<<1, 1>>>(y); and __global__ void k() { y[0] = 0; } */
__global__ void declared_kernel(float* y);  // declared here, defined below
void host_code() { int braces = 0; }
__global__ void __launch_bounds__(256) declared_kernel(float* y) {
  dependent_launch_enter();
  y[0] = 3.0f;
}
SRC
out=$("$py" "$script" "$good" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "a tree keeping the rule was refused (status $rc): $out"
echo "$out" | grep -q ': 4 kernels in 2 files' || fail "the good tree's count is wrong: $out"

# A tree that breaks it five ways, each named by file and line.
bad="$tmp/bad"
mkdir -p "$bad/kernels/cuda"
cat >"$bad/kernels/cuda/ops.cu" <<'SRC'
__global__ void loads_first_kernel(const float* x, float* y) {
  const float v = x[0];
  dependent_launch_enter();
  y[0] = v;
}

__global__ void never_enters_kernel(float* y) {
  y[0] = 0.0f;
}

__global__ void shared_kernel(float* y) {
  dependent_launch_enter();
  __shared__ float sh[32];
  y[0] = sh[0];
}

void queue(float* y) {
  never_enters_kernel<<<1, 32>>>(y);
}
SRC
cat >"$bad/kernels/cuda/empty.cuh" <<'SRC'
__global__ void empty_kernel() {}
template <int N>
__global__ void __launch_bounds__(N * 32) bounded_kernel(float* y) {
}
SRC
out=$("$py" "$script" "$bad" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "a tree breaking the rule gave status $rc, not 1: $out"
for want in \
  "kernels/cuda/ops.cu:2: kernel loads_first_kernel does 'const float v = x[0];' before dependent_launch_enter()" \
  "kernels/cuda/ops.cu:8: kernel never_enters_kernel does 'y[0] = 0.0f;' before dependent_launch_enter()" \
  "kernels/cuda/ops.cu:13: a __shared__ declaration; declare shared arrays with LRT_SHARED(type, name, dims) (kernels/cuda/launch.cuh)" \
  "kernels/cuda/ops.cu:18: a <<<>>> launch; queue kernels with launch() (kernels/cuda/launch.cuh)" \
  "kernels/cuda/empty.cuh:1: kernel empty_kernel never calls dependent_launch_enter()" \
  "kernels/cuda/empty.cuh:3: kernel bounded_kernel never calls dependent_launch_enter()"; do
  echo "$out" | grep -qFx -- "$want" || fail "the bad tree's report lacks '$want'; it says:"$'\n'"$out"
done
[ "$(echo "$out" | wc -l)" -eq 6 ] || fail "the bad tree should give 6 lines; it gave:"$'\n'"$out"

# Bad arguments.
"$py" "$script" "$tmp/nowhere" >/dev/null 2>&1
[ $? -eq 2 ] || fail "a missing folder should exit 2"

finish check_kernel_launches.py
