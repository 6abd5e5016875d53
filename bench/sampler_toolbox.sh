#!/bin/sh
# usage: bench/sampler_toolbox.sh [BUILD_DIR] [SCORER.tdm]
# The sampler toolbox measured (docs/sampling.md "The toolbox measured"): on
# models/diffusion.tdm, from an empty canvas of 128 bytes, one sample per
# seed (SEEDS, default 1..8) and setting, one thread, the settings
# interleaved seed by seed (so that a change of the machine's load hits them
# alike): model calls per sample, calls per generated token, tokens/s (the
# median over the seeds) and the quality of each setting's samples
# concatenated, by examples/score (distinct-n, repetition, known words; NLL
# under SCORER, a causal model from train_ar, when given) next to held-out
# text of the same length. ONLY=PATTERN runs the settings whose name
# matches.
set -eu
build=${1:-build}
scorer=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-$src/models/diffusion.tdm}
seeds=${SEEDS:-"1 2 3 4 5 6 7 8"}
len=128
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name and sample flags, one setting a line; thresholds where this small
# model is confident enough to reveal several positions per step (at 0.5
# and above it reveals about one)
cat > "$out/settings" <<EOF
ancestral-64 --strategy ancestral --steps 64
confidence-64 --strategy maxprob --steps 64
threshold-0.1 --strategy maxprob --steps $len --threshold 0.1
threshold-0.2 --strategy maxprob --steps $len --threshold 0.2
threshold-0.3 --strategy maxprob --steps $len --threshold 0.3
conf-64-loop-0.5 --strategy maxprob --steps 64 --remask loop --eta 0.5
conf-64-rescale-1 --strategy maxprob --steps 64 --remask rescale --eta 1
conf-128-loop-0.5 --strategy maxprob --steps 128 --remask loop --eta 0.5
blocks-32 --strategy maxprob --steps 64 --block-len 32
blocks-32-prefix --strategy maxprob --steps 64 --block-len 32 --approx-cache 1
blocks-32-dual --strategy maxprob --steps 64 --block-len 32 --approx-cache 2
EOF
if [ -n "${ONLY:-}" ]; then
  grep -- "$ONLY" "$out/settings" > "$out/chosen" || true
  mv "$out/chosen" "$out/settings"
fi

echo "model $model, $len bytes, seeds: $seeds, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for seed in $seeds; do
  while read -r name flags; do
    # shellcheck disable=SC2086
    # the shell's `times` gives the CPU time (user, system) of the subshell's children
    ( "$build/bin/sample" --model "$model" --len $len --seed "$seed" --stats $flags \
        < /dev/null >> "$out/$name.txt" 2> "$out/err"; times > "$out/time" )
    grep 'model calls' "$out/err" >> "$out/$name.stats"
    tail -n 1 "$out/time" | tr 'ms' '  ' |
      awk '{ print $1 * 60 + $2 + $3 * 60 + $4 }' >> "$out/$name.cpu"
  done < "$out/settings"
done

echo "| setting | calls/sample | calls/token | remasked/sample | tokens/s (median) | CPU s/sample (median) | bytes words dist-1 dist-2 dist-3 rep-10 H/word known${scorer:+ NLL bits/byte} |"
echo "|---|---|---|---|---|---|---|"
while read -r name flags; do
  # "S steps, C model calls (K cached), X calls/token, R remasked, T s, N tokens/s"
  st=$out/$name.stats
  calls=$(awk '{ c += $3 } END { printf "%.1f", c / NR }' "$st")
  cpt=$(awk '{ c += $8 } END { printf "%.3f", c / NR }' "$st")
  rem=$(awk '{ c += $10 } END { printf "%.1f", c / NR }' "$st")
  tps=$(awk '{ print $14 }' "$st" | sort -n |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                   printf "%.0f", m }')
  cpu=$(sort -n "$out/$name.cpu" |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                   printf "%.2f", m }')
  if [ -n "$scorer" ]; then
    score=$("$build/bin/score" --scorer "$scorer" "$out/$name.txt" 2>/dev/null)
  else
    score=$("$build/bin/score" "$out/$name.txt" 2>/dev/null)
  fi
  row=$(printf '%s\n' "$score" | grep "^$out/$name.txt" | sed "s|^$out/$name.txt *||")
  printf '%s\n' "$score" | grep '^held-out text' | sed 's|^held-out text *||' > "$out/ref"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$calls" "$cpt" "$rem" "$tps" "$cpu" "$row"
done < "$out/settings"
echo "| held-out text | | | | | | $(cat "$out/ref") |"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
