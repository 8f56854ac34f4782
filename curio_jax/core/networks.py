"""The notebook's networks as Flax linen modules, with PyTorch's default initialisation.

Layout conventions (the converter in :mod:`curio_jax.run.convert` relies on them):

- Input: the raw MiniGrid image, uint8 ``[..., 7, 7, 3]`` indexed ``[x][y][channel]`` as
  MiniGrid returns it (``ImgObsWrapper``). It is cast to float32 with NO scaling and used
  directly as NHWC. PyTorch permutes the same array to NCHW, so its H axis is our axis -3
  and its W axis our axis -2: the spatial layout is identical and no transpose happens.
- Flatten: Flax-native ``(H, W, C)`` order, i.e. feature index ``(h * 4 + w) * 64 + c``.
  PyTorch's ``nn.Flatten`` on NCHW gives ``(C, H, W)`` order, ``c * 16 + h * 4 + w``. The
  converter permutes the rows of the first Dense kernel after each torso accordingly; the
  forward pass never transposes.
- Kernels: Dense ``[in, out]`` (PyTorch ``weight.T``), Conv ``[kh, kw, in, out]`` (PyTorch
  ``weight.permute(2, 3, 1, 0)``).
- Initialisation: PyTorch's default for ``nn.Linear`` / ``nn.Conv2d``: weights and biases
  uniform in ``+-1/sqrt(fan_in)``, ``fan_in = in_features`` (Dense) or
  ``in_channels * kh * kw`` (Conv). The notebook's tuned advantage coefficients depend on the RND
  target's output scale, hence on this initialisation.

Parameter trees (names are part of the interface)::

    ActorCritic:  torso/{conv0,conv1,conv2}, policy_hidden, policy_out,
                  value_ext_hidden, value_ext_out, value_int_hidden, value_int_out
    RNDTarget:    torso/{conv0,conv1,conv2}, out
    RNDPredictor: torso/{conv0,conv1,conv2}, dense0, dense1, dense2

each leaf group holding ``kernel`` and ``bias``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

OBS_SHAPE = (7, 7, 3)
"""MiniGrid's egocentric image: [x, y, (object, colour, state)]."""
TORSO_FEATURES = 1024
"""64 channels x 4 x 4 after three VALID 2x2 convolutions of a 7x7 image."""

_KERNEL = (2, 2)


def torch_kernel_init() -> jax.nn.initializers.Initializer:
    """PyTorch's default weight init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).

    ``variance_scaling(1/3, "fan_in", "uniform")`` has bound ``sqrt(3 * (1/3) / fan_in)``; it
    computes fan_in from a Dense ``[in, out]`` or Conv ``[kh, kw, in, out]`` kernel exactly as
    PyTorch does from the transposed weight."""
    return jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> jax.nn.initializers.Initializer:
    """PyTorch's default bias init: U(+-1/sqrt(fan_in)) (fan_in of the layer's weight)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def _dense(features: int, fan_in: int, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=torch_kernel_init(),
        bias_init=torch_bias_init(fan_in),
        name=name,
    )


class Conv2x2(nn.Module):
    """``nn.Conv(features, (2, 2), padding="VALID")`` with the same parameters (``kernel``
    ``[2, 2, in, out]``, ``bias [out]``), computed as im2col + one matmul.

    Same maths as the convolution (bit-identical forward on CPU in our checks). The reason is
    speed: XLA:CPU runs the gradient of a convolution inside a while loop (``lax.scan`` over
    updates) 15-30x slower than outside one, while a matmul is as fast in both places.

    ``x [..., H, W, in] -> [..., H - 1, W - 1, features]``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_ch = x.shape[-1]
        kh, kw = _KERNEL
        kernel = self.param("kernel", torch_kernel_init(), (kh, kw, in_ch, self.features))
        bias = self.param("bias", torch_bias_init(kh * kw * in_ch), (self.features,))
        h, w = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
        # patch feature index (i * kw + j) * in + c, the row-major order of kernel[i, j, c, :]
        patches = jnp.concatenate(
            [x[..., i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
        )
        return patches @ kernel.reshape(kh * kw * in_ch, self.features) + bias


class Torso(nn.Module):
    """The notebook's ``convolutional_embedding``: Conv(3->16) ReLU Conv(16->32) ReLU Conv(32->64)
    ReLU Flatten, all 2x2 VALID, stride 1.

    Input ``[..., 7, 7, 3]`` (uint8 raw image, or float when the RND input is normalised), cast
    to float32 without scaling and read as NHWC. Output ``[..., 1024]`` flattened in (H, W, C)
    order; see the module docstring for the mapping to PyTorch's (C, H, W) order."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        for i, ch in enumerate((16, 32, 64)):
            x = nn.relu(Conv2x2(ch, name=f"conv{i}")(x))
        return x.reshape(x.shape[:-3] + (-1,))


class ActorCritic(nn.Module):
    """The notebook's ``ActorCritic``: shared torso, a policy head and two value heads (extrinsic,
    intrinsic), each head Dense(1024->hidden) Tanh Dense(hidden->out).

    ``obs [..., 7, 7, 3] -> (logits [..., num_actions], value_ext [...], value_int [...])``.
    The intrinsic head exists also for plain A2C (as in the seed, where it gets zero gradient)."""

    num_actions: int = 7
    hidden_dim: int = 64

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        x = Torso(name="torso")(obs)
        fan = x.shape[-1]

        def head(prefix: str, out: int) -> jax.Array:
            h = jnp.tanh(_dense(self.hidden_dim, fan, f"{prefix}_hidden")(x))
            return _dense(out, self.hidden_dim, f"{prefix}_out")(h)

        logits = head("policy", self.num_actions)
        value_ext = head("value_ext", 1)[..., 0]
        value_int = head("value_int", 1)[..., 0]
        return logits, value_ext, value_int


class RNDTarget(nn.Module):
    """The notebook's frozen RND target: torso + Dense(1024->feature_dim).

    ``obs [..., 7, 7, 3] -> features [..., feature_dim]``."""

    feature_dim: int = 256

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = Torso(name="torso")(obs)
        return _dense(self.feature_dim, x.shape[-1], "out")(x)


class RNDPredictor(nn.Module):
    """The notebook's RND predictor: torso + Dense(1024,F) Dropout ReLU Dense(F,F) Dropout ReLU
    Dense(F,F).

    ``obs [..., 7, 7, 3] -> features [..., feature_dim]``. Dropout (inverted, as PyTorch) is
    active only with ``deterministic=False`` and then needs the ``"dropout"`` rng."""

    feature_dim: int = 256
    dropout: float = 0.25

    @nn.compact
    def __call__(self, obs: jax.Array, deterministic: bool = True) -> jax.Array:
        x = Torso(name="torso")(obs)
        f = self.feature_dim
        x = _dense(f, x.shape[-1], "dense0")(x)
        x = nn.relu(nn.Dropout(self.dropout, deterministic=deterministic)(x))
        x = _dense(f, f, "dense1")(x)
        x = nn.relu(nn.Dropout(self.dropout, deterministic=deterministic)(x))
        return _dense(f, f, "dense2")(x)


def dummy_obs() -> jax.Array:
    """A zero observation ``[7, 7, 3]`` uint8 for ``Module.init``."""
    return jnp.zeros(OBS_SHAPE, jnp.uint8)
