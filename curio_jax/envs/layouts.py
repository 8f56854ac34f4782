"""Layout helpers on the host: concrete (Python-int) layouts, and batches of layouts for
vmapped resets (`jax.vmap(env.reset_to)(stack_layouts(layouts))`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from curio_jax.envs.doorkey import DoorKeyLayout

_LAYOUT_FIELDS = ("wall_x", "door_y", "agent_x", "agent_y", "agent_dir", "key_x", "key_y")


def layout_tuple(layout: DoorKeyLayout) -> tuple[int, ...]:
    """(size, wall_x, door_y, agent_x, agent_y, agent_dir, key_x, key_y) as Python ints."""
    return (int(layout.size),) + tuple(int(np.asarray(getattr(layout, f))) for f in _LAYOUT_FIELDS)


def concrete_layout(layout: DoorKeyLayout) -> DoorKeyLayout:
    """The same layout with Python-int leaves (validated)."""
    return DoorKeyLayout(
        size=int(layout.size), **{f: int(np.asarray(getattr(layout, f))) for f in _LAYOUT_FIELDS}
    ).validate()


def stack_layouts(layouts: Sequence[DoorKeyLayout]) -> DoorKeyLayout:
    """N layouts of one size -> one layout with int32 [N] leaves."""
    if not layouts:
        raise ValueError("no layouts")
    size = int(layouts[0].size)
    if any(int(lay.size) != size for lay in layouts):
        raise ValueError("all layouts must have the same size")
    return DoorKeyLayout(
        size=size,
        **{
            f: jnp.asarray([int(np.asarray(getattr(lay, f))) for lay in layouts], jnp.int32)
            for f in _LAYOUT_FIELDS
        },
    )


def unstack_layouts(batch: DoorKeyLayout) -> list[DoorKeyLayout]:
    """Inverse of `stack_layouts`."""
    arrays = {f: np.asarray(getattr(batch, f)).reshape(-1) for f in _LAYOUT_FIELDS}
    n = len(arrays["wall_x"])
    return [
        DoorKeyLayout(size=int(batch.size), **{f: int(arrays[f][i]) for f in _LAYOUT_FIELDS})
        for i in range(n)
    ]
