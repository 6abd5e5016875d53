#!/bin/sh
# A rank that dies ends the whole job: kill -9 one rank of a 2-rank
# training run once it has written a checkpoint; mpirun must exit non-zero
# within a bounded time (Open MPI kills the other ranks when one dies), and
# the last checkpoint, written atomically by rank 0, must still load.
# Usage: kill_rank.sh MPIRUN TRAIN_DIFFUSION SAMPLE DIR first|last
# (first: rank 0, the one that writes the checkpoints, maybe in the middle
# of a write; last: another rank).
set -u
mpirun=$1 train=$2 sample=$3 dir=$4 which=$5
rm -rf "$dir" && mkdir -p "$dir" || exit 1
ckpt="$dir/killed.ckpt"
"$mpirun" --oversubscribe -np 2 "$train" --d-model 32 --layers 1 --heads 2 --seq-len 32 \
  --batch 4 --steps 1000000 --warmup 1 --eval-every 0 --save-every 5 --checkpoint "$ckpt" \
  > "$dir/out.txt" 2>&1 &
job=$!
i=0
while [ ! -f "$ckpt" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -f "$ckpt" ]; then
  echo "no checkpoint after 60 s"; kill "$job"; cat "$dir/out.txt"; exit 1
fi
ranks=$(pgrep -P "$job")
if [ "$which" = first ]; then victim=$(echo "$ranks" | head -n 1)
else victim=$(echo "$ranks" | tail -n 1); fi
echo "ranks: $(echo $ranks); killing $victim"
start=$(date +%s)
kill -9 "$victim"
i=0
while kill -0 "$job" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$job" 2>/dev/null; then
  echo "FAILED: mpirun still running 60 s after a rank was killed"
  kill "$job"; exit 1
fi
wait "$job"
status=$?
echo "mpirun exited with status $status after $(( $(date +%s) - start )) s"
tail -n 6 "$dir/out.txt"
# The other ranks end too (mpirun sends them SIGTERM, then SIGKILL).
for r in $ranks; do
  i=0
  while kill -0 "$r" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$r" 2>/dev/null; then
    echo "FAILED: rank process $r still runs: $(ps -o stat=,args= -p "$r")"; exit 1
  fi
done
[ "$status" -ne 0 ] || { echo "FAILED: mpirun exited 0"; exit 1; }
"$sample" --model "$ckpt" --steps 4 --len 32 > "$dir/sample.txt" 2>&1 ||
  { echo "FAILED: the last checkpoint does not load"; cat "$dir/sample.txt"; exit 1; }
echo "the last checkpoint loads"
