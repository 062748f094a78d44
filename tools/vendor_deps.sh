#!/usr/bin/env bash
# Copies the header-only dependencies (doctest, CLI11, nlohmann-json) from
# this machine's Debian packages into one include folder, for a machine that
# has no package registry (the GPU machine): pass it to tools/device_check.sh
# --deps, or to CMake as -DLRT_DEPS_INCLUDE.
#   tools/vendor_deps.sh [DIR]   (default .deps/include, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.deps/include}
tools/setup.sh
mkdir -p "$dest"
cp -r /usr/include/doctest /usr/include/CLI /usr/include/nlohmann "$dest/"
echo "vendor_deps: headers in $dest ($(du -sh "$dest" | cut -f1))"
