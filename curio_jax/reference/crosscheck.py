"""Cross-checks of curio_jax against gymnasium MiniGrid and the PyTorch reference of the seed.

`curio-jax crosscheck [--quick]` runs five groups and prints one line per check with the
measured numbers and PASS / FAIL:

(a) env lockstep: random and scripted episodes (key pickup, unlock, re-close, re-open, failed
    drops, drop and re-pickup, goal) played in MiniGrid, replayed from the same layouts in the
    JAX env (half the layouts drawn by MiniGrid, half by curio_jax); observation, reward,
    terminated and truncated must be equal on every step.
(b) network parity: torch ActorCritic / RNDModule vs the converted Flax networks on real
    MiniGrid observations (max relative error of logits, values, intrinsic reward).
(c) one-update parity: the reference's step-by-step learning API vs `curio_jax.core.a2c` on the
    same batch, permutations and dropout masks (loss terms, gradients, parameters after
    per-group clipping and RMSprop).
(d) eval backends: the same weights in `curio_jax.analysis.evaluate`'s jax and minigrid backends
    on the same layouts and action uniforms must play identical episodes.
(e) PPO update parity: `curio_jax`'s PPO and PPO-RND (targets with the RND normalisation
    statistics, then all epochs x minibatches steps) vs the PyTorch port in
    `curio_jax.reference.ppo` on a real segment, same weights, minibatches, dropout and
    update-proportion masks (targets, loss terms, gradients, parameters after Adam).

The functions return the measured numbers; the tests (tests/test_reference.py,
tests/test_doorkey_lockstep.py, tests/test_crosscheck.py) assert on the same numbers. Needs
the `reference` extra (torch, gymnasium, minigrid), imported lazily: the module itself imports
without it. Relative errors are max|a - b| / max|b| in float64 over float32 values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from curio_jax.analysis import evaluate as ev
from curio_jax.config import preset
from curio_jax.core import a2c, networks, optim, ppo, rnd
from curio_jax.core.bonuses.rnd import RNDState, predictor_loss_term
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.optim import AgentParams, torch_rmsprop
from curio_jax.core.rollout import Transition
from curio_jax.core.train import LearnerState, make_train
from curio_jax.envs import DoorKeyLayout, layout_of, make_doorkey, minigrid_bridge
from curio_jax.envs.layouts import stack_layouts
from curio_jax.reference import (
    ActorCritic,
    AgentA2C,
    AgentA2CWithRND,
    RNDModule,
    apply_gradients,
    collect_trajectory_segment,
    compute_targets,
    draw_permutations,
    init_random,
    loss_and_grads,
    make_batch,
    make_minigrid_env,
)
from curio_jax.reference import ppo as ref_ppo
from curio_jax.run import convert

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
DIRS = [(1, 0), (0, 1), (-1, 0), (0, -1)]

NETWORK_TOL = 1e-5
"""Forward parity, relative (float32 reassociation only)."""
LOSS_GRAD_TOL = 1e-4
"""Loss terms and gradient leaves, relative."""
PARAMS_TOL = 1e-5
"""Parameters after the update steps, relative to the network's parameter scale."""


def rel_err(a: Any, b: Any) -> float:
    """max|a - b| / max|b| (0 if both are all zero, inf if only b is)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    if scale == 0:
        return 0.0 if (a.size == 0 or np.max(np.abs(a)) == 0) else math.inf
    return float(np.max(np.abs(a - b)) / scale)


# =========================================================================== (a) env lockstep


def _passable(u: Any, x: int, y: int, allow_goal: bool = False) -> bool:
    cell = u.grid.get(x, y)
    if cell is None:
        return True
    if cell.type == "door":
        return cell.is_open
    if cell.type == "goal":
        return allow_goal
    return False


def _turns(cur: int, want: int) -> list[int]:
    return {0: [], 1: [RIGHT], 2: [RIGHT, RIGHT], 3: [LEFT]}[(want - cur) % 4]


def plan_to_face(u: Any, target: tuple[int, int], allow_goal: bool = False) -> list[int]:
    """Actions that bring a MiniGrid agent next to `target` (x, y), facing it (BFS over free
    cells). `u` is the unwrapped MiniGrid env."""
    start = tuple(int(c) for c in u.agent_pos)
    prev: dict = {start: None}
    queue = deque([start])
    goal_cell = None
    while queue:
        cell = queue.popleft()
        if abs(cell[0] - target[0]) + abs(cell[1] - target[1]) == 1:
            goal_cell = cell
            break
        for dx, dy in DIRS:
            nxt = (cell[0] + dx, cell[1] + dy)
            if nxt in prev or nxt == tuple(target):
                continue
            if _passable(u, *nxt, allow_goal=allow_goal):
                prev[nxt] = cell
                queue.append(nxt)
    if goal_cell is None:
        raise RuntimeError(f"no path to face {target}")
    path = []
    c = goal_cell
    while c is not None:
        path.append(c)
        c = prev[c]
    path.reverse()
    actions, d = [], int(u.agent_dir)
    for a, b in zip(path, path[1:], strict=False):
        want = DIRS.index((b[0] - a[0], b[1] - a[1]))
        actions += _turns(d, want) + [FORWARD]
        d = want
    want = DIRS.index((target[0] - goal_cell[0], target[1] - goal_cell[1]))
    actions += _turns(d, want)
    return actions


class ScriptedEpisode:
    """Runs the scripted DoorKey solution on a MiniGrid env, recording every step: pick up
    the key, unlock (toggle), re-close, re-open, try to drop onto the open door, drop the key
    on the floor and pick it up again, try to drop facing the goal, reach it."""

    def __init__(self, env: Any):
        self.env = env
        self.u = env.unwrapped
        self.actions: list[int] = []
        self.obs: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []
        self.done = False

    def do(self, actions: Sequence[int]) -> None:
        for a in actions:
            if self.done:
                return
            obs, r, term, trunc, _ = self.env.step(a)
            self.actions.append(a)
            self.obs.append(obs)
            self.rewards.append(float(r))
            self.terminated.append(bool(term))
            self.truncated.append(bool(trunc))
            self.done = term or trunc

    def find(self, kind: str) -> tuple[int, int] | None:
        for x in range(self.u.width):
            for y in range(self.u.height):
                c = self.u.grid.get(x, y)
                if c is not None and c.type == kind:
                    return (x, y)
        return None

    def run(self, rng: np.random.Generator) -> ScriptedEpisode:
        u = self.u
        self.do([PICKUP, DROP, TOGGLE, DONE])  # probably no-ops: nothing in front / empty hands
        key = self.find("key")
        self.do(plan_to_face(u, key) + [PICKUP, PICKUP])
        door = self.find("door")
        self.do(plan_to_face(u, door) + [TOGGLE, TOGGLE, TOGGLE, DROP])  # unlock, close, open
        # drop the key on a free floor cell next to the agent, then pick it up again
        ax, ay = (int(c) for c in u.agent_pos)
        for d in rng.permutation(4):
            fx, fy = ax + DIRS[d][0], ay + DIRS[d][1]
            if u.grid.get(fx, fy) is None:
                self.do(_turns(int(u.agent_dir), int(d)) + [DROP, FORWARD, PICKUP, PICKUP])
                break
        goal = (u.width - 2, u.height - 2)
        self.do(plan_to_face(u, goal) + [DROP, TOGGLE, FORWARD])
        return self


@functools.lru_cache(maxsize=8)
def _replay_program(size: int) -> Callable:
    env = make_doorkey(size, rgb_cache=False, disable_autoreset=True)

    def run(batch, actions):  # actions [N, max_steps]
        ts0 = jax.vmap(lambda lay: env.reset_to(lay, jax.random.key(0)))(batch)

        def body(ts, a):
            ts = jax.vmap(env.step)(ts, a)
            return ts, (ts.observation, ts.reward, ts.terminated, ts.truncated)

        _, out = jax.lax.scan(body, ts0, jnp.swapaxes(actions, 0, 1))
        return ts0.observation, out

    return jax.jit(run)


def replay(env: Any, layouts: list[DoorKeyLayout], actions: np.ndarray):
    """Replay action sequences [N, T] (T <= max_steps) from the given start layouts in
    curio_jax DoorKey of `env`'s size, without autoreset. Returns numpy obs [N, T, 7, 7, 3],
    rewards, terminated, truncated [N, T] and the first observations [N, 7, 7, 3].

    One compiled program per size and N: the actions are padded to the horizon with no-ops."""
    for lay in layouts:
        lay.validate()
    actions = np.asarray(actions, np.int32)
    n, t = actions.shape
    horizon = int(env.max_steps)
    if t > horizon:
        raise ValueError(f"{t} steps, more than the horizon {horizon}")
    padded = np.full((n, horizon), DONE, np.int32)
    padded[:, :t] = actions
    first, (obs, rew, term, trunc) = _replay_program(int(env.size))(
        stack_layouts(layouts), jnp.asarray(padded)
    )
    sw = lambda x: np.swapaxes(np.asarray(x), 0, 1)[:, :t]  # noqa: E731
    return sw(obs), sw(rew), sw(term), sw(trunc), np.asarray(first)


def _random_episode(env: Any, rng: np.random.Generator, max_steps: int) -> tuple:
    actions, obs, rew, term, trunc = [], [], [], [], []
    for a in rng.integers(0, 7, size=max_steps):
        o, r, te, tr, _ = env.step(int(a))
        actions.append(int(a))
        obs.append(o)
        rew.append(float(r))
        term.append(bool(te))
        trunc.append(bool(tr))
        if te or tr:
            break
    return actions, obs, rew, term, trunc


def layouts_from_curio(env: Any, n: int, seed: int) -> list[DoorKeyLayout]:
    """n start layouts drawn by curio_jax's reset (Python-int leaves)."""
    keys = jax.random.split(jax.random.key(seed), n)
    lay = layout_of(jax.vmap(env.reset)(keys))
    return [jax.tree.map(lambda x, i=i: int(np.asarray(x)[i]), lay) for i in range(n)]


@dataclasses.dataclass(frozen=True)
class LockstepResult:
    size: int
    episodes: int
    steps: int  # steps compared (reset observations not counted)
    goals: int  # episodes that reached the goal
    truncations: int  # episodes cut by the time limit
    scripted_failures: int  # scripted episodes that did not reach the goal (should be 0)
    mismatch: str | None  # first difference, None if every step agreed


def lockstep(
    size: int,
    n_random: int,
    n_scripted: int,
    seed: int | None = None,
    max_random_steps: int | None = None,
) -> LockstepResult:
    """Play `n_random` random and `n_scripted` scripted episodes in MiniGrid DoorKey-`size`
    and replay them in curio_jax from the same layouts (even episodes: MiniGrid's layout
    injected into curio_jax; odd: curio_jax's layout injected into MiniGrid). Random episodes
    stop at their end or after `max_random_steps` steps (default: the horizon)."""

    seed = size if seed is None else seed
    env = make_doorkey(size, rgb_cache=False)
    mg = minigrid_bridge.make_minigrid_doorkey(size)
    try:
        mg.reset(seed=1000 + seed)
        rng = np.random.default_rng(seed)
        n_total = n_random + n_scripted
        ours = layouts_from_curio(env, max(1, (n_total + 1) // 2), seed=seed)
        layouts, episodes, first_mg = [], [], []
        scripted_failures = 0
        for i in range(n_total):
            mg.reset(seed=int(rng.integers(2**31)))
            if i % 2 == 0:  # MiniGrid layout -> curio_jax
                layout = minigrid_bridge.minigrid_layout(mg)
                first = mg.unwrapped.gen_obs()["image"]
            else:  # curio_jax layout -> MiniGrid
                layout = ours[i // 2]
                first = minigrid_bridge.apply_layout(mg, layout)
            layouts.append(layout)
            first_mg.append(first)
            if i < n_random:
                episodes.append(_random_episode(mg, rng, max_random_steps or env.max_steps))
            else:
                ep = ScriptedEpisode(mg).run(rng)
                scripted_failures += not (ep.terminated and ep.terminated[-1])
                episodes.append((ep.actions, ep.obs, ep.rewards, ep.terminated, ep.truncated))
    finally:
        mg.close()

    t_max = max(len(ep[0]) for ep in episodes)
    actions = np.full((n_total, t_max), DONE, np.int32)
    for i, ep in enumerate(episodes):
        actions[i, : len(ep[0])] = ep[0]
    obs, rew, term, trunc, first = replay(env, layouts, actions)

    steps = goals = truncations = 0
    mismatch = None
    for i, (acts, mobs, mrew, mterm, mtrunc) in enumerate(episodes):
        if mismatch is None and not np.array_equal(first[i], first_mg[i]):
            mismatch = f"size {size} episode {i}: reset observations differ"
        for t in range(len(acts)):
            if mismatch is not None:
                break
            where = f"size {size} episode {i} step {t} action {acts[t]}"
            if not np.array_equal(obs[i, t], mobs[t]):
                mismatch = f"{where}: observations differ"
            elif rew[i, t] != np.float32(mrew[t]):
                mismatch = f"{where}: reward {rew[i, t]} vs MiniGrid {mrew[t]}"
            elif bool(term[i, t]) != mterm[t] or bool(trunc[i, t]) != mtrunc[t]:
                mismatch = f"{where}: terminated/truncated differ"
        steps += len(acts)
        goals += bool(mterm and mterm[-1])
        truncations += bool(mtrunc and mtrunc[-1])
    return LockstepResult(size, n_total, steps, goals, truncations, scripted_failures, mismatch)


# =========================================================================== (b) networks


def minigrid_observations(sizes: Sequence[int], num_envs: int, steps: int, seed: int = 0):
    """Distinct real observations [K, 7, 7, 3] uint8 from MiniGrid DoorKey vector envs
    stepped with random actions."""

    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        env = make_minigrid_env(size, num_envs)
        try:
            obs, _ = env.reset(seed=seed + size)
            for _ in range(steps):
                out.append(obs)
                obs, *_ = env.step(rng.integers(0, 7, size=num_envs))
        finally:
            env.close()
    obs = np.concatenate(out)
    _, first = np.unique(obs.reshape(len(obs), -1), axis=0, return_index=True)
    return obs[np.sort(first)].astype(np.uint8)


def network_parity(obs: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Max relative errors of logits, value_ext, value_int and the intrinsic reward between
    freshly initialised torch networks (torch.manual_seed(seed)) and their Flax conversion on
    `obs` [K, 7, 7, 3] uint8."""

    torch.manual_seed(seed)
    ac, rnd_module = ActorCritic(), RNDModule()
    params = convert.torch_state_to_flax(
        {
            "a2c_params": {k: v.numpy() for k, v in ac.state_dict().items()},
            "rnd_params": {k: v.numpy() for k, v in rnd_module.state_dict().items()},
        }
    )
    x = torch.as_tensor(obs, dtype=torch.float32).permute(0, 3, 1, 2)
    rnd_module.eval()
    with torch.no_grad():
        logits_t, v_ext_t, v_int_t = ac.forward_raw(x)
        r_int_t = rnd_module(x)
    logits, v_ext, v_int = networks.ActorCritic().apply(
        {"params": params["actor_critic"]}, jnp.asarray(obs)
    )
    r_int = rnd.intrinsic_reward(  # time-major [T, B, ...] input: one time step of K
        networks.RNDTarget(),
        networks.RNDPredictor(),
        params["rnd_target"],
        params["rnd_predictor"],
        jnp.asarray(obs)[None],
    )[0]
    return {
        "logits": rel_err(logits, logits_t),
        "value_ext": rel_err(v_ext, v_ext_t),
        "value_int": rel_err(v_int, v_int_t),
        "reward_int": rel_err(r_int, r_int_t),
    }


# =========================================================================== (c) one update


def reference_setup(kind: str, num_envs: int = 8, rollout: int = 16, seed: int = 0):
    """A fresh reference agent ("a2c", "rnd" or "rnd_shared", seeded like the notebook) and a
    real segment collected by its policy on DoorKey-5x5, positioned so that the segment
    crosses the 250-step truncation. Returns (agent, segment)."""

    env = make_minigrid_env(5, num_envs)
    init_random(env, seed)
    if kind == "a2c":
        agent = AgentA2C(env)
    else:
        agent = AgentA2CWithRND(env, shared_permutation=kind == "rnd_shared")
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(240):
        obs, *_ = env.step(rng.integers(0, 7, size=num_envs))
    seg = collect_trajectory_segment(
        env, agent, torch.as_tensor(obs, dtype=torch.float32), rollout, with_intrinsic_values=True
    )
    env.close()
    if not seg.dones.sum() > 0:
        raise RuntimeError("the reference segment contains no episode end")
    return agent, seg


def flax_params_of(agent: Any) -> dict:
    """The reference agent's current weights as Flax params (convert.torch_state_to_flax)."""

    state = {"a2c_params": {k: v.numpy() for k, v in agent.model.state_dict().items()}}
    if agent.rnd_module is not None:
        state["rnd_params"] = {k: v.numpy() for k, v in agent.rnd_module.state_dict().items()}
    return convert.torch_state_to_flax(state)


@dataclasses.dataclass
class JaxLearnerInputs:
    """The JAX learner's view of the reference's batch (same weights, same permutations)."""

    ac: Any  # networks.ActorCritic
    predictor: Any  # networks.RNDPredictor or None
    bonus_term: Any  # the RND predictor's loss term (bonuses.rnd.predictor_loss_term) or None
    batch: Any  # a2c.Batch
    coefs: Any  # Hyperparams (the loss coefficients)
    params: Any  # AgentParams
    target_params: Any  # RND target params or None


def jax_learner_inputs(
    kind: str, agent: Any, seg: Any, targets: Any, p_ext: Any, p_int: Any, dropout: float = 0.25
) -> JaxLearnerInputs:
    """Networks, batch (indexed with the reference's permutations), coefficients and params of
    `curio_jax.core.a2c` for the reference agent's current state."""

    params = flax_params_of(agent)
    rnd_on = kind != "a2c"
    predictor = networks.RNDPredictor(dropout=dropout) if rnd_on else None
    bonus_term = None
    if rnd_on:
        bonus_term = predictor_loss_term(
            networks.RNDTarget(), predictor, params["rnd_target"], None, 5.0
        )
    pe, pi = p_ext.numpy(), (p_int.numpy() if p_int is not None else None)
    obs = seg.obs.flatten(0, 1).numpy().astype(np.uint8)
    batch = a2c.Batch(
        obs=jnp.asarray(obs[pe]),
        action=jnp.asarray(seg.actions.flatten().numpy().astype(np.int32)[pe]),
        adv_ext=jnp.asarray(targets.adv_ext.flatten().numpy()[pe]),
        ret_ext=jnp.asarray(targets.ret_ext.flatten().numpy()[pe]),
        adv_int=jnp.asarray(targets.adv_int.flatten().numpy()[pi]) if rnd_on else None,
        ret_int=jnp.asarray(targets.ret_int.flatten().numpy()[pi]) if rnd_on else None,
        weight=jnp.ones(len(pe), jnp.float32),
    )
    unused = {f.name: jnp.float32(0.0) for f in dataclasses.fields(Hyperparams)}
    coefs = Hyperparams(**unused).replace(
        adv_coef_ext=jnp.float32(agent.eta_extr),
        adv_coef_int=jnp.float32(getattr(agent, "eta_intr", 0.0)),
        value_coef=jnp.float32(agent.vloss_coeff),
        entropy_coef=jnp.float32(agent.ent_coeff),
    )
    agent_params = AgentParams(ac=params["actor_critic"], bonus=params.get("rnd_predictor"))
    return JaxLearnerInputs(
        networks.ActorCritic(),
        predictor,
        bonus_term,
        batch,
        coefs,
        agent_params,
        params.get("rnd_target"),
    )


def dropout_masks(predictor: Any, predictor_params: Any, obs: Any, key: Any) -> tuple[tuple, float]:
    """The keep-masks Flax's predictor draws for `key` (read from its Dropout outputs) as two
    torch {0, 1} tensors, and the fraction kept (about 0.75 for p = 0.25)."""

    _, state = predictor.apply(
        {"params": predictor_params},
        obs,
        deterministic=False,
        rngs={"dropout": key},
        capture_intermediates=True,
    )
    inter = state["intermediates"]
    masks = []
    for i in (0, 1):
        out = np.asarray(inter[f"Dropout_{i}"]["__call__"][0])
        masks.append(torch.as_tensor((out != 0).astype(np.float32)))
    keep = float(np.mean([float(m.mean()) for m in masks]))
    return tuple(masks), keep


def tree_rel_errs(got: Any, ref: Any) -> dict[str, float]:
    """{leaf path: rel_err(got leaf, ref leaf)}; ValueError if the structures or shapes differ."""
    paths_ref = jax.tree_util.tree_flatten_with_path(ref)[0]
    leaves_got = jax.tree.leaves(got)
    if len(paths_ref) != len(leaves_got):
        raise ValueError(f"{len(leaves_got)} leaves vs {len(paths_ref)} in the reference")
    out = {}
    for (path, r), g in zip(paths_ref, leaves_got, strict=True):
        name = jax.tree_util.keystr(path)
        if np.shape(g) != np.shape(r):
            raise ValueError(f"{name}: shape {np.shape(g)} vs {np.shape(r)}")
        out[name] = rel_err(g, r)
    return out


def network_rel_err(got: Any, ref: Any) -> float:
    """max|a - b| over all leaves of one network / max|b| over all its leaves."""
    la = [np.asarray(x, np.float64) for x in jax.tree.leaves(got)]
    lb = [np.asarray(x, np.float64) for x in jax.tree.leaves(ref)]
    if [x.shape for x in la] != [x.shape for x in lb]:
        raise ValueError("the two networks have different shapes")
    num = max(float(np.max(np.abs(a - b))) for a, b in zip(la, lb, strict=True))
    return num / max(float(np.max(np.abs(b))) for b in lb)


LOSS_NAMES = {
    "total": "loss",
    "policy": "policy_loss",
    "value_ext": "value_loss_ext",
    "value_int": "value_loss_int",
    "entropy": "entropy",
    "bonus": "rnd_loss",
}
"""curio_jax.core.a2c.LossTerms field -> reference loss-term name."""


def loss_grad_parity(kind: str, seed: int = 1) -> dict:
    """Same weights, batch, permutations and dropout masks: every loss term and gradient leaf
    of `curio_jax.core.a2c.loss_fn` vs the reference's `loss_and_grads`.

    Returns {"loss": {term: rel err}, "grads": {leaf: rel err}, "dropout_keep": fraction or
    None (a2c), "int_head_grad_zero": bool (a2c: the unused intrinsic head's JAX gradient is
    exactly zero; None otherwise)}."""

    agent, seg = reference_setup(kind, seed=seed)
    targets = compute_targets(agent, seg)
    p_ext, p_int = draw_permutations(agent, seg.rewards.numel(), torch.Generator().manual_seed(2))
    batch_t = make_batch(seg, targets, p_ext, p_int)
    j = jax_learner_inputs(kind, agent, seg, targets, p_ext, p_int)
    key = jax.random.PRNGKey(11)
    masks, keep = None, None
    if kind != "a2c":
        masks, keep = dropout_masks(j.predictor, j.params.bonus, j.batch.obs, key)
    terms_t, grads_t = loss_and_grads(agent, batch_t, rnd_dropout_masks=masks)
    grads_j, terms_j = jax.grad(a2c.loss_fn, has_aux=True)(
        j.params, j.batch, key, j.coefs, j.ac, j.bonus_term
    )
    loss = {jn: rel_err(getattr(terms_j, jn), terms_t[tn]) for jn, tn in LOSS_NAMES.items()}
    ref_ac = convert.network_to_flax(grads_t["a2c_params"], "actor_critic")
    grads = {"ac" + k: v for k, v in tree_rel_errs(grads_j.ac, ref_ac).items()}
    zero_head = None
    if kind != "a2c":
        ref_pred = convert.network_to_flax(grads_t["rnd_params"], "rnd_predictor")
        grads.update(
            {"predictor" + k: v for k, v in tree_rel_errs(grads_j.bonus, ref_pred).items()}
        )
    else:
        zero_head = not np.any(np.asarray(grads_j.ac["value_int_out"]["kernel"]))
    return {"loss": loss, "grads": grads, "dropout_keep": keep, "int_head_grad_zero": zero_head}


def update_parity(kind: str, seed: int = 2, steps: int = 2) -> dict:
    """`steps` consecutive learning steps (loss, gradient, per-group clipping, RMSprop with
    its state) of `curio_jax.core.a2c.update_step` vs the reference on the same batch, permutations
    and dropout masks. kind: "a2c", "rnd", or "rnd_eval_dropout" (dropout off on both sides).
    The clip thresholds are lowered so that clipping acts (AC norms ~0.02 / ~0.3).

    Returns {"ac_clip": float, "steps": [per step {"grad_norm_ac_torch",
    "grad_norm_ac_rel_err", "grad_norm_rnd_torch", "grad_norm_rnd_rel_err" (RND),
    "params_rel_err": {network: rel err of the network's scale}, "worst_leaf_rel_err",
    "target_frozen" (RND), "dropout_keep" ("rnd")}]}."""

    ref_kind = "a2c" if kind == "a2c" else "rnd"
    agent, seg = reference_setup(ref_kind, seed=seed)
    ac_clip = 0.01 if kind == "a2c" else 0.1
    agent.max_grad_norm_ac = ac_clip
    targets = compute_targets(agent, seg)
    p_ext, p_int = draw_permutations(agent, seg.rewards.numel(), torch.Generator().manual_seed(4))
    batch_t = make_batch(seg, targets, p_ext, p_int)
    eval_dropout = kind == "rnd_eval_dropout"
    j = jax_learner_inputs(
        ref_kind, agent, seg, targets, p_ext, p_int, dropout=0.0 if eval_dropout else 0.25
    )
    params = j.params
    target_before = jax.tree.map(np.copy, j.target_params)
    opt_state = torch_rmsprop(1e-4).init(params)
    hyper = dict(lr=1e-4, decay=0.99, eps=1e-8, max_grad_norm_ac=ac_clip, max_grad_norm_bonus=0.01)
    out: list[dict] = []
    for step in range(steps):
        key = jax.random.PRNGKey(20 + step)
        rec: dict[str, Any] = {}
        masks = None
        if kind == "rnd":
            masks, rec["dropout_keep"] = dropout_masks(j.predictor, params.bonus, j.batch.obs, key)
        loss_and_grads(agent, batch_t, rnd_deterministic=eval_dropout, rnd_dropout_masks=masks)
        norms_t = apply_gradients(agent)
        params, opt_state, metrics = a2c.update_step(
            params, opt_state, j.batch, key, j.coefs, j.ac, j.bonus_term, **hyper
        )
        rec["grad_norm_ac_torch"] = norms_t["grad_norm_ac"]
        rec["grad_norm_ac_rel_err"] = rel_err(metrics.grad_norm_ac, norms_t["grad_norm_ac"])
        ref = flax_params_of(agent)
        pairs = {"actor_critic": (params.ac, ref["actor_critic"])}
        if ref_kind == "rnd":
            rec["grad_norm_rnd_torch"] = norms_t["grad_norm_rnd"]
            rec["grad_norm_rnd_rel_err"] = rel_err(
                metrics.grad_norm_bonus, norms_t["grad_norm_rnd"]
            )
            pairs["rnd_predictor"] = (params.bonus, ref["rnd_predictor"])
            rec["target_frozen"] = all(
                np.array_equal(np.asarray(x), np.asarray(y))
                for x, y in zip(
                    jax.tree.leaves(ref["rnd_target"]), jax.tree.leaves(target_before), strict=True
                )
            )
        rec["params_rel_err"] = {n: network_rel_err(g, w) for n, (g, w) in pairs.items()}
        rec["worst_leaf_rel_err"] = max(
            max(tree_rel_errs(g, w).values()) for g, w in pairs.values()
        )
        out.append(rec)
    return {"ac_clip": ac_clip, "steps": out}


# =========================================================================== (e) PPO update


PPO_PARITY_OVERRIDES = {
    "train.num_envs": 8,
    "train.rollout_size": 16,
    "total_frames": 8 * 16 * 10,
    "train.max_grad_norm": 0.4,
    "bonus.max_grad_norm": 0.007,
    "ppo.bonus_sample": "mask",
}
"""The PPO parity's config on top of the ppo(-rnd)-5x5 preset: the reference segment's shape
(8 envs x 16 steps: 4 minibatches of 32, 4 epochs), clip thresholds within the range of
the 16 steps' gradient norms (actor-critic ~0.25-0.6, predictor ~0.005-0.01), so that the
per-group clipping acts on some steps and not on others, and the predictor's Bernoulli
mask (the draw the reference implements; the subset draw has the same expected gradient,
tests/core/test_ppo.py)."""


PPO_TERMS = {"rnd": "bonus"}
"""The reference's PPO loss-term names that differ from curio_jax.core.ppo.PPOLossTerms'."""


def ppo_settings(cfg: Any) -> Any:
    """The reference's PPOSettings of a PPO TrainConfig."""
    from curio_jax.reference.ppo import PPOSettings

    a, r, p = cfg.train, cfg.bonus, cfg.ppo
    return PPOSettings(
        epochs=p.epochs,
        minibatches=p.minibatches,
        clip_eps=p.clip_eps,
        clip_value=p.clip_value,
        adv_norm=p.adv_norm,
        adam_eps=p.adam_eps,
        lr=a.lr,
        update_proportion=p.update_proportion,
        textbook_gae=p.textbook_gae,
        bootstrap_truncation=cfg.bootstrap_truncation,
        episodic_int=r.episodic_int,
        obs_norm=r.obs_norm,
        obs_clip=r.obs_norm_clip,
        reward_norm=r.reward_norm,
        gamma=a.gamma,
        gamma_int=r.gamma_int,
        gae_lambda=a.gae_lambda,
        adv_coef_ext=a.adv_coef_ext,
        adv_coef_int=r.adv_coef_int,
        value_coef=a.value_coef,
        entropy_coef=a.entropy_coef,
        max_grad_norm_ac=a.max_grad_norm,
        max_grad_norm_rnd=r.max_grad_norm,
    )


def _rms_to_jax(rms: Any) -> rnd.RunningMeanStd:
    return rnd.RunningMeanStd(
        mean=jnp.asarray(rms.mean.numpy()),
        var=jnp.asarray(rms.var.numpy()),
        count=jnp.asarray(float(rms.count), jnp.float32),
    )


def _rms_errs(got: rnd.RunningMeanStd, ref: Any) -> float:
    return max(
        rel_err(got.mean, ref.mean.numpy()),
        rel_err(got.var, ref.var.numpy()),
        rel_err(got.count, float(ref.count)),
    )


def ppo_parity(kind: str, seed: int = 3, update: int = 3) -> dict:
    """The PPO update of `curio_jax` (core.train's targets, core.ppo) vs the PyTorch port
    `curio_jax.reference.ppo`, from the same weights (converted), on a real DoorKey-5x5 segment
    that crosses the time limit. kind: "ppo" or "ppo-rnd" (the 5x5 presets with
    PPO_PARITY_OVERRIDES). The learning rate is the annealed one of update `update`.

    Targets: both sides compute them from the segment (the reference's own GAE loops, reward
    filter and running statistics), with the observation statistics started from the
    segment's observations and a nonzero reward filter. Update: both sides learn from the
    reference's targets with the same minibatch indices, dropout masks (read from Flax's
    draws) and update-proportion masks, over all epochs x minibatches steps.

    Returns {"targets": {name: rel err}, "first_step": {"loss": {term: rel err}, "grads":
    {leaf: rel err}}, "mean_terms": {term: rel err of the means over the steps},
    "grad_norms": rel err of every step's pre-clip norms, "clip_acted": (steps where the
    actor-critic clip acted, where the predictor's did), "params_rel_err": {network: rel err
    of its scale after the update}, "worst_leaf_rel_err", "steps", "dropout_keep",
    "rnd_fraction": the fraction of samples the predictor trained on}."""
    if kind not in ("ppo", "ppo-rnd"):
        raise ValueError(f"kind must be 'ppo' or 'ppo-rnd', got {kind!r}")
    with_rnd = kind == "ppo-rnd"
    cfg = preset(f"{kind}-5x5").with_overrides(PPO_PARITY_OVERRIDES)
    s = ppo_settings(cfg)
    agent, seg = reference_setup("rnd" if with_rnd else "a2c", seed=seed)
    model, rnd_module = agent.model, (agent.rnd_module if with_rnd else None)
    t_len, n_env = seg.rewards.shape
    n = t_len * n_env
    terminated = seg.dones * (seg.rewards > 0).float()  # DoorKey: a terminal step is rewarded
    is_reset = torch.zeros_like(seg.dones)
    is_reset[1:] = seg.dones[:-1]
    gen = torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------ targets
    obs_rms_t = reward_rms_t = filter_t = None
    if with_rnd:
        from curio_jax.reference.ppo import RunningMeanStd as TorchRMS

        obs_rms_t = TorchRMS.create((7, 7, 3))
        obs_rms_t.update(seg.obs.flatten(0, 1))
        reward_rms_t = TorchRMS.create(())
        reward_rms_t.update(torch.rand(64, generator=gen))
        filter_t = torch.rand(n_env, generator=gen)
    tg_t = ref_ppo.ppo_targets(
        model, rnd_module, seg, terminated, s, obs_rms_t, reward_rms_t, filter_t
    )

    params = flax_params_of(agent)
    train = make_train(cfg)
    hp = Hyperparams.from_config(cfg)
    agent_params = AgentParams(
        ac=params["actor_critic"], bonus=params.get("rnd_predictor") if with_rnd else None
    )
    target_params = params.get("rnd_target") if with_rnd else None
    np_ = lambda x: jnp.asarray(x.numpy())  # noqa: E731
    obs_u8 = jnp.asarray(seg.obs.numpy().astype(np.uint8))
    next_u8 = jnp.asarray(seg.next_obs().numpy().astype(np.uint8))
    traj = Transition(
        obs=obs_u8,
        action=jnp.asarray(seg.actions.numpy().astype(np.int32)),
        logprob=np_(seg.logprobs),
        value_ext=np_(seg.values[..., 0]),
        value_int=np_(seg.values[..., 1]),
        reward=np_(seg.rewards),
        terminated=np_(terminated).astype(bool),
        truncated=np_(seg.dones * (1 - terminated)).astype(bool),
        done=np_(seg.dones).astype(bool),
        is_reset=np_(is_reset).astype(bool),
        next_obs=next_u8,
    )
    bonus_state = None
    if with_rnd:
        bonus_state = RNDState(target_params=target_params, obs_rms=_rms_to_jax(obs_rms_t))
    state = LearnerState(
        params=agent_params,
        opt_state=None,
        timestep=None,
        episode_stats=None,
        key=None,
        update=jnp.int32(update),
        hparams=hp,
        bonus=bonus_state,
        reward_rms=_rms_to_jax(reward_rms_t) if with_rnd else None,
        reward_filter=np_(filter_t) if with_rnd else None,
    )
    _, last_ext, last_int = train.ac.apply(
        {"params": agent_params.ac}, jnp.asarray(seg.next_start_obs.numpy().astype(np.uint8))
    )
    reward_int = None
    if with_rnd:
        paid = train.bonus.reward(bonus_state, agent_params.bonus, traj, hp, None)
        reward_int, bonus_state = paid.reward, paid.state
    tg_j = train.targets(state, traj, last_ext, last_int, reward_int)
    targets = {
        "adv_ext": rel_err(tg_j.adv_ext, tg_t.adv_ext.numpy()),
        "ret_ext": rel_err(tg_j.ret_ext, tg_t.ret_ext.numpy()),
    }
    if with_rnd:
        targets.update(
            reward_int_mean=rel_err(tg_j.reward_int_mean, float(tg_t.reward_int.mean())),
            adv_int=rel_err(tg_j.adv_int, tg_t.adv_int.numpy()),
            ret_int=rel_err(tg_j.ret_int, tg_t.ret_int.numpy()),
            obs_rms=_rms_errs(bonus_state.obs_rms, tg_t.obs_rms),
            reward_rms=_rms_errs(tg_j.reward_rms, tg_t.reward_rms),
            reward_filter=rel_err(tg_j.reward_filter, tg_t.reward_filter.numpy()),
        )

    # ------------------------------------------------------------ update
    obs_rms_j = _rms_to_jax(tg_t.obs_rms) if with_rnd else None
    target_feats, bonus_term = None, None
    if with_rnd:
        target_feats = train.bonus.target.apply(
            {"params": target_params}, rnd.normalize_obs(obs_u8, obs_rms_j, s.obs_clip)
        )
        bonus_term = predictor_loss_term(
            train.bonus.target, train.bonus.predictor, target_params, obs_rms_j, s.obs_clip
        )
    flat = lambda x: None if x is None else np_(x)  # noqa: E731
    batch = ppo.flatten_rollout(
        obs_u8,
        traj.action,
        traj.logprob,
        traj.value_ext,
        flat(tg_t.adv_ext),
        flat(tg_t.ret_ext),
        adv_int=flat(tg_t.adv_int),
        ret_int=flat(tg_t.ret_int),
        is_reset=traj.is_reset,
        mask_reset_transition=cfg.mask_reset_transition,
        bonus_input=target_feats,
    )
    keys = ppo.UpdateKeys.draw(
        jax.random.key(seed + 10), jax.random.key(seed + 20), n, s.epochs, s.minibatches
    )
    steps, prepared, keeps, fractions = [], [], [], []
    for i in range(s.epochs * s.minibatches):
        idx = keys.indices[i]
        mb = ppo.prepare_minibatch(
            jax.tree.map(lambda x, idx=idx: x[idx], batch),
            keys.proportion[i],
            hp,
            adv_norm=s.adv_norm,
            bonus_loss=with_rnd,
        )
        prepared.append(mb)
        st = ref_ppo.StepRandomness(indices=torch.as_tensor(np.array(idx), dtype=torch.long))
        if with_rnd:
            mask = ppo.proportion_mask(keys.proportion[i], idx.shape[0], hp.update_proportion)
            st.rnd_mask = torch.as_tensor(np.array(mask))
            fractions.append(float(np.mean(np.asarray(mask))))
            rnd_in = rnd.normalize_obs(mb.obs, obs_rms_j, s.obs_clip)
            st.dropout_masks, keep = dropout_masks(
                train.bonus.predictor, agent_params.bonus, rnd_in, keys.dropout[i]
            )
            keeps.append(keep)
        steps.append(st)
    flat_t = lambda x: None if x is None else x.flatten(0, 1)  # noqa: E731
    batch_t = ref_ppo.RolloutBatch(
        obs=seg.obs.permute(0, 1, 4, 2, 3).flatten(0, 1),
        actions=seg.actions.flatten(0, 1).long(),
        logprobs=seg.logprobs.flatten(0, 1),
        values_ext=seg.values[..., 0].flatten(0, 1),
        adv_ext=flat_t(tg_t.adv_ext),
        ret_ext=flat_t(tg_t.ret_ext),
        weight=torch.as_tensor(np.array(batch.weight)),
        adv_int=flat_t(tg_t.adv_int),
        ret_int=flat_t(tg_t.ret_int),
    )
    lr = float(ppo.annealed_lr(hp.lr, jnp.int32(update), cfg.num_updates))
    # the first step's loss and gradients (before any parameter moves)
    grads_j, terms_j = jax.grad(ppo.ppo_loss, has_aux=True)(
        agent_params,
        prepared[0],
        keys.dropout[0],
        hp,
        train.ac,
        bonus_term,
        clip_value=s.clip_value,
    )
    optimizer = ref_ppo.make_optimizer(model, rnd_module, s)
    recs = ref_ppo.ppo_update(model, rnd_module, optimizer, batch_t, steps, s, tg_t.obs_rms, lr)
    first = recs[0]
    # each term relative to the largest term (rel_err of the vector of terms): with
    # per-minibatch normalised advantages at ratio 1 the policy term is ~0 by construction
    scale = max(abs(v) for v in first["terms"].values())
    loss = {
        k: abs(float(getattr(terms_j, PPO_TERMS.get(k, k))) - v) / scale
        for k, v in first["terms"].items()
    }
    ref_ac = convert.network_to_flax(first["grads"]["a2c_params"], "actor_critic")
    grads = {"ac" + k: v for k, v in tree_rel_errs(grads_j.ac, ref_ac).items()}
    if with_rnd:
        ref_pred = convert.network_to_flax(first["grads"]["rnd_params"], "rnd_predictor")
        grads.update(
            {"predictor" + k: v for k, v in tree_rel_errs(grads_j.bonus, ref_pred).items()}
        )
    # the whole update
    new_params, _, metrics = ppo.ppo_update(
        agent_params,
        optim.adam(s.adam_eps).init(agent_params),
        batch,
        keys,
        hp,
        train.ac,
        bonus_term,
        lr=lr,
        adam_eps=s.adam_eps,
        clip_value=s.clip_value,
        adv_norm=s.adv_norm,
        max_grad_norm_ac=s.max_grad_norm_ac,
        max_grad_norm_bonus=s.max_grad_norm_rnd,
    )
    mean_terms = {
        k: rel_err(
            getattr(metrics.loss, PPO_TERMS.get(k, k)), np.mean([r["terms"][k] for r in recs])
        )
        for k in first["terms"]
    }
    norms = [rel_err(metrics.grad_norm_ac, np.mean([r["grad_norm_ac"] for r in recs]))]
    acted = (sum(r["grad_norm_ac"] > s.max_grad_norm_ac for r in recs), 0)
    if with_rnd:
        norms.append(rel_err(metrics.grad_norm_bonus, np.mean([r["grad_norm_rnd"] for r in recs])))
        acted = (acted[0], sum(r["grad_norm_rnd"] > s.max_grad_norm_rnd for r in recs))
    ref = flax_params_of(agent)
    pairs = {"actor_critic": (new_params.ac, ref["actor_critic"])}
    if with_rnd:
        pairs["rnd_predictor"] = (new_params.bonus, ref["rnd_predictor"])
    return {
        "targets": targets,
        "first_step": {"loss": loss, "grads": grads},
        "mean_terms": mean_terms,
        "grad_norms": max(norms),
        "clip_acted": acted,
        "params_rel_err": {k: network_rel_err(g, w) for k, (g, w) in pairs.items()},
        "worst_leaf_rel_err": max(max(tree_rel_errs(g, w).values()) for g, w in pairs.values()),
        "steps": len(recs),
        "dropout_keep": float(np.mean(keeps)) if keeps else None,
        "rnd_fraction": float(np.mean(fractions)) if fractions else None,
    }


# =========================================================================== (d) eval backends


@dataclasses.dataclass(frozen=True)
class BackendResult:
    size: int
    episodes: int
    steps: int
    goals: int
    difference: str | None  # first difference between the backends, None if identical


def random_actor_critic(seed: int = 0) -> dict:
    """Flax params of a freshly initialised torch ActorCritic (torch.manual_seed(seed))."""

    torch.manual_seed(seed)
    ac = ActorCritic()
    return convert.actor_critic_to_flax({k: v.numpy() for k, v in ac.state_dict().items()})


def eval_backend_parity(params: Any, size: int, episodes: int, seed: int = 0) -> BackendResult:
    """Play `episodes` episodes of the same weights in both eval backends from the same
    layouts with the same action uniforms: half the layouts drawn by MiniGrid's reset, half by
    curio_jax's. The episodes (actions, rewards, lengths, flags) must be identical."""

    n_mg = episodes // 2
    n_jax = episodes - n_mg
    steps = goals = 0
    difference = None
    batches = []
    if n_jax:
        u = ev.uniform_stream(seed, n_jax, size)
        lay = ev.sample_layouts(seed, n_jax, size)
        batches.append((ev.run_jax(params, lay, u), ev.run_minigrid(params, size, u, layouts=lay)))
    if n_mg:
        u = ev.uniform_stream(seed + 1, n_mg, size)
        mg = ev.run_minigrid(params, size, u, seed=seed + 1)
        batches.append((ev.run_jax(params, mg.layouts, u), mg))
    for jx, mg in batches:
        difference = difference or ev.first_difference(jx, mg)
        steps += int(mg.lengths.sum())
        goals += int(mg.terminated.sum())
    return BackendResult(size, episodes, steps, goals, difference)


# =========================================================================== report


@dataclasses.dataclass(frozen=True)
class Check:
    """One report line."""

    name: str
    passed: bool
    detail: str


def _fmt(x: float) -> str:
    return f"{x:.1e}"


def _lockstep_checks(quick: bool) -> list[Check]:
    # (random, scripted) episodes per size; random ones run to their end (often the horizon)
    plan = {5: (2, 3), 8: (1, 3), 16: (1, 2)} if quick else {5: (40, 16), 8: (20, 16), 16: (6, 10)}
    out = []
    for size, (n_random, n_scripted) in plan.items():
        r = lockstep(size, n_random, n_scripted)
        ok = r.mismatch is None and r.scripted_failures == 0 and r.goals >= n_scripted
        detail = (
            f"{r.steps:,} steps in {r.episodes} episodes ({r.goals} goals, "
            f"{r.truncations} truncations), "
            + ("all equal" if r.mismatch is None else f"FIRST MISMATCH: {r.mismatch}")
        )
        if r.scripted_failures:
            detail += f"; {r.scripted_failures} scripted episodes missed the goal"
        out.append(Check(f"(a) env lockstep {size}x{size}", ok, detail))
    return out


def _network_check(quick: bool) -> list[Check]:
    obs = minigrid_observations((5, 8) if quick else (5, 8, 16), 8, 32 if quick else 64)
    errs = network_parity(obs, seed=0)
    worst = max(errs.values())
    detail = (
        f"{len(obs)} observations: max rel err logits {_fmt(errs['logits'])}, values "
        f"{_fmt(max(errs['value_ext'], errs['value_int']))}, intrinsic reward "
        f"{_fmt(errs['reward_int'])} (tol {_fmt(NETWORK_TOL)})"
    )
    return [Check("(b) network parity torch vs flax", worst <= NETWORK_TOL, detail)]


def _update_checks(quick: bool) -> list[Check]:
    out = []
    for kind in ("a2c", "rnd") if quick else ("a2c", "rnd", "rnd_shared"):
        r = loss_grad_parity(kind)
        loss, grad = max(r["loss"].values()), max(r["grads"].values())
        ok = loss <= LOSS_GRAD_TOL and grad <= LOSS_GRAD_TOL
        if kind == "a2c":
            ok = ok and bool(r["int_head_grad_zero"])
        else:
            ok = ok and 0.65 < r["dropout_keep"] < 0.85
        detail = (
            f"loss terms {_fmt(loss)}, {len(r['grads'])} gradient leaves {_fmt(grad)} "
            f"(tol {_fmt(LOSS_GRAD_TOL)})"
        )
        out.append(Check(f"(c) loss + gradients {kind}", ok, detail))
    for kind in ("a2c", "rnd") if quick else ("a2c", "rnd", "rnd_eval_dropout"):
        r = update_parity(kind)
        ok = True
        worst_params = worst_norm = 0.0
        for s in r["steps"]:
            ok &= s["grad_norm_ac_torch"] > r["ac_clip"]  # the clip acted
            norm_err = s["grad_norm_ac_rel_err"]
            if "grad_norm_rnd_torch" in s:
                ok &= s["grad_norm_rnd_torch"] > 0.01 and s["target_frozen"]
                norm_err = max(norm_err, s["grad_norm_rnd_rel_err"])
            worst_norm = max(worst_norm, norm_err)
            worst_params = max(worst_params, *s["params_rel_err"].values())
        ok = ok and worst_norm <= LOSS_GRAD_TOL and worst_params <= PARAMS_TOL
        detail = (
            f"{len(r['steps'])} steps with clipping active: grad norms {_fmt(worst_norm)}, "
            f"params after clip+RMSprop {_fmt(worst_params)} of scale (tol {_fmt(PARAMS_TOL)})"
        )
        out.append(Check(f"(c) update step {kind}", bool(ok), detail))
    return out


def _backend_checks(quick: bool) -> list[Check]:
    plan = {5: 10} if quick else {5: 40, 8: 16, 16: 4}
    params = random_actor_critic(seed=0)
    out = []
    for size, n in plan.items():
        r = eval_backend_parity(params, size, n, seed=size)
        detail = f"{r.episodes} episodes, {r.steps:,} steps ({r.goals} goals): " + (
            "identical" if r.difference is None else f"FIRST DIFFERENCE: {r.difference}"
        )
        out.append(Check(f"(d) eval jax vs minigrid {size}x{size}", r.difference is None, detail))
    return out


def _ppo_checks(quick: bool) -> list[Check]:
    del quick  # one segment each; the same in both modes
    out = []
    for kind in ("ppo", "ppo-rnd"):
        r = ppo_parity(kind)
        targets = max(r["targets"].values())
        loss = max(r["first_step"]["loss"].values())
        grads = max(r["first_step"]["grads"].values())
        means = max(max(r["mean_terms"].values()), r["grad_norms"])
        params = max(r["params_rel_err"].values())
        ok = max(targets, loss, grads, means) <= LOSS_GRAD_TOL and params <= PARAMS_TOL
        steps = r["steps"]
        ok = ok and 0 < r["clip_acted"][0] < steps  # the clip acted on some steps, not all
        if kind == "ppo-rnd":
            ok = ok and 0 < r["clip_acted"][1] < steps
            ok = ok and 0.65 < r["dropout_keep"] < 0.85 and 0.15 < r["rnd_fraction"] < 0.35
        detail = (
            f"targets {_fmt(targets)}, first step loss {_fmt(loss)} grads {_fmt(grads)}, "
            f"{steps} steps' mean terms {_fmt(means)} (tol {_fmt(LOSS_GRAD_TOL)}), params "
            f"after Adam {_fmt(params)} (tol {_fmt(PARAMS_TOL)}); clipped "
            f"{'/'.join(str(a) for a in r['clip_acted'][: 2 if kind == 'ppo-rnd' else 1])} "
            f"of {steps}"
        )
        out.append(Check(f"(e) PPO update {kind}", bool(ok), detail))
    return out


def run_checks(quick: bool = False, log: Callable[[str], None] | None = None) -> list[Check]:
    """Run all groups; a group that raises becomes one FAIL line with the error. `log`
    receives each report line as soon as it is known."""

    torch.set_num_threads(1)
    groups = [
        ("(a) env lockstep", _lockstep_checks),
        ("(b) network parity", _network_check),
        ("(c) one-update parity", _update_checks),
        ("(d) eval backends", _backend_checks),
        ("(e) PPO update parity", _ppo_checks),
    ]
    checks: list[Check] = []
    for name, fn in groups:
        t0 = time.perf_counter()
        try:
            got = fn(quick)
        except Exception as e:  # noqa: BLE001 - reported as a failed check, not a traceback
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            got = [Check(name, False, f"error: {type(e).__name__}: {msg}")]
        seconds = time.perf_counter() - t0
        for c in got:
            checks.append(c)
            if log is not None:
                log(format_check(c))
        if log is not None:
            log(f"    ({name}: {seconds:.1f}s)")
    return checks


def format_check(c: Check) -> str:
    return f"{'PASS' if c.passed else 'FAIL'}  {c.name:<34} {c.detail}"


def format_report(checks: Sequence[Check]) -> str:
    lines = [format_check(c) for c in checks]
    n_pass = sum(c.passed for c in checks)
    lines.append(f"{n_pass}/{len(checks)} checks passed")
    return "\n".join(lines)
