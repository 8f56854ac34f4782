#!/usr/bin/env bash
# PPO and PPO-RND against the notebook's A2C and RND agents (docs/results.md, "PPO and
# PPO-RND"): for each size, the presets ppo-rnd and ppo (and on 8x8 ppo-count), 8 seeds each,
# at the presets' budgets,
# each run stopping once all its seeds have passed 0.95 (the notebook's threshold;
# frames-to-solve are those of a full run), then `compare` at 0.95 against the notebook's
# agents. On 5x5 those are run here too (notebook-rnd-5x5, notebook-a2c-5x5, 8 seeds each, the
# same way). On 8x8 they are the 16 seeds per arm recorded in
# docs/results/8x8/ablations_8x8.json (labels rnd8-16 and a2c8-16: the same presets and 4.1M
# budget, full runs; scripts/reproduce_8x8.sh makes them), read by compare as recorded runs.
# Resumable: rerun after an interruption; finished runs are skipped, interrupted ones continue
# from their checkpoints. Run it from the repository root.
# An arm longer than a session (ppo-rnd-8x8: 3-4 h on a 2-core CPU) can run as SPLIT programs
# of SEEDS/SPLIT seeds each (base seeds 0, 1000, ...; directories ARM.part0, ARM.part1, ...),
# one after another, and compare pools them into one arm (ARM.part0+ARM.part1, docs/cli.md);
# an arm whose directory already exists keeps its one program. TOTAL_FRAMES overrides the
# presets' budgets (a smoke run).
# Usage: [SEEDS=8] [SPLIT=1] [TOTAL_FRAMES=N] scripts/study_ppo.sh [OUT_DIR] [SIZES]
#        (default runs/ppo-study, "5 8")
set -uo pipefail
OUT=${1:-runs/ppo-study}
SIZES=${2:-"5 8"}
SEEDS=${SEEDS:-8}
SPLIT=${SPLIT:-1}
if [ $((SEEDS % SPLIT)) != 0 ]; then
  echo "SEEDS=$SEEDS is not a multiple of SPLIT=$SPLIT" >&2
  exit 2
fi
budget=()
[ -n "${TOTAL_FRAMES:-}" ] && budget=(--total-frames "$TOTAL_FRAMES")
train_arm() {  # DIR PRESET N_SEEDS BASE_SEED: train, or resume an unfinished run
  [ -f "$1/summary.json" ] && return 0
  if [ -d "$1" ]; then
    curio-jax train --resume --out "$1" --no-gif
  else
    curio-jax train --preset "$2" --seeds "$3" --seed "$4" "${budget[@]}" --checkpoint-every 4 \
      --no-gif --stop-when-solved --set solved_threshold=0.95 --out "$1"
  fi
}
RECORDED_8X8=$PWD/docs/results/8x8/ablations_8x8.json
for n in $SIZES; do
  s=${n}x${n}
  dir=$OUT/$s
  mkdir -p "$dir"
  arms=(ppo-rnd-$s ppo-$s)
  recorded=()
  if [ "$n" = 8 ]; then
    arms+=(ppo-count-$s)  # PPO with a count-based bonus: does exploration help PPO here?
    rel=$(realpath --relative-to="$dir" "$RECORDED_8X8")
    recorded=("$rel:rnd8-16" "$rel:a2c8-16")
  else
    arms+=(notebook-rnd-$s notebook-a2c-$s)
  fi
  runs=()  # what compare reads: a run directory, or parts pooled with +
  for p in "${arms[@]}"; do
    if [ "$SPLIT" = 1 ] || [ -d "$dir/$p" ]; then
      train_arm "$dir/$p" "$p" "$SEEDS" 0 || exit 1
      runs+=("$p")
    else
      parts=()
      for ((k = 0; k < SPLIT; k++)); do
        train_arm "$dir/$p.part$k" "$p" $((SEEDS / SPLIT)) $((1000 * k)) || exit 1
        parts+=("$p.part$k")
      done
      runs+=("$(IFS=+; echo "${parts[*]}")")
    fi
  done
  metric=(--metric entropy)
  [ ${#recorded[@]} -gt 0 ] && metric=()  # the recorded arms have no entropy curve
  (cd "$dir" && curio-jax compare "${runs[@]}" "${recorded[@]}" --threshold 0.95 "${metric[@]}" \
      --json "ppo_$s.json" --plot "ppo_$s.png" > "compare_$s.txt")
done
