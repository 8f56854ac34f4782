"""Where the time of one update goes: each piece of ``Train.update`` jitted on its own.

Pieces (one seed, ``num_envs`` envs, ``rollout_size`` steps):

- ``rollout``: ``collect_rollout`` (policy forward + sampling + env step, scanned over time);
- ``gae+batch``: both GAE streams and ``make_batch`` (flatten + shuffle);
- ``intrinsic``: RND target + predictor forward passes on ``next_obs`` (reward);
- ``loss+grad``: ``jax.grad(loss_fn)`` on the full ``T * B`` batch;
- ``optimizer``: clipping + RMSprop;
- ``update``: the whole ``Train.update`` for comparison (sum of pieces minus fusion gains).

Milliseconds are the best of ``--repeats`` calls after a warm-up; FLOPs are XLA's cost
analysis of each compiled piece (a scan body is counted once, so the rollout's FLOPs are scaled
by ``rollout_size``; the per-piece numbers are the ones the update is made of).

    python benchmarks/profile_update.py --preset notebook-rnd-8x8 --num-envs 512
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from curio_jax.config import preset as get_preset
from curio_jax.core import a2c, optim, rnd
from curio_jax.core.returns import gae_general
from curio_jax.core.rollout import collect_rollout
from curio_jax.core.train import make_train
from curio_jax.tools.bench import compiled_flops


def timed(name: str, fn, args: tuple, repeats: int, flop_scale: float = 1.0) -> dict:
    """Compile ``fn`` on ``args``, then the best wall time of ``repeats`` calls."""
    compiled = jax.jit(fn).lower(*args).compile()
    flops = compiled_flops(compiled) * flop_scale
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return {"piece": name, "ms": 1e3 * best, "mflop": flops / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--num-envs", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    cfg = get_preset(args.preset).with_overrides({"a2c.num_envs": args.num_envs})
    train = make_train(cfg)
    nets, T = train.nets, cfg.a2c.rollout_size
    state = jax.jit(train.init)(jax.random.key(0))
    state, _ = jax.jit(train.update)(state)  # a realistic mid-run state
    hp = state.hparams

    def rollout(state):
        pol = lambda o: nets.ac.apply({"params": state.params.ac}, o)  # noqa: E731
        return collect_rollout(
            train.env, pol, state.timestep, state.episode_stats, state.key, T,
            autoreset=cfg.env.autoreset,
        )  # fmt: skip

    _, _, traj = jax.jit(rollout)(state)
    last = jnp.zeros(traj.reward.shape[1:], jnp.float32)

    def gae_batch(traj):
        adv_e, ret_e = gae_general(
            traj.reward, traj.value_ext, last, traj.terminated, traj.truncated,
            hp.gamma, hp.gae_lambda,
        )  # fmt: skip
        adv_i, ret_i = gae_general(
            traj.reward, traj.value_int, last, traj.terminated, traj.truncated,
            hp.gamma_int, hp.gae_lambda, episodic=cfg.rnd.episodic_int,
        )  # fmt: skip
        return a2c.make_batch(
            traj.obs, traj.action, adv_e, ret_e, state.key, adv_int=adv_i, ret_int=ret_i,
            is_reset=traj.is_reset, shared_permutation=cfg.shared_permutation,
            mask_reset_transition=cfg.mask_reset_transition,
        )  # fmt: skip

    batch = jax.jit(gae_batch)(traj)

    def intrinsic(state, next_obs):
        return rnd.intrinsic_reward(
            nets.target, nets.predictor, state.target_params, state.params.predictor, next_obs
        )

    coefs = hp

    def loss_grad(state, batch):
        return jax.grad(a2c.loss_fn, has_aux=True)(
            state.params, state.target_params, batch, state.key, coefs, nets
        )

    grads, _ = jax.jit(loss_grad)(state, batch)

    def optimizer(state, grads):
        return optim.apply_gradients(
            state.params, state.opt_state, grads, lr=hp.lr, decay=cfg.a2c.rmsprop_decay,
            eps=cfg.a2c.rmsprop_eps, max_grad_norm_ac=cfg.a2c.max_grad_norm,
            max_grad_norm_rnd=cfg.rnd.max_grad_norm,
        )  # fmt: skip

    r = args.repeats
    rows = [
        # XLA counts the scan body once: scale by T (the concat of next_obs has no FLOPs)
        timed("rollout", rollout, (state,), r, flop_scale=T),
        timed("gae+batch", gae_batch, (traj,), r),
        timed("intrinsic", intrinsic, (state, traj.next_obs), r),
        timed("loss+grad", loss_grad, (state, batch), r),
        timed("optimizer", optimizer, (state, grads), r),
    ]
    whole = timed("update (whole)", train.update, (state,), r)
    frames = T * args.num_envs
    print(f"{args.preset}, {args.num_envs} envs x {T} steps = {frames} frames per update")
    print(f"{'piece':<16}{'ms':>9}{'% of sum':>10}{'MFLOP':>10}{'GFLOP/s':>10}")
    total_ms = sum(x["ms"] for x in rows)
    for x in rows + [whole]:
        gf = x["mflop"] / x["ms"] if x["ms"] > 0 else float("nan")
        pct = 100 * x["ms"] / total_ms
        print(f"{x['piece']:<16}{x['ms']:>9.2f}{pct:>9.0f}%{x['mflop']:>10.1f}{gf:>10.1f}")
    print(f"{'sum of pieces':<16}{total_ms:>9.2f}")
    print(f"whole update: {frames / whole['ms'] * 1e3:,.0f} frames/s")


if __name__ == "__main__":
    main()
