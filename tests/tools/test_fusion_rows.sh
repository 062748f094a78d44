#!/usr/bin/env bash
# Checks tools/fusion_rows.py (the device check's rows for
# probe_cudnn_fusion) on hand-written probe output: a row for the run, one
# per shape and type with lrt's passes and each graph's time, "no" where
# cuDNN built none, each graph set against the passes it replaces, a graph
# whose outputs differ from lrt's a FAIL, and unreadable JSON a FAIL.
# Exits 77 (skipped) without python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script fusion_rows.py

row_is() { grep -qE -- "$2" <<<"$1" || fail "'$1' does not match '$2'"; }

# lrt: 0.05 + 0.30 + 0.05 = 0.40 ms. bf16: conv 0.25 (0.30 / 0.25 = 1.20x),
# conv_stats 0.28 runtime-compiled ((0.30 + 0.05) / 0.28 = 1.25x),
# sbr_conv_stats refused. fp16: sbr_conv_stats 0.32 (0.40 / 0.32 = 1.25x).
graph() {  # DTYPE GRAPH MS [EXTRA]
  if [ "$3" = no ]; then
    echo "{\"shape\": \"A\", \"dtype\": \"$1\", \"graph\": \"$2\", \"supported\": false, \"plans_built\": 0, \"plans_failed\": 3, \"error\": \"plan finalize: CUDNN_STATUS_NOT_SUPPORTED (3000)\"}"
  else
    echo "{\"shape\": \"A\", \"dtype\": \"$1\", \"graph\": \"$2\", \"supported\": true, \"median_ms\": $3, \"engine\": 7, \"runtime_compiled\": ${5:-false}, \"matches\": ${4:-true}}"
  fi
}
write() {  # FILE FP16_MATCHES
  cat >"$1" <<JSON
{"benchmark": "probe_cudnn_fusion", "cudnn_version": 91900, "batch": 256, "shapes": [
 {"shape": "A", "what": "layer1 3x3 64->64", "lrt": {"apply_ms": 0.05, "conv_ms": 0.3, "stats_ms": 0.05, "total_ms": 0.4},
  "graphs": [$(graph bf16 conv 0.25), $(graph bf16 conv_stats 0.28 true true), $(graph bf16 sbr_conv_stats no),
             $(graph fp16 sbr_conv_stats 0.32 "$2")]}],
 "stopped_at_deadline": false, "seconds": 12.0}
JSON
}
write "$tmp/ok.json" true
out=$("$py" "$script" "$tmp/ok.json")
[ "$(wc -l <<<"$out")" -eq 3 ] || fail "$(wc -l <<<"$out") rows, not 3: $out"
row_is "$(sed -n 1p <<<"$out")" '^fusion probe +info +cuDNN 91900, 1 shape\(s\) in 12 s; '
row_is "$(sed -n 2p <<<"$out")" \
  '^fusion A bf16 +info +lrt 0\.400 \(bn 0\.050 \+ conv 0\.300 \+ stats 0\.050\); conv 0\.250 \(1\.20x\), conv_stats 0\.280 rtc \(1\.25x\), sbr_conv_stats no$'
row_is "$(sed -n 3p <<<"$out")" '^fusion A fp16 +info +lrt 0\.400 .*; sbr_conv_stats 0\.320 \(1\.25x\)$'

# A graph whose outputs differ from lrt's fails its row alone.
write "$tmp/bad.json" false
out=$("$py" "$script" "$tmp/bad.json")
row_is "$(sed -n 2p <<<"$out")" '^fusion A bf16 +info '
row_is "$(sed -n 3p <<<"$out")" "^fusion A fp16 +FAIL +.*sbr_conv_stats 0\.320 \(1\.25x\) MISMATCH \(sbr_conv_stats: outputs differ from lrt's\)$"

# The batch-norm graphs on the shape's output: their own row, each against
# lrt's kernels doing the same work (bn_relu 0.20 against 0.30: 1.50x);
# cuDNN's legacy batch norm a row of its own, named without the prefix
# (bn_relu 0.15: 2.00x; dbn_add_relu in the spatial mode 0.50 against
# 0.40: 0.80x; dbn_relu refused, set against lrt's backward through the
# ReLU).
cat >"$tmp/bn.json" <<JSON
{"cudnn_version": 91900, "seconds": 5.0, "shapes": [
 {"shape": "A", "lrt": {"apply_ms": 0.05, "conv_ms": 0.3, "stats_ms": 0.05, "total_ms": 0.4, "bn_channels": 64,
  "bn_hw": 32, "bn_relu_ms": 0.3, "bn_add_relu_ms": 0.35, "dbn_ms": 0.4, "bn_drelu_dbn_ms": 0.45,
  "dbn_add_relu_ms": 0.4},
  "graphs": [$(graph bf16 conv 0.25),
   {"shape": "A", "dtype": "bf16", "graph": "bn_relu", "supported": true, "median_ms": 0.2, "runtime_compiled": true, "matches": true},
   {"shape": "A", "dtype": "bf16", "graph": "dbn", "supported": false, "error": "plan finalize: CUDNN_STATUS_NOT_SUPPORTED"},
   {"shape": "A", "dtype": "bf16", "graph": "bn_drelu_dbn", "supported": true, "median_ms": 0.5, "matches": false},
   {"shape": "A", "dtype": "bf16", "graph": "legacy_bn_relu", "supported": true, "median_ms": 0.15, "mode": "persistent", "matches": true},
   {"shape": "A", "dtype": "bf16", "graph": "legacy_dbn_relu", "supported": false, "error": "persistent: ...; spatial: ..."},
   {"shape": "A", "dtype": "bf16", "graph": "legacy_dbn_add_relu", "supported": true, "median_ms": 0.5, "mode": "spatial", "matches": true}]}]}
JSON
out=$("$py" "$script" "$tmp/bn.json")
[ "$(wc -l <<<"$out")" -eq 4 ] || fail "batch norm: $(wc -l <<<"$out") rows, not 4: $out"
row_is "$(sed -n 2p <<<"$out")" '^fusion A bf16 +info +lrt 0\.400 .*; conv 0\.250 \(1\.20x\)$'
row_is "$(sed -n 3p <<<"$out")" \
  "^bn A bf16 +FAIL +64 channels 32x32: bn_relu 0\.200 rtc vs lrt 0\.300 \(1\.50x\), dbn no \(lrt 0\.400\), bn_drelu_dbn 0\.500 vs lrt 0\.450 \(0\.90x\) MISMATCH \(bn_drelu_dbn: outputs differ from lrt's\)$"
row_is "$(sed -n 4p <<<"$out")" \
  "^bn legacy A bf16 +info +64 channels 32x32: bn_relu 0\.150 vs lrt 0\.300 \(2\.00x\), dbn_relu no \(lrt 0\.450\), dbn_add_relu 0\.500 spatial vs lrt 0\.400 \(0\.80x\)$"

# Output cut short (the program stopped mid-way), or no file: one FAIL row.
head -c 200 "$tmp/ok.json" >"$tmp/cut.json"
for f in "$tmp/cut.json" "$tmp/missing.json"; do
  out=$("$py" "$script" "$f")
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "$f: $(wc -l <<<"$out") rows, not 1: $out"
  row_is "$out" "^fusion probe +FAIL +unreadable JSON in $f"
done

finish test_fusion_rows
