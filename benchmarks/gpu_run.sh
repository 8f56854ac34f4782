#!/usr/bin/env bash
# The GPU figures of the README, in one script (one lease of a CUDA machine).
#
# Usage, from the repository root on a machine with an NVIDIA GPU and JAX's CUDA wheels
# (`pip install -e '.[cuda12]'`, or an image that already has jax + its CUDA plugin):
#     OUT=some/dir bash benchmarks/gpu_run.sh
# Writes train_gpu_main.json, train_gpu_seeds.json, env_gpu_8x8.json, quickstart_gpu.txt,
# curiosity_gpu_16x16.json and the logs under $OUT (kept in benchmarks/results/ as
# train_rnd8x8_h100.json, train_rnd8x8_seeds_h100.json, env_8x8_h100.json,
# quickstart_5x5_h100.txt); STEPS="train_main env" runs a subset. The step `curiosity` times
# ppo-16x16, ppo-rnd-16x16, ppo-e3b-16x16 and ppo-noveld-16x16 side by side at 1,024 to
# 16,384 envs, each with its frames/s over PPO's (`bench train` with several presets), the
# cost of the curiosity bonuses at the env counts a GPU runs (docs/performance.md). FLOPs are not counted here (each cell
# would compile three more programs, tens of seconds on an H100); the FLOPs per frame are the
# program's, as counted by the CPU benchmark. Each step has its own time limit, so one slow
# step cannot take the others down with it. If a folder .whl/ holds wheels (packages the
# machine lacks, e.g. navix and its dependencies), they are installed into /tmp/site first,
# without an index.
set -u
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
CLI="$PY -m curio_jax.cli"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "--- $name: exit $rc after $((SECONDS - t0)) s"
    grep -v "^WARNING\|^I0000\|^E0000\|^W0000" "$OUT/$name.log" | tail -n 14
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv,noheader
$PY -c "import jax, flax, optax, navix; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'navix', getattr(navix, '__version__', '?'), jax.devices())"

STEPS=${STEPS:-train_main train_seeds env quickstart curiosity}
for s in $STEPS; do
    case $s in
    train_main) step train_main 150 $CLI bench train --preset notebook-rnd-8x8 \
        --num-envs 512,8192 --seeds 1 --updates 20 --no-flops --json "$OUT/train_gpu_main.json" ;;
    train_seeds) step train_seeds 130 $CLI bench train --preset notebook-rnd-8x8 \
        --num-envs 32 --seeds 16,64 --updates 20 --no-flops --json "$OUT/train_gpu_seeds.json" ;;
    env) step env 90 $CLI bench env --sizes 8 --num-envs 1,4096,65536 \
        --impls curio_jax,navix_symbolic_first_person --json "$OUT/env_gpu_8x8.json" ;;
    quickstart) step quickstart 80 $CLI train --preset notebook-rnd-5x5 --seeds 4 \
        --total-frames 204800 --out /tmp/quickstart_gpu ;;
    curiosity) step curiosity 420 $CLI bench train \
        --preset ppo-16x16,ppo-rnd-16x16,ppo-e3b-16x16,ppo-noveld-16x16 \
        --num-envs 1024,4096,16384 --seeds 1 --updates 10 --no-flops \
        --json "$OUT/curiosity_gpu_16x16.json" ;;
    *) echo "unknown step $s" ; exit 2 ;;
    esac
done
cp "$OUT/quickstart.log" "$OUT/quickstart_gpu.txt" 2>/dev/null
nvidia-smi --query-gpu=memory.used,clocks.sm,temperature.gpu --format=csv,noheader
