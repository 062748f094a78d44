# Shared by the tools' test scripts (sourced): the tool under test, a python3
# to run it with, a temporary folder, and failures counted rather than fatal.
#   tool_script NAME [PYTHON_CHECK]  sets script to tools/NAME (failing if it
#       is missing), then picks a python3 as pick_python NAME PYTHON_CHECK
#   pick_python NAME [PYTHON_CHECK]  sets py to the first of python3 and
#       /usr/bin/python3 that runs PYTHON_CHECK (an import line; default
#       none), or says the test is skipped and exits 77
#   tmp            a folder removed when the script exits
#   fail MESSAGE   prints FAIL: MESSAGE and counts it
#   finish NAME    exits 1 with the count if any check failed, else 0
pick_python() {
  local name=$1 check=${2:-pass} cand
  py=""
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "$check" >/dev/null 2>&1; then
      py=$cand
      return 0
    fi
  done
  echo "SKIPPED: $name (no python3${2:+ that can run '$2'})"
  exit 77
}

tool_script() {
  script="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/$1"
  [ -f "$script" ] || { echo "FAIL: $script not found"; exit 1; }
  pick_python "$@"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$1: $failures check(s) failed"
    exit 1
  fi
  echo "$1: all checks passed"
  exit 0
}
