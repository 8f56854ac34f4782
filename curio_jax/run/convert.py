"""PyTorch state_dict <-> Flax params for the actor-critic and both RND networks.

The notebook's checkpoint (``torch.save``) is
``{"a2c_params": ActorCritic.state_dict(), "rnd_params": RNDModule.state_dict()}``.
The core functions work on numpy arrays only; torch is imported lazily by the file functions.

Layouts:
- Conv: torch weight [out, in, kh, kw] <-> flax kernel [kh, kw, in, out]. Both sides
  correlate over the same spatial axes: torch permutes the [N, 7, 7, 3] image to NCHW, the Flax
  torso takes it as NHWC.
- Dense: torch weight [out, in] <-> flax kernel [in, out].
- The first Dense after the torso: torch flattens the [N, 64, 4, 4] features channel-major
  (index c*16 + h*4 + w), Flax flattens [N, 4, 4, 64] as h*256 + w*64 + c, so its 1024 input
  rows are permuted between the two orders.

Flax trees (the ``params`` collection, without the outer {"params": ...}):
- ActorCritic: {"torso": {"conv0", "conv1", "conv2"}, "policy_hidden", "policy_out",
  "value_ext_hidden", "value_ext_out", "value_int_hidden", "value_int_out"}
- RNDTarget: {"torso", "out"};  RNDPredictor: {"torso", "dense0", "dense1", "dense2"}
each leaf layer {"kernel", "bias"}.

Whole-checkpoint form (`torch_state_to_flax` / `flax_to_torch_state`):
``{"a2c_params": {key: array}, "rnd_params": {key: array}}`` <->
``{"actor_critic": ..., "rnd_target": ..., "rnd_predictor": ...}`` ("rnd_params" and the two
RND entries are optional together, for plain A2C).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

Params = dict[str, Any]

# (torch prefix, flax path, kind); kind: "conv", "dense", "dense_after_torso"
_TORSO = (("0", ("torso", "conv0")), ("2", ("torso", "conv1")), ("4", ("torso", "conv2")))
_TORSO_CHANNELS = (3, 16, 32, 64)

_ACTOR_CRITIC = tuple((f"features.{i}", path, "conv") for i, path in _TORSO) + (
    ("policy_head.0", ("policy_hidden",), "dense_after_torso"),
    ("policy_head.2", ("policy_out",), "dense"),
    ("value_extr_head.0", ("value_ext_hidden",), "dense_after_torso"),
    ("value_extr_head.2", ("value_ext_out",), "dense"),
    ("value_intr_head.0", ("value_int_hidden",), "dense_after_torso"),
    ("value_intr_head.2", ("value_int_out",), "dense"),
)
_PREDICTOR = tuple((f"predictor.0.{i}", path, "conv") for i, path in _TORSO) + (
    ("predictor.1", ("dense0",), "dense_after_torso"),
    ("predictor.4", ("dense1",), "dense"),
    ("predictor.7", ("dense2",), "dense"),
)
_TARGET = tuple((f"target.0.{i}", path, "conv") for i, path in _TORSO) + (
    ("target.1", ("out",), "dense_after_torso"),
)

# torch weight shapes; strings are free sizes bound on first use (must agree afterwards).
_CONV_SHAPES = {
    i: ((_TORSO_CHANNELS[k + 1], _TORSO_CHANNELS[k], 2, 2), (_TORSO_CHANNELS[k + 1],))
    for k, (i, _) in enumerate(_TORSO)
}
_TORSO_OUT = 64 * 4 * 4  # 64 channels x 4 x 4 on a 7x7 image


def _layer_shapes(table, dense_shapes: dict[str, tuple]) -> dict[str, tuple]:
    out = {}
    for prefix, _, kind in table:
        if kind == "conv":
            w, b = _CONV_SHAPES[prefix.rsplit(".", 1)[1]]
        else:
            w, b = dense_shapes[prefix]
        out[f"{prefix}.weight"], out[f"{prefix}.bias"] = w, b
    return out


_SHAPES = {
    "actor_critic": _layer_shapes(
        _ACTOR_CRITIC,
        {
            "policy_head.0": (("H", _TORSO_OUT), ("H",)),
            "policy_head.2": (("A", "H"), ("A",)),
            "value_extr_head.0": (("H", _TORSO_OUT), ("H",)),
            "value_extr_head.2": ((1, "H"), (1,)),
            "value_intr_head.0": (("H", _TORSO_OUT), ("H",)),
            "value_intr_head.2": ((1, "H"), (1,)),
        },
    ),
    "rnd_predictor": _layer_shapes(
        _PREDICTOR,
        {
            "predictor.1": (("F", _TORSO_OUT), ("F",)),
            "predictor.4": (("F", "F"), ("F",)),
            "predictor.7": (("F", "F"), ("F",)),
        },
    ),
    "rnd_target": _layer_shapes(_TARGET, {"target.1": (("F", _TORSO_OUT), ("F",))}),
}
_TABLES = {"actor_critic": _ACTOR_CRITIC, "rnd_predictor": _PREDICTOR, "rnd_target": _TARGET}
NETWORKS = tuple(_TABLES)
"""Names of the convertible networks."""


# --------------------------------------------------------------------------- layouts


def _torso_rows_torch_to_flax(kernel_torch_order: np.ndarray) -> np.ndarray:
    """[1024, out] rows in torch (c, h, w) order -> rows in flax (h, w, c) order."""
    out = kernel_torch_order.shape[1]
    return kernel_torch_order.reshape(64, 4, 4, out).transpose(1, 2, 0, 3).reshape(-1, out)


def _torso_rows_flax_to_torch(kernel_flax_order: np.ndarray) -> np.ndarray:
    """[1024, out] rows in flax (h, w, c) order -> rows in torch (c, h, w) order."""
    out = kernel_flax_order.shape[1]
    return kernel_flax_order.reshape(4, 4, 64, out).transpose(2, 0, 1, 3).reshape(-1, out)


def _weight_to_flax(w: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return w.transpose(2, 3, 1, 0)
    if kind == "dense":
        return w.T
    return _torso_rows_torch_to_flax(w.T)


def _kernel_to_torch(k: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return k.transpose(3, 2, 0, 1)
    if kind == "dense":
        return k.T
    return _torso_rows_flax_to_torch(k).T


def _flax_shape(torch_shape: tuple, kind: str) -> tuple:
    if kind == "conv":
        o, i, kh, kw = torch_shape
        return (kh, kw, i, o)
    return tuple(reversed(torch_shape))


# --------------------------------------------------------------------------- validation


def _as_array(x: Any, where: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor slipped through
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything unconvertible is reported the same way
        raise ValueError(f"{where}: not an array ({type(x).__name__}): {e}") from None
    if a.dtype.kind not in "fiu" or a.dtype == object:
        raise ValueError(f"{where}: expected a numeric array, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _check_shape(key: str, shape: tuple, expected: tuple, bound: dict[str, int]) -> None:
    ok = len(shape) == len(expected)
    if ok:
        for got, want in zip(shape, expected, strict=True):
            if isinstance(want, str):
                if bound.setdefault(want, got) != got:
                    ok = False
            elif got != want:
                ok = False
    if not ok:
        shown = tuple(bound.get(w, w) if isinstance(w, str) else w for w in expected)
        raise ValueError(f"{key}: shape {tuple(shape)} does not fit the expected {shown}")


def _check_keys(state: Mapping[str, Any], expected: list[str], what: str) -> None:
    if not isinstance(state, Mapping):
        raise ValueError(f"{what}: expected a state_dict (a mapping), got {type(state).__name__}")
    for key in expected:
        if key not in state:
            raise ValueError(f"{what}: missing key {key}")
    extra = [k for k in state if k not in set(expected)]
    if extra:
        raise ValueError(f"{what}: unexpected key {extra[0]}")


# --------------------------------------------------------------------------- one network


def network_to_flax(state: Mapping[str, Any], network: str, *, strict: bool = True) -> Params:
    """Flax params of one network from its torch state-dict entries.

    `network` is one of NETWORKS. `state` maps torch keys (e.g. "features.0.weight",
    "predictor.1.bias") to arrays; with `strict` no other key may be present, otherwise keys of
    other networks are ignored. Raises ValueError naming the first missing, unexpected or
    misshapen key."""
    if network not in _TABLES:
        raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}")
    expected = _SHAPES[network]
    if strict:
        _check_keys(state, list(expected), network)
    else:
        _check_keys({k: v for k, v in state.items() if k in expected}, list(expected), network)
    bound: dict[str, int] = {}
    params: Params = {}
    for prefix, path, kind in _TABLES[network]:
        w = _as_array(state[f"{prefix}.weight"], f"{prefix}.weight")
        _check_shape(f"{prefix}.weight", w.shape, expected[f"{prefix}.weight"], bound)
        b = _as_array(state[f"{prefix}.bias"], f"{prefix}.bias")
        _check_shape(f"{prefix}.bias", b.shape, expected[f"{prefix}.bias"], bound)
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = {
            "kernel": np.array(_weight_to_flax(w, kind), order="C"),
            "bias": np.array(b),
        }
    return params


def network_to_torch(params: Mapping[str, Any], network: str) -> dict[str, np.ndarray]:
    """Torch state-dict entries (numpy) of one network from its Flax params. Raises ValueError
    naming the first missing, unexpected or misshapen entry ("torso/conv0/kernel")."""
    if network not in _TABLES:
        raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}")
    if isinstance(params, Mapping) and set(params) == {"params"}:
        params = params["params"]
    expected = _SHAPES[network]
    table = _TABLES[network]
    _check_flax_tree(params, table, network)
    bound: dict[str, int] = {}
    state: dict[str, np.ndarray] = {}
    for prefix, path, kind in table:
        node = params
        for name in path:
            node = node[name]
        where = "/".join(path)
        k = _as_array(node["kernel"], f"{where}/kernel")
        w_shape = _flax_shape(expected[f"{prefix}.weight"], kind)
        _check_shape(f"{where}/kernel", k.shape, w_shape, bound)
        b = _as_array(node["bias"], f"{where}/bias")
        _check_shape(f"{where}/bias", b.shape, expected[f"{prefix}.bias"], bound)
        state[f"{prefix}.weight"] = np.array(_kernel_to_torch(k, kind), order="C")
        state[f"{prefix}.bias"] = np.array(b)
    return state


def _check_flax_tree(params: Any, table, network: str) -> None:
    expected: dict = {}
    for _, path, _ in table:
        node = expected
        for name in path:
            node = node.setdefault(name, {})
        node.update({"kernel": None, "bias": None})

    def walk(got: Any, want: dict, where: str) -> None:
        if not isinstance(got, Mapping):
            raise ValueError(f"{network}: {where or 'params'} must be a mapping")
        for name in want:
            if name not in got:
                raise ValueError(f"{network}: missing entry {where + name}")
        for name in got:
            if name not in want:
                raise ValueError(f"{network}: unexpected entry {where + str(name)}")
        for name, sub in want.items():
            if sub is not None:
                walk(got[name], sub, f"{where}{name}/")

    walk(params, expected, "")


# --------------------------------------------------------------------------- modules


def actor_critic_to_flax(state: Mapping[str, Any]) -> Params:
    """ActorCritic.state_dict() (numpy) -> Flax ActorCritic params."""
    return network_to_flax(state, "actor_critic")


def actor_critic_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax ActorCritic params -> ActorCritic.state_dict() entries (numpy)."""
    return network_to_torch(params, "actor_critic")


def rnd_to_flax(state: Mapping[str, Any]) -> tuple[Params, Params]:
    """RNDModule.state_dict() (numpy, keys predictor.* and target.*) ->
    (RNDTarget params, RNDPredictor params)."""
    _check_keys(state, list(_SHAPES["rnd_predictor"]) + list(_SHAPES["rnd_target"]), "rnd")
    target = network_to_flax(state, "rnd_target", strict=False)
    predictor = network_to_flax(state, "rnd_predictor", strict=False)
    return target, predictor


def rnd_to_torch(target: Mapping[str, Any], predictor: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """(RNDTarget params, RNDPredictor params) -> RNDModule.state_dict() entries (numpy), in the
    module's key order (predictor first)."""
    state = network_to_torch(predictor, "rnd_predictor")
    state.update(network_to_torch(target, "rnd_target"))
    return state


# --------------------------------------------------------------------------- checkpoints


def _check_checkpoint_groups(state: Any) -> None:
    if not isinstance(state, Mapping):
        got = type(state).__name__
        raise ValueError(f"not a seed checkpoint: expected a dict with key a2c_params, got {got}")
    if "a2c_params" not in state:
        raise ValueError("not a seed checkpoint: missing key a2c_params")
    extra = [k for k in state if k not in ("a2c_params", "rnd_params")]
    if extra:
        raise ValueError(f"not a seed checkpoint: unexpected key {extra[0]}")


def torch_state_to_flax(state: Mapping[str, Any]) -> dict[str, Params]:
    """The notebook's checkpoint contents {"a2c_params": {...}, "rnd_params": {...}} (arrays) ->
    {"actor_critic", "rnd_target", "rnd_predictor"} Flax params ("rnd_params" may be absent)."""
    _check_checkpoint_groups(state)
    out = {"actor_critic": actor_critic_to_flax(state["a2c_params"])}
    if "rnd_params" in state:
        out["rnd_target"], out["rnd_predictor"] = rnd_to_flax(state["rnd_params"])
    return out


def flax_to_torch_state(params: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of `torch_state_to_flax`: {"actor_critic", ["rnd_target", "rnd_predictor"]} ->
    {"a2c_params": {...}, ["rnd_params": {...}]} with numpy arrays."""
    if not isinstance(params, Mapping) or "actor_critic" not in params:
        raise ValueError(
            "expected a dict with key actor_critic (and optionally rnd_target and rnd_predictor)"
        )
    extra = [k for k in params if k not in ("actor_critic", "rnd_target", "rnd_predictor")]
    if extra:
        raise ValueError(f"unexpected key {extra[0]}")
    has_t, has_p = "rnd_target" in params, "rnd_predictor" in params
    if has_t != has_p:
        raise ValueError(f"missing key {'rnd_predictor' if has_t else 'rnd_target'}")
    out = {"a2c_params": actor_critic_to_torch(params["actor_critic"])}
    if has_t:
        out["rnd_params"] = rnd_to_torch(params["rnd_target"], params["rnd_predictor"])
    return out


def read_torch_checkpoint(path: str | PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Load a notebook-format .pth file as nested numpy arrays (validated). Needs torch."""
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a PyTorch checkpoint ({msg})") from None
    try:
        _check_checkpoint_groups(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    state: dict[str, dict[str, np.ndarray]] = {}
    for group, sd in raw.items():
        if not isinstance(sd, Mapping):
            raise ValueError(f"{path}: {group} is not a state_dict")
        state[group] = {
            k: v.detach().cpu().numpy() if hasattr(v, "detach") else v for k, v in sd.items()
        }
    try:
        torch_state_to_flax(state)  # validates keys and shapes
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return state


def load_torch_checkpoint(path: str | PathLike) -> dict[str, Params]:
    """A notebook-format .pth -> {"actor_critic", "rnd_target", "rnd_predictor"} Flax params."""
    return torch_state_to_flax(read_torch_checkpoint(path))


def save_torch_checkpoint(path: str | PathLike, params: Mapping[str, Any]) -> None:
    """Write Flax params ({"actor_critic", ["rnd_target", "rnd_predictor"]}) as a notebook-format
    .pth file that `ActorCritic.load_state_dict` / `RNDModule.load_state_dict` accept."""

    import torch

    state = flax_to_torch_state(params)
    torch.save(
        {
            group: collections.OrderedDict((k, torch.from_numpy(v)) for k, v in sd.items())
            for group, sd in state.items()
        },
        path,
    )
