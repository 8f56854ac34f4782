"""Experiment (e) of benchmarks/NOTES.md: Dense weight gradients written in the kernel's layout.

JAX's transpose rule for ``x @ w`` computes the weight gradient as ``g^T x`` (``[out, in]``)
and transposes it afterwards; XLA:CPU fuses that transpose into the RMSprop update, which
then reads the gradient with a stride of ``out`` floats (`profile_ops.py` shows those
``multiply_add_fusion`` updates among the costliest element-wise ops at 32 envs). This script
builds the same training chunk three times in one process and times the compiled programs
round-robin: with the networks' stock Dense layers; with a custom-VJP matmul whose weight
gradient is one dot ``x^T g`` writing ``[in, out]`` directly; and with Dense kernels stored
``[out, in]`` (PyTorch's layout), where JAX's own ``g^T x`` already has the kernel's layout.

    python benchmarks/experiment_dense_grad_layout.py --num-envs 32 --updates 40 --rounds 9
    python benchmarks/experiment_dense_grad_layout.py --num-envs 512 --updates 3 --rounds 9

All variants train the same networks (the ``[out, in]`` one from a fresh initialisation of the
same distribution, its kernels being transposed); only speed is compared. Neither change is in
the package: neither measured faster (NOTES.md, change (e)).
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax

import curio_jax.core.networks as networks
from curio_jax.config import preset as get_preset
from curio_jax.core.train import make_train, seed_loop


@jax.custom_vjp
def matmul_grad_in_layout(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x [..., in] @ w [in, out]``; the backward pass writes ``dw`` as ``[in, out]``."""
    return x @ w


def _fwd(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x @ w, (x, w)


def _bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    lead = tuple(range(x.ndim - 1))
    return g @ w.T, jax.lax.dot_general(x, g, ((lead, lead), ((), ())))


matmul_grad_in_layout.defvjp(_fwd, _bwd)


def _dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """``nn.Dense``'s ``dot_general`` hook (it only ever contracts lhs[-1] with rhs[0])."""
    (lc, rc), (lb, rb) = dimension_numbers
    if tuple(lc) != (lhs.ndim - 1,) or tuple(rc) != (0,) or lb or rb:
        raise ValueError(f"unexpected Dense contraction {dimension_numbers}")
    return matmul_grad_in_layout(lhs, rhs)


def _dense_grad_in_layout(features: int, fan_in: int, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=networks.torch_kernel_init(),
        bias_init=networks.torch_bias_init(fan_in),
        dot_general=_dot_general,
        name=name,
    )


class DenseOutIn(nn.Module):
    """A Dense layer whose kernel is stored ``[out, in]`` (PyTorch's layout): ``y = x w^T + b``.

    JAX's own weight gradient ``g^T x`` is then already in the kernel's layout."""

    features: int
    fan_in: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = jax.nn.initializers.variance_scaling(
            1.0 / 3.0, "fan_in", "uniform", in_axis=-1, out_axis=-2
        )
        kernel = self.param("kernel", init, (self.features, x.shape[-1]))
        bias = self.param("bias", networks.torch_bias_init(self.fan_in), (self.features,))
        return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (1,)), ((), ()))) + bias


def _dense_out_in(features: int, fan_in: int, name: str) -> nn.Module:
    return DenseOutIn(features, fan_in, name=name)


VARIANTS = {
    "stock Dense": None,
    "dw in kernel layout": _dense_grad_in_layout,
    "kernel [out, in]": _dense_out_in,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--updates", type=int, default=40, help="updates per timed call")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    if args.num_envs < 1 or args.updates < 1 or args.rounds < 1:
        ap.error("--num-envs, --updates and --rounds must be >= 1")

    stock = networks._dense
    progs = {}
    for tag, dense in VARIANTS.items():
        networks._dense = (
            dense or stock
        )  # read when the modules are traced, inside make_train's jit
        try:
            cfg = get_preset(args.preset).with_overrides({"a2c.num_envs": args.num_envs})
            train = make_train(cfg)
            state = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(0), 1))
            chunk = seed_loop(jax.vmap(lambda s, t=train: t.run_chunk(s, args.updates)), 1, 1)
            compiled = jax.jit(chunk).lower(state).compile()
        finally:
            networks._dense = stock
        state, _ = compiled(state)  # warm-up
        jax.block_until_ready(state)
        progs[tag] = [compiled, state]
    frames = args.updates * cfg.frames_per_update
    times: dict[str, list[float]] = {tag: [] for tag in progs}
    for _ in range(args.rounds):
        for tag, prog in progs.items():
            t0 = time.perf_counter()
            prog[1], _ = prog[0](prog[1])
            jax.block_until_ready(prog[1])
            times[tag].append(time.perf_counter() - t0)
    print(
        f"{cfg.name}: 1 seed x {args.num_envs} envs, {frames:,} frames per call, "
        f"{args.rounds} round-robin rounds"
    )
    for tag, ts in times.items():
        print(
            f"  {tag:20s} median {frames / statistics.median(ts):9,.0f} frames/s  "
            f"best {frames / min(ts):9,.0f}"
        )


if __name__ == "__main__":
    main()
