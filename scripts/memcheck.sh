#!/bin/sh
# Runs unit tests under valgrind's memcheck: any invalid access, use of an
# uninitialised value or definite leak fails.
#   memcheck.sh BUILD_DIR [TEST...]    (default: every tests/test_* binary)
# A build with the reference BLAS keeps OpenBLAS's hand-written kernels out
# of the report. The whole set takes tens of minutes (the gradient checks
# and the sampler tests dominate); scripts/test.sh runs a quick subset.
set -eu
build=$1
shift
if [ $# -eq 0 ]; then
  set -- $(cd "$build/tests" && ls test_* | grep -v '\.')
fi
status=0
for t in "$@"; do
  start=$(date +%s)
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
       --track-origins=yes "$build/tests/$t" >"$build/memcheck-$t.log" 2>&1; then
    echo "memcheck: $t clean ($(( $(date +%s) - start )) s)"
  else
    echo "memcheck: $t FAILED, see $build/memcheck-$t.log"
    status=1
  fi
done
exit $status
