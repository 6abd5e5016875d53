#!/bin/sh
# usage: run.sh SOURCE_DIR BUILD_DIR C_COMPILER BLAS
# Installs the build into a scratch prefix and builds small host programs
# against it every supported way: pkg-config (shared), find_package,
# pkg-config --static, add_subdirectory, Python ctypes and the Python package.
set -eu
src=$1 build=$2 cc=$3 blas=$4
work=$build/consumer-work
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libtextdiff.so' -printf '%h\n' | head -n 1)
version=$(sed -n 's/^Version: //p' "$libdir/pkgconfig/textdiff.pc")
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --static --libs textdiff | grep -q -- '-lz' || { echo "textdiff.pc: no zlib for static links"; exit 1; }
# A static link needs real libraries only: no compiler-internal directory,
# no OpenMP runtime, every -L an existing directory.
static_libs=$(pkg-config --static --libs textdiff)
case "$static_libs" in
  *gcc/*|*gomp*|*openmp*) echo "textdiff.pc: compiler-internal libraries: $static_libs"; exit 1 ;;
esac
for flag in $static_libs; do
  case $flag in
    -L*) [ -d "${flag#-L}" ] || { echo "textdiff.pc: no directory ${flag#-L}"; exit 1; } ;;
  esac
done
# The installed library: no OpenMP runtime, and a run-time search path only
# to a directory that selects a BLAS variant, never to a system one.
so=$(readlink -f "$libdir/libtextdiff.so")
readelf -d "$so" | grep -q 'NEEDED.*gomp' && { echo "libtextdiff.so needs libgomp"; exit 1; }
runpath=$(readelf -d "$so" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p; s/.*(RPATH).*\[\(.*\)\]/\1/p')
for dir in $(echo "$runpath" | tr ':' ' '); do
  case $dir in
    /lib|/usr/lib|/lib/*-linux-gnu|/usr/lib/*-linux-gnu|/lib64|/usr/lib64|/usr/local/lib)
      echo "libtextdiff.so: run-time search path to a system directory: $runpath"; exit 1 ;;
  esac
done
consumer=$src/tests/consumer/consumer.c

echo "== (a) shared library via pkg-config"
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/shared" "$consumer" $(pkg-config --cflags --libs textdiff)
LD_LIBRARY_PATH=$libdir "$work/shared"
readelf -d "$work/shared" | grep -q 'libtextdiff.so' || { echo "not linked to the shared library"; exit 1; }

echo "== (b) find_package(textdiff)"
cmake -S "$src/tests/consumer/find_package" -B "$work/fp" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$work/fp" >/dev/null
"$work/fp/consumer"
"$work/fp/consumer_static"
readelf -d "$work/fp/consumer_static" | grep -q 'libtextdiff' && { echo "textdiff::static linked the shared library"; exit 1; }

echo "== (c) static library via pkg-config --static"
# Both libraries are installed side by side; name the archive to get it.
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/static" "$consumer" \
      $(pkg-config --cflags textdiff) \
      $(pkg-config --static --libs textdiff | sed "s|-ltextdiff|$libdir/libtextdiff.a|")
"$work/static"
readelf -d "$work/static" | grep -q 'libtextdiff' && { echo "linked the shared library"; exit 1; }

echo "== (d) add_subdirectory()"
cmake -S "$src/tests/consumer/vendored" -B "$work/vendored" -DTD_SOURCE_DIR="$src" \
      -DTD_BLAS="$blas" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$work/vendored" -j2 >/dev/null
"$work/vendored/consumer"

echo "== (e) Python ctypes"
python=/usr/bin/python3
[ -x "$python" ] || python=python3
"$python" "$src/tests/consumer/ctypes_check.py" "$libdir/libtextdiff.so.$(sed -n 's/^#define TD_ABI_VERSION *//p' "$src/include/textdiff/textdiff.h")" "$version"
echo "== (f) Python package textdiff, finding the installed library by its SONAME"
LD_LIBRARY_PATH=$libdir PYTHONPATH=$src/bindings/python PYTHONDONTWRITEBYTECODE=1 \
  env -u TEXTDIFF_LIBRARY "$python" -c "
import textdiff as td
assert td.library_path == 'libtextdiff.so.%d' % td.ABI_VERSION, td.library_path
assert td.version() == '$version', td.version()
assert td.Tokenizer.byte().decode(td.Tokenizer.byte().encode('ok')) == 'ok'
print('textdiff: libtextdiff', td.version(), 'ok')"
echo "consumers: all ok"
