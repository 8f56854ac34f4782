"""MiniGrid-faithful DoorKey on navix.

`DoorKey` subclasses navix's `Environment` and keeps navix's `State` with its `Player`, `Key`,
`Door` and `Goal` entities and its events; what it replaces are the intended extension points:
the reset (MiniGrid's layout distribution), the action set (MiniGrid's pickup / drop / toggle
semantics), the observation (MiniGrid's egocentric, occluded `ImgObsWrapper` image) and the
step bookkeeping (separate `terminated` / `truncated` flags, MiniGrid's reward and horizon).
Every behavioural difference from navix's own DoorKey that MiniGrid fidelity requires is
handled here and has a regression test in `tests/envs/test_doorkey_fidelity.py` (the full
list: docs/fidelity.md).

navix contract: a `DoorKey` is usable wherever navix expects an `Environment`. Its timesteps
(`DoorKeyTimestep`) store MiniGrid's two flags, `terminated` and `truncated`, and derive navix's
`Timestep` interface from them without storing anything more: `step_type` (navix's `StepType`,
termination taking precedence), `info` (`{"return": ...}`, the undiscounted return so far) and
navix's own `is_done` / `is_start` / `is_termination` / `is_truncation` / `is_transition`.
Keeping these derived keeps the pytree of a timestep (and of every checkpointed training state
that holds one) exactly as it was. `docs/envs.md` describes the contract and both autoreset
modes; `curio_jax.envs.registration` registers the env in navix's registry.

Coordinates: navix stores positions as (row, col) = (y, x); the public `DoorKeyLayout` uses
MiniGrid's (x, y) with x the column. Directions are shared: 0 east, 1 south, 2 west, 3 north.

Observation: `uint8[7, 7, 3]` indexed `[view_x][view_y]` exactly like MiniGrid's array; the agent
sits at `[3][6]` facing "up" (decreasing view_y). Channels: object id, colour, state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array
from navix import events as nx_events
from navix import rewards as nx_rewards
from navix import terminations as nx_terminations
from navix.components import DISCARD_PILE_COORDS, EMPTY_POCKET_ID
from navix.entities import Door, Goal, Key, Player
from navix.environments.environment import Environment, Timestep
from navix.rendering.cache import RenderingCache
from navix.spaces import Continuous, Discrete
from navix.states import EventsManager, State

# MiniGrid encodings (minigrid.core.constants)
OBJ_UNSEEN, OBJ_EMPTY, OBJ_WALL, OBJ_DOOR, OBJ_KEY, OBJ_GOAL = 0, 1, 2, 4, 5, 8
COLOUR_GREEN, COLOUR_YELLOW, COLOUR_GREY = 1, 4, 5
DOOR_OPEN, DOOR_CLOSED, DOOR_LOCKED = 0, 1, 2

NUM_ACTIONS = 7
ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(NUM_ACTIONS)
VIEW = 7  # MiniGrid's agent_view_size
KEY_ID = 3  # navix Key.id matched against Door.requires
UNLOCKED = -1  # navix Door.requires of an unlocked door

# direction -> (dx, dy) in MiniGrid (x, y) coordinates
_DIR_X = np.array([1, 0, -1, 0], dtype=np.int32)
_DIR_Y = np.array([0, 1, 0, -1], dtype=np.int32)


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"DoorKey size must be an integer >= 5, got {size!r}")
    if int(size) < 5:
        raise ValueError(f"DoorKey size must be an integer >= 5, got {size!r}")
    return int(size)


# --------------------------------------------------------------------------- containers


class DoorKeyLayout(struct.PyTreeNode):
    """A DoorKey start state in MiniGrid coordinates (x = column, y = row, both counting the outer
    walls). The goal is always at (size-2, size-2). Leaves may be Python ints or int32 arrays
    (batched layouts vmap like any pytree)."""

    size: int = struct.field(pytree_node=False)
    wall_x: Any
    door_y: Any
    agent_x: Any
    agent_y: Any
    agent_dir: Any
    key_x: Any
    key_y: Any

    def validate(self) -> DoorKeyLayout:
        """Raise ValueError if a concrete layout is not one MiniGrid's generator can produce:
        wall column in [2, size-3], door row in [1, size-3], agent and key on distinct interior
        cells left of the wall, direction in [0, 4). Traced layouts are not checked."""
        size = _check_size(self.size)
        vals = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "size"}
        try:
            v = {k: np.asarray(x) for k, x in vals.items()}
        except jax.errors.TracerArrayConversionError:
            return self
        for k, arr in v.items():
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"DoorKeyLayout.{k} must be integer, got {arr.dtype}")

        def bad(name: str, msg: str) -> None:
            raise ValueError(f"DoorKeyLayout.{name} {msg} (size={size}): {v[name].tolist()}")

        if np.any((v["wall_x"] < 2) | (v["wall_x"] > size - 3)):
            bad("wall_x", f"must be in [2, {size - 3}]")
        if np.any((v["door_y"] < 1) | (v["door_y"] > size - 3)):
            bad("door_y", f"must be in [1, {size - 3}]")
        for who in ("agent", "key"):
            if np.any((v[f"{who}_x"] < 1) | (v[f"{who}_x"] >= v["wall_x"])):
                bad(f"{who}_x", "must be in [1, wall_x - 1]")
            if np.any((v[f"{who}_y"] < 1) | (v[f"{who}_y"] > size - 2)):
                bad(f"{who}_y", f"must be in [1, {size - 2}]")
        if np.any((v["agent_dir"] < 0) | (v["agent_dir"] > 3)):
            bad("agent_dir", "must be in [0, 3]")
        if np.any((v["agent_x"] == v["key_x"]) & (v["agent_y"] == v["key_y"])):
            bad("key_x", "and key_y must differ from the agent's cell")
        return self


class DoorKeyTimestep(struct.PyTreeNode):
    """One moment of a DoorKey episode: the result of the transition that produced it.

    After `ts1 = env.step(ts0, a)`: `ts1.observation` is what the agent sees now, `ts1.reward`,
    `ts1.terminated` and `ts1.truncated` belong to the transition `ts0 -> ts1`.

    It offers navix's `Timestep` interface (duck-typed: it is not a `navix.Timestep` subclass,
    whose `step_type` and `info` are stored fields): `step_type` and `info` are properties
    derived from the stored fields, and `is_done`, `is_start`, `is_termination`,
    `is_truncation`, `is_transition` are navix's own methods. Shapes below are for one
    environment; a vmapped timestep has a leading batch axis `[B]` on every field."""

    t: Array  # int32 [] steps since the episode's reset (MiniGrid's step_count)
    observation: Array  # uint8 [7, 7, 3] MiniGrid ImgObsWrapper image
    action: Array  # int32 [] the action that led here (-1 on a reset)
    reward: Array  # float32 []
    terminated: Array  # bool [] goal reached
    truncated: Array  # bool [] t >= max_steps
    state: State  # navix state (grid, entities, events, PRNG key)

    @property
    def done(self) -> Array:
        """terminated or truncated (the notebook's `done`): bool [] (or [B])."""
        return jnp.logical_or(self.terminated, self.truncated)

    @property
    def step_type(self) -> Array:
        """navix's `StepType` of the transition into this timestep, int32 [] (or [B]):
        `TERMINATION` (2) if `terminated`, else `TRUNCATION` (1) if `truncated`, else
        `TRANSITION` (0). Termination takes precedence, as in navix, so on the rare step that
        reaches the goal exactly at the horizon `truncated` is True but `is_truncation()` is
        False. Derived, not stored."""
        return nx_terminations.check_truncation(self.terminated, self.truncated)

    @property
    def info(self) -> dict[str, Array]:
        """navix's per-step extras: `{"return": float32 [] (or [B])}`, the undiscounted return
        of the episode so far. DoorKey's only non-zero reward is the one of the step that
        reaches the goal, which ends the episode, so that return equals `reward`: 0 on every
        step but the terminating one, and 0 on a (next-step) reset. With same-step autoreset
        the terminating step's timestep already shows the next episode's first observation
        and carries the finished episode's reward and return. Derived, not stored: a fresh
        dict on every access, so writing into it has no effect."""
        return {"return": self.reward}

    # navix's own predicates, which read `step_type` and `t` (see `navix.Timestep`).
    is_transition = Timestep.is_transition
    is_truncation = Timestep.is_truncation
    is_termination = Timestep.is_termination
    is_done = Timestep.is_done
    is_start = Timestep.is_start


# --------------------------------------------------------------------------- actions
# Each action is a navix-style `State -> State` function with MiniGrid's semantics.


def _front(state: State) -> tuple[Array, Array]:
    """(row, col) of the cell in front of the player, and the player."""
    player = state.get_player()
    d = player.direction
    front = player.position + jnp.stack([jnp.asarray(_DIR_Y)[d], jnp.asarray(_DIR_X)[d]])
    return front, player


def _at(a: Array, b: Array) -> Array:
    return jnp.all(a == b, axis=-1)


def _with(state: State, **entities: Any) -> State:
    ents = dict(state.entities)
    ents.update(entities)
    return state.replace(entities=ents)


def act_left(state: State) -> State:
    """Turn left (counter-clockwise)."""
    player = state.get_player()
    return state.replace(
        entities={
            **state.entities,
            "player": player.replace(direction=(player.direction + 3) % 4)[None],
        }
    )


def act_right(state: State) -> State:
    """Turn right (clockwise)."""
    player = state.get_player()
    return state.replace(
        entities={
            **state.entities,
            "player": player.replace(direction=(player.direction + 1) % 4)[None],
        }
    )


def act_forward(state: State) -> State:
    """Move forward unless the cell in front is a wall, a closed/locked door or the key.
    Entering the goal records navix's goal-reached event."""
    front, player = _front(state)
    door, key, goal = state.get_doors(), state.get_keys(), state.get_goals()
    wall = state.grid[front[0], front[1]] != 0
    blocked = (
        wall | jnp.any(_at(door.position, front) & ~door.open) | jnp.any(_at(key.position, front))
    )
    new_pos = jnp.where(blocked, player.position, front)
    hit_goal = ~blocked & _at(goal.position, front)  # [n_goals]
    events = state.events.record_goal_reached(goal, hit_goal)
    state = _with(state, player=player.replace(position=new_pos)[None])
    return state.replace(events=events)


def act_pickup(state: State) -> State:
    """Pick up the key in front, only with empty hands."""
    front, player = _front(state)
    key = state.get_keys()
    found = _at(key.position, front) & (player.pocket == EMPTY_POCKET_ID)  # [n_keys]
    new_key_pos = jnp.where(found[:, None], DISCARD_PILE_COORDS, key.position)
    pocket = jnp.where(jnp.any(found), jnp.sum(key.id * found), player.pocket)
    events = state.events.record_key_pickup(key, found)
    state = _with(
        state, player=player.replace(pocket=pocket)[None], key=key.replace(position=new_key_pos)
    )
    return state.replace(events=events)


def act_drop(state: State) -> State:
    """Drop the carried key onto the cell in front, only if that cell is empty floor (not a
    wall, door or goal). Never ends the episode (navix's drop-on-goal bug is absent)."""
    front, player = _front(state)
    key, door, goal = state.get_keys(), state.get_doors(), state.get_goals()
    empty = (
        (state.grid[front[0], front[1]] == 0)
        & ~jnp.any(_at(door.position, front))
        & ~jnp.any(_at(goal.position, front))
        & ~jnp.any(_at(key.position, front))
    )
    carried = key.id == player.pocket  # [n_keys]
    drop = empty & (player.pocket != EMPTY_POCKET_ID)
    new_key_pos = jnp.where((carried & drop)[:, None], front, key.position)
    pocket = jnp.where(drop, EMPTY_POCKET_ID, player.pocket)
    return _with(
        state, player=player.replace(pocket=pocket)[None], key=key.replace(position=new_key_pos)
    )


def act_toggle(state: State) -> State:
    """Toggle the door in front: a locked door opens (and unlocks) if the agent carries the
    matching key, which it KEEPS; an unlocked door flips open <-> closed."""
    front, player = _front(state)
    door = state.get_doors()
    facing = _at(door.position, front)  # [n_doors]
    locked = door.requires != UNLOCKED
    has_key = player.pocket == door.requires
    unlock = facing & locked & has_key
    flip = facing & ~locked
    is_open = jnp.where(unlock, True, jnp.where(flip, ~door.open, door.open))
    requires = jnp.where(unlock, UNLOCKED, door.requires)
    events = state.events.record_door_unlock(door, unlock).record_door_opening(
        door, unlock | (flip & ~door.open)
    )
    state = _with(state, door=door.replace(open=is_open, requires=requires))
    return state.replace(events=events)


def act_done(state: State) -> State:
    """MiniGrid's `done`: a no-op."""
    return state


MINIGRID_ACTION_SET = (act_left, act_right, act_forward, act_pickup, act_drop, act_toggle, act_done)


def minigrid_transition(state: State, action: Array, action_set: tuple) -> State:
    """Apply `action_set[action]`; an action outside [0, len(action_set)) acts as `done`
    (a no-op that still counts as a step), so it can never corrupt the state."""
    n = len(action_set)
    action = jnp.asarray(action, jnp.int32)
    action = jnp.where((action < 0) | (action >= n), DONE, action)
    return jax.lax.switch(action, action_set, state)


# --------------------------------------------------------------------------- observation


def _cell_codes(state: State, gx: Array, gy: Array) -> tuple[Array, Array, Array, Array]:
    """MiniGrid encoding (object, colour, state) and see-behind flag of world cells (gx, gy)
    (any matching shapes; out-of-map cells read as walls, as MiniGrid's `Grid.slice`)."""
    h, w = state.grid.shape
    inside = (gx >= 0) & (gx < w) & (gy >= 0) & (gy < h)
    wall = ~inside | (state.grid[jnp.clip(gy, 0, h - 1), jnp.clip(gx, 0, w - 1)] != 0)
    door, key, goal = state.get_doors(), state.get_keys(), state.get_goals()
    is_door = (gy == door.position[0, 0]) & (gx == door.position[0, 1])
    is_key = (gy == key.position[0, 0]) & (gx == key.position[0, 1])
    is_goal = (gy == goal.position[0, 0]) & (gx == goal.position[0, 1])
    door_open = door.open[0]
    door_state = jnp.where(
        door_open, DOOR_OPEN, jnp.where(door.requires[0] != UNLOCKED, DOOR_LOCKED, DOOR_CLOSED)
    )
    obj = jnp.select(
        [wall, is_door, is_key, is_goal], [OBJ_WALL, OBJ_DOOR, OBJ_KEY, OBJ_GOAL], OBJ_EMPTY
    )
    colour = jnp.select(
        [wall, is_door, is_key, is_goal],
        [COLOUR_GREY, COLOUR_YELLOW, COLOUR_YELLOW, COLOUR_GREEN],
        0,
    )
    st = jnp.where(is_door & ~wall, door_state, 0)
    see_behind = ~wall & ~(is_door & ~door_open)
    return obj, colour, st, see_behind


def _row_sweep_table() -> np.ndarray:
    """MiniGrid's `process_vis` restricted to one view row, for every (seed, see-behind) pair.

    A row is a 7-bit integer (bit i = view_x i). `seed` holds the row's cells already marked
    visible by the row below (nearer the agent), `sb` the row's see-behind cells. Entry
    `seed | sb << 7` packs the row's final visible bits (low 7 bits) and the cells it marks
    visible in the next row away from the agent (bits 7..13). The two sweeps are exactly
    `process_vis`'s: left to right over i in [0, 5], then right to left over i in [6, 1]."""
    idx = np.arange(1 << (2 * VIEW), dtype=np.int64)
    seed, sb = idx & 127, idx >> VIEW
    bit = [(1 << i) for i in range(VIEW)]
    mask = seed.copy()
    nxt = np.zeros_like(seed)
    for i in range(VIEW - 1):  # left to right
        go = ((mask & bit[i]) != 0) & ((sb & bit[i]) != 0)
        mask |= np.where(go, bit[i + 1], 0)
        nxt |= np.where(go, bit[i] | bit[i + 1], 0)
    for i in range(VIEW - 1, 0, -1):  # right to left
        go = ((mask & bit[i]) != 0) & ((sb & bit[i]) != 0)
        mask |= np.where(go, bit[i - 1], 0)
        nxt |= np.where(go, bit[i] | bit[i - 1], 0)
    return (mask | (nxt << VIEW)).astype(np.int32)


_ROW_SWEEP = _row_sweep_table()


def _visibility(see_behind: Array) -> Array:
    """MiniGrid's `Grid.process_vis` on the 7x7 view (bool [view_x, view_y] -> bool same).

    Rows are processed from the agent's row (view_y = 6) away from it, one lookup in a
    precomputed table of the row's two sweeps per row (see `_row_sweep_table`)."""
    table = jnp.asarray(_ROW_SWEEP)
    weights = jnp.asarray(1 << np.arange(VIEW), jnp.int32)
    sb_rows = jnp.sum(see_behind.astype(jnp.int32) * weights[:, None], axis=0)  # [view_y]
    rows = [None] * VIEW
    seed = jnp.asarray(1 << (VIEW // 2), jnp.int32)  # the agent's own cell (3, 6)
    for j in range(VIEW - 1, -1, -1):
        entry = table[seed | (sb_rows[j] << VIEW)]
        rows[j] = entry & 127
        seed = entry >> VIEW
    packed = jnp.stack(rows)  # [view_y]
    return ((packed[None, :] >> jnp.arange(VIEW, dtype=jnp.int32)[:, None]) & 1).astype(bool)


def minigrid_observation(state: State) -> Array:
    """MiniGrid's `ImgObsWrapper` image of `state`: uint8 [7, 7, 3] indexed [view_x][view_y].

    The 7x7 window ahead of the agent, rotated so the agent faces decreasing view_y, with
    MiniGrid's occlusion (cells hidden behind walls and closed doors are (0, 0, 0)) and the
    agent's own cell showing what it carries."""
    player = state.get_player()
    ay, ax = player.position[0], player.position[1]
    d = player.direction
    fx, fy = jnp.asarray(_DIR_X)[d], jnp.asarray(_DIR_Y)[d]
    rx, ry = -fy, fx  # the agent's right
    vx = jnp.arange(VIEW, dtype=jnp.int32)[:, None]  # [7, 1]
    vy = jnp.arange(VIEW, dtype=jnp.int32)[None, :]  # [1, 7]
    ahead = (VIEW - 1) - vy
    lateral = vx - VIEW // 2
    gx = ax + fx * ahead + rx * lateral  # [7, 7]
    gy = ay + fy * ahead + ry * lateral
    obj, colour, st, see_behind = _cell_codes(state, gx, gy)
    visible = _visibility(see_behind)
    img = jnp.stack([obj, colour, st], axis=-1).astype(jnp.uint8)
    img = jnp.where(visible[..., None], img, jnp.uint8(OBJ_UNSEEN))
    carrying = player.pocket != EMPTY_POCKET_ID
    own = jnp.where(
        carrying,
        jnp.asarray([OBJ_KEY, COLOUR_YELLOW, 0], jnp.uint8),
        jnp.asarray([OBJ_EMPTY, 0, 0], jnp.uint8),
    )
    return img.at[VIEW // 2, VIEW - 1].set(own)


# --------------------------------------------------------------------------- environment


def _reward_table(max_steps: int) -> np.ndarray:
    """MiniGrid's success reward `1 - 0.9 * (step_count / max_steps)` for every step count,
    computed in float64 as MiniGrid does and rounded once to float32."""
    return np.array([1 - 0.9 * (t / max_steps) for t in range(max_steps + 1)], dtype=np.float32)


_EMPTY_CACHE = RenderingCache(patches=jnp.zeros((0,), jnp.uint8))


class DoorKey(Environment):
    """MiniGrid-faithful `MiniGrid-DoorKey-{size}x{size}-v0` (+ `ImgObsWrapper`) on navix.

    Build with :func:`make_doorkey`. `reset`, `reset_to` and `step` are pure and jittable; vmap
    them for batches.

    navix's RGB rendering cache (`State.cache`) is filled by default, as in navix's own
    environments: `rgb_cache=True` holds navix's `RenderingCache` of the layout's grid
    (u8[size*size+1, 8, 8, 3] per environment), which navix's PPO and PQN need (they reshape
    every leaf of the stored states with a -1 axis, impossible on a zero-size array) and which
    `navix.observations.rgb` draws from. `rgb_cache=False` leaves it empty (a zero-size array):
    the observations are symbolic and `curio_jax.analysis.render` draws frames on the host, so
    curio_jax's own training, evaluation and adapters build their envs that way, which keeps
    the training state small and its checkpoints unchanged. The cache changes nothing else."""

    autoreset_mode: str = struct.field(pytree_node=False, default="next_step")
    rgb_cache: bool = struct.field(pytree_node=False, default=True)

    @property
    def size(self) -> int:
        return self.height

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    @property
    def num_visit_cells(self) -> int:
        """How many cells `visit_index` tells apart (count-based bonuses size their tables)."""
        return num_visit_cells(self.size)

    def visit_index(self, timestep: DoorKeyTimestep) -> Array:
        """The visit cell of a (batched) timestep: see the module function `visit_index`."""
        return visit_index(timestep)

    # ---- reset
    def _reset(self, key: Array, cache: RenderingCache | None = None) -> DoorKeyTimestep:  # type: ignore[override]
        """navix's extension point: the first timestep of an episode drawn with `key`."""
        return self.reset(key)

    def sample_layout(self, key: Array) -> DoorKeyLayout:
        """MiniGrid's `DoorKeyEnv._gen_grid` distribution: wall column uniform in [2, size-3],
        door row uniform in [1, size-3], agent uniform over the cells left of the wall with a
        uniform direction, key uniform over the remaining cells left of the wall."""
        size = self.size
        k_wall, k_door, k_agent, k_dir, k_key = jax.random.split(key, 5)
        wall_x = jax.random.randint(k_wall, (), 2, size - 2)
        door_y = jax.random.randint(k_door, (), 1, size - 2)
        cols = wall_x - 1  # interior columns left of the wall
        n_cells = cols * (size - 2)
        agent_i = jax.random.randint(k_agent, (), 0, n_cells)
        key_i = jax.random.randint(k_key, (), 0, n_cells - 1)
        key_i = key_i + (key_i >= agent_i)
        return DoorKeyLayout(
            size=size,
            wall_x=wall_x,
            door_y=door_y,
            agent_x=1 + agent_i % cols,
            agent_y=1 + agent_i // cols,
            agent_dir=jax.random.randint(k_dir, (), 0, 4),
            key_x=1 + key_i % cols,
            key_y=1 + key_i // cols,
        )

    def state_from_layout(self, layout: DoorKeyLayout, key: Array) -> State:
        """The navix state of a layout (agent empty-handed, door locked)."""
        size = self.size
        if layout.size != size:
            raise ValueError(f"layout is for size {layout.size}, this env has size {size}")
        i32 = jnp.int32
        wall_x, door_y = jnp.asarray(layout.wall_x, i32), jnp.asarray(layout.door_y, i32)
        rows = jnp.arange(size)[:, None]
        cols = jnp.arange(size)[None, :]
        frame = (rows == 0) | (rows == size - 1) | (cols == 0) | (cols == size - 1)
        split = (cols == wall_x) & (rows != door_y)
        grid = jnp.where(frame | split, -1, 0).astype(i32)
        player = Player.create(
            position=jnp.stack([layout.agent_y, layout.agent_x]).astype(i32),
            direction=jnp.asarray(layout.agent_dir, i32),
            pocket=EMPTY_POCKET_ID,
        )
        keys = Key.create(
            position=jnp.stack([layout.key_y, layout.key_x]).astype(i32),
            colour=COLOUR_YELLOW,
            id=jnp.asarray(KEY_ID, i32),
        )
        doors = Door.create(
            position=jnp.stack([door_y, wall_x]),
            requires=jnp.asarray(KEY_ID, i32),
            open=jnp.asarray(False),
            colour=COLOUR_YELLOW,
        )
        goals = Goal.create(
            position=jnp.asarray([size - 2, size - 2], i32), probability=jnp.asarray(1.0)
        )
        entities = {
            "player": player[None],
            "key": keys[None],
            "door": doors[None],
            "goal": goals[None],
        }
        cache = RenderingCache.init(grid) if self.rgb_cache else _EMPTY_CACHE
        return State(key=key, grid=grid, cache=cache, entities=entities)

    def _first_timestep(self, state: State) -> DoorKeyTimestep:
        return DoorKeyTimestep(
            t=jnp.asarray(0, jnp.int32),
            observation=self.observation_fn(state),
            action=jnp.asarray(-1, jnp.int32),
            reward=jnp.asarray(0.0, jnp.float32),
            terminated=jnp.asarray(False),
            truncated=jnp.asarray(False),
            state=state,
        )

    def reset(self, key: Array, cache: RenderingCache | None = None) -> DoorKeyTimestep:  # type: ignore[override]
        """A new episode from MiniGrid's layout distribution (`cache` is ignored)."""
        k_layout, k_state = jax.random.split(key)
        layout = self.sample_layout(k_layout)
        return self._first_timestep(self.state_from_layout(layout, k_state))

    def reset_to(self, layout: DoorKeyLayout, key: Array | None = None) -> DoorKeyTimestep:
        """The start state of a given layout. `key` seeds later autoresets (default key 0).
        A concrete layout is validated (ValueError on an impossible one)."""
        layout.validate()
        if key is None:
            key = jax.random.key(0)
        return self._first_timestep(self.state_from_layout(layout, key))

    # ---- step
    def step(self, timestep: DoorKeyTimestep, action: Array) -> DoorKeyTimestep:  # type: ignore[override]
        """Advance one step: `timestep` of one environment, `action` int32 [] (vmap for
        batches). An action outside [0, 7) acts as `done` (a no-op step).

        `next_step` autoreset (navix's and gymnasium's): if `timestep` ended an episode the
        action is ignored and the next episode's first timestep is returned (t 0, reward 0,
        flags False, `step_type` TRANSITION, `is_start()`), exactly what navix's
        `Environment.step` returns. `same_step` (gymnax's): a step that ends an episode returns
        the next episode's first observation and state (t 0, `is_start()`) with this step's
        reward and flags (`is_done()`), so no dummy transition exists. With
        `disable_autoreset=True` (navix's switch) no reset ever happens: episode boundaries
        are the caller's business, and the step is `_step`.

        Both the stepped and the reset state are computed (as any batched cond would) and the
        observation is rendered once, from the selected state."""
        if self.disable_autoreset:
            return self._step(timestep, action)
        nxt = self._transition(timestep, action)
        k_layout, k_next = jax.random.split(timestep.state.key)
        fresh = self.state_from_layout(self.sample_layout(k_layout), k_next)
        if self.autoreset_mode == "next_step":
            reset = timestep.done
            reward = jnp.where(reset, 0.0, nxt.reward)
            terminated = ~reset & nxt.terminated
            truncated = ~reset & nxt.truncated
            action = jnp.where(reset, -1, nxt.action)
        else:
            reset = nxt.done
            reward, terminated, truncated, action = (
                nxt.reward,
                nxt.terminated,
                nxt.truncated,
                nxt.action,
            )
        state = jax.tree.map(lambda a, b: jnp.where(reset, a, b), fresh, nxt.state)
        return DoorKeyTimestep(
            t=jnp.where(reset, 0, nxt.t),
            observation=self.observation_fn(state),
            action=action,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            state=state,
        )

    def _transition(self, timestep: DoorKeyTimestep, action: Array) -> DoorKeyTimestep:
        """One MiniGrid step without autoreset; the observation field is left stale."""
        prev = timestep.state
        fresh_events = EventsManager.create(prev.entities)
        state = self.transitions_fn(prev.replace(events=fresh_events), action, self.action_set)
        t = timestep.t + 1
        terminated = self.termination_fn(prev, action, state)
        truncated = t >= self.max_steps
        # navix's goal reward (1.0) scaled by MiniGrid's time discount, bit-exact in float32
        discount = jnp.asarray(_reward_table(self.max_steps))[jnp.minimum(t, self.max_steps)]
        base = jnp.asarray(self.reward_fn(prev, action, state), jnp.float32)
        reward = jnp.where(terminated, base * discount, jnp.float32(0.0))
        return timestep.replace(
            t=t,
            action=jnp.asarray(action, jnp.int32),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            state=state,
        )

    def _step(self, timestep: DoorKeyTimestep, action: Array) -> DoorKeyTimestep:  # type: ignore[override]
        """One MiniGrid step without autoreset (navix's extension point)."""
        nxt = self._transition(timestep, action)
        return nxt.replace(observation=self.observation_fn(nxt.state))


def _terminated_on_goal(prev_state: State, action: Array, state: State) -> Array:
    """Goal reached this step (navix's goal-reached event, recorded by `act_forward`)."""
    return jnp.asarray(nx_events.on_goal_reached(prev_state, action, state), dtype=jnp.bool_)


def max_steps(size: int) -> int:
    """MiniGrid DoorKey's horizon: 10 * size^2 steps (250, 640, 2560). The one place it is
    computed."""
    return 10 * _check_size(size) ** 2


def make_doorkey(
    size: int = 8,
    autoreset: str = "next_step",
    rgb_cache: bool = True,
    disable_autoreset: bool = False,
) -> DoorKey:
    """MiniGrid-faithful DoorKey of side `size` (outer walls included; any integer >= 5).

    `autoreset`: "next_step" (gymnasium vector envs, navix, the seed) or "same_step" (gymnax).
    `rgb_cache`: fill navix's rendering cache (the default; needed by navix's PPO / PQN and by
    `navix.observations.rgb`). False leaves it empty, as curio_jax's training does (see
    `DoorKey`).
    `disable_autoreset`: navix's switch; `step` never resets (replaying or evaluating single
    episodes, whose ends the caller handles)."""
    size = _check_size(size)
    if autoreset not in ("next_step", "same_step"):
        raise ValueError(f"autoreset must be 'next_step' or 'same_step', got {autoreset!r}")
    for name, v in (("rgb_cache", rgb_cache), ("disable_autoreset", disable_autoreset)):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be a bool, got {v!r}")
    return DoorKey(
        height=size,
        width=size,
        max_steps=max_steps(size),
        observation_space=Discrete.create(n_elements=256, shape=(VIEW, VIEW, 3), dtype=jnp.uint8),
        action_space=Discrete.create(NUM_ACTIONS),
        reward_space=Continuous.create(
            shape=(), minimum=jnp.asarray(0.0), maximum=jnp.asarray(1.0)
        ),
        observation_fn=minigrid_observation,
        reward_fn=nx_rewards.on_goal_reached,
        termination_fn=_terminated_on_goal,
        transitions_fn=minigrid_transition,
        action_set=MINIGRID_ACTION_SET,
        penalty_coeff=0.9,
        disable_autoreset=disable_autoreset,
        autoreset_mode=autoreset,
        rgb_cache=rgb_cache,
    )


def layout_of(timestep: DoorKeyTimestep) -> DoorKeyLayout:
    """The layout of a start state (works on batched timesteps too). The key must be on the
    floor and the door locked, as in any start state."""
    state = timestep.state
    player = state.entities["player"]
    key = state.entities["key"]
    door = state.entities["door"]
    size = state.grid.shape[-1]
    return DoorKeyLayout(
        size=int(size),
        wall_x=door.position[..., 0, 1],
        door_y=door.position[..., 0, 0],
        agent_x=player.position[..., 0, 1],
        agent_y=player.position[..., 0, 0],
        agent_dir=player.direction[..., 0],
        key_x=key.position[..., 0, 1],
        key_y=key.position[..., 0, 0],
    )


def num_visit_cells(size: int) -> int:
    """How many values `visit_index` takes on DoorKey-`size`: position x direction x carrying x
    door state (locked, closed, open)."""
    return _check_size(size) ** 2 * 4 * 2 * 3


def visit_index(timestep: DoorKeyTimestep) -> Array:
    """The "cell" a count-based exploration bonus counts: the agent's position, direction,
    whether it carries the key and the door's state (locked / closed / open), as one int32 in
    [0, num_visit_cells(size)) (works on batched timesteps: int32 [B]). Read from the state, so
    it is exact, not an observation hash."""
    state = timestep.state
    size = state.grid.shape[-1]
    player = state.entities["player"]
    door = state.entities["door"]
    row, col = player.position[..., 0, 0], player.position[..., 0, 1]
    direction = player.direction[..., 0]
    carrying = (player.pocket[..., 0] != EMPTY_POCKET_ID).astype(jnp.int32)
    locked = door.requires[..., 0] != UNLOCKED
    door_state = jnp.where(locked, 0, jnp.where(door.open[..., 0], 2, 1))
    cell = (row * size + col) * 4 + direction
    return ((cell * 2 + carrying) * 3 + door_state).astype(jnp.int32)
