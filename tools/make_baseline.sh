#!/usr/bin/env bash
# Writes the source tree of revision REV into DIR (default .baseline,
# git-ignored) with its short hash in DIR/REVISION, for
# tools/device_check.sh --baseline DIR: the same run then builds that
# revision's bench_resnet50 and times its training step beside this tree's.
#   tools/make_baseline.sh REV [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  ""|-h|--help) sed -n '2,6p' "$0"; [ -n "${1:-}" ]; exit $? ;;
esac
rev=$1
dest=${2:-.baseline}
sha=$(git rev-parse --verify --quiet "$rev^{commit}") ||
  { echo "make_baseline: '$rev' is not a revision of this repository" >&2; exit 2; }
rm -rf "$dest"
mkdir -p "$dest"
git archive "$sha" | tar -x -C "$dest"
git rev-parse --short "$sha" >"$dest/REVISION"
echo "make_baseline: $rev ($(cat "$dest/REVISION")) in $dest ($(du -sh "$dest" | cut -f1))"
