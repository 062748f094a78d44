#!/usr/bin/env bash
# Installs what building and testing lrt needs on Debian 12, skipping packages
# already present. The CUDA toolkit (with cuDNN and cuBLAS) is not a Debian
# package here: when it is installed in /usr/local/cuda the build finds it,
# otherwise a CPU-only framework is built.
#   tools/setup.sh [PACKAGE...]   also installs the given packages when missing
#                                 (tools/fuzz.sh asks for clang this way)
set -euo pipefail

packages=(cmake ninja-build g++ doctest-dev libopenblas-dev nlohmann-json3-dev libcli11-dev
          python3-torch python3-numpy python3-matplotlib "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: note: nvcc is in /usr/local/cuda/bin (not on PATH); CMake finds it there"
fi
