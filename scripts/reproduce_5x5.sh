#!/usr/bin/env bash
# The README's 5x5 measurements: the notebook's two agents (32 seeds each), the PyTorch
# reference (8 seeds each, the notebook's loop: each seed stops when it solves) and the
# ablations (16 seeds each), one common budget of 768,000 frames per seed, then `compare`.
# About 3 hours on a 2-core CPU (RND arms ~12k frames/s, A2C arms ~25-48k, reference ~3-5k).
# (Those speeds were measured with all seeds vmapped, before the seed loop; runs now use it on CPU:
# the same experiment up to float rounding, faster.)
# Usage: scripts/reproduce_5x5.sh [OUT_DIR]   (default runs/reproduce-5x5; needs the
# `reference` extra for the torch runs)
set -euo pipefail
OUT=${1:-runs/reproduce-5x5}
B=768000
mkdir -p "$OUT"
train() { curio-jax train --preset "$1" --seeds "$2" --total-frames $B --out "$OUT/$3"; }
train notebook-rnd-5x5 32 rnd5-32
train notebook-a2c-5x5 32 a2c5-32
python -m curio_jax.reference.train --preset notebook-rnd-5x5 --seed 10,11,12,13,14,15,16,17 \
    --total-frames $B --out "$OUT/ref-rnd5-8"
python -m curio_jax.reference.train --preset notebook-a2c-5x5 --seed 10,11,12,13,14,15,16,17 \
    --total-frames $B --out "$OUT/ref-a2c5-8"
train a2c-x100-5x5 16 a2cx100-5-16
train rnd-x1-5x5 16 rndx1-5-16
train rnd-aligned-5x5 16 rndal-5-16
cd "$OUT"
curio-jax compare rnd5-32 ref-rnd5-8 --json jax_vs_ref_rnd.json
curio-jax compare a2c5-32 ref-a2c5-8 --json jax_vs_ref_a2c.json
curio-jax compare rnd5-32 a2c5-32 a2cx100-5-16 rndx1-5-16 rndal-5-16 \
    --json ablations.json --plot ablations.png
