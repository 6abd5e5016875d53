#!/bin/sh
# Installs the Debian 12 packages libtextdiff needs to build and test, when
# they are missing. Usage: setup-debian.sh [extra packages...]
set -eu
pkgs="build-essential cmake pkg-config libopenblas-dev libblas-dev libblis-serial-dev zlib1g-dev libcjson-dev libutf8proc-dev
      libcmocka-dev abigail-tools python3 python3-pip python3-venv binutils clang
      libclang-rt-14-dev valgrind libopenmpi-dev openmpi-bin procps $*"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
