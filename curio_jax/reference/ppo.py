"""A PyTorch port of curio_jax's PPO (+ RND) update, for the cross-checks (docs/ppo.md).

Written from the semantics in docs/ppo.md, not from the JAX code: plain torch loops and
tensors, CPU, float32. It covers what one PPO update computes from a collected segment:

- :func:`ppo_targets`: the RND intrinsic reward (predictor in eval mode) on the next
  observations whitened with the running observation statistics (before this segment), the
  reward normalisation (a forward filter of discounted intrinsic returns per env, never reset,
  merged into a scalar running mean/std, rewards divided by its std), GAE of the extrinsic
  stream (textbook single trace cut or the notebook's double mask; truncation bootstrapped
  optionally) and the non-episodic (or episodic) intrinsic stream, then the observation
  statistics updated with the segment's next observations;
- :func:`ppo_update`: ``epochs * minibatches`` gradient steps over given minibatch indices,
  each with the combined, per-minibatch normalised advantage, the clipped surrogate, the
  optionally clipped extrinsic value loss, the intrinsic value loss, the entropy bonus and the
  RND loss on the masked part of the minibatch (given dropout and proportion masks), then
  per-group global-norm clipping (actor-critic, predictor) and one ``torch.optim.Adam`` step.

The running statistics are :class:`RunningMeanStd` (Chan et al.'s parallel merge, count
starting at 1e-4, as ``baselines``); the observation whitening adds 1e-8 to the variance and
clips to ``+-obs_clip``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from curio_jax.reference.agents import ActorCritic, RNDModule
from curio_jax.reference.rl_algos import TrajectorySegment

NORM_EPS = 1e-8
"""Added to a variance before its square root (observation and reward normalisation)."""
ADV_EPS = 1e-8
"""Added to the minibatch advantage std."""


@dataclass
class PPOSettings:
    """The PPO (+ RND) update's settings (the fields of curio_jax's TrainConfig they mirror)."""

    epochs: int = 4
    minibatches: int = 4
    clip_eps: float = 0.2
    clip_value: bool = True
    adv_norm: bool = True
    adam_eps: float = 1e-5
    lr: float = 5e-4
    update_proportion: float = 0.25
    textbook_gae: bool = True
    bootstrap_truncation: bool = True
    episodic_int: bool = False
    obs_norm: bool = True
    obs_clip: float = 5.0
    reward_norm: bool = True
    gamma: float = 0.999
    gamma_int: float = 0.99
    gae_lambda: float = 0.95
    adv_coef_ext: float = 2.0
    adv_coef_int: float = 1.0
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm_ac: float = 0.5
    max_grad_norm_rnd: float = 0.5


# --------------------------------------------------------------------------- statistics


@dataclass
class RunningMeanStd:
    """Running mean and population variance over a leading batch axis (float32 tensors)."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor = field(default_factory=lambda: torch.tensor(1e-4))

    @classmethod
    def create(cls, shape: tuple[int, ...] = ()) -> RunningMeanStd:
        return cls(torch.zeros(shape), torch.ones(shape))

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``[n, *shape]``."""
        x = x.float()
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), float(x.shape[0])
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean = self.mean + delta * b_count / total
        self.var = m2 / total
        self.count = total


def whiten_obs(obs: torch.Tensor, rms: RunningMeanStd, clip: float) -> torch.Tensor:
    """``obs [..., 3, 7, 7]`` (NCHW) whitened with statistics kept in MiniGrid's ``[7, 7, 3]``
    layout, clipped to ``+-clip``."""
    mean = rms.mean.permute(2, 0, 1)
    std = torch.sqrt(rms.var.permute(2, 0, 1) + NORM_EPS)
    return ((obs - mean) / std).clamp(-clip, clip)


# --------------------------------------------------------------------------- targets


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    bootstrap: torch.Tensor,
    cut: torch.Tensor,
    gamma: float,
    lam: float,
    textbook: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backwards GAE over ``[T, N]``: ``delta = r + gamma * next_value * bootstrap[t] - v``,
    ``adv = delta + gamma * lam * (1 - cut[t]) * carried``; the carried advantage is ``adv``
    (textbook) or ``adv * (1 - cut[t])`` (the notebook's helper)."""
    adv = torch.zeros_like(rewards)
    carried = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        keep = 1.0 - cut[t]
        delta = rewards[t] + gamma * next_value * bootstrap[t] - values[t]
        adv[t] = delta + gamma * lam * carried * keep
        carried = adv[t] if textbook else adv[t] * keep
        next_value = values[t]
    return adv, adv + values


@dataclass
class PPOTargets:
    """What the update learns from, time-major ``[T, N]``, and the updated statistics."""

    adv_ext: torch.Tensor
    ret_ext: torch.Tensor
    reward_int: torch.Tensor | None = None  # as used (normalised with reward_norm)
    adv_int: torch.Tensor | None = None
    ret_int: torch.Tensor | None = None
    obs_rms: RunningMeanStd | None = None
    reward_rms: RunningMeanStd | None = None
    reward_filter: torch.Tensor | None = None  # [N]


@torch.no_grad()
def ppo_targets(
    model: ActorCritic,
    rnd_module: RNDModule | None,
    seg: TrajectorySegment,
    terminated: torch.Tensor,
    s: PPOSettings,
    obs_rms: RunningMeanStd | None = None,
    reward_rms: RunningMeanStd | None = None,
    reward_filter: torch.Tensor | None = None,
) -> PPOTargets:
    """Advantages and returns of both streams from a segment (``seg.values [T, N, 2]``) and
    ``terminated [T, N]`` (the steps of ``seg.dones`` that reached a terminal state; the other
    dones are truncations). The statistics passed in are not modified; the updated ones are
    returned."""
    _, next_values = model(seg.next_start_obs.permute(0, 3, 1, 2))
    dones = seg.dones
    boot = 1.0 - (terminated.float() if s.bootstrap_truncation else dones)
    adv_ext, ret_ext = gae(
        seg.rewards,
        seg.values[..., 0],
        next_values[:, 0],
        boot,
        dones,
        s.gamma,
        s.gae_lambda,
        s.textbook_gae,
    )
    out = PPOTargets(adv_ext=adv_ext, ret_ext=ret_ext)
    if rnd_module is None:
        return out
    t, n = seg.rewards.shape
    next_obs = seg.next_obs().flatten(0, 1).permute(0, 3, 1, 2)
    if s.obs_norm:
        next_obs = whiten_obs(next_obs, obs_rms, s.obs_clip)
    rnd_module.eval()
    reward_int = rnd_module(next_obs).reshape(t, n)
    rnd_module.train()
    if s.reward_norm:
        f = reward_filter.clone()
        filtered = torch.zeros_like(reward_int)
        for i in range(t):
            f = s.gamma_int * f + reward_int[i]
            filtered[i] = f
        reward_rms = RunningMeanStd(reward_rms.mean, reward_rms.var, reward_rms.count)
        reward_rms.update(filtered.reshape(-1))
        reward_int = reward_int / torch.sqrt(reward_rms.var + NORM_EPS)
        out.reward_filter, out.reward_rms = f, reward_rms
    if s.episodic_int:
        boot_int, cut_int = boot, dones
    else:
        boot_int, cut_int = torch.ones_like(dones), torch.zeros_like(dones)
    out.adv_int, out.ret_int = gae(
        reward_int,
        seg.values[..., 1],
        next_values[:, 1],
        boot_int,
        cut_int,
        s.gamma_int,
        s.gae_lambda,
        s.textbook_gae,
    )
    out.reward_int = reward_int
    if s.obs_norm:
        obs_rms = RunningMeanStd(obs_rms.mean, obs_rms.var, obs_rms.count)
        obs_rms.update(seg.next_obs().flatten(0, 1))
        out.obs_rms = obs_rms
    return out


# --------------------------------------------------------------------------- update


@dataclass
class RolloutBatch:
    """A flattened segment (``N = T * envs`` samples in time-major order)."""

    obs: torch.Tensor  # [N, 3, 7, 7] float32
    actions: torch.Tensor  # [N] int64
    logprobs: torch.Tensor  # [N]
    values_ext: torch.Tensor  # [N] the rollout's extrinsic values
    adv_ext: torch.Tensor
    ret_ext: torch.Tensor
    weight: torch.Tensor  # [N] 0 for masked samples
    adv_int: torch.Tensor | None = None
    ret_int: torch.Tensor | None = None

    def take(self, idx: torch.Tensor) -> RolloutBatch:
        return RolloutBatch(**{k: (None if v is None else v[idx]) for k, v in vars(self).items()})


@dataclass
class StepRandomness:
    """What one gradient step draws: its samples and the predictor's masks."""

    indices: torch.Tensor  # [M] int64
    dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None  # 2 x [M, F] keep masks
    rnd_mask: torch.Tensor | None = None  # [M] 0/1: the samples the predictor trains on


def ppo_loss_terms(
    model: ActorCritic,
    rnd_module: RNDModule | None,
    mb: RolloutBatch,
    s: PPOSettings,
    obs_rms: RunningMeanStd | None = None,
    dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None,
    rnd_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The loss terms of one minibatch (graph attached)."""
    w = mb.weight
    denom = w.sum().clamp(min=1.0)

    def wmean(x: torch.Tensor) -> torch.Tensor:
        return (x * w).sum() / denom

    adv = s.adv_coef_ext * mb.adv_ext
    if rnd_module is not None:
        adv = adv + s.adv_coef_int * mb.adv_int
    if s.adv_norm:
        mean = wmean(adv)
        std = torch.sqrt(wmean((adv - mean) ** 2))
        adv = (adv - mean) / (std + ADV_EPS)
    dist, values = model(mb.obs)
    logp = dist.log_prob(mb.actions)
    log_ratio = logp - mb.logprobs
    ratio = log_ratio.exp()
    eps = s.clip_eps
    policy = wmean(torch.max(-adv * ratio, -adv * ratio.clamp(1 - eps, 1 + eps)))
    err = (values[:, 0] - mb.ret_ext) ** 2
    if s.clip_value:
        clipped = mb.values_ext + (values[:, 0] - mb.values_ext).clamp(-eps, eps)
        err = torch.max(err, (clipped - mb.ret_ext) ** 2)
    value_ext = wmean(err)
    entropy = wmean(dist.entropy())
    zero = torch.zeros(())
    value_int, rnd_loss = zero, zero
    if rnd_module is not None:
        value_int = wmean((values[:, 1] - mb.ret_int) ** 2)
        rnd_obs = whiten_obs(mb.obs, obs_rms, s.obs_clip) if s.obs_norm else mb.obs
        rw = w * rnd_mask
        rnd_loss = (rnd_module(rnd_obs, dropout_masks) * rw).sum() / rw.sum().clamp(min=1.0)
    total = policy + s.value_coef * (value_ext + value_int) - s.entropy_coef * entropy + rnd_loss
    with torch.no_grad():
        approx_kl = wmean((ratio - 1) - log_ratio)
        clip_fraction = wmean(((ratio - 1).abs() > eps).float())
    return {
        "total": total,
        "policy": policy,
        "value_ext": value_ext,
        "value_int": value_int,
        "entropy": entropy,
        "rnd": rnd_loss,
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


def make_optimizer(
    model: ActorCritic, rnd_module: RNDModule | None, s: PPOSettings
) -> torch.optim.Adam:
    """One Adam over the actor-critic and (RND) the predictor."""
    params = list(model.parameters())
    if rnd_module is not None:
        params += list(rnd_module.predictor.parameters())
    return torch.optim.Adam(params, lr=s.lr, eps=s.adam_eps)


def _grads(module: nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {
        prefix + k: (p.grad.detach().numpy().copy() if p.grad is not None else np.zeros(p.shape))
        for k, p in module.named_parameters()
        if p.requires_grad
    }


def ppo_update(
    model: ActorCritic,
    rnd_module: RNDModule | None,
    optimizer: torch.optim.Adam,
    batch: RolloutBatch,
    steps: list[StepRandomness],
    s: PPOSettings,
    obs_rms: RunningMeanStd | None = None,
    lr: float | None = None,
) -> list[dict]:
    """One PPO update: for each step, the minibatch's loss, backward, per-group clipping and
    an Adam step (learning rate ``lr``, default ``s.lr``). Returns per step the loss terms
    (floats), the pre-clip norms and the gradients as numpy by state-dict key
    (``{"a2c_params": ..., "rnd_params": ...}``)."""
    for group in optimizer.param_groups:
        group["lr"] = s.lr if lr is None else lr
    out = []
    for st in steps:
        mb = batch.take(st.indices)
        optimizer.zero_grad()
        terms = ppo_loss_terms(model, rnd_module, mb, s, obs_rms, st.dropout_masks, st.rnd_mask)
        terms["total"].backward()
        rec = {"terms": {k: float(v.detach()) for k, v in terms.items()}}
        rec["grads"] = {"a2c_params": _grads(model)}
        rec["grad_norm_ac"] = float(
            nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm_ac)
        )
        if rnd_module is not None:
            rec["grads"]["rnd_params"] = _grads(rnd_module.predictor, "predictor.")
            rec["grad_norm_rnd"] = float(
                nn.utils.clip_grad_norm_(rnd_module.predictor.parameters(), s.max_grad_norm_rnd)
            )
        optimizer.step()
        out.append(rec)
    return out
