"""Spreading a run over devices and hosts with ``jax.sharding`` (no home-made launcher).

One 2-D device mesh with axes ``("seed", "env")`` covers both kinds of scale-out:

- **seed axis**: the seed-batched learner state is split along its leading (seed) axis, each
  device running its share of the seeds; no communication in the update.
- **env axis** (one agent on several devices): the per-environment leaves of the state
  (timestep, running episode counters, the intrinsic-reward filter) are split along their env
  axis, so each device steps and rolls out its share of the envs; the flattened training
  batch is constrained to stay split along the sample axis, so each device runs the
  forward/backward pass of its samples, and XLA's partitioner sums the gradients across the
  ``env`` axis (the all-reduce of a ``lax.pmean``) before the identical optimiser step on every
  device. The program is the same as on one device; only its partitioning differs.

Multi-host: :func:`initialize` wraps ``jax.distributed.initialize``; the mesh then spans every
process's devices, each process feeds its own, and only process 0 writes files.

Equality with one device: the per-seed arithmetic is the same, but XLA's CPU reductions depend
on the per-device batch size (and env sharding splits the loss sums), so sharded runs match a
one-device run to float rounding, not bit for bit; ``tests/test_sharding.py`` states the
tolerances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

SEED, ENV = "seed", "env"

# per-environment leaves of a LearnerState (axis 1 after the seed axis): everything under
# `timestep`, the intrinsic-reward filter, EpisodeStats' running per-env counters, and
# whatever a bonus keeps under a field named `per_env` (episodic tables, E3B's matrices)
_PER_ENV_ROOTS = ("timestep", "reward_filter")
_PER_ENV_FIELD = "per_env"
_PER_ENV_STATS = ("ep_return", "ep_length", "prev_done")

ENV_COORDINATOR = "CURIO_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "CURIO_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "CURIO_JAX_PROCESS_ID"


class ShardingError(ValueError):
    """A device layout that cannot hold the run (names the numbers that do not fit)."""


@dataclass(frozen=True)
class Layout:
    """Where a run's batch lives: ``mesh`` is None on a single device."""

    mesh: Any = None
    env_shards: int = 1

    @property
    def devices(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    @property
    def seed_shards(self) -> int:
        return self.devices // self.env_shards

    def describe(self) -> str:
        if self.mesh is None:
            return "1 device"
        return (
            f"{self.devices} devices ({self.seed_shards} seed shard(s) x {self.env_shards} env "
            f"shard(s), {process_count()} process(es))"
        )


def process_count() -> int:

    return jax.process_count()


def is_primary() -> bool:
    """Whether this process writes files (process 0)."""

    return jax.process_index() == 0


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Join a multi-process run through ``jax.distributed.initialize``. Arguments default to the
    environment variables CURIO_JAX_COORDINATOR (host:port of process 0), CURIO_JAX_NUM_PROCESSES
    and CURIO_JAX_PROCESS_ID; with none of them set this does nothing and returns False. On CPU
    the cross-process collectives use gloo. Call before any other JAX work."""
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    if num_processes is None and os.environ.get(ENV_NUM_PROCESSES):
        num_processes = _env_count(ENV_NUM_PROCESSES, 1)
    if process_id is None and os.environ.get(ENV_PROCESS_ID):
        process_id = _env_count(ENV_PROCESS_ID, 0)
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if not any(given):
        return False
    if not all(given):
        raise ShardingError(
            "a multi-process run needs all of the coordinator address, the number of processes "
            f"and this process's id ({ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID} or "
            "--coordinator/--num-processes/--process-id)"
        )
    if not 0 <= process_id < num_processes:
        raise ShardingError(f"process id {process_id} is not in [0, {num_processes})")

    # cross-process collectives of the CPU backend (GPUs use NCCL regardless); set before the
    # backends start, so no jax.default_backend() here
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    return True


def _env_count(name: str, minimum: int) -> int:
    raw = os.environ[name]
    try:
        v = int(raw)
    except ValueError:
        raise ShardingError(f"{name} must be an integer, got {raw!r}") from None
    if v < minimum:
        raise ShardingError(f"{name} must be >= {minimum}, got {v}")
    return v


def make_layout(
    batch: int, num_envs: int, devices: int | None = None, env_shards: int = 1
) -> Layout:
    """The mesh for ``batch`` seed-batched runs of ``num_envs`` envs each on ``devices`` devices
    (default: all, over every process), ``env_shards`` of them per agent. Raises ShardingError
    naming what does not divide."""

    available = jax.devices()
    n = len(available) if devices is None else devices
    for name, v in (("devices", n), ("env_shards", env_shards)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ShardingError(f"{name} must be a positive integer, got {v!r}")
    if n > len(available):
        raise ShardingError(f"{n} devices asked for, but only {len(available)} are visible")
    if jax.process_count() > 1 and n != len(available):
        raise ShardingError(
            f"a multi-process run uses every device ({len(available)}), not {n}: each process "
            "feeds its own"
        )
    if n % env_shards:
        raise ShardingError(f"env shards ({env_shards}) must divide the device count ({n})")
    if num_envs % env_shards:
        raise ShardingError(
            f"num_envs ({num_envs}) must be a multiple of the env shards ({env_shards})"
        )
    seed_shards = n // env_shards
    if batch % seed_shards:
        raise ShardingError(
            f"the seed count ({batch}) must be a multiple of the seed shards ({seed_shards} = "
            f"{n} devices / {env_shards} env shard(s)); use --seeds {_round_up(batch, seed_shards)}"
            f" or --devices"
        )
    if n == 1:
        return Layout()

    grid = np.array(available[:n], dtype=object).reshape(seed_shards, env_shards)
    return Layout(mesh=Mesh(grid, (SEED, ENV)), env_shards=env_shards)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _is_per_env(path: tuple) -> bool:
    names = [getattr(p, "name", getattr(p, "key", None)) for p in path]
    if not names:
        return False
    if names[0] in _PER_ENV_ROOTS or (names[0] == "bonus" and _PER_ENV_FIELD in names):
        return True
    return names[0] == "episode_stats" and names[-1] in _PER_ENV_STATS


def state_shardings(abstract_state: Any, layout: Layout) -> Any:
    """NamedSharding per leaf of a seed-batched LearnerState (None on one device): the seed
    axis over ``seed``; per-env leaves also their env axis over ``env``."""
    if layout.mesh is None:
        return None

    def spec(path: tuple, leaf: Any) -> Any:
        per_env = layout.env_shards > 1 and _is_per_env(path) and len(leaf.shape) >= 2
        return NamedSharding(layout.mesh, P(SEED, ENV) if per_env else P(SEED))

    return jax.tree_util.tree_map_with_path(spec, abstract_state)


def batch_shardings(abstract_tree: Any, layout: Layout) -> Any:
    """NamedSharding per leaf of a tree whose leaves all lead with the seed batch axis."""
    if layout.mesh is None:
        return None

    return jax.tree.map(lambda _: NamedSharding(layout.mesh, P(SEED)), abstract_tree)


def sample_sharding(layout: Layout) -> Any:
    """The sharding a training batch ``[samples, ...]`` is held to inside the seed-vmapped
    update (None without env sharding)."""
    if layout.mesh is None or layout.env_shards == 1:
        return None

    return NamedSharding(layout.mesh, P(ENV))


def to_host(tree: Any) -> Any:
    """Every leaf as a full numpy array on this process (an all-gather across processes in a
    multi-process run; every process must call it). Typed PRNG keys stay keys."""

    if jax.process_count() == 1:
        return jax.device_get(tree)

    def gather(x: Any) -> Any:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            data = multihost_utils.process_allgather(jax.random.key_data(x), tiled=True)
            return jax.random.wrap_key_data(np.asarray(data), impl=impl)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(gather, tree)


def place(tree: Any, shardings: Any) -> Any:
    """Put a host-side tree (numpy or single-device arrays, identical on every process) onto
    the layout's devices."""
    if shardings is None:
        return tree

    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for leaf, sh in zip(leaves, jax.tree.leaves(shardings), strict=True):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(leaf)
            data = np.asarray(jax.random.key_data(leaf))
            arr = jax.make_array_from_callback(data.shape, _key_data_sharding(sh), data.__getitem__)
            out.append(jax.random.wrap_key_data(arr, impl=impl))
        else:
            data = np.asarray(leaf)
            out.append(jax.make_array_from_callback(data.shape, sh, data.__getitem__))
    return jax.tree.unflatten(treedef, out)


def _key_data_sharding(sh: Any) -> Any:
    """The sharding of a key array's data (one extra trailing axis, not split)."""

    return NamedSharding(sh.mesh, P(*sh.spec, None))
