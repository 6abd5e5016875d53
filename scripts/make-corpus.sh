#!/bin/sh
# Regenerates data/kjv.txt.gz, the bundled King James Bible corpus, from
# Debian's bible-kjv package. Output is byte-for-byte reproducible: the text
# is checked against its published MD5 (data/README.md) before it is written,
# and gzip -n leaves out the file name and time stamp.
#
# usage: scripts/make-corpus.sh [OUTPUT]     (default: data/kjv.txt.gz)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../data/kjv.txt.gz}
expect_md5=4e648c54836de3531485260ea69f16a1
expect_verses=31102

if ! command -v bible >/dev/null 2>&1; then
    echo "make-corpus: installing bible-kjv" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update
    $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bible-kjv
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# The tool looks for its data in the current directory first: run it from /
# with the installed data path so that a stray bible.data cannot interfere.
# -l0 keeps each verse on one line. Its "pretty" layout puts "Book N" headings
# and blank lines between chapters and indents each verse behind its number;
# keep only verse lines, drop the number, and collapse the source's few
# double spaces and trailing blanks, so the corpus is plain verse text, one
# verse per line, in canonical order.
(cd / && LC_ALL=C bible -p /usr/lib -l0 "gen1:1-rev22:21") >"$tmp/raw"
LC_ALL=C sed -n 's/^  [0-9][0-9]* //p' "$tmp/raw" \
    | LC_ALL=C sed 's/  */ /g; s/ $//' >"$tmp/kjv.txt"

verses=$(wc -l <"$tmp/kjv.txt" | tr -d ' ')
if [ "$verses" -ne "$expect_verses" ]; then
    echo "make-corpus: expected $expect_verses verses, got $verses" >&2
    exit 1
fi
md5=$(md5sum "$tmp/kjv.txt" | cut -d' ' -f1)
if [ "$md5" != "$expect_md5" ]; then
    echo "make-corpus: text MD5 is $md5, expected $expect_md5 (bible-kjv changed?)" >&2
    exit 1
fi

gzip -9 -n -c "$tmp/kjv.txt" >"$tmp/kjv.txt.gz"
mv "$tmp/kjv.txt.gz" "$out"
echo "make-corpus: wrote $out ($(wc -c <"$out" | tr -d ' ') bytes, text $md5)"
