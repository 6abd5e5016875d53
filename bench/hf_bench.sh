#!/bin/sh
# bench/hf_bench.c against PyTorch (bench/hf_bench.py) on models of
# bert-base-uncased's and roberta-base's shapes with random weights
# (docs/bert-is-a-sampler.md "Speed"), runs interleaved, one JSON line each.
#
#   bench/hf_bench.sh BUILD_DIR MODELS_DIR [REPEAT]
#
# MODELS_DIR is made first if missing:
#   /work/venv/bin/python tools/reference/make_hf_lm.py --base MODELS_DIR
set -eu
build=$1 models=$2 repeat=${3:-3}
py=${PYTHON:-/work/venv/bin/python}
here=$(dirname "$0")
[ -d "$models/bert-base" ] || "$py" "$here/../tools/reference/make_hf_lm.py" --base "$models"
c() { "$build/bin/hf_bench" "$@"; }
p() { "$py" "$here/hf_bench.py" "$@" 2>/dev/null; }
echo "# $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in bert-base roberta-base; do c "$models/$m" load >/dev/null; done # page cache
r=0
while [ $r -lt "$repeat" ]; do
    r=$((r + 1))
    for m in bert-base roberta-base; do c "$models/$m" load; p "$models/$m" load; done
    for t in 1 2; do
        c "$models/bert-base" sample --threads $t
        p "$models/bert-base" sample --threads $t
    done
    c "$models/bert-base" train --threads 1
    p "$models/bert-base" train --threads 1
    echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
c "$models/roberta-base" sample --threads 1
p "$models/roberta-base" sample --threads 1
c "$models/bert-base" sample --threads 1 --strategy maxprob
c "$models/bert-base" sample --threads 1 --strategy maxprob --top-k 50 --top-p 0.9
echo "# $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
