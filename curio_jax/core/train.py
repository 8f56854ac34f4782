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

One update = one rollout of ``rollout_size`` steps on ``num_envs`` environments
(:func:`curio_jax.core.rollout.collect_rollout`), advantages (:mod:`curio_jax.core.returns`),
intrinsic rewards (:mod:`curio_jax.core.rnd`, or the count bonus of
:mod:`curio_jax.core.counts`) and the algorithm's learning step:
A2C's one gradient step (:mod:`curio_jax.core.a2c`) or PPO's epochs of minibatch steps
(:mod:`curio_jax.core.ppo`), chosen by ``cfg.algorithm``.
The traced float coefficients live in :class:`Hyperparams` inside the state, so a sweep can
``vmap`` over them together with seeds; everything shape-affecting is static in the config.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.config import TrainConfig, micro_batch_size
from curio_jax.core.a2c import Networks, StepMetrics, make_batch, map_rows, update_step
from curio_jax.core.counts import VisitCounts, count_bonus
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.metrics import UpdateMetrics
from curio_jax.core.networks import ActorCritic, RNDPredictor, RNDTarget, dummy_obs
from curio_jax.core.optim import AgentParams, adam, torch_rmsprop
from curio_jax.core.ppo import (
    PPOStepMetrics,
    UpdateKeys,
    annealed_lr,
    flatten_rollout,
    ppo_update,
)
from curio_jax.core.returns import gae_general
from curio_jax.core.rnd import (
    RunningMeanStd,
    init_obs_rms,
    intrinsic_reward,
    normalize_intrinsic_reward,
    normalize_obs,
)
from curio_jax.core.rollout import Transition, collect_rollout
from curio_jax.envs import DoorKey, EpisodeStats, make_doorkey

Array = jax.Array


class LearnerState(struct.PyTreeNode):
    """Everything a run carries from one update to the next (one seed)."""

    params: AgentParams  # optimised: actor-critic (+ RND predictor)
    target_params: Any  # frozen RND target params, None for plain A2C
    opt_state: Any  # TorchRMSpropState (A2C) or optax.ScaleByAdamState (PPO)
    timestep: Any  # env timestep, batched [B]
    episode_stats: Any  # curio_jax.envs.EpisodeStats over the B envs
    key: Array  # PRNG key of the run
    update: Array  # int32 [] updates done so far
    obs_rms: RunningMeanStd | None  # RND input statistics [7, 7, 3] (obs_norm only)
    reward_rms: RunningMeanStd | None  # intrinsic-return statistics [] (reward_norm only)
    reward_filter: Array | None  # [B] discounted intrinsic return filter (reward_norm only)
    hparams: Hyperparams
    visits: VisitCounts | None = None  # visit counts of a count bonus (rnd.bonus), else None


class Targets(struct.PyTreeNode):
    """What an update computes from a rollout before learning (time-major ``[T, B]``)."""

    adv_ext: Array
    ret_ext: Array
    adv_int: Array | None  # intrinsic stream only
    ret_int: Array | None
    reward_int_mean: Array  # [] mean intrinsic reward used for the advantages (0 without one)
    obs_rms: RunningMeanStd | None  # updated with the rollout (obs_norm)
    reward_rms: RunningMeanStd | None  # updated (reward_norm)
    reward_filter: Array | None  # [B] (reward_norm)
    target_obs: Array | None  # [T, B, F] RND target(obs) shared with the reward pass, or None
    visits: VisitCounts | None = None  # updated with the rollout (count bonus)


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
    if not cfg.rnd.enabled and cfg.algorithm == "a2c":
        # (PPO leaves the rnd group inert without rnd.enabled, so that ppo-* and ppo-rnd-*
        # presets differ in rnd.enabled alone)
        rnd_only = {
            "shared_permutation": cfg.shared_permutation,
            "rnd.obs_norm": cfg.rnd.obs_norm,
            "rnd.reward_norm": cfg.rnd.reward_norm,
            "rnd.episodic_int=False": not cfg.rnd.episodic_int,
        }
        on = [name for name, v in rnd_only.items() if v]
        if on:
            raise ValueError(f"{', '.join(on)} only apply to RND; set rnd.enabled=True")
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
        ac = ActorCritic(num_actions=env.num_actions, hidden_dim=cfg.a2c.hidden_dim)
        if cfg.rnd.counts:
            self.nets = Networks(ac=ac, counts=True)
        elif cfg.rnd.enabled:
            self.nets = Networks(
                ac=ac,
                target=RNDTarget(feature_dim=cfg.rnd.feature_dim),
                predictor=RNDPredictor(feature_dim=cfg.rnd.feature_dim, dropout=cfg.rnd.dropout),
            )
        else:
            self.nets = Networks(ac=ac)
        self.micro_batch = micro_batch_size(cfg.a2c, jax.default_backend(), cfg.minibatch_size)
        """Samples per micro-batch of the update's network passes on this backend (the batch
        size, a PPO minibatch's size for PPO: one pass); see A2CConfig.micro_batch."""

    # ---------------------------------------------------------------- init

    def init(self, key: Array, hparams: Hyperparams | None = None) -> LearnerState:
        """A fresh run: initial params, optimiser state, reset envs, empty statistics."""
        if hparams is None:
            hparams = Hyperparams.from_config(self.cfg)
        elif not isinstance(hparams, Hyperparams):
            raise ValueError(f"hparams must be a Hyperparams, got {type(hparams).__name__}")
        cfg, nets = self.cfg, self.nets
        n = cfg.a2c.num_envs
        reward_norm = nets.intrinsic and cfg.rnd.reward_norm
        key, k_ac, k_target, k_pred, k_env, k_norm = jax.random.split(key, 6)
        obs0 = dummy_obs()
        params = AgentParams(ac=nets.ac.init(k_ac, obs0)["params"])
        target_params = None
        if nets.rnd:
            target_params = nets.target.init(k_target, obs0)["params"]
            params = params.replace(predictor=nets.predictor.init(k_pred, obs0)["params"])
        timestep = jax.vmap(self.env.reset)(jax.random.split(k_env, n))
        return LearnerState(
            params=params,
            target_params=target_params,
            opt_state=self._optimizer(hparams).init(params),
            timestep=timestep,
            episode_stats=EpisodeStats.create(n),
            key=key,
            update=jnp.asarray(0, jnp.int32),
            obs_rms=self._random_policy_obs_rms(k_norm) if nets.rnd and cfg.rnd.obs_norm else None,
            reward_rms=RunningMeanStd.create(()) if reward_norm else None,
            reward_filter=jnp.zeros((n,), jnp.float32) if reward_norm else None,
            hparams=hparams,
            visits=(
                VisitCounts.create(cfg.rnd.bonus, self.env.num_visit_cells, n)
                if nets.counts
                else None
            ),
        )

    def _optimizer(self, hparams: Hyperparams) -> Any:
        """The optimiser whose state the run carries: RMSprop (A2C) or Adam (PPO)."""
        if self.cfg.algorithm == "ppo":
            return adam(self.cfg.ppo.adam_eps)
        return torch_rmsprop(hparams.lr)

    def _random_policy_obs_rms(self, key: Array) -> RunningMeanStd:
        """RND paper: observation statistics from ``obs_norm_init_steps`` uniformly random
        steps of ``num_envs`` separate environments (discarded afterwards; not counted as
        frames)."""
        n, steps = self.cfg.a2c.num_envs, self.cfg.rnd.obs_norm_init_steps
        k_reset, k_act = jax.random.split(key)
        timestep = jax.vmap(self.env.reset)(jax.random.split(k_reset, n))
        env_step = jax.vmap(self.env.step)

        def step(ts, k):
            action = jax.random.randint(k, (n,), 0, self.env.num_actions, jnp.int32)
            ts = env_step(ts, action)
            return ts, ts.observation

        _, obs = jax.lax.scan(step, timestep, jax.random.split(k_act, steps))
        return init_obs_rms(obs)

    # ---------------------------------------------------------------- one update

    def update(self, state: LearnerState) -> tuple[LearnerState, UpdateMetrics]:
        """One rollout, its advantages (and intrinsic rewards), and one learning step: A2C's
        gradient step on the whole rollout, or PPO's epochs of minibatch steps."""
        cfg = self.cfg
        key, k_roll, k_batch, k_drop = jax.random.split(state.key, 4)
        micro: int | None = self.update_micro_batch()
        if micro == cfg.minibatch_size:
            micro = None  # one pass

        def policy_fn(obs: Array) -> tuple[Array, Array, Array]:
            return self.nets.ac.apply({"params": state.params.ac}, obs)

        timestep, episode_stats, traj = collect_rollout(
            self.env,
            policy_fn,
            state.timestep,
            state.episode_stats,
            k_roll,
            cfg.a2c.rollout_size,
            autoreset=cfg.env.autoreset,
            cell_fn=jax.vmap(self.env.visit_index) if self.nets.counts else None,
        )
        _, last_ext, last_int = policy_fn(timestep.observation)
        tg = self.targets(state, traj, last_ext, last_int, micro)
        learn = self._ppo_step if cfg.algorithm == "ppo" else self._a2c_step
        params, opt_state, step = learn(state, traj, tg, k_batch, k_drop, micro)
        update = state.update + 1
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            timestep=timestep,
            episode_stats=episode_stats,
            key=key,
            update=update,
            obs_rms=tg.obs_rms,
            reward_rms=tg.reward_rms,
            reward_filter=tg.reward_filter,
            visits=tg.visits,
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
            loss_rnd=step.loss.rnd,
            reward_int_mean=tg.reward_int_mean,
            grad_norm_ac=step.grad_norm_ac,
            grad_norm_rnd=step.grad_norm_rnd,
        )
        return new_state, metrics

    def targets(
        self,
        state: LearnerState,
        traj: Transition,
        last_ext: Array,
        last_int: Array,
        micro: int | None,
    ) -> Targets:
        """Advantages and returns of both streams, the intrinsic rewards (RND) and the updated
        running statistics, from a rollout and the values of the observation after it (the
        part of :meth:`update` between the rollout and the learning step; ``state`` supplies
        the parameters, statistics and coefficients).

        ``micro``: samples per piece of the RND forward passes (None: one pass)."""
        cfg, nets, hp = self.cfg, self.nets, state.hparams
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
        zero = jnp.zeros((), jnp.float32)
        adv_int = ret_int = None
        reward_int_mean = zero
        obs_rms, reward_rms, reward_filter = state.obs_rms, state.reward_rms, state.reward_filter
        target_obs = None  # target(obs [T, B]) for the RND loss, when shared (below)
        visits = state.visits
        reward_int = None
        if nets.counts:
            visits, reward_int = count_bonus(visits, traj.cell, traj.done)
        elif nets.rnd:
            rnd_next = traj.next_obs
            target_next = None
            if cfg.rnd.obs_norm:
                rnd_next = normalize_obs(rnd_next, obs_rms, cfg.rnd.obs_norm_clip)
            else:
                # One target pass for both RND terms: the reward needs target(next_obs[t]) and
                # the loss target(obs[t]), and obs[t] == next_obs[t - 1] for t >= 1, so run the
                # frozen target once on [obs[0]; next_obs] ([T + 1, B]) instead of twice on
                # [T, B] (-0.9 of ~9.7 MFLOP per frame, -9%; benchmarks/NOTES.md). Not with
                # obs_norm: there the loss input is normalised with the updated statistics.
                feats = map_rows(
                    lambda o: nets.target.apply({"params": state.target_params}, o),
                    jnp.concatenate([traj.obs[:1], traj.next_obs], axis=0),
                    micro,
                )
                target_next, target_obs = feats[1:], feats[:-1]
            reward_int = map_rows(
                lambda xs: intrinsic_reward(
                    nets.target,
                    nets.predictor,
                    state.target_params,
                    state.params.predictor,
                    xs[0],
                    target_features=xs[1],
                ),
                (rnd_next, target_next),
                micro,
            )
            if cfg.rnd.obs_norm:  # rewards used the old statistics; the loss uses the new
                obs_rms = obs_rms.update(traj.next_obs.reshape((-1,) + traj.next_obs.shape[2:]))
        if reward_int is not None:
            if cfg.rnd.reward_norm:
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
                episodic=cfg.rnd.episodic_int,
                textbook=textbook,
            )
        return Targets(
            adv_ext=adv_ext,
            ret_ext=ret_ext,
            adv_int=adv_int,
            ret_int=ret_int,
            reward_int_mean=reward_int_mean,
            obs_rms=obs_rms,
            reward_rms=reward_rms,
            reward_filter=reward_filter,
            target_obs=target_obs,
            visits=visits,
        )

    def _a2c_step(
        self,
        state: LearnerState,
        traj: Transition,
        tg: Targets,
        k_batch: Array,
        k_drop: Array,
        micro: int | None,
    ) -> tuple[AgentParams, Any, StepMetrics]:
        """The notebook's learning step: shuffle the rollout (its permutation quirk unless
        ``shared_permutation``) and take one RMSprop step on all of it."""
        cfg = self.cfg
        batch = make_batch(
            traj.obs,
            traj.action,
            tg.adv_ext,
            tg.ret_ext,
            k_batch,
            adv_int=tg.adv_int,
            ret_int=tg.ret_int,
            is_reset=traj.is_reset,
            shared_permutation=cfg.shared_permutation,
            mask_reset_transition=cfg.mask_reset_transition,
            target_features=tg.target_obs,
        )
        if self.sample_sharding is not None:
            batch = jax.tree.map(
                lambda x: jax.lax.with_sharding_constraint(x, self.sample_sharding), batch
            )
        hp = state.hparams
        return update_step(
            state.params,
            state.opt_state,
            state.target_params,
            batch,
            k_drop,
            hp,
            self.nets,
            lr=hp.lr,
            decay=cfg.a2c.rmsprop_decay,
            eps=cfg.a2c.rmsprop_eps,
            max_grad_norm_ac=cfg.a2c.max_grad_norm,
            max_grad_norm_rnd=cfg.rnd.max_grad_norm,
            obs_rms=tg.obs_rms,
            obs_clip=cfg.rnd.obs_norm_clip,
            micro_batch=micro,
        )

    def _ppo_step(
        self,
        state: LearnerState,
        traj: Transition,
        tg: Targets,
        k_batch: Array,
        k_drop: Array,
        micro: int | None,
    ) -> tuple[AgentParams, Any, PPOStepMetrics]:
        """PPO's learning step: ``ppo.epochs`` shuffles of the rollout into ``ppo.minibatches``
        minibatches, one Adam step each (:func:`curio_jax.core.ppo.ppo_update`)."""
        cfg, nets, hp = self.cfg, self.nets, state.hparams
        target_obs = tg.target_obs
        if nets.rnd and target_obs is None:  # obs_norm: the loss input uses the new statistics
            target_obs = map_rows(
                lambda o: nets.target.apply(
                    {"params": state.target_params},
                    normalize_obs(o, tg.obs_rms, cfg.rnd.obs_norm_clip),
                ),
                traj.obs,
                micro,
            )
        batch = flatten_rollout(
            traj.obs,
            traj.action,
            traj.logprob,
            traj.value_ext,
            tg.adv_ext,
            tg.ret_ext,
            adv_int=tg.adv_int,
            ret_int=tg.ret_int,
            is_reset=traj.is_reset,
            mask_reset_transition=cfg.mask_reset_transition,
            target_features=target_obs,
        )
        keys = UpdateKeys.draw(
            k_batch, k_drop, cfg.frames_per_update, cfg.ppo.epochs, cfg.ppo.minibatches
        )
        lr = hp.lr
        if cfg.ppo.anneal_lr:
            lr = annealed_lr(lr, state.update, cfg.num_updates)
        return ppo_update(
            state.params,
            state.opt_state,
            state.target_params,
            batch,
            keys,
            hp,
            nets,
            lr=lr,
            adam_eps=cfg.ppo.adam_eps,
            clip_value=cfg.ppo.clip_value,
            adv_norm=cfg.ppo.adv_norm,
            max_grad_norm_ac=cfg.a2c.max_grad_norm,
            max_grad_norm_rnd=cfg.rnd.max_grad_norm,
            obs_rms=tg.obs_rms,
            obs_clip=cfg.rnd.obs_norm_clip,
            micro_batch=micro,
            sample_sharding=self.sample_sharding,
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
    environments in tests); a count bonus (``rnd.bonus``) also needs the env's
    ``visit_index(timestep)`` and ``num_visit_cells``."""
    _validate(cfg)
    if env is None:
        env = make_doorkey(size=cfg.env.size, autoreset=cfg.env.autoreset, rgb_cache=False)
    elif isinstance(env, DoorKey) and env.rgb_cache:
        env = env.replace(rgb_cache=False)
    num_actions = getattr(env, "num_actions", None)
    if not isinstance(num_actions, int) or num_actions < 1:
        raise ValueError(f"env.num_actions must be a positive int, got {num_actions!r}")
    if cfg.rnd.counts:
        cells = getattr(env, "num_visit_cells", None)
        if not callable(getattr(env, "visit_index", None)) or not isinstance(cells, int):
            raise ValueError(
                f"rnd.bonus={cfg.rnd.bonus!r} counts visit cells: the env needs a "
                "`visit_index(timestep) -> int32` method and an int `num_visit_cells` "
                "(curio_jax.envs.make_doorkey has both)"
            )
    mode = getattr(env, "autoreset_mode", getattr(env, "autoreset", cfg.env.autoreset))
    if mode != cfg.env.autoreset:
        raise ValueError(
            f"env autoreset is {mode!r} but cfg.env.autoreset is {cfg.env.autoreset!r}"
        )
    return Train(cfg, env, sample_sharding)
