#!/usr/bin/env bash
# The learning-parity studies of docs/verification.md and the 16x16 / 8x8 follow-ups of
# docs/results.md (issue 23). Resumable: rerun the script after an interruption; finished parts
# are skipped, interrupted ones continue from their checkpoints (JAX runs and the PyTorch
# reference alike). CPU time on a 2-core machine: the 8x8 reference ~2 h, the two 16x16
# reference seeds about 3 h side by side (a process and a core each), the 60M-frame JAX 16x16 run
# ~2.5 h and 0.5 h more to 72M, the sweep ~1 h (all with the cores to themselves).
# Usage: scripts/reproduce_parity.sh [OUT_DIR] [PTH]   (default runs/parity; PTH: the notebook
# author's trained 16x16 agent, a2c_rnd_16x16_weights.pth, for the warm start and eval)
set -uo pipefail
OUT=${1:-runs/parity}
PTH=${2:-a2c_rnd_16x16_weights.pth}
mkdir -p "$OUT"
ref() {  # name, then reference arguments; one torch thread
  local dir=$OUT/$1; shift
  [ -f "$dir/summary.json" ] && return
  local again=""; [ -d "$dir" ] && again="--resume"
  python -m curio_jax.reference.train "$@" --threads 1 --out "$dir" $again
}
jax() {  # name, then train arguments
  local dir=$OUT/$1; shift
  [ -f "$dir/summary.json" ] && return
  if [ -d "$dir" ]; then curio-jax train --resume --out "$dir"; else curio-jax train "$@" --out "$dir"; fi
}
# 1. 8x8 parity: the reference of notebook-rnd-8x8, 8 seeds, each stops at solve (0.95) or 4.1M
ref ref-rnd8-8 --preset notebook-rnd-8x8 --seed 10,11,12,13,14,15,16,17
curio-jax compare "$OUT/ref-rnd8-8" docs/results/8x8/ablations_8x8.json:rnd8-16 --threshold 0.95 \
    --json "$OUT/parity_8x8.json" --plot "$OUT/parity_8x8.png"
# 2. 16x16 parity: the reference of notebook-rnd-16x16, 2 seeds at the preset's 19.9M frames,
#    one process per seed (one core each), pooled by compare (ref-rnd16-s10+ref-rnd16-s11)
ref ref-rnd16-s10 --preset notebook-rnd-16x16 --seed 10 &
ref ref-rnd16-s11 --preset notebook-rnd-16x16 --seed 11 &
wait
# 3. warm start from the shipped agent: 336 updates (2,064,384 frames) per seed, never stopping
ref ref-warm16 --preset notebook-rnd-16x16 --seed 10,11,12,13 --total-frames 2064384 \
    --log-every 12 --solved-threshold 2 --init-from "$PTH"
jax jax-warm16 --preset notebook-rnd-16x16 --seeds 4 --total-frames 2064384 --log-every 12 \
    --checkpoint-every 4 --init-from "$PTH"
python scripts/eval_shipped_agent.py "$PTH" --size 16 --episodes 200 --seed 1000 \
    --json "$OUT/shipped_agent_eval.json"
# 4. budget: notebook-rnd-16x16, 2 seeds to 60M frames (9,766 updates of 6,144 frames)
jax rnd16-60m --preset notebook-rnd-16x16 --seeds 2 --total-frames 60002304 --checkpoint-every 4
# 4b. the same run trained on to 72M frames per seed: a copy of it, extended (train --extend)
ext=$OUT/rnd16-72m
if [ ! -f "$ext/summary.json" ]; then
  [ -d "$ext" ] || cp -a "$OUT/rnd16-60m" "$ext"
  if grep -q '"total_frames": 72000000' "$ext/config.json"; then
    curio-jax train --resume --out "$ext"
  else
    curio-jax train --resume --out "$ext" --total-frames 72000000 --extend
  fi
fi
# 5. the open 8x8 hypothesis: rnd-paper-8x8 with adv_coef_int over 100x, 4 seeds each
if [ ! -f "$OUT/paper8-int/adv_coef_int=10.0/summary.json" ]; then
  if [ -d "$OUT/paper8-int" ]; then curio-jax sweep --resume --out "$OUT/paper8-int"; else
    curio-jax sweep --preset rnd-paper-8x8 --set adv_coef_int=0.1,1,10 --seeds 4 \
        --checkpoint-every 4 --out "$OUT/paper8-int"; fi
fi
cd "$OUT"
curio-jax compare "paper8-int/adv_coef_int=0.1" "paper8-int/adv_coef_int=1.0" \
    "paper8-int/adv_coef_int=10.0" --metric entropy --metric reward_int_mean \
    --json paper8_int.json --plot paper8_int.png
curio-jax compare ref-warm16 jax-warm16 --metric entropy --metric loss_total \
    --json warm16.json --plot warm16.png
curio-jax compare rnd16-60m --threshold 0.95 --metric entropy --metric reward_int_mean \
    --json rnd16_60m.json --plot rnd16_60m.png
curio-jax compare rnd16-72m --threshold 0.95 --metric entropy --metric reward_int_mean \
    --json rnd16_72m.json --plot rnd16_72m.png
# 16x16 parity at the notebook's budget: the JAX run read up to the reference's 19,906,560 frames
curio-jax compare ref-rnd16-s10+ref-rnd16-s11 rnd16-60m --until 19906560 --threshold 0.95 \
    --metric entropy --metric reward_int_mean --json parity_16x16.json --plot parity_16x16.png
