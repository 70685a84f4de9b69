#!/usr/bin/env bash
# `make demo`: the main job on the built-in toy-styles data, from nothing, offline, on a CPU.
#   toy-styles -> prepare -> train-classifier (style model) -> score (same style vs different style)
set -euo pipefail
OUT=${1:-demo-out}
mkdir -p "$OUT"

echo "== 1. generate the toy-styles data set (8 styles x 200 layouts, 64 px)"
stylekit download toy-styles --out "$OUT/toy" --size 64 --per-style 200 --styles 8 --seed 0

echo "== 2. prepare it: stratified 80/10/10 split with manifest.csv (content/ is the pix2pix structure set, not a style)"
stylekit prepare "$OUT/toy" "$OUT/prepared" --size 64 --split 0.8,0.1,0.1 --exclude content

echo "== 3. train a style classifier + style embedding (small-cnn from scratch, CE + SupCon, 3 epochs)"
stylekit train-classifier "$OUT/prepared" --backbone small-cnn --loss ce+supcon --balanced-sampler \
    --epochs 3 --out "$OUT/classifier"

echo "== 4. score with the style model just trained: same style vs different style"
sets="$OUT/score-sets"
rm -rf "$sets" && mkdir -p "$sets/stripes-a" "$sets/stripes-b" "$sets/dots-b"
# two disjoint halves of one style, and the second half of another style (different layouts)
for f in "$OUT"/toy/stripes/*.png; do
    n=$(basename "$f" .png); n=$((10#${n//[!0-9]/}))
    if (( n % 2 == 0 )); then cp "$f" "$sets/stripes-a/"; else cp "$f" "$sets/stripes-b/"; fi
done
for f in "$OUT"/toy/dots/*.png; do
    n=$(basename "$f" .png); n=$((10#${n//[!0-9]/}))
    if (( n % 2 == 1 )); then cp "$f" "$sets/dots-b/"; fi
done
echo "-- stripes (even layouts) vs stripes (odd layouts): same style"
stylekit score "$sets/stripes-a" "$sets/stripes-b" --metrics style --style-model "$OUT/classifier" --no-cache
echo "-- stripes (even layouts) vs dots (odd layouts): different style"
stylekit score "$sets/stripes-a" "$sets/dots-b" --metrics style --style-model "$OUT/classifier" --no-cache
