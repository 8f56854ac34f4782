#!/usr/bin/env bash
# PPO and PPO-RND against the notebook's A2C and RND agents (docs/results.md, "PPO and
# PPO-RND"): for each size, the presets ppo-rnd, ppo, notebook-rnd and notebook-a2c, 8 seeds
# each, at the presets' budgets, each run stopping once all its seeds have passed 0.95 (the
# notebook's threshold; frames-to-solve are those of a full run), then `compare` at 0.95.
# Resumable: rerun after an interruption; finished runs are skipped, interrupted ones continue
# from their checkpoints.
# Usage: scripts/study_ppo.sh [OUT_DIR] [SIZES]   (default runs/ppo-study, "5 8")
set -uo pipefail
OUT=${1:-runs/ppo-study}
SIZES=${2:-"5 8"}
SEEDS=${SEEDS:-8}
for n in $SIZES; do
  s=${n}x${n}
  dir=$OUT/$s
  mkdir -p "$dir"
  arms=()
  for p in ppo-rnd-$s ppo-$s notebook-rnd-$s notebook-a2c-$s; do
    arms+=("$p")
    d=$dir/$p
    [ -f "$d/summary.json" ] && continue
    if [ -d "$d" ]; then
      curio-jax train --resume --out "$d" --no-gif || exit 1
    else
      curio-jax train --preset "$p" --seeds "$SEEDS" --checkpoint-every 4 --no-gif \
        --stop-when-solved --set solved_threshold=0.95 --out "$d" || exit 1
    fi
  done
  (cd "$dir" && curio-jax compare "${arms[@]}" --threshold 0.95 --metric entropy \
      --json "ppo_$s.json" --plot "ppo_$s.png" > "compare_$s.txt")
done
