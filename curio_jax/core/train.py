"""``make_train(cfg) -> train``: a whole run as one pure, jittable function.

::

    train = make_train(cfg)
    out = jax.jit(train)(key)                              # TrainOutput(final_state, metrics)
    outs = jax.jit(jax.vmap(train))(jax.random.split(key, 8))   # 8 seeds, one program

    # chunked (host loop for logging / checkpoints; the only impure part lives outside):
    run = jax.jit(train.run_chunk, static_argnums=1)
    state = jax.jit(train.init)(key)
    for _ in range(n_chunks):
        state, metrics = run(state, 100)
        ...  # I/O on the host

A run is a learner and a bonus, each bound once from the config: the learner (``algorithm``:
:class:`curio_jax.core.a2c.A2C`, :class:`curio_jax.core.ppo.PPO`) owns its optimiser and its
learning step; the bonus (``bonus.kind``: :mod:`curio_jax.core.bonuses`) owns its state, its
reward for a rollout and its own loss. One update (:meth:`Train.update`) reads::

    rollout -> bonus reward -> returns and advantages of both streams -> learn (-> bonus learns)

The traced float coefficients live in :class:`Hyperparams` inside the state, so a sweep can
``vmap`` over them together with seeds; everything shape-affecting is static in the config.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.config import TrainConfig, micro_batch_size
from curio_jax.core.a2c import A2C
from curio_jax.core.agent import LearnInputs
from curio_jax.core.bonuses import Bonus, make_bonus
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.metrics import UpdateMetrics
from curio_jax.core.networks import ActorCritic, dummy_obs
from curio_jax.core.optim import AgentParams
from curio_jax.core.ppo import PPO
from curio_jax.core.returns import gae_general
from curio_jax.core.rnd import RunningMeanStd, normalize_intrinsic_reward
from curio_jax.core.rollout import Transition, collect_rollout
from curio_jax.envs import DoorKey, EpisodeStats, make_doorkey

Array = jax.Array

LEARNERS = {"a2c": A2C, "ppo": PPO}
"""``algorithm`` -> the learner class."""


class LearnerState(struct.PyTreeNode):
    """Everything a run carries from one update to the next (one seed)."""

    params: AgentParams  # optimised by the learner: actor-critic (+ the bonus's joint params)
    opt_state: Any  # the learner's optimiser state (RMSprop: A2C; Adam: PPO)
    timestep: Any  # env timestep, batched [B]
    episode_stats: Any  # curio_jax.envs.EpisodeStats over the B envs
    key: Array  # PRNG key of the run
    update: Array  # int32 [] updates done so far
    hparams: Hyperparams
    bonus: Any = None  # the bonus's own state (curio_jax.core.bonuses), None without one
    reward_rms: RunningMeanStd | None = None  # intrinsic-return statistics [] (reward_norm)
    reward_filter: Array | None = None  # [B] discounted intrinsic return filter (reward_norm)


class Targets(struct.PyTreeNode):
    """What an update computes from a rollout before learning (time-major ``[T, B]``)."""

    adv_ext: Array
    ret_ext: Array
    adv_int: Array | None  # intrinsic stream only
    ret_int: Array | None
    reward_int_mean: Array  # [] mean intrinsic reward used for the advantages (0 without one)
    reward_rms: RunningMeanStd | None  # updated (reward_norm)
    reward_filter: Array | None  # [B] (reward_norm)


class TrainOutput(struct.PyTreeNode):
    """What ``train(key)`` returns."""

    final_state: LearnerState
    metrics: UpdateMetrics  # [num_updates]


def _validate(cfg: Any) -> None:
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"make_train needs a TrainConfig, got {type(cfg).__name__}")
    if cfg.algorithm == "ppo" and cfg.shared_permutation:
        raise ValueError(
            "shared_permutation is an A2C switch (the notebook's second permutation); PPO's "
            "minibatches always index every array with one permutation"
        )
    if not cfg.bonus.enabled and cfg.algorithm == "a2c":
        # (PPO leaves the bonus group inert with bonus.kind="none", so that ppo-* and ppo-rnd-*
        # presets differ in bonus.kind alone)
        bonus_only = {
            "shared_permutation": cfg.shared_permutation,
            "bonus.obs_norm": cfg.bonus.obs_norm,
            "bonus.reward_norm": cfg.bonus.reward_norm,
            "bonus.episodic_int=False": not cfg.bonus.episodic_int,
        }
        on = [name for name, v in bonus_only.items() if v]
        if on:
            raise ValueError(
                f"{', '.join(on)} only apply to an intrinsic bonus; set bonus.kind (e.g. rnd)"
            )
    if cfg.bootstrap_truncation and cfg.env.autoreset != "next_step":
        raise ValueError(
            "bootstrap_truncation needs the final observation of a truncated episode, which "
            "only next_step autoreset keeps; use env.autoreset='next_step'"
        )


class Train:
    """A run of ``cfg`` (built by :func:`make_train`). Calling it is the whole run:
    ``train(key) == TrainOutput(*train.run_chunk(train.init(key), cfg.num_updates))``.

    All methods are pure and jittable (jit them yourself; ``num_updates`` is static)."""

    def __init__(self, cfg: TrainConfig, env: Any, sample_sharding: Any = None):
        self.cfg = cfg
        self.env = env
        self.sample_sharding = sample_sharding
        """Env sharding (curio_jax.parallel.sharding.sample_sharding) or None: the sharding the
        flattened training batch is held to, so each device runs the passes of its own
        samples."""
        self.ac = ActorCritic(num_actions=env.num_actions, hidden_dim=cfg.train.hidden_dim)
        self.bonus: Bonus = make_bonus(cfg, env)
        self.learner = LEARNERS[cfg.algorithm](cfg, self.ac, sample_sharding)
        self.micro_batch = micro_batch_size(cfg.train, jax.default_backend(), cfg.minibatch_size)
        """Samples per micro-batch of the update's network passes on this backend (the batch
        size, a PPO minibatch's size for PPO: one pass); see TrainSettings.micro_batch."""

    # ---------------------------------------------------------------- init

    def init(self, key: Array, hparams: Hyperparams | None = None) -> LearnerState:
        """A fresh run: initial params, optimiser state, reset envs, empty statistics."""
        if hparams is None:
            hparams = Hyperparams.from_config(self.cfg)
        elif not isinstance(hparams, Hyperparams):
            raise ValueError(f"hparams must be a Hyperparams, got {type(hparams).__name__}")
        cfg = self.cfg
        n = cfg.train.num_envs
        reward_norm = self.bonus.intrinsic and cfg.bonus.reward_norm
        key, k_ac, k_b0, k_b1, k_env, k_b2 = jax.random.split(key, 6)
        bonus_state, bonus_params = self.bonus.init(jnp.stack([k_b0, k_b1, k_b2]), hparams)
        params = AgentParams(ac=self.ac.init(k_ac, dummy_obs())["params"], bonus=bonus_params)
        timestep = jax.vmap(self.env.reset)(jax.random.split(k_env, n))
        return LearnerState(
            params=params,
            opt_state=self.learner.init_opt(params, hparams),
            timestep=timestep,
            episode_stats=EpisodeStats.create(n),
            key=key,
            update=jnp.asarray(0, jnp.int32),
            hparams=hparams,
            bonus=bonus_state,
            reward_rms=RunningMeanStd.create(()) if reward_norm else None,
            reward_filter=jnp.zeros((n,), jnp.float32) if reward_norm else None,
        )

    # ---------------------------------------------------------------- one update

    def update(self, state: LearnerState) -> tuple[LearnerState, UpdateMetrics]:
        """One rollout, the bonus's rewards, the advantages of both streams, and the learner's
        step (then the bonus's own, if it learns on its own)."""
        cfg, bonus = self.cfg, self.bonus
        key, k_roll, k_batch, k_drop = jax.random.split(state.key, 4)
        micro: int | None = self.update_micro_batch()
        if micro == cfg.minibatch_size:
            micro = None  # one pass

        def policy_fn(obs: Array) -> tuple[Array, Array, Array]:
            return self.ac.apply({"params": state.params.ac}, obs)

        timestep, episode_stats, traj = collect_rollout(
            self.env,
            policy_fn,
            state.timestep,
            state.episode_stats,
            k_roll,
            cfg.train.rollout_size,
            autoreset=cfg.env.autoreset,
            cell_fn=bonus.cell_fn(),
        )
        _, last_ext, last_int = policy_fn(timestep.observation)
        bonus_state, loss_input, reward_int = state.bonus, None, None
        if bonus.intrinsic:
            out = bonus.reward(state.bonus, state.params.bonus, traj, state.hparams, micro)
            bonus_state, loss_input, reward_int = out.state, out.loss_input, out.reward
        tg = self.targets(state, traj, last_ext, last_int, reward_int)
        inputs = LearnInputs(
            traj=traj,
            targets=tg,
            hparams=state.hparams,
            update=state.update,
            bonus_input=loss_input,
            k_batch=k_batch,
            k_drop=k_drop,
            bonus_term=bonus.loss_term(bonus_state) if bonus.joint else None,
            micro=micro,
        )
        params, opt_state, step = self.learner.learn(state.params, state.opt_state, inputs)
        loss_bonus, grad_norm_bonus = step.loss.bonus, step.grad_norm_bonus
        if bonus.intrinsic and not bonus.joint:
            bonus_state, own = bonus.learn(
                bonus_state, traj, jax.random.fold_in(k_batch, 1), state.hparams, micro
            )
            loss_bonus, grad_norm_bonus = loss_bonus + own.loss, grad_norm_bonus + own.grad_norm
        update = state.update + 1
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            timestep=timestep,
            episode_stats=episode_stats,
            key=key,
            update=update,
            bonus=bonus_state,
            reward_rms=tg.reward_rms,
            reward_filter=tg.reward_filter,
        )
        metrics = UpdateMetrics(
            frames=update * jnp.int32(cfg.frames_per_update),
            avg_return_last100=episode_stats.avg_return,
            episodes=episode_stats.episodes,
            loss_total=step.loss.total,
            loss_policy=step.loss.policy,
            loss_value_ext=step.loss.value_ext,
            loss_value_int=step.loss.value_int,
            entropy=step.loss.entropy,
            loss_rnd=loss_bonus,
            reward_int_mean=tg.reward_int_mean,
            grad_norm_ac=step.grad_norm_ac,
            grad_norm_rnd=grad_norm_bonus,
        )
        return new_state, metrics

    def targets(
        self,
        state: LearnerState,
        traj: Transition,
        last_ext: Array,
        last_int: Array,
        reward_int: Array | None,
    ) -> Targets:
        """Advantages and returns of both streams from a rollout, the values of the
        observation after it and the bonus's rewards ``reward_int [T, B]`` (None: no intrinsic
        stream), normalised with ``bonus.reward_norm`` (``state`` supplies the statistics and
        coefficients)."""
        cfg, hp = self.cfg, state.hparams
        textbook = cfg.algorithm == "ppo" and cfg.ppo.textbook_gae
        adv_ext, ret_ext = gae_general(
            traj.reward,
            traj.value_ext,
            last_ext,
            traj.terminated,
            traj.truncated,
            hp.gamma,
            hp.gae_lambda,
            bootstrap_truncation=cfg.bootstrap_truncation,
            textbook=textbook,
        )
        adv_int = ret_int = None
        reward_int_mean = jnp.zeros((), jnp.float32)
        reward_rms, reward_filter = state.reward_rms, state.reward_filter
        if reward_int is not None:
            if cfg.bonus.reward_norm:
                reward_int, reward_filter, reward_rms = normalize_intrinsic_reward(
                    reward_int, reward_filter, reward_rms, hp.gamma_int
                )
            reward_int_mean = jnp.mean(reward_int)
            adv_int, ret_int = gae_general(
                reward_int,
                traj.value_int,
                last_int,
                traj.terminated,
                traj.truncated,
                hp.gamma_int,
                hp.gae_lambda,
                bootstrap_truncation=cfg.bootstrap_truncation,
                episodic=cfg.bonus.episodic_int,
                textbook=textbook,
            )
        return Targets(
            adv_ext=adv_ext,
            ret_ext=ret_ext,
            adv_int=adv_int,
            ret_int=ret_int,
            reward_int_mean=reward_int_mean,
            reward_rms=reward_rms,
            reward_filter=reward_filter,
        )

    # ---------------------------------------------------------------- runs

    def run_chunk(
        self, state: LearnerState, num_updates: int
    ) -> tuple[LearnerState, UpdateMetrics]:
        """``num_updates`` (static) updates with ``lax.scan``; metrics ``[num_updates]``."""
        if not isinstance(num_updates, int) or isinstance(num_updates, bool) or num_updates < 1:
            raise ValueError(f"num_updates must be a positive int, got {num_updates!r}")
        return jax.lax.scan(lambda s, _: self.update(s), state, None, length=num_updates)

    def update_micro_batch(self) -> int:
        """Samples per micro-batch the update uses: ``self.micro_batch``, or the whole batch
        (``cfg.minibatch_size``: the rollout for A2C, a minibatch for PPO) when that is smaller
        or the batch is env-sharded (each device then already holds a share)."""
        size = self.cfg.minibatch_size
        if self.sample_sharding is not None or self.micro_batch >= size:
            return size
        return self.micro_batch

    def __call__(self, key: Array) -> TrainOutput:
        """The whole run: ``cfg.num_updates`` updates from ``init(key)``."""
        state, metrics = self.run_chunk(self.init(key), self.cfg.num_updates)
        return TrainOutput(final_state=state, metrics=metrics)


def make_train(cfg: TrainConfig, env: Any = None, *, sample_sharding: Any = None) -> Train:
    """Validate ``cfg`` (ValueError on nonsense, before anything is traced) and build the run.

    ``env``: defaults to ``curio_jax.envs.make_doorkey(cfg.env.size, cfg.env.autoreset,
    rgb_cache=False)``; a ``DoorKey`` with navix's rendering cache is used without it (the run
    reads symbolic observations; the cache would only grow the training state and change its
    checkpoints' shapes, and the dynamics are the same either way). Any object with
    ``num_actions``, ``reset(key)`` and ``step(timestep, action)`` returning timesteps with
    ``observation``, ``reward``, ``terminated``, ``truncated``, ``done`` works (probe
    environments in tests); a count bonus (``bonus.kind``) also needs the env's
    ``visit_index(timestep)`` and ``num_visit_cells``."""
    _validate(cfg)
    if env is None:
        env = make_doorkey(size=cfg.env.size, autoreset=cfg.env.autoreset, rgb_cache=False)
    elif isinstance(env, DoorKey) and env.rgb_cache:
        env = env.replace(rgb_cache=False)
    num_actions = getattr(env, "num_actions", None)
    if not isinstance(num_actions, int) or num_actions < 1:
        raise ValueError(f"env.num_actions must be a positive int, got {num_actions!r}")
    mode = getattr(env, "autoreset_mode", getattr(env, "autoreset", cfg.env.autoreset))
    if mode != cfg.env.autoreset:
        raise ValueError(
            f"env autoreset is {mode!r} but cfg.env.autoreset is {cfg.env.autoreset!r}"
        )
    return Train(cfg, env, sample_sharding)
