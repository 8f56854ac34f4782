"""Fixtures shared by the analysis tests: a tiny run directory, pillow."""

from __future__ import annotations

import json

import jax
import pytest

from curio_jax import config
from curio_jax.core.train import make_train
from curio_jax.run import checkpoint as ckpt


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """(run dir, state): a `curio-jax train`-style run directory with 2 seeds and one
    checkpoint (the initial learner state; loading does not care how far it trained)."""
    cfg = config.preset("notebook-a2c-5x5").with_overrides(
        {"train.num_envs": 2, "total_frames": 32}
    )
    train = make_train(cfg)
    state = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(5), 2))
    d = tmp_path_factory.mktemp("run") / "a2c-run"
    d.mkdir()
    (d / "config.json").write_text(cfg.to_json())
    (d / "run.json").write_text(json.dumps({"seeds": 2, "seed": 5, "chunk_updates": 100}))
    ckpt.save(d / "checkpoints", 1, state)
    return d, state


@pytest.fixture
def pil_image():
    """PIL.Image (pillow is optional: the GIF tests skip without it)."""
    return pytest.importorskip("PIL.Image")
