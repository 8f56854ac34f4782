"""PyTorch + gymnasium reference of the notebook (optional extra: torch, gymnasium,
minigrid). Used by the cross-checks; nothing in the JAX core imports it.

- `rl_algos`: the drl-zh helpers the notebook imports (segment collection, GAE, shuffling).
- `agents`: networks, agents, env/seed helpers and the step-by-step learning API.
- `train`: the notebook's training loop and the command line
  (`python -m curio_jax.reference.train --preset P --seed S --out DIR`).
"""

from curio_jax.reference.agents import (
    ActorCritic,
    AgentA2C,
    AgentA2CWithRND,
    Batch,
    LearnTargets,
    RNDModule,
    apply_gradients,
    compute_targets,
    convolutional_embedding,
    doorkey_env_id,
    draw_permutations,
    init_random,
    loss_and_grads,
    loss_terms,
    make_agent,
    make_batch,
    make_minigrid_env,
    one_update,
    trainable_named_parameters,
    unsupported_settings,
)
from curio_jax.reference.rl_algos import (
    BaseAgent,
    TrajectorySegment,
    collect_trajectory_segment,
    compute_advantages_and_returns,
    flatten_and_shuffle,
)

__all__ = [
    "ActorCritic",
    "AgentA2C",
    "AgentA2CWithRND",
    "BaseAgent",
    "Batch",
    "LearnTargets",
    "RNDModule",
    "TrajectorySegment",
    "apply_gradients",
    "collect_trajectory_segment",
    "compute_advantages_and_returns",
    "compute_targets",
    "convolutional_embedding",
    "doorkey_env_id",
    "draw_permutations",
    "flatten_and_shuffle",
    "init_random",
    "loss_and_grads",
    "loss_terms",
    "make_agent",
    "make_batch",
    "make_minigrid_env",
    "one_update",
    "trainable_named_parameters",
    "unsupported_settings",
]
