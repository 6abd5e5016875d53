#!/bin/sh
# Sets up a Debian 12 machine and runs every test of libtextdiff:
#   1. the default build (OpenBLAS, warnings as errors): unit tests, golden
#      vectors, exported symbols, the ABI gate and the consumer programs;
#      the unit tests again with OPENBLAS_NUM_THREADS=1, where the library's
#      own threads run the matrix products (docs/api.md, "BLAS threads");
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. everything against the reference (netlib) CBLAS;
#   4. the unit tests under ThreadSanitizer (clang, static library,
#      reference CBLAS), the library's own threads included;
#   5. a clang build: the unit tests again, and a libFuzzer smoke run of
#      the checkpoint reader;
#   6. a Release (-O3) build, as scripts/demo.sh makes it, warnings as
#      errors, with the benchmark's smoke run.
# Exits non-zero on the first failure.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
out=${TD_TEST_BUILD_DIR:-$src/build/test}
jobs=${TD_JOBS:-$(nproc)}
sh "$src/scripts/setup-debian.sh"

run() { # name, ctest args, cmake args...
  name=$1 ctest_args=$2
  shift 2
  echo "==== $name"
  cmake -S "$src" -B "$out/$name" -DTD_WERROR=ON "$@" >/dev/null
  cmake --build "$out/$name" -j "$jobs" >/dev/null
  ctest --test-dir "$out/$name" -j "$jobs" --output-on-failure $ctest_args
}

run default "" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "==== default, OPENBLAS_NUM_THREADS=1"
OPENBLAS_NUM_THREADS=1 ctest --test-dir "$out/default" -j "$jobs" --output-on-failure -L unit
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run sanitize "-L unit" -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=ON
run reference-blas "" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTD_BLAS=reference
TSAN_OPTIONS=halt_on_error=1 \
  run tsan "-L unit" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DTD_TSAN=ON \
      -DTD_BLAS=reference -DTD_BUILD_SHARED=OFF
run clang-fuzz "-L unit|fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DTD_FUZZ=ON -DTD_BUILD_EXAMPLES=OFF
run release "-L bench" -DCMAKE_BUILD_TYPE=Release
echo "==== all tests passed"
