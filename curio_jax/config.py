"""Frozen run configuration and the named presets.

Every field has a docstring. Derived values are properties, never written back. Shape-affecting
fields (sizes, counts, switches) are static Python values; the float coefficients are the ones a
sweep may batch over (see :class:`Hyperparams` in :mod:`curio_jax.core.train`).

The six ``notebook-*`` presets reproduce the notebook's runs exactly (see
``docs/semantics.md``). Corrected or paper-faithful variants are separate, named
presets; they never change the notebook ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

AUTORESET_MODES = ("next_step", "same_step")
ALGORITHMS = ("a2c", "ppo")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _divisors_near(n: int, k: int) -> list[int]:
    """The divisor of ``n`` just below and just above ``k`` (for error messages)."""
    below = max((d for d in range(1, min(k, n) + 1) if n % d == 0), default=1)
    above = min((d for d in range(max(k, 1), n + 1) if n % d == 0), default=n)
    return sorted({below, above})


AUTO_MICRO_BATCH = 512
"""Auto micro-batch on CPU (benchmarks/NOTES.md: 8192 samples of notebook-rnd-8x8 take 447 ms
for loss+grad in one pass and 244 ms in 16 passes of 512)."""


def micro_batch_size(train: TrainSettings, backend: str, batch: int | None = None) -> int:
    """Samples per micro-batch of the update for ``train`` on ``backend`` ("cpu", "gpu", ...):
    the batch size itself means one pass over the whole batch (see TrainSettings.micro_batch).
    ``batch``: the samples of one gradient step, ``num_envs * rollout_size`` by default (PPO
    passes its minibatch size)."""
    n = train.num_envs * train.rollout_size if batch is None else batch
    mb = train.micro_batch
    if mb is None:
        if backend != "cpu" or n <= AUTO_MICRO_BATCH:
            return n
        best = max(d for d in range(1, AUTO_MICRO_BATCH + 1) if n % d == 0)
        return best if best >= AUTO_MICRO_BATCH // 4 else n
    return n if mb == 0 else mb


def seed_batch_size(train: TrainSettings, batch: int, backend: str, devices: int = 1) -> int:
    """How many of the ``batch`` learner states (seeds, or grid points x seeds) one step of
    the seed loop vmaps together on ``backend`` with ``devices`` devices (see
    TrainSettings.seed_batch); ``batch`` itself means all at once (no loop). Raises ValueError
    when an explicit size does not divide ``batch`` or the batch is spread over devices."""
    sb = train.seed_batch
    if sb is None:
        return 1 if backend == "cpu" and devices == 1 else batch
    if sb == 0 or sb == batch:
        return batch
    if devices > 1:
        raise ValueError(
            f"TrainSettings.seed_batch={sb} needs one device: on {devices} devices the "
            f"{batch} states are already split between them (use seed_batch 0 or leave it "
            f"automatic)"
        )
    if batch % sb:
        raise ValueError(
            f"TrainSettings.seed_batch={sb} does not divide the {batch} learner states run "
            f"together (seeds, or grid points x seeds); divisors near it: "
            f"{_divisors_near(batch, sb)}"
        )
    return sb


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class EnvConfig:
    """The MiniGrid-faithful DoorKey environment."""

    size: int = 8
    """Grid side in cells, outer walls included (MiniGrid-DoorKey-{size}x{size}); any int >= 5."""
    autoreset: Literal["next_step", "same_step"] = "next_step"
    """`next_step`: gymnasium vector-env semantics (the notebook's): the step after a done ignores
    its action and returns the reset observation with reward 0. `same_step`: a done step returns
    the next episode's first observation at once, with no dummy transition."""

    def __post_init__(self) -> None:
        _require(
            _is_int(self.size) and self.size >= 5,
            f"EnvConfig.size must be an integer >= 5, got {self.size!r}",
        )
        _require(
            self.autoreset in AUTORESET_MODES,
            f"EnvConfig.autoreset must be one of {AUTORESET_MODES}, got {self.autoreset!r}",
        )


@dataclass(frozen=True)
class TrainSettings:
    """What every learner shares (group ``train``): environments, rollout, discounts, learning
    rate, loss weights, network width and the speed knobs (the notebook's `AgentA2C` values by
    default)."""

    num_envs: int = 32
    """Parallel environments per seed (the notebook's `num_envs`)."""
    rollout_size: int = 16
    """Steps per environment per update (the notebook's `rollout_size`)."""
    gamma: float = 0.99
    """Discount of the extrinsic stream (the notebook's `gamma`)."""
    gae_lambda: float = 0.98
    """GAE lambda; the notebook's helper uses 0.98 by default."""
    lr: float = 1e-4
    """Learning rate (A2C's RMSprop, PPO's Adam)."""
    value_coef: float = 0.5
    """Weight of the value loss (`vloss_coeff`)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus (`ent_coeff`)."""
    max_grad_norm: float = 0.5
    """Global-norm clip of the actor-critic gradients."""
    adv_coef_ext: float = 1.0
    """Weight of the extrinsic advantage in the policy loss (A2C: 1, the
    notebook's RND agent: 100)."""
    hidden_dim: int = 64
    """Hidden width of the policy and value heads."""
    micro_batch: int | None = None
    """Samples per micro-batch of the update's network passes (for speed and memory: the
    gradient is the same sum, taken in ``batch / micro_batch`` pieces; the RND predictor's
    dropout masks are drawn per piece, so another size gives a different, equally valid run).
    None (auto): on CPU the largest divisor of ``num_envs * rollout_size`` up to 512 (whole
    batch when that is below 128), so the activations stay in cache; on GPU/TPU the whole batch.
    0: always the whole batch. k > 0: must divide ``num_envs * rollout_size``."""
    seed_batch: int | None = None
    """Learner states (seeds, or grid points x seeds) vmapped together in one step of the seed
    loop of a run's compiled program (speed only: every seed computes the same arithmetic, and
    with 1 exactly the program of a single-seed run). None (auto): 1 on CPU with one device,
    i.e. the seeds run one after another inside the one program, which keeps each seed's
    weights in cache and its matmuls unbatched (benchmarks/NOTES.md, change (d): +20-58%);
    all at once on GPU/TPU or several devices. 0: all at once. k > 0: must divide the number
    of states (checked when the run starts) and needs one device."""

    def __post_init__(self) -> None:
        _require(
            _is_int(self.num_envs) and self.num_envs >= 1,
            f"TrainSettings.num_envs must be an integer >= 1, got {self.num_envs!r}",
        )
        _require(
            _is_int(self.rollout_size) and self.rollout_size >= 1,
            f"TrainSettings.rollout_size must be an integer >= 1, got {self.rollout_size!r}",
        )
        _require(
            _is_int(self.hidden_dim) and self.hidden_dim >= 1,
            f"TrainSettings.hidden_dim must be an integer >= 1, got {self.hidden_dim!r}",
        )
        mb = self.micro_batch
        if mb is not None:
            n = self.num_envs * self.rollout_size
            _require(
                _is_int(mb) and mb >= 0,
                f"TrainSettings.micro_batch must be None (auto), 0 (whole batch) or a positive "
                f"integer, got {mb!r}",
            )
            _require(
                mb == 0 or n % mb == 0,
                f"TrainSettings.micro_batch={mb} does not divide the batch num_envs * "
                f"rollout_size = {n}; divisors near it: {_divisors_near(n, mb)}",
            )
        sb = self.seed_batch
        _require(
            sb is None or (_is_int(sb) and sb >= 0),
            f"TrainSettings.seed_batch must be None (auto), 0 (all at once) or a positive integer, "
            f"got {sb!r}",
        )
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            _require(
                _finite(v) and 0.0 <= v <= 1.0, f"TrainSettings.{name} must be in [0, 1], got {v!r}"
            )
        for name in ("lr", "max_grad_norm"):
            v = getattr(self, name)
            _require(_finite(v) and v > 0, f"TrainSettings.{name} must be > 0, got {v!r}")
        for name in ("value_coef", "entropy_coef", "adv_coef_ext"):
            v = getattr(self, name)
            _require(
                _finite(v) and v >= 0, f"TrainSettings.{name} must be finite and >= 0, got {v!r}"
            )


@dataclass(frozen=True)
class A2CConfig:
    """A2C's own settings (group ``a2c``; used with ``TrainConfig.algorithm="a2c"``): the
    notebook's RMSprop (`torch.optim.RMSprop`, no momentum)."""

    rmsprop_decay: float = 0.99
    """RMSprop smoothing constant (PyTorch `alpha`)."""
    rmsprop_eps: float = 1e-8
    """RMSprop epsilon, added after the square root as in PyTorch."""

    def __post_init__(self) -> None:
        v = self.rmsprop_decay
        _require(
            _finite(v) and 0.0 <= v <= 1.0, f"A2CConfig.rmsprop_decay must be in [0, 1], got {v!r}"
        )
        v = self.rmsprop_eps
        _require(_finite(v) and v > 0, f"A2CConfig.rmsprop_eps must be > 0, got {v!r}")


BONUS_KINDS = ["none", "rnd", "count", "episodic_count", "e3b", "noveld"]
"""The kinds of BonusConfig.kind (docs/bonuses.md): the package's own, and any a program
registers (curio_jax.core.bonuses.register)."""


JOINT_BONUS_KINDS = {"rnd", "noveld"}
"""The kinds whose parameters the learner's optimiser trains (``Bonus.joint``): where
``ppo.update_proportion`` and ``ppo.bonus_sample`` act."""


def register_bonus_kind(kind: str, joint: bool = False) -> None:
    """Accept ``kind`` as a ``bonus.kind`` (called by curio_jax.core.bonuses.register);
    ``joint``: its parameters are trained by the learner's optimiser."""
    if kind not in BONUS_KINDS:
        BONUS_KINDS.append(kind)
    if joint:
        JOINT_BONUS_KINDS.add(kind)
    else:
        JOINT_BONUS_KINDS.discard(kind)


NETWORK_BONUSES = ("rnd", "noveld")
"""The kinds built on the RND target and predictor (feature_dim, dropout, obs_norm apply)."""


@dataclass(frozen=True)
class BonusConfig:
    """The intrinsic bonus and its stream (group ``bonus``; docs/bonuses.md): which bonus, the
    intrinsic stream's discount and weight, and each kind's own coefficients.

    ``kind="none"`` trains on the extrinsic reward alone (the notebook's plain A2C, ``ppo-*``);
    the other fields are then inert."""

    kind: str = "none"
    """``"none"``, ``"rnd"`` (the predictor's error on the next observation; the notebook's
    `RNDModule`), ``"count"`` / ``"episodic_count"`` (``1 / sqrt(N)`` of the visit cell a step
    reaches, counted over the run / within each episode; the env's ``visit_index``), ``"e3b"``
    (elliptical episodic bonus over a learned embedding) or ``"noveld"`` (NovelD on the RND
    networks, with an episodic first-visit indicator keyed by a hash of the observation)."""
    gamma_int: float = 0.99
    """Discount of the intrinsic stream (the notebook's `gamma_rnd`)."""
    adv_coef_int: float = 10.0
    """Weight of the intrinsic advantage in the policy loss (`eta_intr`)."""
    episodic_int: bool = True
    """True (the notebook): intrinsic returns are cut at episode ends. False (RND paper): the
    intrinsic stream ignores dones (non-episodic)."""
    reward_norm: bool = False
    """RND paper: divide the intrinsic reward by the running std of the discounted intrinsic
    return (filtered along time, per env; statistics pooled over envs and time). Any kind."""
    max_grad_norm: float = 0.01
    """Global-norm clip of the bonus networks' gradients (RND's predictor, NovelD's, E3B's
    embedding and inverse-dynamics head)."""
    feature_dim: int = 256
    """RND / NovelD: output width of target and predictor."""
    dropout: float = 0.25
    """RND / NovelD: dropout rate in the predictor (train mode only)."""
    obs_norm: bool = False
    """RND / NovelD (RND paper): whiten the networks' input with running mean/std and clip."""
    obs_norm_init_steps: int = 50
    """Random-policy steps per env used to initialise the observation statistics."""
    obs_norm_clip: float = 5.0
    """Clip of the whitened input."""
    noveld_alpha: float = 0.5
    """NovelD: ``max(n(s') - alpha * n(s), 0)``, the scale on the novelty of the state left
    (the NovelD paper's 0.5). Traced (sweepable)."""
    noveld_buckets: int = 16384
    """NovelD: buckets of the per-env episodic visit table (observations hashed into them; two
    observations of one episode sharing a bucket only ever cost a bonus, never add one)."""
    e3b_dim: int = 128
    """E3B: width ``d`` of the embedding ``phi`` (each env carries a ``[d, d]`` inverse)."""
    e3b_lambda: float = 0.1
    """E3B: the ridge ``lambda`` of ``C = lambda * I + sum phi phi^T`` at each episode start
    (the E3B paper's 0.1). Traced (sweepable)."""
    e3b_lr: float = 1e-4
    """E3B: Adam learning rate of the embedding and inverse-dynamics head (their own
    optimiser; the E3B paper's 1e-4)."""
    e3b_hidden: int = 256
    """E3B: hidden width of the inverse-dynamics head."""

    def __post_init__(self) -> None:
        _require(
            self.kind in BONUS_KINDS,
            f"BonusConfig.kind must be one of {', '.join(BONUS_KINDS)}, got {self.kind!r}",
        )
        _require(
            not (self.kind not in ("none", *NETWORK_BONUSES) and self.obs_norm),
            f"BonusConfig.obs_norm normalises the RND networks' input; kind={self.kind!r} has "
            "no RND networks (set bonus.obs_norm=False)",
        )
        for name in (
            "feature_dim",
            "obs_norm_init_steps",
            "noveld_buckets",
            "e3b_dim",
            "e3b_hidden",
        ):
            v = getattr(self, name)
            _require(
                _is_int(v) and v >= 1, f"BonusConfig.{name} must be an integer >= 1, got {v!r}"
            )
        for name in ("gamma_int",):
            v = getattr(self, name)
            _require(
                _finite(v) and 0.0 <= v <= 1.0, f"BonusConfig.{name} must be in [0, 1], got {v!r}"
            )
        _require(
            _finite(self.dropout) and 0.0 <= self.dropout < 1.0,
            f"BonusConfig.dropout must be in [0, 1), got {self.dropout!r}",
        )
        for name in ("max_grad_norm", "obs_norm_clip", "e3b_lambda", "e3b_lr"):
            v = getattr(self, name)
            _require(_finite(v) and v > 0, f"BonusConfig.{name} must be > 0, got {v!r}")
        for name in ("adv_coef_int", "noveld_alpha"):
            v = getattr(self, name)
            _require(
                _finite(v) and v >= 0, f"BonusConfig.{name} must be finite and >= 0, got {v!r}"
            )
        for name in ("episodic_int", "reward_norm", "obs_norm"):
            v = getattr(self, name)
            _require(isinstance(v, bool), f"BonusConfig.{name} must be a bool, got {v!r}")

    @property
    def enabled(self) -> bool:
        """An intrinsic stream is on (any kind but ``"none"``)."""
        return self.kind != "none"


BONUS_SAMPLES = ("subset", "mask")
"""The values of PPOConfig.bonus_sample."""


@dataclass(frozen=True)
class PPOConfig:
    """Proximal Policy Optimisation's own settings, used only with
    ``TrainConfig.algorithm="ppo"`` (see docs/ppo.md).

    PPO shares the ``train`` group with A2C (``train.lr`` is Adam's learning rate here) and
    the ``bonus`` group."""

    epochs: int = 4
    """Passes over each rollout's samples per update."""
    minibatches: int = 4
    """Minibatches per epoch: the rollout's ``num_envs * rollout_size`` samples are shuffled
    once per epoch and cut into this many equal parts, one Adam step each (must divide the
    sample count)."""
    clip_eps: float = 0.2
    """Clip range of the probability ratio (``1 +- clip_eps``) and, with ``clip_value``, of the
    value change. Traced (sweepable)."""
    clip_value: bool = True
    """Clip the extrinsic value loss around the rollout's value (CleanRL's ``clip_vloss``):
    ``max((v - R)^2, (v_old + clip(v - v_old, +-clip_eps) - R)^2)``. The intrinsic value loss is
    never clipped (as CleanRL's PPO-RND)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly from ``train.lr`` at the first update to
    ``train.lr / num_updates`` at the last (CleanRL's ``anneal_lr``)."""
    adv_norm: bool = True
    """Normalise the combined advantage per minibatch to mean 0 and std 1 (population std
    over the minibatch's weighted samples, + 1e-8)."""
    adam_eps: float = 1e-5
    """Adam's epsilon (added after the square root; betas 0.9, 0.999)."""
    update_proportion: float = 0.25
    """PPO with a jointly trained bonus (RND, NovelD): the fraction of each minibatch's
    samples the predictor trains on, drawn as ``bonus_sample`` says. Traced (sweepable) with
    ``bonus_sample="mask"`` only: with ``"subset"`` it fixes an array size."""
    bonus_sample: str = "subset"
    """How the predictor's samples are drawn from each minibatch of ``M`` samples (docs/ppo.md):
    ``"subset"``, ``round(update_proportion * M)`` of them (at least 1) drawn without
    replacement, so the predictor's forward and backward pass run on that many rows only;
    ``"mask"``, every sample with probability ``update_proportion`` (the RND paper's code: the
    pass runs on all ``M`` rows, the rest weighted 0). The same expected gradient. A config
    saved before this field existed reads as ``"mask"``, the draw it ran with."""
    textbook_gae: bool = True
    """GAE as CleanRL and purejaxrl compute it: the trace is cut once, by the step's own done.
    False: the notebook's helper, which also cuts it when the next step is done (see
    docs/semantics.md)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "minibatches"):
            v = getattr(self, name)
            _require(_is_int(v) and v >= 1, f"PPOConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("clip_eps", "adam_eps"):
            v = getattr(self, name)
            _require(_finite(v) and v > 0, f"PPOConfig.{name} must be > 0, got {v!r}")
        v = self.update_proportion
        _require(
            _finite(v) and 0.0 < v <= 1.0,
            f"PPOConfig.update_proportion must be in (0, 1], got {v!r}",
        )
        for name in ("clip_value", "anneal_lr", "adv_norm", "textbook_gae"):
            v = getattr(self, name)
            _require(isinstance(v, bool), f"PPOConfig.{name} must be a bool, got {v!r}")
        _require(
            self.bonus_sample in BONUS_SAMPLES,
            f"PPOConfig.bonus_sample must be one of {', '.join(BONUS_SAMPLES)}, "
            f"got {self.bonus_sample!r}",
        )


@dataclass(frozen=True)
class TrainConfig:
    """One training run: environment, shared training settings, the learner's own settings
    (``a2c`` or ``ppo``), the intrinsic bonus, budget and the correction switches.

    The correction switches default to the notebook's behaviour (all False)."""

    name: str = "custom"
    """Preset name this config came from (informational; `replace` keeps it)."""
    algorithm: Literal["a2c", "ppo"] = "a2c"
    """`a2c`: the notebook's learner, one RMSprop step on the whole rollout. `ppo`: clipped
    surrogate PPO with Adam, `ppo.epochs` passes of `ppo.minibatches` minibatches per rollout
    (settings in `ppo`; docs/ppo.md)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment."""
    train: TrainSettings = field(default_factory=TrainSettings)
    """What every learner shares (envs, rollout, discounts, learning rate, loss weights)."""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C's own settings (used with algorithm="a2c" only)."""
    bonus: BonusConfig = field(default_factory=BonusConfig)
    """The intrinsic bonus (kind "none": the extrinsic reward alone)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO's own settings (used with algorithm="ppo" only)."""
    total_frames: int = 1_024_000
    """Frame budget: updates = total_frames // frames_per_update (one frame = one env step)."""
    log_every: int = 100
    """Updates between the notebook's "Average Score" checks (100; 35 for 16x16)."""
    solved_threshold: float = 0.91
    """A run is solved at the first logged update whose average of the last 100 returns
    is strictly greater than this."""
    shared_permutation: bool = False
    """Correction: shuffle the intrinsic advantages/returns with the same permutation as the
    observations (the notebook draws a second, independent permutation)."""
    bootstrap_truncation: bool = False
    """Correction: bootstrap through time-limit truncation instead of treating it as
    termination (needs the value of the final observation)."""
    mask_reset_transition: bool = False
    """Correction: give zero weight in every loss to the autoreset dummy transition (the step
    after a done, whose action is ignored)."""

    def __post_init__(self) -> None:
        _require(isinstance(self.env, EnvConfig), "TrainConfig.env must be an EnvConfig")
        _require(isinstance(self.train, TrainSettings), "TrainConfig.train must be a TrainSettings")
        _require(isinstance(self.a2c, A2CConfig), "TrainConfig.a2c must be an A2CConfig")
        _require(isinstance(self.bonus, BonusConfig), "TrainConfig.bonus must be a BonusConfig")
        _require(isinstance(self.ppo, PPOConfig), "TrainConfig.ppo must be a PPOConfig")
        _require(
            self.algorithm in ALGORITHMS,
            f"TrainConfig.algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}",
        )
        _require(
            _is_int(self.total_frames) and self.total_frames >= self.frames_per_update,
            f"TrainConfig.total_frames must be an integer >= frames per update "
            f"({self.frames_per_update}), got {self.total_frames!r}",
        )
        _require(
            _is_int(self.log_every) and self.log_every >= 1,
            f"TrainConfig.log_every must be an integer >= 1, got {self.log_every!r}",
        )
        _require(
            _finite(self.solved_threshold),
            f"TrainConfig.solved_threshold must be finite, got {self.solved_threshold!r}",
        )
        if self.algorithm == "ppo":
            n, k = self.frames_per_update, self.ppo.minibatches
            _require(
                n % k == 0,
                f"PPOConfig.minibatches={k} does not divide the batch num_envs * rollout_size = "
                f"{n}; divisors near it: {_divisors_near(n, k)}",
            )
            mb = self.train.micro_batch
            _require(
                mb is None or mb == 0 or (n // k) % mb == 0,
                f"TrainSettings.micro_batch={mb} does not divide the PPO minibatch size "
                f"{n // k}; divisors near it: {_divisors_near(n // k, mb or 1)}",
            )

    @property
    def frames_per_update(self) -> int:
        """num_envs * rollout_size."""
        return self.train.num_envs * self.train.rollout_size

    @property
    def minibatch_size(self) -> int:
        """Samples per gradient step: the whole rollout for A2C, a PPO minibatch for PPO."""
        if self.algorithm == "ppo":
            return self.frames_per_update // self.ppo.minibatches
        return self.frames_per_update

    @property
    def num_updates(self) -> int:
        """Number of learning steps in the run."""
        return self.total_frames // self.frames_per_update

    @property
    def budget_shapes_learning(self) -> bool:
        """Whether the frame budget changes what each update does, not only how many there are
        (PPO's ``anneal_lr`` decays the learning rate over the budget): a run of such a config
        cannot be extended past its budget (`curio-jax train --resume --extend`)."""
        return self.algorithm == "ppo" and self.ppo.anneal_lr

    @property
    def is_notebook_faithful(self) -> bool:
        """True when no correction switch is on."""
        return not (
            self.algorithm != "a2c"
            or self.shared_permutation
            or self.bootstrap_truncation
            or self.mask_reset_transition
            or not self.bonus.episodic_int
            or self.bonus.obs_norm
            or self.bonus.reward_norm
            or self.bonus.kind not in ("none", "rnd")
            or self.env.autoreset != "next_step"
        )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with fields changed. Nested fields use dotted names via `with_overrides`."""
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with (possibly dotted) fields changed: {"train.num_envs": 64, "total_frames": 1}.
        Names from before the config was regrouped (``a2c.num_envs``, ``rnd.enabled``,
        ``rnd.bonus``, ...; :data:`RENAMED`) are taken as their new fields.

        Raises ValueError naming an unknown field."""
        overrides = translate_overrides(self, overrides)
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if "." in key:
                group, sub = key.split(".", 1)
                nested.setdefault(group, {})[sub] = value
            else:
                top[key] = value
        changes: dict[str, Any] = {}
        for group, subs in nested.items():
            if group not in CONFIG_GROUPS:
                known = ", ".join(CONFIG_GROUPS)
                raise ValueError(f"unknown config group {group!r} (expected {known})")
            obj = getattr(self, group)
            names = {f.name for f in dataclasses.fields(obj)}
            for sub in subs:
                if sub not in names:
                    raise ValueError(f"unknown config field {group}.{sub}")
            changes[group] = dataclasses.replace(obj, **subs)
        names = {f.name for f in dataclasses.fields(self)}
        for key in top:
            if key not in names:
                raise ValueError(f"unknown config field {key}")
        changes.update(top)
        # one replace: the run-level checks see all changes together (e.g. more envs and a
        # larger frame budget)
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self, complete: bool = False) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable), as config.json and sweep.json record it.

        An A2C config whose PPO settings are all defaults leaves out ``algorithm`` and ``ppo``
        (so A2C run directories read exactly as before PPO existed; ``from_dict`` restores the
        defaults). ``complete``: every field, always (for comparing configs field by field)."""
        d = dataclasses.asdict(self)
        if not complete and self.algorithm == "a2c" and self.ppo == PPOConfig():
            del d["algorithm"], d["ppo"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], renamed: Any = None) -> TrainConfig:
        """Inverse of `to_dict`; missing fields take their defaults (configs written before
        a field existed), unknown keys raise ValueError. A config written before the groups
        were renamed (``a2c`` holding the shared settings, an ``rnd`` group) is read into the
        new groups (:func:`regroup_legacy`); ``renamed(old, new)`` is called for each old
        field found (the command line prints a line for each)."""
        d = regroup_legacy(d, renamed)
        if isinstance(d.get("ppo"), dict) and "bonus_sample" not in d["ppo"]:
            # saved before the subset draw existed: it ran with the Bernoulli mask
            d["ppo"] = {**d["ppo"], "bonus_sample": "mask"}
        try:
            groups = {name: kind(**d.pop(name, {})) for name, kind in CONFIG_GROUPS.items()}
            return cls(**groups, **d)
        except TypeError as e:  # unexpected keyword
            raise ValueError(f"config does not match TrainConfig: {e}") from None


CONFIG_GROUPS: dict[str, type] = {
    "env": EnvConfig,
    "train": TrainSettings,
    "a2c": A2CConfig,
    "bonus": BonusConfig,
    "ppo": PPOConfig,
}
"""The nested groups of a TrainConfig by field name."""


# --------------------------------------------------------------------------- old names

_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))
_OLD_RND_FIELDS = (
    "gamma_int",
    "adv_coef_int",
    "max_grad_norm",
    "feature_dim",
    "dropout",
    "episodic_int",
    "obs_norm",
    "obs_norm_init_steps",
    "obs_norm_clip",
    "reward_norm",
)
RENAMED: dict[str, str] = {
    **{f"a2c.{n}": f"train.{n}" for n in _TRAIN_FIELDS},
    **{f"rnd.{n}": f"bonus.{n}" for n in _OLD_RND_FIELDS},
    "rnd.enabled": "bonus.kind",
    "rnd.bonus": "bonus.kind",
}
"""Dotted config names from before the config was regrouped by what it holds -> their new
names. ``rnd.enabled`` and ``rnd.bonus`` together became ``bonus.kind`` (``enabled=False``:
``"none"``; otherwise the old ``bonus``, ``"rnd"`` by default)."""
_OLD_TYPES = {"rnd.enabled": "bool", "rnd.bonus": "str"}


def _kind_from_old(enabled: Any, bonus: Any, current: str) -> str:
    """``bonus.kind`` from the old ``rnd.enabled`` / ``rnd.bonus`` (None: not given), on top of
    the current kind."""
    on = current != "none" if enabled is None else bool(enabled)
    if not on:
        return "none"
    if bonus is not None:
        return bonus
    return current if current != "none" else "rnd"


def translate_overrides(cfg: TrainConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with old dotted names (:data:`RENAMED`) replaced by their new ones, in
    the same order; ``rnd.enabled`` / ``rnd.bonus`` become ``bonus.kind`` as the old config
    read them (the kind stays ``"none"`` unless the stream is, or is switched, on)."""
    if not any(k in RENAMED for k in overrides):
        return overrides
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ("rnd.enabled", "rnd.bonus"):
            out["bonus.kind"] = _kind_from_old(
                overrides.get("rnd.enabled"), overrides.get("rnd.bonus"), cfg.bonus.kind
            )
        else:
            out[RENAMED.get(key, key)] = value
    return out


def regroup_legacy(d: dict[str, Any], renamed: Any = None) -> dict[str, Any]:
    """A config dict in the current groups: one written before the regrouping (the shared
    settings under ``a2c``, an ``rnd`` group) is moved field by field into ``train``,
    ``a2c`` and ``bonus`` (``renamed(old, new)`` told of each); a current one is returned as
    it is (a copy)."""
    d = dict(d)
    a2c = dict(d.get("a2c", {}))
    old_rnd = d.pop("rnd", None)
    moved = [n for n in _TRAIN_FIELDS if n in a2c]
    if old_rnd is None and not moved:
        return d
    if "train" in d or "bonus" in d:
        raise ValueError(
            "config mixes old groups (rnd, or a2c holding train.* fields) with the new ones "
            "(train, bonus)"
        )
    d["train"] = {n: a2c.pop(n) for n in moved}
    d["a2c"] = a2c
    for n in moved:
        if renamed is not None:
            renamed(f"a2c.{n}", f"train.{n}")
    if old_rnd is not None:
        old_rnd = dict(old_rnd)
        enabled, bonus = old_rnd.pop("enabled", False), old_rnd.pop("bonus", "rnd")
        unknown = sorted(set(old_rnd) - set(_OLD_RND_FIELDS))
        if unknown:
            raise ValueError(f"config does not match TrainConfig: unknown field rnd.{unknown[0]}")
        d["bonus"] = {**old_rnd, "kind": _kind_from_old(enabled, bonus, "none")}
        if renamed is not None:
            for n in old_rnd:
                renamed(f"rnd.{n}", f"bonus.{n}")
            renamed("rnd.enabled/rnd.bonus", "bonus.kind")
    return d


def trains_joint_bonus(cfg: TrainConfig) -> bool:
    """PPO with a bonus the learner's optimiser trains: ``ppo.update_proportion`` and
    ``ppo.bonus_sample`` act."""
    return cfg.algorithm == "ppo" and cfg.bonus.kind in JOINT_BONUS_KINDS


def diff_configs(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted names of the fields that differ between two configs (for resume checks and
    study records). ``ppo.bonus_sample`` counts only where one of them trains a joint bonus
    with PPO (elsewhere it changes nothing: a run saved before the field existed, which reads
    as ``"mask"``, stays the same run as one with today's ``"subset"``)."""
    da, db = a.to_dict(complete=True), b.to_dict(complete=True)
    inert = set() if trains_joint_bonus(a) or trains_joint_bonus(b) else {"ppo.bonus_sample"}
    out: list[str] = []
    for key in sorted(set(da) | set(db)):
        va, vb = da.get(key), db.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [
                f"{key}.{k}"
                for k in sorted(set(va) | set(vb))
                if va.get(k) != vb.get(k) and f"{key}.{k}" not in inert
            ]
        elif va != vb:
            out.append(key)
    return out


# --------------------------------------------------------------------------- presets


def _notebook(size: int, rnd: bool) -> TrainConfig:
    big = size == 16
    num_envs, rollout, gamma, log_every = (128, 48, 0.995, 35) if big else (32, 16, 0.99, 100)
    # solved thresholds exactly as the notebook's train(...) calls
    if rnd:
        threshold = 0.91 if size == 5 else 0.95
    else:
        threshold = 0.91
    # frame budgets: 5x5 2x the notebook's frames-to-solve; 8x8 4M (the notebook's log is cut
    # at 512k); 16x16 20M.
    total = {5: 1_024_000, 8: 4_096_000, 16: 19_906_560}[size]
    return TrainConfig(
        name=f"notebook-{'rnd' if rnd else 'a2c'}-{size}x{size}",
        env=EnvConfig(size=size),
        train=TrainSettings(
            num_envs=num_envs,
            rollout_size=rollout,
            gamma=gamma,
            adv_coef_ext=100.0 if rnd else 1.0,
        ),
        bonus=BonusConfig(kind="rnd" if rnd else "none", gamma_int=0.99),
        total_frames=total,
        log_every=log_every,
        solved_threshold=threshold,
    )


def _build_presets() -> dict[str, TrainConfig]:
    p: dict[str, TrainConfig] = {}
    for size in (5, 8, 16):
        for rnd in (False, True):
            cfg = _notebook(size, rnd)
            p[cfg.name] = cfg
    for size in (5, 8, 16):
        base = p[f"notebook-rnd-{size}x{size}"]
        s = f"{size}x{size}"
        # RND agent with one shared permutation (the notebook's quirk fixed, nothing else).
        p[f"rnd-aligned-{s}"] = base.replace(name=f"rnd-aligned-{s}", shared_permutation=True)
        # RND paper semantics on top of the aligned agent: non-episodic intrinsic returns,
        # observation and intrinsic-reward normalisation, bootstrapping through truncation,
        # and the dummy autoreset transition masked out.
        p[f"rnd-paper-{s}"] = base.replace(
            name=f"rnd-paper-{s}",
            shared_permutation=True,
            bootstrap_truncation=True,
            mask_reset_transition=True,
            bonus=dataclasses.replace(
                base.bonus, episodic_int=False, obs_norm=True, reward_norm=True
            ),
        )
    for size in (5, 8):
        s = f"{size}x{size}"
        a2c = p[f"notebook-a2c-{s}"]
        rnd = p[f"notebook-rnd-{s}"]
        # Ablations (issue: what makes the notebook's RND agent work).
        p[f"a2c-x100-{s}"] = a2c.replace(
            name=f"a2c-x100-{s}", train=dataclasses.replace(a2c.train, adv_coef_ext=100.0)
        )
        p[f"rnd-x1-{s}"] = rnd.replace(
            name=f"rnd-x1-{s}", train=dataclasses.replace(rnd.train, adv_coef_ext=1.0)
        )
    for size in (5, 8, 16):
        ppo_rnd = _ppo_rnd(size)
        p[ppo_rnd.name] = ppo_rnd
        # the same agent without the intrinsic reward: bonus.kind is the only difference
        ppo = ppo_rnd.replace(
            name=f"ppo-{size}x{size}", bonus=dataclasses.replace(ppo_rnd.bonus, kind="none")
        )
        p[ppo.name] = ppo
        # the intrinsic stream fed by global visit counts instead of RND (no RND networks, so
        # no RND input normalisation); everything else as ppo-rnd
        count = ppo_rnd.replace(
            name=f"ppo-count-{size}x{size}",
            bonus=dataclasses.replace(ppo_rnd.bonus, kind="count", obs_norm=False),
        )
        p[count.name] = count
        # E3B: the elliptical episodic bonus over an embedding trained by inverse dynamics
        # (no RND networks, so no input normalisation); NovelD on the RND networks. Their own
        # coefficients are the papers' (BonusConfig defaults; docs/bonuses.md)
        p[f"ppo-e3b-{size}x{size}"] = ppo_rnd.replace(
            name=f"ppo-e3b-{size}x{size}",
            bonus=dataclasses.replace(ppo_rnd.bonus, kind="e3b", obs_norm=False),
        )
        p[f"ppo-noveld-{size}x{size}"] = ppo_rnd.replace(
            name=f"ppo-noveld-{size}x{size}",
            bonus=dataclasses.replace(ppo_rnd.bonus, kind="noveld"),
        )
    return p


def _ppo_rnd(size: int) -> TrainConfig:
    """PPO + RND with the RND paper's semantics on DoorKey-{size} (choices: docs/ppo.md)."""
    big = size == 16
    # 16x16: the notebook's 128 envs; 5x5 and 8x8: 16 envs. 128 steps each, 4 x 4 minibatches
    num_envs, log_every = (128, 13) if big else (16, 25)
    total = {5: 1_024_000, 8: 4_096_000, 16: 19_906_560}[size]
    return TrainConfig(
        name=f"ppo-rnd-{size}x{size}",
        algorithm="ppo",
        env=EnvConfig(size=size),
        train=TrainSettings(
            num_envs=num_envs,
            rollout_size=128,
            gamma=0.999,
            gae_lambda=0.95,
            lr=5e-4,
            value_coef=0.5,
            entropy_coef=0.01,
            max_grad_norm=0.5,
            adv_coef_ext=2.0,
        ),
        bonus=BonusConfig(
            kind="rnd",
            gamma_int=0.99,
            adv_coef_int=1.0,
            max_grad_norm=0.5,
            episodic_int=False,
            obs_norm=True,
            reward_norm=True,
        ),
        ppo=PPOConfig(
            epochs=4,
            minibatches=4,
            clip_eps=0.2,
            clip_value=True,
            anneal_lr=True,
            adv_norm=True,
            adam_eps=1e-5,
            update_proportion=0.25,
            textbook_gae=True,
        ),
        total_frames=total,
        log_every=log_every,
        solved_threshold=0.91 if size == 5 else 0.95,
        bootstrap_truncation=True,
        mask_reset_transition=True,
    )


PRESETS: dict[str, TrainConfig] = _build_presets()

DESCRIPTIONS: dict[str, str] = {}
"""One line per preset (`curio-jax presets`)."""
for _s in ("5x5", "8x8", "16x16"):
    DESCRIPTIONS[f"notebook-a2c-{_s}"] = f"the notebook's A2C agent on DoorKey-{_s}, exactly"
    DESCRIPTIONS[f"notebook-rnd-{_s}"] = (
        f"the notebook's A2C + RND agent on DoorKey-{_s}, exactly (quirks included)"
    )
    DESCRIPTIONS[f"rnd-aligned-{_s}"] = (
        "the notebook's RND agent with one shared shuffle (intrinsic targets aligned)"
    )
    DESCRIPTIONS[f"rnd-paper-{_s}"] = (
        "the RND agent with the RND paper's normalisations and non-episodic intrinsic returns"
    )
    DESCRIPTIONS[f"ppo-rnd-{_s}"] = (
        "PPO + RND with the RND paper's semantics (two value heads, normalisations, Adam)"
    )
    DESCRIPTIONS[f"ppo-{_s}"] = f"ppo-rnd-{_s} without the intrinsic reward (bonus.kind=none)"
    DESCRIPTIONS[f"ppo-count-{_s}"] = (
        f"ppo-rnd-{_s} with a count-based bonus 1/sqrt(N) over visit cells instead of RND"
    )
    DESCRIPTIONS[f"ppo-e3b-{_s}"] = (
        f"ppo-rnd-{_s} with E3B's elliptical episodic bonus over an inverse-dynamics embedding"
    )
    DESCRIPTIONS[f"ppo-noveld-{_s}"] = (
        f"ppo-rnd-{_s} with NovelD: RND novelty gain on first visits in an episode"
    )
for _s in ("5x5", "8x8"):
    DESCRIPTIONS[f"a2c-x100-{_s}"] = "ablation: the notebook's A2C with the extrinsic weight 100"
    DESCRIPTIONS[f"rnd-x1-{_s}"] = "ablation: the notebook's RND agent with the extrinsic weight 1"


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_description(name: str) -> str:
    """The one-line description of a preset."""
    preset(name)  # unknown names raise
    return DESCRIPTIONS[name]


def preset(name: str) -> TrainConfig:
    """The named preset. Unknown names raise ValueError listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    return PRESETS[name]


# --------------------------------------------------------------------------- text overrides


def config_fields() -> dict[str, dataclasses.Field]:
    """Every settable field of a TrainConfig by dotted name (`train.lr`, `total_frames`, ...)."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in CONFIG_GROUPS:
            group = CONFIG_GROUPS[f.name]
            out.update({f"{f.name}.{g.name}": g for g in dataclasses.fields(group)})
        else:
            out[f.name] = f
    return out


def config_value(cfg: TrainConfig, dotted: str) -> Any:
    """The value of a dotted config field (`"train.lr"`)."""
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


_TRUE, _FALSE, _NONE = ("true", "1", "yes", "on"), ("false", "0", "no", "off"), ("none", "null")


def parse_value(name: str, text: str, field_type: str) -> Any:
    """`text` converted to the type a field declares (its annotation, e.g. ``"int | None"``):
    bool (true/false/1/0/yes/no/on/off), int, float, str, None where allowed, or one of a
    Literal's values. Raises ValueError naming the field."""
    t = text.strip()
    options = [o.strip() for o in field_type.split("|")]
    if "None" in options and t.lower() in _NONE:
        return None
    for opt in options:
        if opt == "bool":
            if t.lower() in _TRUE:
                return True
            if t.lower() in _FALSE:
                return False
        elif opt == "int":
            try:
                return int(t)
            except ValueError:
                pass
        elif opt == "float":
            try:
                v = float(t)
            except ValueError:
                continue
            if math.isfinite(v):
                return v
        elif opt.startswith("Literal["):
            choices = [c.strip().strip("'\"") for c in opt[len("Literal[") : -1].split(",")]
            if t in choices:
                return t
            raise ValueError(f"{name}: {text!r} is not one of {', '.join(choices)}")
        elif opt == "str":
            return t
    want = " or ".join(o for o in options if o != "None") + (
        " or none" if "None" in options else ""
    )
    raise ValueError(f"{name}: {text!r} is not a valid {want}")


def parse_overrides(items: list[str], renamed: Any = None) -> dict[str, Any]:
    """``["train.lr=3e-4", "total_frames=2048000"]`` -> ``{"train.lr": 0.0003, ...}``: dotted
    names of any config field, each value converted by the field's type. An old name
    (:data:`RENAMED`, e.g. ``a2c.lr``) is accepted under its old name (``with_overrides``
    translates it) and ``renamed(old, new)`` is told of it. Raises ValueError naming the first
    bad item (unknown field, missing '=', a value the type does not take)."""
    fields = config_fields()
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        name, text = (s.strip() for s in item.split("=", 1))
        if name in RENAMED:
            field_type = _OLD_TYPES.get(name) or str(fields[RENAMED[name]].type)
            out[name] = parse_value(name, text, field_type)
            if renamed is not None:
                renamed(name, RENAMED[name])
            continue
        if name not in fields:
            close = [f for f in fields if f.endswith("." + name)]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown config field {name!r}{hint}")
        out[name] = parse_value(name, text, str(fields[name].type))
    return out
