"""Config: the notebook presets are exactly the notebook's runs; nonsense is rejected at
construction, before anything compiles."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from curio_jax import config
from curio_jax.config import BonusConfig, EnvConfig, TrainConfig, TrainSettings

# (envs, rollout, gamma, threshold, log_every, adv_coef_ext) per the notebook's train(...) calls
NOTEBOOK = {
    "notebook-a2c-5x5": (5, 32, 16, 0.99, 0.91, 100, 1.0),
    "notebook-rnd-5x5": (5, 32, 16, 0.99, 0.91, 100, 100.0),
    "notebook-a2c-8x8": (8, 32, 16, 0.99, 0.91, 100, 1.0),
    "notebook-rnd-8x8": (8, 32, 16, 0.99, 0.95, 100, 100.0),
    "notebook-a2c-16x16": (16, 128, 48, 0.995, 0.91, 35, 1.0),
    "notebook-rnd-16x16": (16, 128, 48, 0.995, 0.95, 35, 100.0),
}


@pytest.mark.parametrize("name", sorted(NOTEBOOK))
def test_notebook_presets_match_the_seed(name):
    size, envs, rollout, gamma, threshold, log_every, adv_ext = NOTEBOOK[name]
    cfg = config.preset(name)
    assert cfg.name == name
    assert cfg.env == EnvConfig(size=size, autoreset="next_step")
    assert (cfg.train.num_envs, cfg.train.rollout_size, cfg.train.gamma) == (envs, rollout, gamma)
    assert (cfg.solved_threshold, cfg.log_every) == (threshold, log_every)
    assert cfg.train.adv_coef_ext == adv_ext
    a = cfg.train
    assert (a.lr, cfg.a2c.rmsprop_decay, cfg.a2c.rmsprop_eps, a.gae_lambda) == (
        1e-4,
        0.99,
        1e-8,
        0.98,
    )
    assert (a.value_coef, a.entropy_coef, a.max_grad_norm, a.hidden_dim) == (0.5, 0.01, 0.5, 64)
    r = cfg.bonus
    assert r.enabled == ("rnd" in name)
    assert (r.gamma_int, r.adv_coef_int, r.max_grad_norm) == (0.99, 10.0, 0.01)
    assert (r.feature_dim, r.dropout, r.episodic_int, r.obs_norm, r.reward_norm) == (
        256,
        0.25,
        True,
        False,
        False,
    )
    assert cfg.is_notebook_faithful


@pytest.mark.parametrize("size", ["5x5", "8x8", "16x16"])
def test_ppo_presets_differ_only_in_the_intrinsic_reward(size):
    rnd = config.preset(f"ppo-rnd-{size}")
    assert config.diff_configs(rnd, config.preset(f"ppo-{size}")) == ["bonus.kind", "name"]
    count = config.preset(f"ppo-count-{size}")
    assert config.diff_configs(rnd, count) == ["bonus.kind", "bonus.obs_norm", "name"]
    assert count.bonus.kind == "count" and count.bonus.enabled
    e3b = config.preset(f"ppo-e3b-{size}")
    assert config.diff_configs(rnd, e3b) == ["bonus.kind", "bonus.obs_norm", "name"]
    noveld = config.preset(f"ppo-noveld-{size}")
    assert config.diff_configs(rnd, noveld) == ["bonus.kind", "name"]


def test_bonus_sample_defaults_to_the_subset_and_old_configs_read_as_the_mask():
    cfg = config.preset("ppo-rnd-16x16")
    assert cfg.ppo.bonus_sample == "subset"
    d = cfg.to_dict()
    del d["ppo"]["bonus_sample"]  # a config.json written before the field existed
    old = TrainConfig.from_dict(d)
    assert old.ppo.bonus_sample == "mask"
    assert config.diff_configs(old, cfg) == ["ppo.bonus_sample"]  # a joint bonus: it acts
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bonus_sample"):
        cfg.with_overrides({"ppo.bonus_sample": "bernoulli"})


@pytest.mark.parametrize("name", ["ppo-16x16", "ppo-count-16x16", "ppo-e3b-16x16"])
def test_bonus_sample_is_not_a_difference_without_a_joint_bonus(name):
    """Runs saved before the field existed (read as the mask) stay the same runs as today's
    presets where no predictor trains with the learner: resume and study checks pass."""
    cfg = config.preset(name)
    d = cfg.to_dict()
    del d["ppo"]["bonus_sample"]
    old = TrainConfig.from_dict(d)
    assert old.ppo.bonus_sample == "mask" and config.diff_configs(old, cfg) == []
    # against a config that trains a predictor it counts again
    assert "ppo.bonus_sample" in config.diff_configs(old, cfg.with_overrides({"bonus.kind": "rnd"}))


def test_corrected_presets_differ_only_by_their_switches():
    base = config.preset("notebook-rnd-8x8")
    aligned = config.preset("rnd-aligned-8x8")
    assert config.diff_configs(base, aligned) == ["name", "shared_permutation"]
    paper = config.preset("rnd-paper-8x8")
    assert config.diff_configs(base, paper) == [
        "bonus.episodic_int",
        "bonus.obs_norm",
        "bonus.reward_norm",
        "bootstrap_truncation",
        "mask_reset_transition",
        "name",
        "shared_permutation",
    ]
    assert not paper.is_notebook_faithful
    assert config.diff_configs(
        config.preset("notebook-a2c-5x5"), config.preset("a2c-x100-5x5")
    ) == [
        "name",
        "train.adv_coef_ext",
    ]


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: TrainSettings(num_envs=0), "num_envs"),
        (lambda: TrainSettings(num_envs=-4), "num_envs"),
        (lambda: TrainSettings(num_envs=2.5), "num_envs"),
        (lambda: TrainSettings(rollout_size=0), "rollout_size"),
        (lambda: TrainSettings(lr=-1e-4), "lr"),
        (lambda: TrainSettings(lr=math.nan), "lr"),
        (lambda: TrainSettings(gamma=1.5), "gamma"),
        (lambda: TrainSettings(entropy_coef=-0.1), "entropy_coef"),
        (lambda: BonusConfig(dropout=1.0), "dropout"),
        (lambda: BonusConfig(feature_dim=0), "feature_dim"),
        (lambda: EnvConfig(size=4), "size"),
        (lambda: EnvConfig(size=8.0), "size"),
        (lambda: EnvConfig(autoreset="sometimes"), "autoreset"),
        (lambda: TrainConfig(total_frames=10), "total_frames"),
        (lambda: TrainConfig(log_every=0), "log_every"),
        (lambda: TrainConfig(solved_threshold=math.inf), "solved_threshold"),
        (lambda: config.preset("notebook-rnd-7x7"), "unknown preset"),
        (lambda: config.preset("notebook-rnd-5x5").with_overrides({"a2c.lrr": 1}), "a2c.lrr"),
        (lambda: config.preset("notebook-rnd-5x5").with_overrides({"opt.lr": 1}), "opt"),
        (
            lambda: config.preset("notebook-rnd-5x5").with_overrides({"train.num_envs": 0}),
            "num_envs",
        ),
    ],
)
def test_invalid_configs_raise_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_overrides_and_derived_values():
    cfg = config.preset("notebook-rnd-8x8").with_overrides(
        {"train.num_envs": 512, "total_frames": 1_000_000, "bonus.gamma_int": 0.95}
    )
    assert cfg.frames_per_update == 512 * 16
    assert cfg.num_updates == 1_000_000 // (512 * 16)
    assert cfg.bonus.gamma_int == 0.95
    assert config.preset("notebook-rnd-8x8").train.num_envs == 32  # presets are never mutated
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.total_frames = 5  # type: ignore[misc]


def test_json_round_trip():
    for name in config.preset_names():
        cfg = config.preset(name)
        again = TrainConfig.from_dict(json.loads(cfg.to_json()))
        assert again == cfg
    with pytest.raises(ValueError, match="does not match"):
        TrainConfig.from_dict({"a2c": {"num_envz": 3}})


def test_overrides_are_validated_together():
    # 100,000 envs x 16 steps exceed the preset's budget, but not the new one given alongside
    cfg = config.preset("notebook-rnd-5x5").with_overrides(
        {"train.num_envs": 100_000, "total_frames": 16_000_000}
    )
    assert cfg.num_updates == 10
    with pytest.raises(ValueError, match="total_frames"):
        config.preset("notebook-rnd-5x5").with_overrides({"train.num_envs": 100_000})
