"""What a bonus is: the interface every intrinsic reward of the training loop implements, and
the registry that maps ``bonus.kind`` to its class.

A bonus owns its state (networks' parameters it trains itself or keeps frozen, running
statistics, count tables), its reward for a rollout and, where it learns, its own loss. The
training loop (:mod:`curio_jax.core.train`) calls it in one place per update::

    rollout (records cell_fn(timestep) if the bonus has one)
      -> state, reward [T, B], loss_input = bonus.reward(...)   after the rollout, batched
      -> returns and advantages of both streams
      -> learner.learn(..., bonus.loss_term(state))             joint parameters: their loss
                                                                is a term of the learner's
      -> state = bonus.learn(state, traj, key, hparams)        its own optimiser, if any

Whether a bonus's parameters share the learner's optimiser is the class attribute ``joint``:
the notebook's single RMSprop over actor-critic and RND predictor (with per-group clipping)
is the ``rnd`` bonus with ``joint = True``; E3B trains its embedding with an Adam of its own
(``joint = False``, :meth:`Bonus.learn`).

Adding a bonus: one module with a subclass of :class:`Bonus` and a ``register`` call, and its
tests; no edit to the learners or the training loop (tests/core/test_bonuses.py trains with a
toy bonus defined in the test file). docs/bonuses.md describes the bonuses here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.config import TrainConfig, register_bonus_kind
from curio_jax.core.agent import BonusTerm
from curio_jax.core.hparams import Hyperparams

Array = jax.Array


class BonusReward(struct.PyTreeNode):
    """What :meth:`Bonus.reward` returns for a rollout."""

    state: Any  # the bonus's state after the rollout
    reward: Array  # [T, B] float32 intrinsic reward of each step (before any normalisation)
    loss_input: Any = None  # [T, B, ...] pytree aligned with the rollout's obs that the
    #                         bonus's loss term reads (shuffled with obs), or None


class BonusMetrics(struct.PyTreeNode):
    """What a bonus that learns on its own reports for an update (0 otherwise)."""

    loss: Array  # [] its own loss (logged as loss_rnd)
    grad_norm: Array  # [] pre-clip norm of its gradient (logged as grad_norm_rnd)

    @classmethod
    def zero(cls) -> BonusMetrics:
        z = jnp.zeros((), jnp.float32)
        return cls(loss=z, grad_norm=z)


class Bonus:
    """An intrinsic bonus of a run, its static settings bound once from ``cfg`` and ``env``.

    Subclasses set ``kind`` (the ``bonus.kind`` they answer to) and ``joint``, and implement
    :meth:`init` and :meth:`reward`; a bonus that learns implements :meth:`loss_term`
    (``joint``) or :meth:`learn` (its own optimiser)."""

    kind: ClassVar[str] = ""
    joint: ClassVar[bool] = False
    """Its parameters (``AgentParams.bonus``) are trained by the learner's optimiser, its loss
    (:meth:`loss_term`) a term of the learner's loss."""
    intrinsic: ClassVar[bool] = True
    """It pays a reward (an intrinsic stream, ``value_int``, intrinsic advantages); False only
    for the absent bonus."""

    def __init__(self, cfg: TrainConfig, env: Any):
        self.cfg, self.env = cfg, env
        self.check_env(env)

    def check_env(self, env: Any) -> None:
        """Raise ValueError if ``env`` lacks what this bonus reads (default: nothing)."""

    def cell_fn(self) -> Any:
        """A batched ``timestep [B] -> int32 [B]`` the rollout records as ``Transition.cell``
        for this bonus (visit counts of the env's cells), or None."""
        return None

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[Any, Any]:
        """``(state, joint params or None)`` of a fresh run; ``keys``: three PRNG keys."""
        raise NotImplementedError

    def reward(
        self, state: Any, params: Any, traj: Any, hparams: Hyperparams, micro: int | None
    ) -> BonusReward:
        """The intrinsic reward of every step of a rollout (``traj``, time-major), with the
        state before the rollout and the joint ``params`` (the learner's ``params.bonus``);
        ``micro``: rows per piece of any forward pass over the rollout (None: one pass)."""
        raise NotImplementedError

    def loss_term(self, state: Any) -> BonusTerm | None:
        """The loss of the joint parameters on a batch, with the state after :meth:`reward`
        (see :data:`curio_jax.core.agent.BonusTerm`); None: no joint parameters."""
        return None

    def learn(
        self, state: Any, traj: Any, key: Array, hparams: Hyperparams, micro: int | None = None
    ) -> tuple[Any, BonusMetrics]:
        """Train the bonus's own parameters on the rollout with its own optimiser, after the
        learner's step (default: nothing to train); ``micro``: rows per piece of its passes
        (None: one pass), as :meth:`reward`'s."""
        del traj, key, hparams, micro
        return state, BonusMetrics.zero()


class NoBonus(Bonus):
    """``bonus.kind = "none"``: the extrinsic reward alone (no intrinsic stream)."""

    kind = "none"
    intrinsic = False

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[Any, Any]:
        return None, None

    def reward(self, state, params, traj, hparams, micro) -> BonusReward:
        raise TypeError("the absent bonus pays no reward")


BONUSES: dict[str, type[Bonus]] = {}
"""``bonus.kind`` -> its class (filled by :func:`register`)."""


def register(cls: type[Bonus]) -> type[Bonus]:
    """Make ``cls`` the bonus of ``bonus.kind = cls.kind`` (usable as a class decorator). A
    kind registered by another class raises ValueError."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__}.kind is empty")
    other = BONUSES.get(cls.kind)
    if other is not None and other is not cls:
        raise ValueError(f"bonus kind {cls.kind!r} is already {other.__name__}")
    BONUSES[cls.kind] = cls
    register_bonus_kind(cls.kind, cls.joint)
    return cls


def make_bonus(cfg: TrainConfig, env: Any) -> Bonus:
    """The bonus of ``cfg.bonus.kind`` bound to ``cfg`` and ``env``."""
    try:
        cls = BONUSES[cfg.bonus.kind]
    except KeyError:
        raise ValueError(
            f"no bonus registered for bonus.kind={cfg.bonus.kind!r}; known: {', '.join(BONUSES)}"
        ) from None
    return cls(cfg, env)


register(NoBonus)
