#!/usr/bin/env bash
# `make demo`: the main job on the built-in toy-styles data, from nothing.
set -euo pipefail
OUT=${1:-demo-out}
mkdir -p "$OUT"
echo "== 1. generate the toy-styles data set (8 styles x 200 layouts, 64 px)"
stylekit download toy-styles --out "$OUT/toy" --size 64 --per-style 200 --styles 8 --seed 0
echo "== 2. prepare it: stratified 80/10/10 split, manifest.csv"
stylekit prepare "$OUT/toy" "$OUT/prepared" --size 64 --split 0.8,0.1,0.1 --exclude content
