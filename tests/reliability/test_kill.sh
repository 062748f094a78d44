#!/usr/bin/env bash
# Fault injection by SIGKILL: the trainer is killed 50 times at random
# moments (during start-up, while loading a checkpoint, mid-step, above all
# while a checkpoint is being written, and just after the new one has been
# renamed into place), each run resuming from what the previous one left.
# After every kill:
#   - checkpoint.safetensors, if present, is complete (its size is what its
#     header says), never a partial file, and a kill after the rename finds
#     the new checkpoint (the step after the one resumed from);
#   - it loads: the next run resumes from it (--resume), and resuming
#     verifies both checksums and restores model and optimizer before the run
#     writes its "start" record to the log. A run that is killed before that
#     point cannot have changed the checkpoint (saves come after loading), so
#     the same file is checked again by the run after it;
#   - runs that are not killed (the random moment came after they finished)
#     must exit 0.
# Then a SIGTERM must save a checkpoint and exit 143, and the last checkpoint
# must resume and train one step (exit 0). Kills that land while
# checkpoint.safetensors.tmp is being written (SIGKILL leaves it behind) are
# counted and reported; the test fails if there are none, since it would then
# prove nothing about the atomic save.
#
# Each run is `train --resume DIR --max-steps <its step + 1>`: it loads the
# checkpoint, trains one step on tiny data (8 images, batch 4: 2 steps per
# epoch), evaluates 4 test images and writes a checkpoint at that step, so it
# is as short as a run that resumes and saves can be (start-up and loading
# cost most of it) and ends by itself. The kills are shared between CHAINS
# independent sequences of runs (default 2, one per core of a small machine;
# each run uses one thread), in their own folders. The random moments come
# from bash's $RANDOM with a fixed seed per chain, so the schedule of kills is
# the same every time (the machine's speed still moves where they land).
# Usage: test_kill.sh RESNET50_CIFAR_BINARY [KILLS [CHAINS]]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
rel_init kill "${1:-}"
kills_wanted=${2:-50}
chains=${3:-2}

"$bin" make-synthetic --out "$work/data" --train 8 --test 4 >/dev/null || { echo "FAIL: make-synthetic"; exit 1; }
mkdir -p "$work/pids"
# (the trainer of each chain is listed in $work/pids, for the cleanup)
rel_pid_files="$work/pids/*"

# The waits below poll every 10 ms for several minutes in all; with the
# external sleep, date, stat and grep each poll would cost a process, a good
# part of a core on a small machine. So they use bash builtins: nap is a read
# that times out on a pipe nobody writes to, now_ms reads $EPOCHREALTIME,
# `-nt` compares modification times to the nanosecond, and has reads the
# (few-line) log itself.
exec {nap_fd}<> <(:)
nap() { read -rt "$1" -u "$nap_fd" || :; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
has() {  # has FILE TEXT: FILE contains TEXT
  local text=""
  [ -f "$1" ] && IFS= read -r -d '' text <"$1"
  [[ $text == *"$2"* ]]
}
header_length() { od -An -t u8 -N 8 "$1" | tr -d ' '; }
# The training step a checkpoint holds, from its header's metadata.
ck_step() {
  head -c "$((8 + $(header_length "$1")))" "$1" | grep -ao '"state.step":"[0-9]*"' | grep -o '[0-9]*' | head -1
}
train_args() {  # train_args DIR: the flags every run of the chain in DIR uses
  args=(train --data "$work/data" --device cpu --batch-size 4 --train-subset 8 --test-subset 4 --epochs 1000000
    --checkpoint-dir "$1/ck" --log "$1/run.jsonl")
}
# nap_ms N: sleeps N milliseconds.
nap_ms() { nap "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# chain ID KILLS: a calibration run, then runs killed at random moments until
# KILLS kills, in $work/chainID. Writes its counts to $work/chainID/result.
chain() {
  local id=$1 want=$2 dir=$work/chain$1
  mkdir -p "$dir"
  local ck=$dir/ck/checkpoint.safetensors log=$dir/run.jsonl
  local tmp=$ck.tmp pidfile=$work/pids/chain$1 tag="[chain $1]" ref=$dir/run-started
  local args
  train_args "$dir"
  RANDOM=$((20240607 + id))

  # Calibration: an unkilled one-step run measures how long a run lasts and
  # when and for how long it writes its checkpoint.
  local start pid rc first_write_ms=0 write_ms=0 seen_at=0 run_ms d
  start=$(now_ms)
  "$bin" "${args[@]}" --max-steps 1 >"$dir/calibrate.out" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  while kill -0 "$pid" 2>/dev/null; do
    if [ -e "$tmp" ]; then
      [ "$seen_at" -eq 0 ] && seen_at=$(now_ms)
      [ "$first_write_ms" -eq 0 ] && first_write_ms=$((seen_at - start))
    elif [ "$seen_at" -ne 0 ]; then
      d=$(($(now_ms) - seen_at))
      [ "$d" -gt "$write_ms" ] && write_ms=$d
      seen_at=0
    fi
    nap 0.01
  done
  [ "$seen_at" -ne 0 ] && write_ms=$(($(now_ms) - seen_at))
  wait "$pid"
  rc=$?
  rm -f "$pidfile"  # (its PID may be reused once it has been waited for)
  run_ms=$(($(now_ms) - start))
  if [ "$rc" -ne 0 ] || [ ! -f "$ck" ]; then
    fail "$tag the calibration run failed (exit $rc): $(tail -3 "$dir/calibrate.out")"
    echo "0 0 0 0 $failures" >"$dir/result"
    return
  fi
  local data_bytes=$(($(stat -c %s "$ck") - 8 - $(header_length "$ck")))
  echo "$tag calibration: a one-step run takes $run_ms ms and writes its checkpoint after $first_write_ms ms," \
    "for $write_ms ms"

  local kills=0 during_write=0 finished=0 attempts=0 verified_loads=0
  local step r mode delay_ms target at_ms loaded hit size expected
  while [ "$kills" -lt "$want" ]; do
    attempts=$((attempts + 1))
    if [ "$attempts" -gt $((want * 3)) ]; then
      fail "$tag only $kills kills in $attempts runs (the runs keep finishing before the kill)"
      break
    fi
    step=$(ck_step "$ck")
    rm -f "$log"

    # Where to aim: 35% anywhere in the run (its length in the calibration,
    # which did not load a checkpoint, so few runs end before their kill);
    # 40% inside the checkpoint write, once the .tmp holds a random number of
    # bytes from 0 to all of them (all: during its fsync, before the rename);
    # 15% just after the epoch record (the save's copies and checksum, before
    # the temporary file is opened); 10% the moment the new checkpoint has
    # been renamed into place (the folder's fsync, the exit), which must
    # leave the new checkpoint whole and lets the chain move on a step.
    r=$((RANDOM % 20))
    delay_ms=0
    target=0
    if [ "$r" -lt 7 ]; then
      mode=anywhere
      delay_ms=$((RANDOM * run_ms / 32768))
    elif [ "$r" -lt 15 ]; then
      mode=in-write
      target=$((RANDOM * (8 + $(header_length "$ck") + data_bytes) / 32767))
    elif [ "$r" -lt 18 ]; then
      mode=epoch-end
      delay_ms=$((RANDOM % 300))
    else
      mode=after-save
    fi

    # A .tmp newer than this file is one this run wrote to (opening it with
    # O_TRUNC and every write set its mtime), not one left by an earlier kill.
    rm -f "$ref"
    : >"$ref"
    start=$(now_ms)
    "$bin" "${args[@]}" --resume "$dir/ck" --max-steps $((step + 1)) >"$dir/run.out" 2>"$dir/run.err" &
    pid=$!
    echo "$pid" >"$pidfile"
    # Wait for the moment to aim at (or for the run to end by itself).
    case $mode in
      in-write)
        # (stat, for the size, only once this run is writing the .tmp)
        while kill -0 "$pid" 2>/dev/null; do
          if [ "$tmp" -nt "$ref" ] && [ "$(stat -c %s "$tmp" 2>/dev/null || echo 0)" -ge "$target" ]; then
            break
          fi
          nap 0.01
        done
        ;;
      epoch-end)
        while kill -0 "$pid" 2>/dev/null && ! has "$log" '"event":"epoch"'; do nap 0.01; done
        ;;
      after-save)
        # The rename keeps the .tmp's modification time, which is this run's.
        while kill -0 "$pid" 2>/dev/null && ! [ "$ck" -nt "$ref" ]; do nap 0.01; done
        ;;
    esac
    nap_ms "$delay_ms"
    kill -KILL "$pid" 2>/dev/null
    # (braces: keeps bash's "Killed" job report off the output)
    { wait "$pid"; } 2>/dev/null
    rc=$?
    rm -f "$pidfile"
    at_ms=$(($(now_ms) - start))
    loaded=no
    if has "$log" '"event":"start","step":'"$step"','; then
      loaded=yes
      verified_loads=$((verified_loads + 1))
    fi

    if [ "$rc" -ne 137 ]; then
      # Finished before the kill: it must have succeeded.
      if [ "$rc" -eq 0 ]; then
        finished=$((finished + 1))
        ok "$tag run $attempts ($mode) finished before its kill: resumed from step $step and exited 0"
        continue
      fi
      fail "$tag run $attempts ($mode, resuming from step $step) exited $rc: $(tail -3 "$dir/run.err")"
      break
    fi
    kills=$((kills + 1))
    hit=""
    if [ "$tmp" -nt "$ref" ]; then
      during_write=$((during_write + 1))
      hit=", during a checkpoint write (.tmp at $(stat -c %s "$tmp") bytes)"
    fi
    size=$(stat -c %s "$ck")
    expected=$((8 + $(header_length "$ck") + data_bytes))
    if [ "$size" -ne "$expected" ]; then
      fail "$tag kill $kills: checkpoint.safetensors is $size bytes, its header says $expected: a partial file"
      break
    fi
    if [ "$mode" = after-save ] && [ "$(ck_step "$ck")" != $((step + 1)) ]; then
      fail "$tag kill $kills: killed after the new checkpoint was renamed into place, but it holds step" \
        "$(ck_step "$ck"), not $((step + 1))"
      break
    fi
    ok "$tag kill $kills ($mode) after $at_ms ms${hit}, checkpoint at step $(ck_step "$ck") complete;" \
      "the previous checkpoint (step $step) loaded first: $loaded"
  done
  echo "$kills $during_write $finished $verified_loads $failures" >"$dir/result"
}

# ---- the kills, in parallel chains -----------------------------------------------
for ((c = 1; c <= chains; ++c)); do
  share=$(((kills_wanted + chains - c) / chains))  # shares add up to kills_wanted
  chain "$c" "$share" &
  rel_pids="$rel_pids $!"
done
wait
rel_pids=""
kills=0 during_write=0 finished=0 verified_loads=0
for ((c = 1; c <= chains; ++c)); do
  if ! read -r k w f v e <"$work/chain$c/result" 2>/dev/null; then
    fail "chain $c ended without a result"
    continue
  fi
  kills=$((kills + k)) during_write=$((during_write + w)) finished=$((finished + f))
  verified_loads=$((verified_loads + v)) failures=$((failures + e))
done

# ---- SIGTERM and the last resume, on the first chain's checkpoint ---------------
dir=$work/chain1
ck=$dir/ck/checkpoint.safetensors
log=$dir/run.jsonl
train_args "$dir"
if [ -f "$ck" ]; then
  # SIGTERM, unlike SIGKILL, is caught: the run finishes its step, saves a
  # checkpoint at that step, prints how to resume and exits 143.
  step=$(ck_step "$ck")
  rm -f "$log"
  "$bin" "${args[@]}" --resume "$dir/ck" --max-steps $((step + 1000)) >"$work/term.out" 2>&1 &
  pid=$!
  rel_pids=$pid
  while kill -0 "$pid" 2>/dev/null && ! has "$log" '"event":"step"'; do nap 0.01; done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  rel_pids=""
  last=$(grep -o '"event":"step","step":[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  if [ "$rc" -eq 143 ] && grep -q "interrupted by SIGTERM after step $last; checkpoint saved" "$work/term.out" &&
     grep -q "resume with: resnet50_cifar train --resume" "$work/term.out" && [ "$(ck_step "$ck")" = "$last" ]; then
    ok "SIGTERM after step $last: checkpoint saved at that step, resume command printed, exit 143"
  else
    fail "SIGTERM: exit $rc (expected 143), checkpoint at step $(ck_step "$ck"), last logged step $last:" \
      "$(tail -3 "$work/term.out")"
  fi

  # The last checkpoint resumes and trains one step.
  step=$(ck_step "$ck")
  if "$bin" "${args[@]}" --resume "$dir/ck" --max-steps $((step + 1)) >"$work/final.out" 2>&1 &&
     grep -q "resumed from .* at step $step " "$work/final.out"; then
    ok "the last checkpoint (step $step) resumes and trains a step"
  else
    fail "the last checkpoint (step $step) does not resume: $(tail -3 "$work/final.out")"
  fi
fi

echo "$kills kills ($during_write during a checkpoint write), $finished runs finished before their kill," \
  "$verified_loads resumes verified by loading"
[ "$kills" -ge "$kills_wanted" ] || fail "only $kills of $kills_wanted kills"
if [ "$during_write" -eq 0 ]; then
  fail "no kill landed during a checkpoint write, so the atomic save was not tested"
else
  ok "$during_write of $kills kills landed while checkpoint.safetensors.tmp was being written; every checkpoint stayed whole"
fi
rel_finish
