"""What an update reports: the one list of logged metrics.

Every field of :class:`UpdateMetrics` except ``frames`` is a column of `metrics.csv` (after
``seed, update, frames``, in field order), a TensorBoard scalar and a curve `curio-jax compare`
can show, all derived from the field's metadata. Adding a field here, and setting it in the
update that produces it, is all it takes.

Metadata of a field (see :func:`metric`):
- ``logged``: how a chunk of updates becomes one logged row: ``"last"`` (the value at the
  chunk's last update, for running quantities such as the average score) or ``"mean"`` (the
  mean over the chunk's updates, for per-update quantities such as losses);
- ``tensorboard``: the scalar's TensorBoard name;
- ``rnd_only``: meaningless (0) without RND: TensorBoard leaves it out then; the CSV keeps
  the column (0) so every run of the same algorithm has the same columns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import struct

Array = jax.Array

INDEX_COLUMNS = ("seed", "update", "frames")
"""The leading columns of metrics.csv, written by the run loop."""


def metric(tensorboard: str, *, logged: str = "mean", rnd_only: bool = False) -> Any:
    """A logged metric (see the module docstring)."""
    if logged not in ("last", "mean"):
        raise ValueError(f"logged must be 'last' or 'mean', got {logged!r}")
    return struct.field(
        metadata={"tensorboard": tensorboard, "logged": logged, "rnd_only": rnd_only}
    )


class UpdateMetrics(struct.PyTreeNode):
    """Per-update scalars (stacked to ``[num_updates]`` by ``run_chunk``)."""

    frames: Array = struct.field(metadata={"index": True})
    """int32 env steps so far (all envs), after this update's rollout."""
    avg_return_last100: Array = metric("episode/avg_return_last100", logged="last")
    """Mean return of the last 100 finished episodes, NaN if none (the notebook's score)."""
    episodes: Array = metric("episode/count", logged="last")
    """int32 episodes finished so far."""
    loss_total: Array = metric("loss/total")
    loss_policy: Array = metric("loss/policy")
    loss_value_ext: Array = metric("loss/value_ext")
    loss_value_int: Array = metric("loss/value_int", rnd_only=True)
    entropy: Array = metric("loss/entropy")
    """Mean policy entropy over the batch (nats; ln 7 = 1.946 is the uniform policy)."""
    loss_rnd: Array = metric("rnd/loss", rnd_only=True)
    reward_int_mean: Array = metric("rnd/reward_int_mean", rnd_only=True)
    """Mean intrinsic reward used for the advantages."""
    grad_norm_ac: Array = metric("grad/norm_ac")
    """Pre-clip global norm of the actor-critic gradients."""
    grad_norm_rnd: Array = metric("grad/norm_rnd", rnd_only=True)
    """Pre-clip global norm of the predictor gradients."""


def logged_fields() -> list[dataclasses.Field]:
    """The fields that become columns, in column order."""
    return [f for f in dataclasses.fields(UpdateMetrics) if not f.metadata.get("index")]


def metric_names() -> tuple[str, ...]:
    """The metric columns of metrics.csv (after INDEX_COLUMNS)."""
    return tuple(f.name for f in logged_fields())


def metric_columns() -> tuple[str, ...]:
    """Every column of metrics.csv, in order."""
    return INDEX_COLUMNS + metric_names()


def tensorboard_names(rnd: bool) -> dict[str, str]:
    """Column -> TensorBoard scalar name of the metrics that mean something for this run."""
    return {
        f.name: f.metadata["tensorboard"]
        for f in logged_fields()
        if rnd or not f.metadata["rnd_only"]
    }


def averaged_names() -> tuple[str, ...]:
    """The metrics logged as means over a chunk (the loss terms and rates)."""
    return tuple(f.name for f in logged_fields() if f.metadata["logged"] == "mean")


def chunk_rows(metrics: UpdateMetrics, batch: int) -> list[dict[str, float]]:
    """Per learner state of a chunk's metrics (leaves ``[batch, n]`` on the host), the logged
    values by column name: ``logged="last"`` fields at the chunk's last update (integers stay
    integers), ``logged="mean"`` fields averaged over its updates."""
    rows = []
    for s in range(batch):
        row: dict[str, float] = {}
        for f in logged_fields():
            x = np.asarray(getattr(metrics, f.name))[s]
            if f.metadata["logged"] == "last":
                v = x[-1]
                row[f.name] = int(v) if np.issubdtype(v.dtype, np.integer) else float(v)
            else:
                row[f.name] = float(np.mean(x))
        rows.append(row)
    return rows
