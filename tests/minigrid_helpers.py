"""Helpers for the lockstep tests: a scripted DoorKey policy on gymnasium MiniGrid and a batched
replay of action sequences in curio_jax."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from curio_jax.envs import DoorKeyLayout

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
DIRS = [(1, 0), (0, 1), (-1, 0), (0, -1)]


def _passable(u, x, y, allow_goal=False):
    cell = u.grid.get(x, y)
    if cell is None:
        return True
    if cell.type == "door":
        return cell.is_open
    if cell.type == "goal":
        return allow_goal
    return False


def _turns(cur, want):
    diff = (want - cur) % 4
    return {0: [], 1: [RIGHT], 2: [RIGHT, RIGHT], 3: [LEFT]}[diff]


def plan_to_face(u, target, allow_goal=False):
    """Actions that bring the agent next to `target` (x, y), facing it (BFS over free cells)."""
    start = tuple(int(c) for c in u.agent_pos)
    prev = {start: None}
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
    """Runs the scripted DoorKey solution on a MiniGrid env, recording every action:
    pick up the key, unlock (toggle), re-close, re-open, try to drop onto the open door,
    drop the key on the floor and pick it up again, try to drop facing the goal, reach it."""

    def __init__(self, env):
        self.env = env
        self.u = env.unwrapped
        self.actions: list[int] = []
        self.obs: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []
        self.done = False

    def do(self, actions):
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

    def find(self, kind):
        for x in range(self.u.width):
            for y in range(self.u.height):
                c = self.u.grid.get(x, y)
                if c is not None and c.type == kind:
                    return (x, y)
        return None

    def run(self, rng: np.random.Generator):
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


def stack_layouts(layouts: list[DoorKeyLayout]) -> DoorKeyLayout:
    fields = ("wall_x", "door_y", "agent_x", "agent_y", "agent_dir", "key_x", "key_y")
    return DoorKeyLayout(
        size=layouts[0].size,
        **{
            f: jnp.asarray([int(np.asarray(getattr(lay, f))) for lay in layouts], jnp.int32)
            for f in fields
        },
    )


def replay(env, layouts: list[DoorKeyLayout], actions: np.ndarray):
    """Replay action sequences [N, T] from the given start layouts in curio_jax without
    autoreset. Returns numpy obs [N, T, 7, 7, 3], rewards, terminated, truncated [N, T] and the
    first observations [N, 7, 7, 3]."""
    for lay in layouts:
        lay.validate()
    batch = stack_layouts(layouts)

    @jax.jit
    def run(batch, actions):
        ts0 = jax.vmap(lambda lay: env.reset_to(lay, jax.random.key(0)))(batch)

        def body(ts, a):
            ts = jax.vmap(env._step)(ts, a)
            return ts, (ts.observation, ts.reward, ts.terminated, ts.truncated)

        _, out = jax.lax.scan(body, ts0, jnp.swapaxes(actions, 0, 1))
        return ts0.observation, out

    first, (obs, rew, term, trunc) = run(batch, jnp.asarray(actions, jnp.int32))
    sw = lambda x: np.swapaxes(np.asarray(x), 0, 1)  # noqa: E731
    return sw(obs), sw(rew), sw(term), sw(trunc), np.asarray(first)
