#!/bin/sh
# usage: abi-check.sh SOURCE_DIR libtextdiff.so [--update]
# Compares the built library's ABI with the committed baseline for its ABI
# generation (abi/libtextdiff.so.<TD_ABI_VERSION>.abi). Added functions are
# fine; any other change fails — bump TD_ABI_VERSION and commit a new
# baseline instead (docs/abi.md). The library must be built with -g.
set -eu
src=$1 so=$2
abi=$(sed -n 's/^#define TD_ABI_VERSION *//p' "$src/include/textdiff/textdiff.h")
baseline=$src/abi/libtextdiff.so.$abi.abi
current=$(mktemp)
trap 'rm -f "$current"' EXIT
abidw --headers-dir "$src/include/textdiff" --drop-private-types --no-show-locs \
      --no-comp-dir-path --out-file "$current" "$so"
if [ "${3:-}" = "--update" ]; then
  cp "$current" "$baseline"
  echo "abi: wrote $baseline"
  exit 0
fi
if [ ! -f "$baseline" ]; then
  echo "abi: no baseline $baseline for ABI $abi; create it with: $0 $src $so --update"
  exit 1
fi
status=0
abidiff --no-added-syms "$baseline" "$current" || status=$?
if [ $status -ne 0 ]; then
  echo "abi: libtextdiff.so.$abi differs from its baseline (abidiff exit $status)."
  echo "abi: an incompatible change needs TD_ABI_VERSION bumped and a new baseline."
  exit 1
fi
echo "abi: compatible with $baseline"
