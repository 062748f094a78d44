#!/usr/bin/env bash
# The main job: installs missing Debian packages, builds a Release lrt and
# runs `resnet50_cifar train`. With no arguments that is the demo: synthetic
# CIFAR-10-format data (generated once into ~/.cache/lrt) and a short SGDR run
# of about three minutes on two CPU cores that shows the loss falling and the
# accuracy rising above chance. Extra arguments go to `resnet50_cifar train`
# (e.g. --data ~/cifar-10-batches-bin --preset cifar).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target resnet50_cifar
exec build/apps/resnet50_cifar train "$@"
