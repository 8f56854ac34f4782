#!/usr/bin/env bash
# The README's 16x16 measurements (issue 5, item 3), now the study spec
# studies/notebook16/study.toml (docs/studies.md): the notebook's RND and A2C agents and the
# aligned-permutation RND variant, 4 seeds each in one program per arm, at the presets' own
# budget of 19,906,560 frames per seed, compared at 0.95. The README's runs were made with the
# train commands of commits bea06ed (notebook-rnd-16x16, --micro-batch 128, kept in the spec)
# and 6c49dd4 (the other two); their compare JSON is docs/results/16x16/notebook_16x16.json.
# 1-2 hours per RND arm on a 2-core CPU. Rerunning resumes an interrupted arm and skips
# recorded ones. Usage: scripts/reproduce_16x16.sh [WORK_DIR] (default runs/studies/notebook16)
set -euo pipefail
WORK=${1:-runs/studies/notebook16}
curio-jax study run studies/notebook16/study.toml --work "$WORK"
curio-jax study report studies/notebook16/study.toml
