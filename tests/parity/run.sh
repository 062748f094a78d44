#!/usr/bin/env bash
# Runs the PyTorch parity suite: generates PyTorch's answers with
# tools/pytorch_reference.py into OUT_DIR (using the first python3 that has
# torch: python3 on PATH, then Debian's /usr/bin/python3), then runs the
# lrt_pytorch_parity program on them. Exits 77 (ctest: skipped) with one line
# saying why when no Python with PyTorch is found.
# Usage: run.sh LRT_PYTORCH_PARITY_BINARY OUT_DIR
set -euo pipefail
binary=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch, numpy" >/dev/null 2>&1; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "SKIPPED: PyTorch parity (no python3 with torch and numpy; apt-get install python3-torch python3-numpy)"
  exit 77
fi
"$python" "$here/../../tools/pytorch_reference.py" "$out"
LRT_PYTORCH_REFERENCE="$out" "$binary" --no-version
