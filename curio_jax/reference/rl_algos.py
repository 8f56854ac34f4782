"""The helpers the notebook imports from the drl-zh course (`util.rl_algos`), re-written.

Semantics follow ``docs/semantics.md`` exactly (PyTorch, CPU, float32):

- `collect_trajectory_segment` acts with the agent, steps a gymnasium vector env (next-step
  autoreset) and stores, per step t, the observation the action was chosen from, the action,
  its log-prob, the values, the reward and ``done = terminated | truncated``.
- `compute_advantages_and_returns` is the notebook's backwards GAE loop (lambda 0.98 by default),
  truncation treated as termination.
- `flatten_and_shuffle` draws ONE fresh permutation per call (the notebook's RND agent calls it
  twice, which mis-pairs the intrinsic targets with the observations; see `agents.py`).

Shapes: T = rollout_size (time), N = number of envs; everything is time-major ``[T, N, ...]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

DEVICE = torch.device("cpu")
"""The reference always runs on the CPU (the seed used CUDA when available)."""


@dataclass
class TrajectorySegment:
    """One rollout of T steps in N parallel environments (time-major)."""

    obs: torch.Tensor  # [T, N, 7, 7, 3] float32, the observation each action was chosen from
    actions: torch.Tensor  # [T, N] float32 (as the seed stores them)
    logprobs: torch.Tensor  # [T, N]
    values: torch.Tensor  # [T, N, 2] (ext, int) with intrinsic values, else [T, N]
    rewards: torch.Tensor  # [T, N]
    dones: torch.Tensor  # [T, N] float32, terminated | truncated
    next_start_obs: torch.Tensor  # [N, 7, 7, 3] the observation after the last step

    def next_obs(self) -> torch.Tensor:
        """The observation that followed each step: obs[1:] then next_start_obs. [T, N, ...]"""
        return torch.cat((self.obs[1:], self.next_start_obs.unsqueeze(0)), dim=0)

    def __len__(self) -> int:
        return self.obs.shape[0]


class BaseAgent(ABC):
    """The notebook's minimal policy-gradient agent interface."""

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> torch.Tensor:
        """Sampled action for ONE unbatched observation [7, 7, 3]."""
        x = torch.tensor(obs, dtype=torch.float32).unsqueeze(0).to(DEVICE)
        action, _, _ = self.eval(x)
        return action

    @abstractmethod
    def eval(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """obs [N, 7, 7, 3] -> (sampled action [N], its log-prob [N], values [N, 2])."""

    @abstractmethod
    def learn(self, segment: TrajectorySegment) -> dict:
        """One learning step on a segment; returns scalar statistics."""


def flatten_and_shuffle(
    *tensors: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    """Flatten the leading [T, N] axes of every tensor to T*N and index them all with ONE fresh
    permutation drawn here (``torch.randperm``; the global torch RNG unless `generator`)."""
    if not tensors:
        raise ValueError("flatten_and_shuffle needs at least one tensor")
    t, n = tensors[0].shape[0], tensors[0].shape[1]
    for x in tensors:
        if x.dim() < 2 or x.shape[0] != t or x.shape[1] != n:
            raise ValueError(
                f"flatten_and_shuffle: all tensors need leading shape ({t}, {n}), "
                f"got {tuple(x.shape)}"
            )
    perm = torch.randperm(t * n, generator=generator)
    return tuple(x.flatten(0, 1)[perm] for x in tensors)


def collect_trajectory_segment(
    env: gym.vector.VectorEnv,
    agent: BaseAgent,
    start_obs: torch.Tensor,
    rollout_size: int = 128,
    with_intrinsic_values: bool = False,
) -> TrajectorySegment:
    """Run `agent` for `rollout_size` steps from `start_obs` ([N, 7, 7, 3] float32)."""
    num_envs = env.num_envs
    obs_shape = tuple(env.single_observation_space.shape)
    batch = (rollout_size, num_envs)

    s_obs = torch.zeros(batch + obs_shape)
    s_actions = torch.zeros(batch)
    s_logprobs = torch.zeros(batch)
    s_values = torch.zeros(batch + ((2,) if with_intrinsic_values else ()))
    s_rewards = torch.zeros(batch)
    s_dones = torch.zeros(batch)

    obs = start_obs
    for step in range(rollout_size):
        with torch.no_grad():
            action, logprob, values = agent.eval(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
        s_obs[step] = obs
        s_actions[step] = action
        s_logprobs[step] = logprob
        s_values[step] = values if with_intrinsic_values else values[:, 0]
        s_rewards[step] = torch.as_tensor(np.asarray(reward, dtype=np.float32))
        s_dones[step] = torch.as_tensor(np.logical_or(terminated, truncated).astype(np.float32))
        obs = torch.as_tensor(np.asarray(next_obs, dtype=np.float32))
    return TrajectorySegment(
        s_obs, s_actions, s_logprobs, s_values, s_rewards, s_dones, next_start_obs=obs
    )


def compute_advantages_and_returns(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float = 0.99,
    gae_enabled: bool = True,
    gae_lambda: float = 0.98,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's advantage / return computation.

    rewards, dones, values: [T, N]; next_value: [N] (value of next_start_obs).
    Returns (advantages [T, N], returns [T, N]).

    GAE (default), backwards over t: nonterminal = 1 - done[t];
    delta = r[t] + gamma * next_value * nonterminal - value[t];
    adv[t] = delta + gamma * lambda * last * nonterminal; next_value = value[t];
    last = adv[t] * nonterminal; returns = adv + values.
    Without GAE: discounted n-step returns bootstrapped from next_value, adv = returns - values.
    """
    if rewards.shape != dones.shape or rewards.shape != values.shape:
        raise ValueError(
            f"rewards, dones and values must share one [T, N] shape, got {tuple(rewards.shape)}, "
            f"{tuple(dones.shape)}, {tuple(values.shape)}"
        )
    if tuple(next_value.shape) != tuple(rewards.shape[1:]):
        raise ValueError(
            f"next_value must have shape {tuple(rewards.shape[1:])}, got {tuple(next_value.shape)}"
        )
    segment_len = rewards.shape[0]
    if gae_enabled:
        advantages = torch.zeros_like(rewards)
        last = torch.zeros_like(next_value)
        for t in reversed(range(segment_len)):
            nonterminal = 1.0 - dones[t]
            delta = rewards[t] + gamma * next_value * nonterminal - values[t]
            advantages[t] = delta + gamma * gae_lambda * last * nonterminal
            next_value = values[t]
            last = advantages[t] * nonterminal
        returns = advantages + values
    else:
        returns = torch.zeros_like(rewards)
        running = next_value
        for t in reversed(range(segment_len)):
            running = rewards[t] + gamma * running * (1.0 - dones[t])
            returns[t] = running
        advantages = returns - values
    return advantages, returns
