"""The optimiser (curio_jax.core.optim): per-group clipping as torch.nn.utils.clip_grad_norm_
and RMSprop with PyTorch's semantics, against numpy formulas and torch itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.core.optim import AgentParams, apply_gradients, clip_grad_norm, torch_rmsprop

# --------------------------------------------------------------------------- optimiser


def _np_clip(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ in numpy (float64)."""
    norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads))
    coef = min(max_norm / (norm + 1e-6), 1.0)
    return [g * coef for g in grads], norm


def _np_rmsprop(params, grads, square_avg, lr, alpha, eps):
    """torch.optim.RMSprop (no momentum, not centered) in numpy (float64)."""
    out_p, out_v = [], []
    for p, g, v in zip(params, grads, square_avg, strict=True):
        v = alpha * v + (1 - alpha) * g * g
        out_p.append(p - lr * g / (np.sqrt(v) + eps))
        out_v.append(v)
    return out_p, out_v


def _tree(rng, shapes, scale=1.0):
    return {k: jnp.asarray(rng.normal(size=s) * scale, jnp.float32) for k, s in shapes.items()}


AC_SHAPES = {"a": (3, 4), "b": (4,)}
PRED_SHAPES = {"c": (5,), "d": (2, 2)}


def test_clip_grad_norm_matches_torch_formula():
    rng = np.random.default_rng(0)
    grads = _tree(rng, AC_SHAPES)
    for max_norm in (0.5, 1e3):  # clipped, and not clipped (coef clamped at 1)
        clipped, norm = clip_grad_norm(grads, max_norm)
        exp, exp_norm = _np_clip([np.asarray(grads[k], np.float64) for k in AC_SHAPES], max_norm)
        np.testing.assert_allclose(norm, exp_norm, rtol=1e-6)
        for k, e in zip(AC_SHAPES, exp, strict=True):
            np.testing.assert_allclose(clipped[k], e, rtol=1e-6, atol=1e-7)
    big, _ = clip_grad_norm(grads, 1e3)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), big, grads))


def _run_ours(params, grad_seq, lr, alpha, eps, max_ac, max_pred):
    opt_state = torch_rmsprop(lr, alpha, eps).init(params)
    step = jax.jit(
        lambda p, s, g: apply_gradients(
            p,
            s,
            g,
            lr=lr,
            decay=alpha,
            eps=eps,
            max_grad_norm_ac=max_ac,
            max_grad_norm_bonus=max_pred,
        )
    )
    norms = []
    for g in grad_seq:
        params, opt_state, n_ac, n_pred = step(params, opt_state, g)
        norms.append((float(n_ac), float(n_pred)))
    return params, opt_state, norms


def test_clip_and_rmsprop_match_numpy_torch_formulas():
    rng = np.random.default_rng(1)
    params = AgentParams(ac=_tree(rng, AC_SHAPES), bonus=_tree(rng, PRED_SHAPES))
    # grads of varying size: some steps clipped in one group, some in none
    grad_seq = [
        AgentParams(ac=_tree(rng, AC_SHAPES, s), bonus=_tree(rng, PRED_SHAPES, s / 50))
        for s in (1.0, 0.01, 3.0, 0.1, 0.001, 2.0)
    ]
    lr, alpha, eps, max_ac, max_pred = 1e-2, 0.99, 1e-8, 0.5, 0.01
    ours, opt_state, norms = _run_ours(params, grad_seq, lr, alpha, eps, max_ac, max_pred)

    keys = [("ac", k) for k in AC_SHAPES] + [("bonus", k) for k in PRED_SHAPES]

    def get(tree, gk):
        return np.asarray(getattr(tree, gk[0])[gk[1]], np.float64)

    p = [get(params, gk) for gk in keys]
    v = [np.zeros_like(x) for x in p]
    for i, g in enumerate(grad_seq):
        g_ac, n_ac = _np_clip([get(g, gk) for gk in keys[:2]], max_ac)
        g_pr, n_pr = _np_clip([get(g, gk) for gk in keys[2:]], max_pred)
        np.testing.assert_allclose(norms[i], (n_ac, n_pr), rtol=1e-5)
        p, v = _np_rmsprop(p, g_ac + g_pr, v, lr, alpha, eps)
    for gk, e, ev in zip(keys, p, v, strict=True):
        np.testing.assert_allclose(get(ours, gk), e, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(get(opt_state.square_avg, gk), ev, rtol=1e-5, atol=1e-12)


def test_clip_and_rmsprop_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    params = AgentParams(ac=_tree(rng, AC_SHAPES), bonus=_tree(rng, PRED_SHAPES))
    grad_seq = [
        AgentParams(ac=_tree(rng, AC_SHAPES, s), bonus=_tree(rng, PRED_SHAPES, s / 50))
        for s in (1.0, 0.01, 3.0, 0.1, 2.0)
    ]
    lr, max_ac, max_pred = 1e-4, 0.5, 0.01
    ours, _, _ = _run_ours(params, grad_seq, lr, 0.99, 1e-8, max_ac, max_pred)

    t_ac = [torch.tensor(np.asarray(params.ac[k]), requires_grad=True) for k in AC_SHAPES]
    t_pr = [torch.tensor(np.asarray(params.bonus[k]), requires_grad=True) for k in PRED_SHAPES]
    opt = torch.optim.RMSprop(t_ac + t_pr, lr=lr)
    for g in grad_seq:
        for t, k in zip(t_ac, AC_SHAPES, strict=True):
            t.grad = torch.tensor(np.asarray(g.ac[k]))
        for t, k in zip(t_pr, PRED_SHAPES, strict=True):
            t.grad = torch.tensor(np.asarray(g.bonus[k]))
        torch.nn.utils.clip_grad_norm_(t_ac, max_ac)
        torch.nn.utils.clip_grad_norm_(t_pr, max_pred)
        opt.step()
    for t, k in zip(t_ac, AC_SHAPES, strict=True):
        np.testing.assert_allclose(ours.ac[k], t.detach().numpy(), rtol=1e-5, atol=1e-6)
    for t, k in zip(t_pr, PRED_SHAPES, strict=True):
        np.testing.assert_allclose(ours.bonus[k], t.detach().numpy(), rtol=1e-5, atol=1e-6)
