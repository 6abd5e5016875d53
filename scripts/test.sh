#!/bin/sh
# Sets up a Debian 12 machine and runs every test of libtextdiff:
#   1. the default build (OpenBLAS, warnings as errors): unit tests, golden
#      vectors, exported symbols, the ABI gate and the consumer programs;
#      then its unit tests again under OpenBLAS's Prescott, Haswell and
#      SkylakeX kernels (those the CPU can run), with perturbed products, and
#      with OPENBLAS_NUM_THREADS=1, where the library's own threads run the
#      matrix products (docs/api.md, "BLAS threads");
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. everything against the reference (netlib) CBLAS, a quick set of unit
#      tests under valgrind's memcheck, and the unit tests against BLIS;
#   4. the unit tests under ThreadSanitizer (clang, static library,
#      reference CBLAS), the library's own threads included;
#   5. a clang build: the unit tests again, and a libFuzzer smoke run of
#      the checkpoint reader;
#   6. a Release (-O3) build, as scripts/demo.sh makes it, warnings as
#      errors, with the benchmark's smoke run;
#   7. libtextdiff_mpi (-DTD_MPI=ON): data-parallel training under mpirun at
#      2 and 4 ranks against one process, the failures every rank reports,
#      and a killed rank (docs/distributed.md).
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

# -- No test may depend on how a BLAS rounds: the default build's unit tests
# -- again under other OpenBLAS kernels (its DYNAMIC_ARCH build reads
# -- OPENBLAS_CORETYPE; a kernel the CPU cannot run would die of SIGILL, so it
# -- is skipped), then with every product moved in its last bits.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
for core in Prescott Haswell SkylakeX; do
  case $core in
    Prescott) need="pni" ;;
    Haswell) need="avx2 fma" ;;
    SkylakeX) need="avx512f avx512cd avx512bw avx512dq avx512vl" ;;
  esac
  lacks=""
  for f in $need; do
    case $cpu_flags in *" $f "*) ;; *) lacks="$lacks $f" ;; esac
  done
  if [ -n "$lacks" ]; then
    echo "==== default, OpenBLAS kernel $core: skipped (the CPU lacks$lacks)"
  elif ! OPENBLAS_CORETYPE=$core "$out/default/tests/test_runtime" | grep -q "core $core |"; then
    echo "==== default, OpenBLAS kernel $core: skipped (OpenBLAS ignores OPENBLAS_CORETYPE)"
  else
    echo "==== default, OpenBLAS kernel $core"
    OPENBLAS_CORETYPE=$core ctest --test-dir "$out/default" -j "$jobs" --output-on-failure -L unit
  fi
done
for seed in 1 2 3; do
  echo "==== default, every product perturbed in its last bits (seed $seed)"
  TD_PERTURB_SEED=$seed LD_PRELOAD="$out/default/tests/libtd_perturb_blas.so" \
    ctest --test-dir "$out/default" -j "$jobs" --output-on-failure -L unit \
          -E '^(test_blas|bench_smoke|dlopen)$'
done
echo "==== default, OPENBLAS_NUM_THREADS=1"
OPENBLAS_NUM_THREADS=1 ctest --test-dir "$out/default" -j "$jobs" --output-on-failure -L unit
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run sanitize "-L unit" -DCMAKE_BUILD_TYPE=Debug -DTD_SANITIZE=ON
run reference-blas "-LE crash|soak" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTD_BLAS=reference
echo "==== reference-blas, memcheck"
sh "$src/scripts/memcheck.sh" "$out/reference-blas" test_structs test_errors test_edges \
  test_text_stats test_schedule_api test_tokenizer_api test_corpus_api test_save_failures \
  test_hf test_golden_hf
run blis "-L unit" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTD_BLAS=blis
TSAN_OPTIONS=halt_on_error=1 \
  run tsan "-L unit" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DTD_TSAN=ON \
      -DTD_BLAS=reference -DTD_BUILD_SHARED=OFF
run clang-fuzz "-L unit|fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DTD_FUZZ=ON -DTD_BUILD_EXAMPLES=OFF
run release "-L bench" -DCMAKE_BUILD_TYPE=Release
run mpi "-L mpi" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTD_MPI=ON -DTD_BUILD_BENCH=OFF
echo "==== all tests passed"
