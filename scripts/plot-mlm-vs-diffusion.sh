#!/bin/sh
# usage: plot-mlm-vs-diffusion.sh RATES.csv MLM_LOG.csv DIFFUSION_LOG.csv OUT.png
# Draws the experiment of docs/mlm-vs-diffusion.md: the loss at each masking
# rate of both models (RATES.csv from `eval --csv` with the MLM checkpoint
# first) and their validation NELBO during training (the --log files).
set -eu
rates=$1 mlm_log=$2 diff_log=$3 out=$4
command -v gnuplot >/dev/null || sh "$(dirname "$0")/setup-debian.sh" gnuplot-nox
gnuplot <<GP
set terminal pngcairo size 1100,420 font "sans,10"
set output "$out"
set datafile separator ","
set multiplot layout 1,2
set title "Loss at each masking rate (held-out KJV)"
set xlabel "masking rate"
set ylabel "bits per masked byte"
set key top left
set grid
plot "$rates" using 1:2 skip 1 with linespoints lw 2 title "MLM (trained at 15%)", \
     "$rates" using 1:4 skip 1 with linespoints lw 2 title "diffusion (all rates)"
set title "Validation NELBO during training"
set xlabel "step"
set ylabel "NELBO, bits per byte"
set key top right
plot "$mlm_log" using 1:(\$7 > 0 ? \$7 : 1/0) skip 1 with linespoints lw 2 title "MLM", \
     "$diff_log" using 1:(\$7 > 0 ? \$7 : 1/0) skip 1 with linespoints lw 2 title "diffusion"
unset multiplot
GP
echo "wrote $out"
