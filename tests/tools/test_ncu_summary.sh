#!/usr/bin/env bash
# Checks tools/ncu_summary.py (the device check's Nsight Compute rows) on
# hand-written CSVs in ncu's format: kernels grouped and ranked by time,
# ncu's scaled units, DRAM traffic and its rate, register and occupancy
# ranges, a time-weighted achieved occupancy, and one row (FAIL, or skip on
# request) for a CSV without a usable table. The expected rows were worked
# out by hand from the values below. Exits 77 (skipped) without python3.
#   tests/tools/test_ncu_summary.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script ncu_summary.py
# expect FILE ROW: FILE holds ROW as a whole line.
expect() { grep -qFx -- "$2" "$1" || fail "$(basename "$1") lacks the row '$2'; it holds:$(printf '\n%s' "$(cat "$1")")"; }
row() { printf '%-28s %-8s %s' "$1" "$2" "$3"; }

header='"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"'
apply='void lrt::kernels::cuda::(anonymous namespace)::bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>(const T1 *, const T1 *, T1 *, const T2 *, long, long)'
stats='void lrt::kernels::cuda::(anonymous namespace)::bn_stats_nhwc_kernel<lrt::BFloat16, float, 2>(const T1 *, lrt::kernels::cuda::(anonymous namespace)::RowsDims, long)'
line() { printf '"%s","7","bench_resnet50","h","%s","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","%s","%s","%s"\n' "$@"; }

# Times only: bn_apply twice (1,500.5 us + 500 us = 2.0005 ms), a cuDNN
# kernel once (2.5 ms): 4.5005 ms in 3 launches, the cuDNN kernel first.
{
  echo '==PROF== Connected to process 7 (bench_resnet50)'
  echo '==PROF== Profiling "bn_apply_nhwc_kernel": 0%....50%....100% - 1 pass'
  echo "$header"
  line 0 "$apply" gpu__time_duration.sum usecond "1,500.5"
  line 1 "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc" gpu__time_duration.sum msecond 2.5
  line 2 "$apply" gpu__time_duration.sum nsecond "500,000"
} >"$tmp/times.csv"
"$py" "$script" "$tmp/times.csv" "ncu step" --top 10 --what "each timed alone" >"$tmp/times.out" || fail "times.csv: status $?"
expect "$tmp/times.out" "$(row "ncu step" info "4.50 ms of kernels in 3 launches (each timed alone)")"
expect "$tmp/times.out" "$(row "ncu step #1" info "2.50 ms, 1 launch: sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc")"
expect "$tmp/times.out" "$(row "ncu step #2" info "2.00 ms, 2 launches: bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>")"
[ "$(wc -l <"$tmp/times.out")" -eq 3 ] || fail "times.csv: $(wc -l <"$tmp/times.out") rows, not 3"
"$py" "$script" "$tmp/times.csv" "ncu step" --top 1 >"$tmp/top1.out"
[ "$(wc -l <"$tmp/top1.out")" -eq 2 ] || fail "--top 1: $(wc -l <"$tmp/top1.out") rows, not 2"

# Every metric: bn_stats twice.
#   launch 0: 1 ms, 2 GB read + 1,000 MB written, 56 registers, occupancy
#             50% / 40%, issue slots 30% busy, FP64 pipe 10%
#   launch 1: 3,000 us, 5 GB read + 1e9 bytes written, 64 registers,
#             occupancy 37.4% / 20%, issue slots 50%, FP64 pipe 2%
# 4 ms and 9 GB: 2.25 TB/s; weighted by time: achieved (40 * 1 + 20 * 3) / 4
# = 25%, issue slots (30 + 150) / 4 = 45%, FP64 (10 + 6) / 4 = 4%.
{
  echo "$header"
  while read -r id metric unit value; do line "$id" "$stats" "$metric" "$unit" "$value"; done <<'METRICS'
0 gpu__time_duration.sum msecond 1
0 dram__bytes_read.sum Gbyte 2
0 dram__bytes_write.sum Mbyte 1,000
0 launch__registers_per_thread register/thread 56
0 sm__maximum_warps_per_active_cycle_pct % 50
0 sm__warps_active.avg.pct_of_peak_sustained_active % 40
0 sm__inst_issued.avg.pct_of_peak_sustained_active % 30
0 sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active % 10
1 gpu__time_duration.sum usecond 3,000
1 dram__bytes_read.sum Gbyte 5
1 dram__bytes_write.sum byte 1000000000
1 launch__registers_per_thread register/thread 64
1 sm__maximum_warps_per_active_cycle_pct % 37.4
1 sm__warps_active.avg.pct_of_peak_sustained_active % 20
1 sm__inst_issued.avg.pct_of_peak_sustained_active % 50
1 sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active % 2
METRICS
} >"$tmp/all.csv"
"$py" "$script" "$tmp/all.csv" "ncu bn" >"$tmp/all.out" || fail "all.csv: status $?"
expect "$tmp/all.out" "$(row "ncu bn" info "4.00 ms of kernels in 2 launches, 9.00 GB at 2.25 TB/s")"
expect "$tmp/all.out" "$(row "ncu bn #1" info "4.00 ms, 2 launches, 9.00 GB at 2.25 TB/s, 56-64 registers, occupancy 37-50% theoretical, 25% achieved, issue slots 45% busy, FP64 pipe 4%: bn_stats_nhwc_kernel<lrt::BFloat16, float, 2>")"

# --split: the time by kind of kernel, told apart by name (lrt's kernels,
# PyTorch's and the libraries'), the first matching kind counting:
#   convolutions and matrix products: 3 + 0.5 ms; batch norm 1 + 1.5 ms
#   (PyTorch's reduce kernel counts as batch norm); optimizer 0.75 + 0 (lrt's
#   Adam); elementwise 0.3 + 0.2; layout transposes 0.25; reductions 0.2; loss 0.1;
#   other 0.05. In all 7.85 ms in 13 launches.
{
  echo "$header"
  i=0
  while IFS='|' read -r name ms; do
    line $i "$name" gpu__time_duration.sum msecond "$ms"
    i=$((i + 1))
  done <<'KERNELS'
sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x64x64|3
void splitKreduce_kernel<32, 16, int, float, __nv_bfloat16, float>(cublasSplitKParams<float>, const float *)|0.5
void nhwcToNchwKernel<__nv_bfloat16, __nv_bfloat16, float, 1, 0, 0>(int, int, int, int, const T1 *, T2 *, T3, T3)|0.25
bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>|1
void at::native::batch_norm_backward_reduce_channels_last_kernel<4, c10::BFloat16, float, float, int>(const T2 *)|1.5
void at::native::<unnamed>::multi_tensor_apply_kernel<at::native::<unnamed>::TensorListMetadata<4>, at::native::<unnamed>::FusedAdamMathFunctor<float, 4>>(T1, T2)|0.75
void at::native::<unnamed>::cunn_SoftMaxForward<4, float, float, float, at::native::<unnamed>::LogSoftMaxForwardEpilogue>(T4 *, const T2 *, int)|0.1
reduce_rows_kernel<0, float>|0.2
void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>, std::array<char *, 3>>(int, T2, T3)|0.3
binary_vec_kernel<0, lrt::BFloat16>|0.2
computeOffsetsKernel|0.05
void lrt::optim::detail::(anonymous namespace)::fused_step_kernel<float>(const float *, int)|0
bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>|0
KERNELS
} >"$tmp/split.csv"
"$py" "$script" "$tmp/split.csv" "ncu torch" --split --top 2 >"$tmp/split.out" || fail "split.csv: status $?"
expect "$tmp/split.out" "$(row "ncu torch" info "7.85 ms of kernels in 13 launches")"
expect "$tmp/split.out" "$(row "ncu torch split" info "convolutions and matrix products 3.50 ms (2), batch norm 2.50 ms (3), optimizer 0.75 ms (2), elementwise and copies 0.50 ms (2), layout transposes 0.25 ms (1), reductions and pooling 0.20 ms (1), loss 0.10 ms (1), other 0.05 ms (1)")"
expect "$tmp/split.out" "$(row "ncu torch #2" info "1.50 ms, 1 launch: at::native::batch_norm_backward_reduce_channels_last_kernel<4, c10::BFloat16, float, float, int>")"

# Values ncu could not give ("n/a", an unknown unit) are left out of the
# row: launch 1 has no read bytes and no register count, so the kernel's row
# has no traffic and the registers of launch 0 alone.
{
  echo "$header"
  while read -r id metric unit value; do line "$id" "$apply" "$metric" "$unit" "$value"; done <<'METRICS'
0 gpu__time_duration.sum msecond 1
0 dram__bytes_read.sum Gbyte 1
0 dram__bytes_write.sum Gbyte 1
0 launch__registers_per_thread register/thread 32
1 gpu__time_duration.sum msecond 1
1 dram__bytes_read.sum byte n/a
1 dram__bytes_write.sum Gbyte 1
1 launch__registers_per_thread register/thread n/a
METRICS
} >"$tmp/na.csv"
"$py" "$script" "$tmp/na.csv" "ncu bn" >"$tmp/na.out" || fail "na.csv: status $?"
expect "$tmp/na.out" "$(row "ncu bn" info "2.00 ms of kernels in 2 launches")"
expect "$tmp/na.out" "$(row "ncu bn #1" info "2.00 ms, 2 launches, 32 registers: bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>")"

# A launch without a readable time is left out, and the total row says so:
# the others still make the table.
{
  echo "$header"
  line 0 "$apply" gpu__time_duration.sum msecond 1
  line 1 "$stats" gpu__time_duration.sum msecond n/a
  line 2 "$apply" gpu__time_duration.sum msecond 0.5
} >"$tmp/untimed.csv"
"$py" "$script" "$tmp/untimed.csv" "ncu bn" >"$tmp/untimed.out" || fail "untimed.csv: status $?"
expect "$tmp/untimed.out" "$(row "ncu bn" info "1.50 ms of kernels in 2 launches; 1 more launch left out, no readable time (value 'n/a' of gpu__time_duration.sum)")"
expect "$tmp/untimed.out" "$(row "ncu bn #1" info "1.50 ms, 2 launches: bn_apply_nhwc_kernel<lrt::BFloat16, float, 8>")"
[ "$(wc -l <"$tmp/untimed.out")" -eq 2 ] || fail "untimed.csv: $(wc -l <"$tmp/untimed.out") rows, not 2"

# A last line cut short (ncu stopped while writing): that launch is left
# out like one without a readable time.
{
  echo "$header"
  line 0 "$apply" gpu__time_duration.sum msecond 1
  printf '"1","7","bench_resnet50","h","%s","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum"\n' "$stats"
} >"$tmp/cut.csv"
"$py" "$script" "$tmp/cut.csv" "ncu bn" >"$tmp/cut.out" || fail "cut.csv: status $?"
expect "$tmp/cut.out" "$(row "ncu bn" info "1.00 ms of kernels in 1 launch; 1 more launch left out, no readable time (unit 'None' of gpu__time_duration.sum)")"

# No usable table: one row, FAIL or skip, and status 0.
echo '==ERROR== Failed to profile "bn_apply_nhwc_kernel"' >"$tmp/none.csv"
"$py" "$script" "$tmp/none.csv" "ncu bn" >"$tmp/none.out" || fail "none.csv: status $?"
expect "$tmp/none.out" "$(row "ncu bn" FAIL "no kernel table (see the ncu log beside the CSV)")"
"$py" "$script" "$tmp/none.csv" "ncu bn" --missing skip >"$tmp/skip.out"
expect "$tmp/skip.out" "$(row "ncu bn" skip "no kernel table (see the ncu log beside the CSV)")"
"$py" "$script" "$tmp/absent.csv" "ncu bn" >"$tmp/absent.out" || fail "absent.csv: status $?"
grep -q '^ncu bn  *FAIL  *no kernel table (No such file or directory: ' "$tmp/absent.out" || fail "absent.csv: $(cat "$tmp/absent.out")"
{ echo "$header"; line 0 "$apply" gpu__time_duration.sum furlong 3; } >"$tmp/unit.csv"
"$py" "$script" "$tmp/unit.csv" "ncu bn" >"$tmp/unit.out"
expect "$tmp/unit.out" "$(row "ncu bn" FAIL "unreadable kernel table (unit 'furlong' of gpu__time_duration.sum)")"
{ echo "$header"; line 0 "$apply" dram__bytes_read.sum byte 3; } >"$tmp/notime.csv"
"$py" "$script" "$tmp/notime.csv" "ncu bn" >"$tmp/notime.out"
expect "$tmp/notime.out" "$(row "ncu bn" FAIL "unreadable kernel table (a launch of bn_apply_nhwc_kernel<lrt::BFloat16, float, 8> has no gpu__time_duration.sum)")"
echo "$header" >"$tmp/empty.csv"
"$py" "$script" "$tmp/empty.csv" "ncu bn" >"$tmp/empty.out"
expect "$tmp/empty.out" "$(row "ncu bn" FAIL "the kernel table is empty (no kernel matched)")"

# Bad arguments: status 2.
"$py" "$script" "$tmp/times.csv" "ncu bn" --top -1 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--top -1 did not exit with status 2"
"$py" "$script" >/dev/null 2>&1
[ $? -eq 2 ] || fail "no arguments did not exit with status 2"

finish ncu_summary.py
