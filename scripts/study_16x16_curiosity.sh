#!/usr/bin/env bash
# Does curiosity solve DoorKey-16x16, and is it the curiosity that does it? (docs/results.md,
# "A curiosity agent for 16x16"), now the study spec studies/curiosity16/study.toml
# (docs/studies.md, where the design is described):
# 1. the "tune" group (ppo-rnd-16x16, adv_coef_int 0.5/1/2 x entropy_coef 0.01/0.001, 4 seeds
#    per point on base seeds from 1000, stopping at solve), reported on its own;
# 2. the "final" group (ppo-rnd, ppo, ppo-count at the best tune point, rnd-paper-16x16;
#    8 fresh seeds each, 10M frames, no early stop): write the best point's coefficients into
#    the spec's final `set`s (most seeds solved, then the lowest median frames-to-solve in
#    report/curiosity16_tune_0.95.md) before running it.
# Budget: about 560M frames: one H100/H200 runs it in one call; a 2-core CPU needs days
# (MAX_MINUTES per session, or one slice per job: `curio-jax study run SPEC --slice I`).
# Usage: [MAX_MINUTES=M] [GROUP=tune|final|all] scripts/study_16x16_curiosity.sh [WORK_DIR]
set -euo pipefail
WORK=${1:-runs/studies/curiosity16}
SPEC=studies/curiosity16/study.toml
limit=()
[ -n "${MAX_MINUTES:-}" ] && limit=(--max-minutes "$MAX_MINUTES")
case ${GROUP:-all} in
  all) curio-jax study run "$SPEC" --work "$WORK" "${limit[@]}" ;;
  tune|final)
    # the group's slices, one program each (--slice takes ARM/sK)
    python - "$SPEC" "$GROUP" <<'PY' | while read -r s; do curio-jax study run "$SPEC" --work "$WORK" --slice "$s" "${limit[@]}"; done
import sys
from curio_jax.study.spec import load_spec
for s in load_spec(sys.argv[1]).slices:
    if s.arm.group == sys.argv[2]:
        print(s.id)
PY
    ;;
  *) echo "GROUP must be tune, final or all" >&2; exit 2 ;;
esac
curio-jax study report "$SPEC"
