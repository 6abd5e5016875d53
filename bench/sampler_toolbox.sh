#!/bin/sh
# usage: bench/sampler_toolbox.sh [BUILD_DIR] [SCORER.tdm]
# The sampler toolbox measured (docs/sampling.md "Measured"): on
# models/diffusion.tdm, from an empty canvas of 128 bytes, one sample per
# seed (SEEDS, default 1..8), one thread: model calls per sample, calls per
# generated token, tokens/s (median over the seeds) and the quality of the
# samples of each setting concatenated, by examples/score (distinct-n,
# repetition, known words; NLL under SCORER, a causal model from train_ar,
# when given) next to held-out text of the same length. ONLY=PATTERN runs
# the settings whose name matches.
set -eu
build=${1:-build}
scorer=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-$src/models/diffusion.tdm}
seeds=${SEEDS:-"1 2 3 4 5 6 7 8"}
len=128
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # name, sample flags...
  name=$1
  shift
  if [ -n "${ONLY:-}" ] && ! printf '%s\n' "$name" | grep -q -- "$ONLY"; then return; fi
  : > "$out/$name.txt"
  : > "$out/$name.stats"
  for seed in $seeds; do
    "$build/bin/sample" --model "$model" --len $len --seed "$seed" --stats "$@" \
      >> "$out/$name.txt" 2> "$out/err"
    grep 'model calls' "$out/err" >> "$out/$name.stats"
  done
  # "S steps, C model calls (K cached), X calls/token, R remasked, T s, N tokens/s"
  calls=$(awk '{ c += $3 } END { printf "%.1f", c / NR }' "$out/$name.stats")
  cpt=$(awk '{ c += $8 } END { printf "%.3f", c / NR }' "$out/$name.stats")
  rem=$(awk '{ c += $10 } END { printf "%.1f", c / NR }' "$out/$name.stats")
  tps=$(awk '{ print $14 }' "$out/$name.stats" | sort -n |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                   printf "%.0f", m }')
  if [ -n "$scorer" ]; then
    score=$("$build/bin/score" --scorer "$scorer" "$out/$name.txt" 2>/dev/null)
  else
    score=$("$build/bin/score" "$out/$name.txt" 2>/dev/null)
  fi
  row=$(printf '%s\n' "$score" | grep "^$out/$name.txt" | sed "s|^$out/$name.txt *||")
  ref=$(printf '%s\n' "$score" | grep '^held-out text' | sed 's|^held-out text *||')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$calls" "$cpt" "$rem" "$tps" "$row"
  printf '%s\n' "$ref" > "$out/ref"
}

echo "model $model, $len bytes, seeds: $seeds, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| setting | calls/sample | calls/token | remasked/sample | tokens/s (median) | bytes words dist-1 dist-2 dist-3 rep-10 H/word known${scorer:+ NLL bits/byte} |"
echo "|---|---|---|---|---|---|"
run ancestral-64 --strategy ancestral --steps 64
run confidence-64 --strategy maxprob --steps 64
# thresholds where this small model is confident enough to reveal several
# positions per step (at 0.5 and above it reveals about one)
for thr in 0.1 0.2 0.3; do
  run "threshold-$thr" --strategy maxprob --steps $len --threshold $thr
done
run "conf-64-loop-0.5" --strategy maxprob --steps 64 --remask loop --eta 0.5
run "conf-64-rescale-1" --strategy maxprob --steps 64 --remask rescale --eta 1
run "conf-128-loop-0.5" --strategy maxprob --steps 128 --remask loop --eta 0.5
echo "| held-out text | | | | | $(cat "$out/ref") |"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
