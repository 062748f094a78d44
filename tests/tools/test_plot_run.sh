#!/usr/bin/env bash
# Checks tools/plot_run.py on a small generated training log and lr-find
# CSV: both modes write a PNG, and a malformed log line is reported with its
# line number and exit status 2. Exits 77 (skipped) where no python3 has
# matplotlib and numpy.
#   tests/tools/test_plot_run.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tool_script plot_run.py "import matplotlib, numpy"
export MPLCONFIGDIR="$tmp/mpl"  # matplotlib's cache, kept out of $HOME

# A run with 2 parameter groups, 2 SGDR cycles (20 + 40 steps), 3 epochs of
# 20 steps, a skipped step and some events the plot ignores.
"$py" - "$tmp/run.jsonl" "$tmp/lr_find.csv" <<'EOF'
import json, math, sys
log_path, csv_path = sys.argv[1], sys.argv[2]
with open(log_path, "w") as f:
    f.write(json.dumps({"event": "start", "model": "resnet50"}) + "\n\n")
    for n in range(1, 61):
        a, length = (1, 20) if n <= 20 else (21, 40)
        scale = 0.5 * (1 + math.cos(math.pi * (n - a) / length))
        ev = {"event": "step", "step": n, "epoch": n / 20,
              "loss": 2.3 * math.exp(-n / 50) + 0.05 * math.sin(n),
              "lr": [1e-4 * scale, 1e-3 * scale], "grad_norm": 1.5}
        if n == 33:
            ev["loss"], ev["skipped"] = None, True
        f.write(json.dumps(ev) + "\n")
        if n % 20 == 0:
            k = n // 20
            f.write(json.dumps({"event": "epoch", "epoch": k, "train_loss": 1.0,
                                "train_acc": 0.3 + 0.1 * k, "test_loss": None if k == 2 else 1.1,
                                "test_acc": None if k == 2 else 0.25 + 0.1 * k,
                                "images_per_s": 900.0, "seconds": 2.0}) + "\n")
        if n in (20, 60):
            f.write(json.dumps({"event": "cycle_end", "cycle": 1 if n == 20 else 2,
                                "step": n, "snapshot": None}) + "\n")
    f.write(json.dumps({"event": "end"}) + "\n")
with open(csv_path, "w") as f:
    f.write("lr,loss\n")
    for i in range(80):
        x = -7 + 8 * i / 79
        loss = 2.3 - 1.2 / (1 + math.exp(-2.5 * (x + 3))) + (6 * (x + 1) ** 2 if x > -1 else 0)
        f.write("%.6e,%.6f\n" % (10 ** x, loss + 0.03 * math.sin(7 * i)))
EOF
if [ ! -s "$tmp/run.jsonl" ] || [ ! -s "$tmp/lr_find.csv" ]; then
  echo "FAIL: could not write the inputs"
  exit 1
fi

check_png() {  # PATH WHAT
  local png=$1 what=$2 size sig
  if [ ! -f "$png" ]; then fail "$what: $png was not written"; return; fi
  sig=$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')
  [ "$sig" = "89504e470d0a1a0a" ] || fail "$what: $png does not start with the PNG signature ($sig)"
  size=$(wc -c < "$png")
  [ "$size" -gt 10240 ] || fail "$what: $png is only $size bytes"
}

if "$py" "$script" "$tmp/run.jsonl" -o "$tmp/run.png" --title "test run" 2> "$tmp/err"; then
  check_png "$tmp/run.png" "training log"
else
  fail "training log mode exited $?: $(cat "$tmp/err")"
fi

if "$py" "$script" --lr-find "$tmp/lr_find.csv" -o "$tmp/lr_find.png" 2> "$tmp/err"; then
  check_png "$tmp/lr_find.png" "lr-find"
else
  fail "lr-find mode exited $?: $(cat "$tmp/err")"
fi

if "$py" "$script" --lr-find "$tmp/lr_find.csv" -o "$tmp/lr_find_s.png" --suggestion 1e-3 2> "$tmp/err"; then
  check_png "$tmp/lr_find_s.png" "lr-find --suggestion"
else
  fail "lr-find --suggestion exited $?: $(cat "$tmp/err")"
fi

# Line 4 is not JSON.
printf '%s\n' '{"event":"step","step":1,"epoch":0.1,"loss":2.3,"lr":[0.001]}' '' \
  '{"event":"step","step":2,"epoch":0.2,"loss":2.2,"lr":[0.001]}' \
  '{"event":"step","step":3,"loss":' > "$tmp/bad.jsonl"
"$py" "$script" "$tmp/bad.jsonl" -o "$tmp/bad.png" 2> "$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "malformed log: exit status $rc, expected 2"
grep -q 'bad.jsonl:4' "$tmp/err" || fail "malformed log: message does not name line 4: $(cat "$tmp/err")"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "malformed log: message is not one line: $(cat "$tmp/err")"
grep -q '^plot_run.py: ' "$tmp/err" || fail "malformed log: message lacks the plot_run.py: prefix"
[ ! -e "$tmp/bad.png" ] || fail "malformed log: an image was written anyway"

# A log without step events.
printf '%s\n' '{"event":"start"}' > "$tmp/nostep.jsonl"
"$py" "$script" "$tmp/nostep.jsonl" -o "$tmp/nostep.png" 2> "$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "log without steps: exit status $rc, expected 2"
grep -q 'no step events' "$tmp/err" || fail "log without steps: unexpected message: $(cat "$tmp/err")"

# An lr-find CSV with the wrong header.
printf 'rate,value\n1e-5,2.3\n' > "$tmp/badcol.csv"
"$py" "$script" --lr-find "$tmp/badcol.csv" -o "$tmp/badcol.png" 2> "$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "bad CSV header: exit status $rc, expected 2"

# No temporary files left next to the outputs.
leftover=$(find "$tmp" -maxdepth 1 -name '.*.tmp' | head -n 1)
[ -z "$leftover" ] || fail "temporary file left behind: $leftover"

finish "plot_run.py ($py)"
