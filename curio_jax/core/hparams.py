"""The traced coefficients of a run: the one list of what a sweep can batch over.

Every field of :class:`Hyperparams` is a float32 scalar leaf of the learner state, read from the
config field its metadata names. Adding a field here (with its config field and help) is all it
takes for `curio-jax sweep --set NAME=...` to accept it, for the help text to list it and for
`train.init` to carry it: :func:`sweepable` and :func:`describe` derive from the fields.
Everything that changes array shapes or the program stays static in the config.

A coefficient of one algorithm only (``algorithm="ppo"`` in its metadata: PPO's clip range and
the bonus's update proportion) or of some bonus kinds only (``bonus=("e3b",)``: E3B's ridge) is
None in the Hyperparams of a run that does not use it, so it adds no leaf to that run's learner
state (an A2C run's state, program and checkpoints are those of before PPO existed); a sweep
over it needs a run that uses it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.config import config_value

Array = jax.Array


def coefficient(
    config: str, help: str, algorithm: str | None = None, bonus: tuple[str, ...] | None = None
) -> Any:
    """A traced coefficient read from the dotted config field `config`; `algorithm`: the only
    `TrainConfig.algorithm` that uses it (None: every algorithm); `bonus`: the only
    `bonus.kind`s that use it (None: every kind)."""
    meta = {"config": config, "help": help, "algorithm": algorithm, "bonus": bonus}
    if algorithm is None and bonus is None:
        return struct.field(metadata=meta)
    return struct.field(metadata=meta, default=None)


class Hyperparams(struct.PyTreeNode, kw_only=True):
    """Traced float coefficients (float32 scalars; a sweep may batch them with the seeds).
    Keyword-only, so that a new coefficient may go anywhere in the class, before or after the
    algorithm-specific ones that default to None."""

    lr: Array = coefficient("train.lr", "learning rate")
    gamma: Array = coefficient("train.gamma", "discount of the extrinsic stream")
    gamma_int: Array = coefficient("bonus.gamma_int", "discount of the intrinsic stream")
    gae_lambda: Array = coefficient("train.gae_lambda", "GAE lambda of both streams")
    adv_coef_ext: Array = coefficient(
        "train.adv_coef_ext", "weight of the extrinsic advantage in the policy loss"
    )
    adv_coef_int: Array = coefficient(
        "bonus.adv_coef_int", "weight of the intrinsic advantage in the policy loss (the bonus)"
    )
    entropy_coef: Array = coefficient("train.entropy_coef", "weight of the entropy bonus")
    value_coef: Array = coefficient("train.value_coef", "weight of the value loss")
    clip_eps: Array | None = coefficient(
        "ppo.clip_eps", "clip range of the probability ratio and the value (PPO)", "ppo"
    )
    update_proportion: Array | None = coefficient(
        "ppo.update_proportion",
        "fraction of each minibatch the RND predictor trains on (PPO-RND)",
        "ppo",
    )
    e3b_lambda: Array | None = coefficient(
        "bonus.e3b_lambda", "E3B's ridge: C = lambda * I at each episode start", bonus=("e3b",)
    )
    noveld_alpha: Array | None = coefficient(
        "bonus.noveld_alpha", "NovelD's scale on the novelty of the state left", bonus=("noveld",)
    )

    @classmethod
    def from_config(cls, cfg: Any) -> Hyperparams:
        """The config's values, as float32 scalars (None for a coefficient the run does not
        use: another algorithm's, another bonus's)."""
        return cls(
            **{
                f.name: jnp.asarray(config_value(cfg, f.metadata["config"]), jnp.float32)
                for f in dataclasses.fields(cls)
                if applies(f.name, cfg)
            }
        )


def applies(name: str, cfg: Any) -> bool:
    """Whether the coefficient ``name`` is used (and traced) by runs of ``cfg`` (its algorithm
    and bonus kind)."""
    meta = Hyperparams.__dataclass_fields__[name].metadata
    algorithm, kinds = meta["algorithm"], meta["bonus"]
    return (algorithm is None or algorithm == cfg.algorithm) and (
        kinds is None or cfg.bonus.kind in kinds
    )


def sweepable() -> dict[str, str]:
    """Short name -> dotted config field, in field order."""
    return {f.name: f.metadata["config"] for f in dataclasses.fields(Hyperparams)}


def describe() -> str:
    """One line per coefficient, for help texts: ``name (dotted field): help``."""
    return "\n".join(
        f"{f.name} ({f.metadata['config']}): {f.metadata['help']}"
        + (f" [algorithm={f.metadata['algorithm']} only]" if f.metadata["algorithm"] else "")
        + (f" [bonus.kind={'/'.join(f.metadata['bonus'])} only]" if f.metadata["bonus"] else "")
        for f in dataclasses.fields(Hyperparams)
    )
