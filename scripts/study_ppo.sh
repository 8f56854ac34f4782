#!/usr/bin/env bash
# PPO and PPO-RND against the notebook's A2C and RND agents (docs/results.md, "PPO and
# PPO-RND"), now the study specs studies/ppo-5x5/study.toml and studies/ppo-8x8/study.toml
# (docs/studies.md): 8 seeds per arm at the presets' budgets, each slice stopping once all its
# seeds have passed 0.95, compared at 0.95; on 8x8 the notebook's agents are the 16 seeds per
# arm recorded in docs/results/8x8/ablations_8x8.json. Each finished slice leaves a record in
# studies/<name>/records (commit them); an interrupted slice resumes from its run directory
# under WORK. Rerun after an interruption, or give each session its time: MAX_MINUTES=170.
# Usage: [MAX_MINUTES=M] scripts/study_ppo.sh [WORK_DIR] [SIZES]   (default runs/studies, "5 8")
# Run it from the repository root.
set -euo pipefail
WORK=${1:-runs/studies}
SIZES=${2:-"5 8"}
limit=()
[ -n "${MAX_MINUTES:-}" ] && limit=(--max-minutes "$MAX_MINUTES")
for n in $SIZES; do
  spec=studies/ppo-${n}x${n}/study.toml
  curio-jax study run "$spec" --work "$WORK/ppo-${n}x${n}" "${limit[@]}"
  curio-jax study report "$spec"
done
