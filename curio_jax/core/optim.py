"""The optimisers: per-group global-norm clipping as ``torch.nn.utils.clip_grad_norm_``, then
``torch.optim.RMSprop`` semantics for the notebook's A2C (no momentum, not centered, epsilon
added after the square root) or Adam for PPO (``torch.optim.Adam`` / ``optax.adam``: betas 0.9,
0.999, bias-corrected, epsilon added after the square root)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

Array = jax.Array
Params = Any

CLIP_EPS = 1e-6
"""``torch.nn.utils.clip_grad_norm_``'s epsilon: coef = max_norm / (norm + 1e-6)."""


class AgentParams(struct.PyTreeNode):
    """The parameters the learner's optimiser updates: the actor-critic and the bonus's jointly
    trained parameters (the RND predictor of the ``rnd`` and ``noveld`` bonuses), None for a
    bonus without any or with an optimiser of its own."""

    ac: Params
    bonus: Params | None = None


def global_norm(tree: Params) -> Array:
    """L2 norm of all leaves together, as torch: the norm of the per-tensor norms."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.linalg.norm(jnp.stack([jnp.linalg.norm(x.reshape(-1)) for x in leaves]))


def clip_grad_norm(grads: Params, max_norm: float | Array) -> tuple[Params, Array]:
    """``torch.nn.utils.clip_grad_norm_``: scale by ``min(max_norm / (norm + 1e-6), 1)``.

    Returns ``(clipped grads, pre-clip global norm)``."""
    norm = global_norm(grads)
    coef = jnp.minimum(max_norm / (norm + CLIP_EPS), 1.0)
    return jax.tree.map(lambda g: g * coef, grads), norm


class TorchRMSpropState(struct.PyTreeNode):
    """PyTorch RMSprop's ``square_avg`` per parameter (starts at 0)."""

    square_avg: Params


def torch_rmsprop(
    learning_rate: float | Array, decay: float = 0.99, eps: float = 1e-8
) -> optax.GradientTransformation:
    """``torch.optim.RMSprop(lr, alpha=decay, eps)`` without momentum, not centered::

        v <- decay * v + (1 - decay) * g**2;   update = -lr * g / (sqrt(v) + eps)

    ``learning_rate`` may be a traced scalar (the transformation is rebuilt inside the jitted
    step; its state does not depend on it)."""

    def init_fn(params: Params) -> TorchRMSpropState:
        return TorchRMSpropState(square_avg=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates: Params, state: TorchRMSpropState, params: Params = None):
        del params
        sq = jax.tree.map(
            lambda v, g: decay * v + (1.0 - decay) * jnp.square(g), state.square_avg, updates
        )
        out = jax.tree.map(lambda g, v: -learning_rate * (g / (jnp.sqrt(v) + eps)), updates, sq)
        return out, TorchRMSpropState(square_avg=sq)

    return optax.GradientTransformation(init_fn, update_fn)


def apply_gradients(
    params: AgentParams,
    opt_state: TorchRMSpropState,
    grads: AgentParams,
    *,
    lr: float | Array,
    decay: float,
    eps: float,
    max_grad_norm_ac: float,
    max_grad_norm_bonus: float,
) -> tuple[AgentParams, TorchRMSpropState, Array, Array]:
    """Per-group clipping then one RMSprop step over both groups.

    Returns ``(params, opt_state, grad_norm_ac, grad_norm_bonus)`` (pre-clip norms; the bonus
    norm is 0 when the bonus has no joint parameters)."""
    clipped, norm_ac, norm_bonus = clip_groups(grads, max_grad_norm_ac, max_grad_norm_bonus)
    updates, opt_state = torch_rmsprop(lr, decay, eps).update(clipped, opt_state)
    return optax.apply_updates(params, updates), opt_state, norm_ac, norm_bonus


ADAM_B1, ADAM_B2 = 0.9, 0.999
"""Adam's betas (PyTorch's, optax's and CleanRL's defaults)."""


def adam(eps: float) -> optax.GradientTransformation:
    """Adam's scaling without the learning rate (``optax.scale_by_adam``): the update is
    ``m_hat / (sqrt(v_hat) + eps)``; :func:`adam_step` multiplies by ``-lr`` (a traced
    scalar). Its state is ``optax.ScaleByAdamState(count, mu, nu)``."""
    return optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2, eps=eps)


def clip_groups(
    grads: AgentParams, max_grad_norm_ac: float, max_grad_norm_bonus: float
) -> tuple[AgentParams, Array, Array]:
    """Global-norm clipping per group (actor-critic, the bonus's joint parameters). Returns
    ``(clipped grads, pre-clip norm of the actor-critic, of the bonus group (0 without
    one))``."""
    g_ac, norm_ac = clip_grad_norm(grads.ac, max_grad_norm_ac)
    if grads.bonus is None:
        return AgentParams(ac=g_ac), norm_ac, jnp.zeros((), jnp.float32)
    g_bonus, norm_bonus = clip_grad_norm(grads.bonus, max_grad_norm_bonus)
    return AgentParams(ac=g_ac, bonus=g_bonus), norm_ac, norm_bonus


def adam_step(
    params: AgentParams,
    opt_state: Any,
    grads: AgentParams,
    *,
    lr: float | Array,
    eps: float,
    max_grad_norm_ac: float,
    max_grad_norm_bonus: float,
) -> tuple[AgentParams, Any, Array, Array]:
    """Per-group clipping then one Adam step with learning rate ``lr`` over both groups.

    Returns ``(params, opt_state, grad_norm_ac, grad_norm_bonus)`` (pre-clip norms)."""
    clipped, norm_ac, norm_bonus = clip_groups(grads, max_grad_norm_ac, max_grad_norm_bonus)
    scaled, opt_state = adam(eps).update(clipped, opt_state)
    updates = jax.tree.map(lambda u: -lr * u, scaled)
    return optax.apply_updates(params, updates), opt_state, norm_ac, norm_bonus
