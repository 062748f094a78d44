# Shared by the tests/reliability/test_*.sh scripts (sourced, not run): the
# temporary folder, pass/fail reporting, expecting a clean one-line error,
# and snapshots of a folder's files to prove a failed run changed nothing.
# Each script calls rel_init NAME "$@" first and rel_finish last.

# rel_init NAME BINARY: sets $bin, $work (a fresh temporary folder removed on
# exit, after killing the background processes listed in $rel_pids and in the
# files matching the pattern $rel_pid_files) and $failures.
rel_init() {
  rel_name=$1
  bin=${2:-}
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "usage: $0 RESNET50_CIFAR_BINARY (got '${bin}')"
    exit 1
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/lrt-$rel_name-XXXXXX")
  rel_pids=""
  rel_pid_files=""
  trap rel_cleanup EXIT
  # A Ctrl-C or timeout must still run the cleanup (and not leave a trainer
  # writing 280 MB checkpoints into a removed folder).
  trap 'exit 130' INT
  trap 'exit 143' TERM
  failures=0
  rel_start=$SECONDS
  # The runs are tiny; one thread each keeps them from fighting over the
  # cores (OpenMP threads spin) when ctest runs tests side by side.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
}

rel_cleanup() {
  local pid f
  for pid in $rel_pids; do kill -KILL "$pid" 2>/dev/null; done
  for f in $rel_pid_files; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
  done
  # A folder made read-only by a test must become writable again to go.
  chmod -R u+rwX "$work" 2>/dev/null
  rm -rf "$work"
}

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

ok() { echo "ok: $*"; }

rel_finish() {
  local secs=$((SECONDS - rel_start))
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed ($rel_name, ${secs} s)"
    exit 1
  fi
  echo "all $rel_name checks passed (${secs} s)"
  exit 0
}

# check_one_line_error WHAT RC STDERR_FILE NEEDLE: the run exited 2 (not a
# signal, not some other code), printed exactly one stderr line, which starts
# "resnet50_cifar: " and contains NEEDLE, and no sanitizer report. Prints the
# line on success; returns 1 (after fail) otherwise.
check_one_line_error() {
  local what=$1 rc=$2 errfile=$3 needle=$4 err lines
  err=$(cat "$errfile")
  lines=$(grep -c '' "$errfile")
  if [ "$rc" -ge 128 ]; then
    fail "$what: killed by signal $((rc - 128)) (exit $rc): $(tail -5 "$errfile")"
    return 1
  fi
  if grep -Eq 'Sanitizer|runtime error:' "$errfile"; then
    fail "$what: sanitizer report: $(grep -E -m3 'Sanitizer|runtime error:' "$errfile")"
    return 1
  fi
  if [ "$rc" -ne 2 ]; then
    fail "$what: exit code $rc (expected 2): $err"
    return 1
  fi
  if [ "$lines" -ne 1 ]; then
    fail "$what: $lines lines on stderr (expected 1): $err"
    return 1
  fi
  case "$err" in
    "resnet50_cifar: "*"$needle"*) ;;
    *)
      fail "$what: message does not start 'resnet50_cifar: ' or does not name '$needle': $err"
      return 1
      ;;
  esac
  ok "$what -> $err"
}

# snapshot DIR: one line per entry under DIR (files, folders, links), with a
# file's size, mtime, ctime, inode and md5. md5 of the 94 MB weights and the
# 280 MB checkpoints for every case would dominate the run time, so a file's
# md5 is reused while its inode, size, mtime and ctime are all unchanged: any
# write or truncation updates mtime and ctime, and ctime cannot be set back by
# a process, so a reused md5 is still the file's. Call it with its output
# redirected, not inside $(...), whose subshell would drop the cache.
declare -A rel_md5_cache
snapshot() {
  local dir=$1 type ino size mtime ctime path key sum
  while IFS='|' read -r type ino size mtime ctime path; do
    if [ "$type" = f ]; then
      key="$ino $size $mtime $ctime"
      sum=${rel_md5_cache["$path:$key"]:-}
      if [ -z "$sum" ]; then
        sum=$(md5sum <"$path" | cut -d' ' -f1)
        rel_md5_cache["$path:$key"]=$sum
      fi
      echo "file $path size=$size mtime=$mtime ctime=$ctime ino=$ino md5=$sum"
    else
      echo "$type $path"
    fi
  done < <(find "$dir" -mindepth 1 -printf '%y|%i|%s|%T@|%C@|%p\n' | sort -t'|' -k6)
}
