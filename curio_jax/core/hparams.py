"""The traced coefficients of a run: the one list of what a sweep can batch over.

Every field of :class:`Hyperparams` is a float32 scalar leaf of the learner state, read from the
config field its metadata names. Adding a field here (with its config field and help) is all it
takes for `curio-jax sweep --set NAME=...` to accept it, for the help text to list it and for
`train.init` to carry it: :func:`sweepable` and :func:`describe` derive from the fields.
Everything that changes array shapes or the program stays static in the config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.config import config_value

Array = jax.Array


def coefficient(config: str, help: str) -> Any:
    """A traced coefficient read from the dotted config field `config`."""
    return struct.field(metadata={"config": config, "help": help})


class Hyperparams(struct.PyTreeNode):
    """Traced float coefficients (float32 scalars; a sweep may batch them with the seeds)."""

    lr: Array = coefficient("a2c.lr", "learning rate")
    gamma: Array = coefficient("a2c.gamma", "discount of the extrinsic stream")
    gamma_int: Array = coefficient("rnd.gamma_int", "discount of the intrinsic stream (RND)")
    gae_lambda: Array = coefficient("a2c.gae_lambda", "GAE lambda of both streams")
    adv_coef_ext: Array = coefficient(
        "a2c.adv_coef_ext", "weight of the extrinsic advantage in the policy loss"
    )
    adv_coef_int: Array = coefficient(
        "rnd.adv_coef_int", "weight of the intrinsic advantage in the policy loss (RND)"
    )
    entropy_coef: Array = coefficient("a2c.entropy_coef", "weight of the entropy bonus")
    value_coef: Array = coefficient("a2c.value_coef", "weight of the value loss")

    @classmethod
    def from_config(cls, cfg: Any) -> Hyperparams:
        """The config's values, as float32 scalars."""
        return cls(
            **{
                name: jnp.asarray(config_value(cfg, path), jnp.float32)
                for name, path in sweepable().items()
            }
        )


def sweepable() -> dict[str, str]:
    """Short name -> dotted config field, in field order."""
    return {f.name: f.metadata["config"] for f in dataclasses.fields(Hyperparams)}


def describe() -> str:
    """One line per coefficient, for help texts: ``name (dotted field): help``."""
    return "\n".join(
        f"{f.name} ({f.metadata['config']}): {f.metadata['help']}"
        for f in dataclasses.fields(Hyperparams)
    )
