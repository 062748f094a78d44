#!/usr/bin/env bash
# Installs lrt from a configured build folder into a scratch prefix, then
# builds and runs a separate consumer project (tests/install/consumer) that
# finds it with find_package(lrt) and links lrt::lrt.
#   tools/check_install.sh [BUILD_DIR]   (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "check_install: $build is not a configured build folder" >&2; exit 2; }
prefix=$(mktemp -d)
consumer=$(mktemp -d)
trap 'rm -rf "$prefix" "$consumer"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S tests/install/consumer -B "$consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$consumer" >/dev/null
"$consumer/consumer"
