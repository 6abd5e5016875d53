#!/bin/sh
# Sets up a Debian 12 machine, builds libtextdiff and runs the demo:
# MLM next to diffusion on the bundled corpus. Extra arguments go to the demo.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
out=${TD_DEMO_BUILD_DIR:-$src/build/demo}
sh "$src/scripts/setup-debian.sh"
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DTD_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" -j "$(nproc)" >/dev/null
# The demo computes on the library's threads; OpenBLAS's own pool would run
# the products instead (docs/api.md, "BLAS threads"). The caller's setting wins.
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS
exec "$out/bin/demo" "$@"
