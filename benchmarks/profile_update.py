"""Where the time of one update goes: each piece of ``Train.update`` jitted on its own.

Pieces (one seed, ``num_envs`` envs, ``rollout_size`` steps), in the order ``Train.update``
runs them (docs/architecture.md: a learner x a bonus):

- ``rollout``: ``collect_rollout`` (policy forward + sampling + env step, scanned over time;
  with the bonus's ``cell_fn`` for the count bonuses);
- ``bonus reward``: ``train.bonus.reward(...)`` on the rollout (RND: target + predictor
  forward passes on ``[obs[0]; next_obs]``; E3B: the embedding and the per-env matrices;
  counts: the tables; NovelD: RND's passes, the hash and the episodic table). Absent for
  ``bonus.kind=none``;
- ``targets``: ``Train.targets``, GAE of both streams (and ``bonus.reward_norm``);
- A2C: ``batch`` (``a2c.make_batch``: flatten + shuffle), ``loss+grad`` (``jax.grad`` of
  ``a2c.loss_fn`` with the bonus's loss term ``train.bonus.loss_term(state.bonus)`` when the
  bonus trains jointly, summed over the update's micro-batch pieces) and ``optimizer``
  (per-group clipping + RMSprop);
  PPO: ``learn`` (``train.learner.learn``: all ``epochs x minibatches`` Adam steps);
- ``bonus learn``: ``train.bonus.learn(...)``, a bonus's own optimiser (E3B's inverse
  dynamics); only for such a bonus;
- ``update``: the whole ``Train.update`` for comparison (sum of pieces minus fusion gains).

The pieces use the micro-batch size the update uses (``--micro-batch``: ``train.micro_batch``,
automatic by default, 0 for one pass). Milliseconds are the best of ``--repeats`` calls after
a warm-up. FLOPs are XLA's cost analysis of each piece compiled as one pass (a loop body is
counted once: the rollout's FLOPs are scaled by ``rollout_size``; the whole update's come
from ``curio_jax.tools.bench.update_flops``); scans over time inside a bonus's reward (E3B's
matrix updates, the tables' scans) are still counted once. ``--no-flops`` skips the extra
compilations.

    python benchmarks/profile_update.py --preset notebook-rnd-8x8 --num-envs 512
    python benchmarks/profile_update.py --preset ppo-e3b-8x8 --num-envs 16 --micro-batch 0
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax

from curio_jax.config import parse_overrides
from curio_jax.config import preset as get_preset
from curio_jax.core import a2c, optim
from curio_jax.core.agent import LearnInputs, sum_over_pieces, weight_denominator
from curio_jax.core.bonuses import Bonus
from curio_jax.core.rollout import collect_rollout
from curio_jax.core.train import make_train
from curio_jax.tools.bench import compiled_flops, update_flops

Piece = Callable[[int | None], Callable]
"""``micro -> fn``: a piece built for a micro-batch size (None: one pass)."""


def timed(
    name: str,
    piece: Piece,
    micro: int | None,
    args: tuple,
    repeats: int,
    flops: bool,
    flop_scale: float = 1.0,
) -> tuple[dict, object]:
    """Compile ``piece(micro)`` on ``args``, then the best wall time of ``repeats`` calls;
    FLOPs from ``piece(None)`` (one pass) unless ``flops`` is False. Returns the row and the
    piece's output."""
    compiled = jax.jit(piece(micro)).lower(*args).compile()
    out = jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    mflop = float("nan")
    if flops:
        one_pass = compiled if micro is None else jax.jit(piece(None)).lower(*args).compile()
        mflop = compiled_flops(one_pass) * flop_scale / 1e6
    return {"piece": name, "ms": 1e3 * best, "mflop": mflop}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--num-envs", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        help="train.micro_batch: samples per piece (default: automatic; 0: one pass)",
    )
    ap.add_argument("--no-flops", action="store_true", help="skip XLA's FLOP counts")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a config override on top of the preset, as `train --set` (repeatable), e.g. "
        "ppo.bonus_sample=mask",
    )
    args = ap.parse_args()
    if args.num_envs < 1 or args.repeats < 1:
        ap.error("--num-envs and --repeats must be positive")
    try:
        cfg = get_preset(args.preset).with_overrides(
            {
                "train.num_envs": args.num_envs,
                "train.micro_batch": args.micro_batch,
                **parse_overrides(args.set),
            }
        )
        train = make_train(cfg)
    except ValueError as e:
        ap.error(str(e))
    ac, bonus, T, r = train.ac, train.bonus, cfg.train.rollout_size, args.repeats
    flops = not args.no_flops
    micro: int | None = train.update_micro_batch()
    if micro == cfg.minibatch_size:
        micro = None  # one pass, as Train.update
    state = jax.jit(train.init)(jax.random.key(0))
    state, _ = jax.jit(train.update)(state)  # a realistic mid-run state
    hp = state.hparams
    k_batch, k_drop = jax.random.split(state.key)
    rows = []

    def rollout(_micro):
        def fn(state):
            pol = lambda o: ac.apply({"params": state.params.ac}, o)  # noqa: E731
            return collect_rollout(
                train.env, pol, state.timestep, state.episode_stats, state.key, T,
                autoreset=cfg.env.autoreset, cell_fn=bonus.cell_fn(),
            )  # fmt: skip

        return fn

    # XLA counts the scan body once: scale by T (the concat of next_obs has no FLOPs)
    row, (timestep, _, traj) = timed("rollout", rollout, micro, (state,), r, flops, T)
    rows.append(row)
    # the values of the observation after the rollout (bootstrapping), as Train.update
    _, last_ext, last_int = jax.jit(lambda p, o: ac.apply({"params": p}, o))(
        state.params.ac, timestep.observation
    )

    bonus_state, loss_input, reward_int = state.bonus, None, None
    if bonus.intrinsic:

        def reward(m):
            return lambda state, traj: bonus.reward(state.bonus, state.params.bonus, traj, hp, m)

        row, out = timed("bonus reward", reward, micro, (state, traj), r, flops)
        rows.append(row)
        bonus_state, loss_input, reward_int = out.state, out.loss_input, out.reward

    def targets(_micro):
        return lambda state, traj, reward_int: train.targets(
            state, traj, last_ext, last_int, reward_int
        )

    row, tg = timed("targets", targets, micro, (state, traj, reward_int), r, flops)
    rows.append(row)

    def term(bonus_state):
        """The bonus's loss term as the learner receives it (None: nothing trained jointly)."""
        return bonus.loss_term(bonus_state) if bonus.joint else None

    if cfg.algorithm == "a2c":

        def batch_fn(_micro):
            def fn(traj, tg, loss_input):
                return a2c.make_batch(
                    traj.obs, traj.action, tg.adv_ext, tg.ret_ext, k_batch,
                    adv_int=tg.adv_int, ret_int=tg.ret_int, is_reset=traj.is_reset,
                    shared_permutation=cfg.shared_permutation,
                    mask_reset_transition=cfg.mask_reset_transition, bonus_input=loss_input,
                )  # fmt: skip

            return fn

        row, batch = timed("batch", batch_fn, micro, (traj, tg, loss_input), r, flops)
        rows.append(row)

        def loss_grad(m):
            def fn(params, bonus_state, batch):
                # as a2c.update_step: every piece divides by the whole batch's weight sum
                denom = None if m is None else weight_denominator(batch.weight)

                def grads_of(part, key):
                    return jax.grad(a2c.loss_fn, has_aux=True)(
                        params, part, key, hp, ac, term(bonus_state), denom
                    )

                return sum_over_pieces(grads_of, batch, k_drop, m)

            return fn

        row, (grads, _) = timed(
            "loss+grad", loss_grad, micro, (state.params, bonus_state, batch), r, flops
        )
        rows.append(row)

        def optimizer(_micro):
            def fn(params, opt_state, grads):
                return optim.apply_gradients(
                    params, opt_state, grads, lr=hp.lr, decay=cfg.a2c.rmsprop_decay,
                    eps=cfg.a2c.rmsprop_eps, max_grad_norm_ac=cfg.train.max_grad_norm,
                    max_grad_norm_bonus=cfg.bonus.max_grad_norm,
                )  # fmt: skip

            return fn

        opt_args = (state.params, state.opt_state, grads)
        rows.append(timed("optimizer", optimizer, micro, opt_args, r, flops)[0])
    else:

        def learn(m):
            def fn(params, opt_state, bonus_state, traj, tg, loss_input):
                inputs = LearnInputs(
                    traj=traj, targets=tg, hparams=hp, update=state.update,
                    bonus_input=loss_input, k_batch=k_batch, k_drop=k_drop,
                    bonus_term=term(bonus_state), micro=m,
                )  # fmt: skip
                return train.learner.learn(params, opt_state, inputs)

            return fn

        learn_args = (state.params, state.opt_state, bonus_state, traj, tg, loss_input)
        rows.append(timed("learn", learn, micro, learn_args, r, flops)[0])

    if bonus.intrinsic and not bonus.joint and type(bonus).learn is not Bonus.learn:

        def bonus_learn(_micro):
            return lambda bonus_state, traj: bonus.learn(
                bonus_state, traj, jax.random.fold_in(k_batch, 1), hp
            )

        rows.append(timed("bonus learn", bonus_learn, micro, (bonus_state, traj), r, flops)[0])

    whole, _ = timed("update (whole)", lambda _m: train.update, micro, (state,), r, False)
    whole["mflop"] = update_flops(train) / 1e6 if flops else float("nan")
    frames = cfg.frames_per_update
    pieces = "one pass" if micro is None else f"pieces of {micro}"
    print(
        f"{cfg.name} ({cfg.algorithm}, bonus.kind={cfg.bonus.kind}), {args.num_envs} envs x "
        f"{T} steps = {frames} frames per update; {pieces}"
    )
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
