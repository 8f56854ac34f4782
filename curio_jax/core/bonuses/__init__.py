"""The intrinsic bonuses, one module each, registered by ``bonus.kind``
(:mod:`curio_jax.core.bonuses.base` describes the interface; docs/bonuses.md the bonuses)."""

from curio_jax.core.bonuses.base import (
    BONUSES,
    Bonus,
    BonusMetrics,
    BonusReward,
    NoBonus,
    make_bonus,
    register,
)
from curio_jax.core.bonuses.counts import Count, EpisodicCount
from curio_jax.core.bonuses.e3b import E3B
from curio_jax.core.bonuses.noveld import NovelD
from curio_jax.core.bonuses.rnd import RND

__all__ = [
    "BONUSES",
    "E3B",
    "RND",
    "Bonus",
    "BonusMetrics",
    "BonusReward",
    "Count",
    "EpisodicCount",
    "NoBonus",
    "NovelD",
    "make_bonus",
    "register",
]
