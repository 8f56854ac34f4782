"""Program building, written once: the compiled programs that run many learner states of one
config (seeds, or grid points x seeds) on a device layout.

`train`, `sweep`, `bench train` and the scripts under `benchmarks/` all run training through
:class:`SeedProgram`:

- the states are a batch along a leading axis, vmapped (with the mesh's ``seed`` axis as the
  SPMD axis when sharded, :mod:`curio_jax.parallel.sharding`);
- on CPU the seed loop (:func:`seed_loop`, ``TrainSettings.seed_batch``) runs them a few at a time
  inside the one program;
- the init and every chunk length are compiled ahead of time and cached, so compilation is
  timed apart from training (:attr:`SeedProgram.compile_seconds`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from curio_jax.config import TrainConfig, seed_batch_size
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.train import Train, make_train
from curio_jax.parallel import sharding as shd


def device_description() -> str:
    """'cpu (N cores, <processor>)' or the accelerator's name."""
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return f"{dev.platform} ({dev.device_kind}) x{jax.device_count()}"


def seed_loop(step: Callable[[Any], Any], batch: int, seed_batch: int) -> Callable[[Any], Any]:
    """``step`` (vmapped over the leading axis of a state pytree, returning pytrees with that
    axis) applied to a ``[batch, ...]`` state ``seed_batch`` states at a time: a ``lax.map``
    over ``batch // seed_batch`` groups inside the one program. With ``seed_batch == batch``
    it is ``step`` itself; with 1 each state runs with single-seed shapes."""
    if seed_batch == batch:
        return step
    if seed_batch < 1 or batch % seed_batch:
        raise ValueError(f"seed_batch={seed_batch} does not divide the batch of {batch} states")
    groups = batch // seed_batch

    def looped(state: Any) -> Any:
        grouped = jax.tree.map(lambda x: x.reshape((groups, seed_batch) + x.shape[1:]), state)
        out = jax.lax.map(step, grouped)
        return jax.tree.map(lambda x: x.reshape((batch,) + x.shape[2:]), out)

    return looped


def strong(tree: Any) -> Any:
    """Drop weak typing from every leaf, so a fresh state and one restored from a checkpoint
    have identical avals (and therefore run the identical compiled program)."""

    def f(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(f, tree)


def seed_keys(seed: int, seeds: int) -> tuple[np.ndarray, Any]:
    """(raw key data ``[seeds, ...]``, key impl) of ``jax.random.split(jax.random.key(seed),
    seeds)``: seed ``i`` of every run with base seed ``seed``. Raw data is a plain host array,
    identical on every process of a multi-host run."""
    keys = jax.random.split(jax.random.key(seed), seeds)
    return np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)


def stacked_hparams(cfgs: list[TrainConfig]) -> Hyperparams:
    """The configs' coefficients stacked along a leading batch axis (host arrays)."""
    return jax.device_get(
        jax.tree.map(lambda *xs: jax.numpy.stack(xs), *[Hyperparams.from_config(c) for c in cfgs])
    )


class SeedProgram:
    """The compiled programs for ``batch`` learner states of ``cfg`` (one config; the states may
    differ in their traced coefficients) on a device layout.

    Raises ShardingError (the batch or envs do not fit the devices) or ValueError (the seed
    batch does not divide the batch) before anything is compiled."""

    def __init__(
        self,
        cfg: TrainConfig,
        batch: int,
        *,
        devices: int | None = None,
        env_shards: int = 1,
        env: Any = None,
        key_impl: Any = None,
    ):
        self.cfg = cfg
        self.key_impl = key_impl if key_impl is not None else jax.random.key_impl(jax.random.key(0))
        """The PRNG implementation of the raw key data the programs take."""
        self.batch = batch
        self.layout = shd.make_layout(batch, cfg.train.num_envs, devices, env_shards)
        self.seed_batch = seed_batch_size(
            cfg.train, batch, jax.default_backend(), self.layout.devices
        )
        self.train: Train = make_train(cfg, env, sample_sharding=shd.sample_sharding(self.layout))
        if self.layout.mesh:
            self.vmap = lambda f: jax.vmap(f, spmd_axis_name=shd.SEED)
        else:
            self.vmap = jax.vmap
        self.compile_seconds = 0.0
        """Seconds spent compiling this program's parts so far."""
        self._chunks: dict[int, Any] = {}
        self._init: Any = None
        self._state_sh: Any = None

    # ---------------------------------------------------------------- init

    def init_fn(self, key_data: Any, hparams: Hyperparams) -> Any:
        """The (traceable) batched init from raw key data ``[b, ...]`` and coefficients ``[b]``
        (any batch size ``b``: also used for the abstract state of several programs)."""
        keys = jax.random.wrap_key_data(key_data, impl=self.key_impl)
        return strong(self.vmap(self.train.init)(keys, hparams))

    def abstract_state(self, key_data: Any, hparams: Hyperparams) -> Any:
        """Shapes and dtypes of the state ``init_fn`` gives for these inputs (a checkpoint
        template), without computing it."""
        return jax.eval_shape(self.init_fn, key_data, hparams)

    def state_shardings(self, key_data: Any, hparams: Hyperparams) -> Any:
        """The shardings of this program's batched state on the layout (None on one device);
        ``key_data`` and ``hparams`` are inputs of this program's batch size."""
        if self._state_sh is None and self.layout.mesh:
            abstract = self.abstract_state(key_data, hparams)
            self._state_sh = shd.state_shardings(abstract, self.layout)
        return self._state_sh

    def init(self, key_data: np.ndarray, hparams: Hyperparams) -> Any:
        """The fresh batched state (compiled on first use)."""
        if self._init is None:
            sh = self.state_shardings(key_data, hparams)
            jitted = (
                jax.jit(self.init_fn) if sh is None else jax.jit(self.init_fn, out_shardings=sh)
            )
            t0 = time.perf_counter()
            self._init = jitted.lower(key_data, hparams).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._init(key_data, hparams)

    def place(self, host_state: Any, key_data: Any, hparams: Hyperparams) -> Any:
        """A host state of this program's batch (e.g. restored from a checkpoint) on the
        layout's devices."""
        return shd.place(host_state, self.state_shardings(key_data, hparams))

    # ---------------------------------------------------------------- chunks

    def chunk(self, state: Any, num_updates: int, *, donate: bool = True) -> Any:
        """The compiled program of ``num_updates`` updates for states like ``state`` (compiled
        once per length; ``state`` only gives the shapes). Call it as ``fn(state) -> (state,
        metrics)``; with ``donate`` the input state's buffers are reused."""
        if num_updates not in self._chunks:
            step = seed_loop(
                self.vmap(lambda s, n=num_updates: self.train.run_chunk(s, n)),
                self.batch,
                self.seed_batch,
            )
            kwargs: dict[str, Any] = {"donate_argnums": 0} if donate else {}
            sh = self._state_sh
            if sh is not None:
                metrics_abs = jax.eval_shape(step, state)[1]
                kwargs.update(
                    in_shardings=(sh,),
                    out_shardings=(sh, shd.batch_shardings(metrics_abs, self.layout)),
                )
            t0 = time.perf_counter()
            self._chunks[num_updates] = jax.jit(step, **kwargs).lower(state).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._chunks[num_updates]
