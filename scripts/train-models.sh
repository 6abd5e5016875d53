#!/bin/sh
# Trains the three models of the demo — autoregressive (train_ar), MLM
# (train_mlm) and masked diffusion (train_diffusion) — with one recipe: the
# same transformer (d_model 256, 4 layers, 4 heads, RoPE, pre-LN, tied head),
# the same byte-level BPE vocabulary (models/kjv-bpe), the same text, batches
# and token count (3,000 steps of 32 × 128 tokens). The three run side by
# side, one thread each, at low priority, and are resumable: run the script
# again and each continues from its checkpoint in models/training/ (logs
# there too). When a run reaches its last step it writes models/training/<name>.tdm.
#   sh scripts/train-models.sh [build directory, default build/demo]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$src/build/demo}/bin
dir=$src/models/training
mkdir -p "$dir"
cd "$dir"
for name in ar mlm diffusion; do
  OPENBLAS_NUM_THREADS=1 nice -n 19 "$bin/train_$name" --tokenizer "$src/models/kjv-bpe" \
    --d-model 256 --layers 4 --heads 4 --seq-len 128 --batch 32 --steps 3000 \
    --lr 1.5e-3 --min-lr 1e-4 --warmup 200 --threads 1 --seed 1 \
    --save-every 100 --eval-every 250 --eval-windows 200 \
    --checkpoint "$name.ckpt" --log "$name.csv" --resume \
    --export "$name.tdm" >>"$name.out" 2>&1 &
done
wait
