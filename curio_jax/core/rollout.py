"""The one rollout function: ``lax.scan`` over time, ``vmap`` over environments.

Semantics follow the notebook's ``collect_trajectory_segment`` (gymnasium vector env, next-step
autoreset): at step t the policy acts from ``obs[t]``, the env steps, and the transition stores
``obs[t]`` (the observation the action was chosen from), the action, its log-probability, both
values, the reward and the flags of that step. ``next_obs[t]`` is ``obs[t + 1]`` and, for the
last step, the observation the next segment starts from (the notebook's ``segment.next_obs()``,
the RND input of step t).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array
PolicyFn = Callable[[Array], tuple[Array, Array, Array]]
"""``obs [B, 7, 7, 3] -> (logits [B, A], value_ext [B], value_int [B])``."""


class Env(Protocol):
    """What the rollout needs from an environment (``curio_jax.envs.make_doorkey``)."""

    num_actions: int

    def reset(self, key: Array) -> Any: ...

    def step(self, timestep: Any, action: Array) -> Any: ...


class Transition(struct.PyTreeNode):
    """One segment, time-major."""

    obs: Array  # [T, B, 7, 7, 3] uint8, the observation the action was chosen from
    action: Array  # [T, B] int32
    logprob: Array  # [T, B] log-probability of the action under the acting policy
    value_ext: Array  # [T, B] extrinsic value of obs
    value_int: Array  # [T, B] intrinsic value of obs (unused by plain A2C)
    reward: Array  # [T, B] extrinsic reward of the step
    terminated: Array  # [T, B] bool
    truncated: Array  # [T, B] bool
    done: Array  # [T, B] bool, terminated | truncated (the notebook's `dones`)
    is_reset: Array  # [T, B] bool, autoreset dummy transition: the previous step was done,
    #                  so this step ignored its action and returned the reset observation
    next_obs: Array  # [T, B, 7, 7, 3] obs[1:] followed by the segment's final observation
    cell: Array | None = None  # [T, B] int32 visit cell the step reached (cell_fn), or None


def collect_rollout(
    env: Env,
    policy_fn: PolicyFn,
    timestep: Any,
    episode_stats: Any,
    key: Array,
    num_steps: int,
    *,
    autoreset: str = "next_step",
    cell_fn: Callable[[Any], Array] | None = None,
) -> tuple[Any, Any, Transition]:
    """Step ``B`` environments ``num_steps`` times with actions sampled from ``policy_fn``.

    Args:
      env: the environment (static; closed over).
      policy_fn: batched policy and values, see :data:`PolicyFn`.
      timestep: the batched env timestep ``[B]`` to start from (its observation is ``obs[0]``).
      episode_stats: ``EpisodeStats`` updated once per step with the step's reward and done
        (skipping the dummy reset step in next-step mode, as gymnasium does).
      key: PRNG key; split once per step, one categorical draw over the batch per step.
      num_steps: ``T`` (static).
      autoreset: the env's mode. ``"next_step"``: a step taken from a done timestep is the
        autoreset dummy transition (``is_reset``). ``"same_step"``: there is none.
      cell_fn: batched ``timestep [B] -> int32 [B]`` (e.g. the env's ``visit_index``): record
        the cell each step reached in ``Transition.cell`` (count-based bonuses); None: no cell.

    Returns:
      ``(timestep [B], episode_stats, Transition [T, B])``.
    """
    if autoreset not in ("next_step", "same_step"):
        raise ValueError(f"autoreset must be 'next_step' or 'same_step', got {autoreset!r}")
    env_step = jax.vmap(env.step)

    def step(carry, step_key):
        ts, stats = carry
        obs = ts.observation
        logits, value_ext, value_int = policy_fn(obs)
        action = jax.random.categorical(step_key, logits).astype(jnp.int32)
        log_probs = jax.nn.log_softmax(logits)
        logprob = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
        if autoreset == "next_step":
            is_reset = jnp.asarray(ts.done, bool)
        else:
            is_reset = jnp.zeros(action.shape, bool)
        next_ts = env_step(ts, action)
        terminated = jnp.asarray(next_ts.terminated, bool)
        truncated = jnp.asarray(next_ts.truncated, bool)
        done = terminated | truncated
        stats = stats.update(next_ts.reward, done, skip_reset_step=autoreset == "next_step")
        tr = Transition(
            obs=obs,
            action=action,
            logprob=logprob,
            value_ext=value_ext,
            value_int=value_int,
            reward=next_ts.reward,
            terminated=terminated,
            truncated=truncated,
            done=done,
            is_reset=is_reset,
            next_obs=None,
            cell=None if cell_fn is None else cell_fn(next_ts).astype(jnp.int32),
        )
        return (next_ts, stats), tr

    keys = jax.random.split(key, num_steps)
    (timestep, episode_stats), traj = jax.lax.scan(step, (timestep, episode_stats), keys)
    next_obs = jnp.concatenate([traj.obs[1:], timestep.observation[None]], axis=0)
    return timestep, episode_stats, traj.replace(next_obs=next_obs)
