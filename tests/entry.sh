#!/bin/sh
# Every public function that returns a td_status begins with TDI_ENTER:
# that is what keeps a handle's error slot current (lib/util/error.h), and a
# function without it could report its failure on a handle freed earlier.
# Usage: entry.sh <source dir>
set -eu
status=0
for f in $(find "$1/lib" -name '*.c'); do
  awk -v file="$f" '
    /^td_status td_[a-z0-9_]+\(/ { name = $2; sub(/\(.*/, "", name); want = 1; next }
    want && /^\{/ { brace = 1; next }
    want && brace {
      if ($0 !~ /^    TDI_ENTER(_NONE)?\(/) { print file ": " name " does not begin with TDI_ENTER"; bad = 1 }
      want = 0; brace = 0
    }
    END { exit bad }
  ' "$f" || status=1
done
exit $status
