#!/bin/sh
# usage: symbols.sh libtextdiff.so libtextdiff.a
# Fails if the shared library exports a symbol without the td_ prefix, or if
# the static library defines a global symbol outside td_/tdi_/tdx_.
set -eu
so=$1 a=$2
bad_so=$(nm -D --defined-only "$so" | awk 'NF >= 3 {print $3}' | grep -v '^td_' || true)
bad_a=$(nm -g --defined-only "$a" | awk 'NF >= 3 {print $3}' | grep -v -E '^(td|tdi|tdx)_' || true)
n_so=$(nm -D --defined-only "$so" | awk 'NF >= 3 {print $3}' | grep -c '^td_' || true)
status=0
if [ -n "$bad_so" ]; then echo "shared library exports non-td_ symbols:"; echo "$bad_so"; status=1; fi
if [ -n "$bad_a" ]; then echo "static library defines foreign globals:"; echo "$bad_a"; status=1; fi
if [ "$n_so" -lt 1 ]; then echo "shared library exports no td_ symbols"; status=1; fi
[ $status -eq 0 ] && echo "ok: $n_so td_ symbols exported, no others"
exit $status
