"""The notebook's networks and agents (A2C, A2C + RND) in PyTorch, plus the environment and
seeding helpers, and a step-by-step learning API for cross-checks against the JAX learner.

Faithful to the notebook (see ``docs/semantics.md``): PyTorch default
initialisation, RMSprop (lr 1e-4, alpha 0.99, eps 1e-8) over actor-critic + predictor, per-group
global-norm clipping (0.5 / 0.01), RND in eval mode for the intrinsic reward and in train mode
(dropout 0.25) for its loss, and two independent permutations in the RND agent's learning step
unless ``shared_permutation=True`` (the corrected variant).

The agent's ``learn(segment)`` is :func:`one_update`, built from pieces a test can call one by
one on a fixed batch with fixed permutations:

    targets = compute_targets(agent, segment)              # GAE, intrinsic reward (no grad)
    perm_ext, perm_int = draw_permutations(agent, T * N)   # or pass your own
    batch = make_batch(segment, targets, perm_ext, perm_int)
    terms = loss_terms(agent, batch, rnd_deterministic=True)          # tensors with grad
    stats, grads = loss_and_grads(agent, batch, rnd_deterministic=True)
    norms = apply_gradients(agent)                         # clip per group + RMSprop step

Torch RNG draws happen in the notebook's order: the action sampled while evaluating
next_start_obs, the permutation(s), then the predictor's dropout masks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from minigrid.wrappers import ImgObsWrapper

from curio_jax.envs.gym_vector import make_vec
from curio_jax.reference.rl_algos import (
    DEVICE,
    BaseAgent,
    TrajectorySegment,
    compute_advantages_and_returns,
)

# --------------------------------------------------------------------------- environment


def doorkey_env_id(size: int) -> str:
    """Gymnasium id of MiniGrid's DoorKey of the given size (5, 6, 8 and 16 are registered)."""
    return f"MiniGrid-DoorKey-{size}x{size}-v0"


def make_minigrid_env(
    size: int = 5, num_envs: int = 32, backend: str = "minigrid"
) -> gym.vector.VectorEnv:
    """The notebook's `make_minigrid_env`: a sync vector env (next-step autoreset) of
    ImgObsWrapper(DoorKey) with vector `RecordEpisodeStatistics` (return_queue of 100).

    `backend="curio_jax"`: the same interface backed by the JAX DoorKey
    (`curio_jax.gym.make_vec`, one compiled program per step; any size >= 5), which emits what
    MiniGrid's emits for the same layouts and actions (its layouts come from a JAX PRNG)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 5:
        raise ValueError(f"size must be an integer >= 5, got {size!r}")
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if backend == "curio_jax":
        return RecordEpisodeStatistics(make_vec(doorkey_env_id(size), num_envs=num_envs))
    if backend != "minigrid":
        raise ValueError(f"backend must be 'minigrid' or 'curio_jax', got {backend!r}")
    env_id = doorkey_env_id(size)
    if env_id not in gym.registry:  # importing minigrid (above) registered its ids
        raise ValueError(f"{env_id} is not a registered gymnasium environment")
    env = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync", wrappers=[ImgObsWrapper]
    )
    return RecordEpisodeStatistics(env)


def init_random(env: gym.vector.VectorEnv | None = None, seed: int = 10):
    """The notebook's `init_random`: seed python, numpy and torch (deterministic algorithms on),
    then `env.reset(seed=seed)` (env i gets seed + i).

    The notebook also assigned `env.np_random`; gymnasium 1.x vector envs have no setter for it,
    and their seeded `reset` re-seeds that same generator anyway, so it is not repeated here."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the notebook seeds numpy's global generator
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if env is not None:
        env.reset(seed=seed)
    return env


# --------------------------------------------------------------------------- networks


def convolutional_embedding(input_channels: int = 3) -> nn.Sequential:
    """Shared torso: 3 x (Conv 2x2, ReLU), flattened channel-major -> 1024 features on 7x7."""
    return nn.Sequential(
        nn.Conv2d(input_channels, 16, (2, 2)),
        nn.ReLU(),
        nn.Conv2d(16, 32, (2, 2)),
        nn.ReLU(),
        nn.Conv2d(32, 64, (2, 2)),
        nn.ReLU(),
        nn.Flatten(),
    )


class ActorCritic(nn.Module):
    """Shared torso, a policy head and two value heads (extrinsic, intrinsic)."""

    def __init__(self, action_dim: int = 7, hidden_dim: int = 64):
        super().__init__()
        self.features = convolutional_embedding()
        self.policy_head = nn.Sequential(
            nn.Linear(1024, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, action_dim)
        )
        self.value_extr_head = nn.Sequential(
            nn.Linear(1024, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1)
        )
        self.value_intr_head = nn.Sequential(
            nn.Linear(1024, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1)
        )

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, 3, 7, 7] -> (logits [B, A], value_ext [B], value_int [B])."""
        h = self.features(x)
        logits = self.policy_head(h)
        return logits, self.value_extr_head(h).flatten(), self.value_intr_head(h).flatten()

    def forward(self, x: torch.Tensor) -> tuple[torch.distributions.Categorical, torch.Tensor]:
        """x [B, 3, 7, 7] -> (Categorical(logits), values [B, 2] = (ext, int))."""
        logits, v_ext, v_int = self.forward_raw(x)
        values = torch.stack([v_ext, v_int], dim=1)
        return torch.distributions.Categorical(logits=logits), values


class RNDModule(nn.Module):
    """Random Network Distillation: a trainable predictor (with dropout) and a frozen target.

    `forward(obs)` returns the per-sample prediction error mean((target - predictor)^2, -1).
    """

    def __init__(self, hidden_dim: int = 256, dropout: float = 0.25):
        super().__init__()
        self.dropout = dropout
        self.predictor = nn.Sequential(
            convolutional_embedding(),
            nn.Linear(1024, hidden_dim),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
        )
        self.target = nn.Sequential(convolutional_embedding(), nn.Linear(1024, hidden_dim))
        for p in self.target.parameters():
            p.requires_grad = False

    def predict(
        self, obs: torch.Tensor, dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Predictor output [B, F]. With `dropout_masks` (two {0,1} tensors [B, F], 1 = keep)
        they replace the Dropout layers' own draws (kept units scaled by 1 / (1 - p))."""
        if dropout_masks is None:
            return self.predictor(obs)
        p = self.predictor
        scale = 1.0 / (1.0 - self.dropout)
        h = p[1](p[0](obs))
        h = torch.relu(h * dropout_masks[0] * scale)
        h = p[4](h)
        h = torch.relu(h * dropout_masks[1] * scale)
        return p[7](h)

    def forward(
        self, obs: torch.Tensor, dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """obs [B, 3, 7, 7] -> intrinsic reward / prediction error [B]."""
        target_out = self.target(obs).detach()
        pred_out = self.predict(obs, dropout_masks)
        return F.mse_loss(target_out, pred_out, reduction="none").mean(-1)


# --------------------------------------------------------------------------- agents


class AgentA2C(BaseAgent):
    """The notebook's plain A2C agent (the intrinsic value head exists but is not trained).

    `adv_coef_ext` (1 in the notebook) scales the advantage in the policy loss; `gae_lambda`
    is the helper's default 0.98."""

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        gamma: float = 0.99,
        lr: float = 0.0001,
        vloss_coeff: float = 0.5,
        ent_coeff: float = 0.01,
        max_grad_norm: float = 0.5,
        *,
        hidden_dim: int = 64,
        gae_lambda: float = 0.98,
        adv_coef_ext: float = 1.0,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = 1e-8,
    ):
        self.env = env
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.vloss_coeff = vloss_coeff
        self.ent_coeff = ent_coeff
        self.max_grad_norm_ac = max_grad_norm
        self.eta_extr = adv_coef_ext
        self.model = ActorCritic(env.single_action_space.n, hidden_dim).to(DEVICE)
        self.rnd_module: RNDModule | None = None
        self.optimizer = torch.optim.RMSprop(
            self.model.parameters(), lr=lr, alpha=rmsprop_alpha, eps=rmsprop_eps
        )

    @property
    def max_grad_norm(self) -> float:
        return self.max_grad_norm_ac

    @torch.no_grad()
    def eval(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dist, values = self.model(obs.permute(0, 3, 1, 2))
        action = dist.sample()
        return action, dist.log_prob(action), values

    def learn(self, segment: TrajectorySegment) -> dict:
        return one_update(self, segment)


class AgentA2CWithRND(AgentA2C):
    """The notebook's A2C + RND agent. `shared_permutation=True` is the corrected variant (one
    permutation for observations, actions and both advantage/return streams)."""

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        gamma: float = 0.99,
        lr: float = 0.0001,
        vloss_coeff: float = 0.5,
        ent_coeff: float = 0.01,
        max_grad_norm_ac: float = 0.5,
        gamma_rnd: float = 0.99,
        eta_extr: float = 100.0,
        eta_intr: float = 10.0,
        max_grad_norm_rnd: float = 0.01,
        *,
        hidden_dim: int = 64,
        gae_lambda: float = 0.98,
        rnd_feature_dim: int = 256,
        rnd_dropout: float = 0.25,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = 1e-8,
        shared_permutation: bool = False,
    ):
        self.env = env
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.vloss_coeff = vloss_coeff
        self.ent_coeff = ent_coeff
        self.max_grad_norm_ac = max_grad_norm_ac
        self.gamma_rnd = gamma_rnd
        self.eta_extr = eta_extr
        self.eta_intr = eta_intr
        self.max_grad_norm_rnd = max_grad_norm_rnd
        self.shared_permutation = shared_permutation
        # Construction order as in the seed: actor-critic first, then predictor, then target.
        self.model = ActorCritic(env.single_action_space.n, hidden_dim).to(DEVICE)
        self.rnd_module = RNDModule(rnd_feature_dim, rnd_dropout).to(DEVICE)
        self.optimizer = torch.optim.RMSprop(
            list(self.model.parameters()) + list(self.rnd_module.predictor.parameters()),
            lr=lr,
            alpha=rmsprop_alpha,
            eps=rmsprop_eps,
        )


def make_agent(cfg, env: gym.vector.VectorEnv) -> AgentA2C:
    """The agent a `curio_jax.config.TrainConfig` describes (raises ValueError for settings the
    reference does not implement: see `unsupported_settings`)."""
    bad = unsupported_settings(cfg)
    if bad:
        raise ValueError(f"the torch reference does not implement: {', '.join(bad)}")
    a = cfg.train
    common = dict(
        gamma=a.gamma,
        lr=a.lr,
        vloss_coeff=a.value_coef,
        ent_coeff=a.entropy_coef,
        hidden_dim=a.hidden_dim,
        gae_lambda=a.gae_lambda,
        rmsprop_alpha=cfg.a2c.rmsprop_decay,
        rmsprop_eps=cfg.a2c.rmsprop_eps,
    )
    if not cfg.bonus.enabled:
        return AgentA2C(env, max_grad_norm=a.max_grad_norm, adv_coef_ext=a.adv_coef_ext, **common)
    r = cfg.bonus
    return AgentA2CWithRND(
        env,
        max_grad_norm_ac=a.max_grad_norm,
        gamma_rnd=r.gamma_int,
        eta_extr=a.adv_coef_ext,
        eta_intr=r.adv_coef_int,
        max_grad_norm_rnd=r.max_grad_norm,
        rnd_feature_dim=r.feature_dim,
        rnd_dropout=r.dropout,
        shared_permutation=cfg.shared_permutation,
        **common,
    )


def unsupported_settings(cfg) -> list[str]:
    """Config fields set to something the reference does not implement (empty: all fine)."""
    bad = []
    if cfg.env.autoreset != "next_step":
        bad.append(f"env.autoreset={cfg.env.autoreset}")
    if cfg.bootstrap_truncation:
        bad.append("bootstrap_truncation")
    if cfg.mask_reset_transition:
        bad.append("mask_reset_transition")
    if not cfg.bonus.episodic_int:
        bad.append("bonus.episodic_int=False")
    if cfg.bonus.obs_norm:
        bad.append("bonus.obs_norm")
    if cfg.bonus.reward_norm:
        bad.append("bonus.reward_norm")
    if cfg.bonus.kind not in ("none", "rnd"):
        bad.append(f"bonus.kind={cfg.bonus.kind}")
    return bad


# --------------------------------------------------------------------------- learning step


@dataclass
class LearnTargets:
    """What the learning step computes without gradients, time-major [T, N]."""

    adv_ext: torch.Tensor  # [T, N]
    ret_ext: torch.Tensor  # [T, N]
    next_values: torch.Tensor  # [N, 2] values of next_start_obs
    reward_int: torch.Tensor | None = None  # [T, N] RND error on next_obs (eval mode)
    adv_int: torch.Tensor | None = None  # [T, N]
    ret_int: torch.Tensor | None = None  # [T, N]


@dataclass
class Batch:
    """One flattened, permuted learning batch of B = T * N samples."""

    obs: torch.Tensor  # [B, 3, 7, 7] float32 (NCHW, as the torch networks take it)
    actions: torch.Tensor  # [B]
    adv_ext: torch.Tensor  # [B]
    ret_ext: torch.Tensor  # [B]
    adv_int: torch.Tensor | None = None  # [B]
    ret_int: torch.Tensor | None = None  # [B]


def _has_rnd(agent: AgentA2C) -> bool:
    return agent.rnd_module is not None


@torch.no_grad()
def compute_targets(agent: AgentA2C, segment: TrajectorySegment) -> LearnTargets:
    """Advantages and returns of both streams and the intrinsic reward (RND in eval mode, back
    in train mode afterwards). Samples one action from the torch RNG, as the notebook does."""
    _, _, next_values = agent.eval(segment.next_start_obs)
    values = segment.values
    v_ext = values[:, :, 0] if values.dim() == 3 else values
    adv_ext, ret_ext = compute_advantages_and_returns(
        segment.rewards,
        segment.dones,
        v_ext,
        next_values[:, 0],
        gamma=agent.gamma,
        gae_lambda=agent.gae_lambda,
    )
    out = LearnTargets(adv_ext=adv_ext, ret_ext=ret_ext, next_values=next_values)
    if _has_rnd(agent):
        t, n = segment.rewards.shape
        next_obs = segment.next_obs().flatten(0, 1).permute(0, 3, 1, 2)
        agent.rnd_module.eval()
        reward_int = agent.rnd_module(next_obs).reshape(t, n)
        agent.rnd_module.train()
        adv_int, ret_int = compute_advantages_and_returns(
            reward_int,
            segment.dones,
            values[:, :, 1],
            next_values[:, 1],
            gamma=agent.gamma_rnd,
            gae_lambda=agent.gae_lambda,
        )
        out.reward_int, out.adv_int, out.ret_int = reward_int, adv_int, ret_int
    return out


def draw_permutations(
    agent: AgentA2C, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(perm_ext, perm_int) as the agent's learning step draws them: the RND agent draws a
    second, independent permutation for the intrinsic targets (the notebook's quirk) unless
    `shared_permutation`; plain A2C draws one (perm_int None)."""
    perm_ext = torch.randperm(n, generator=generator)
    if not _has_rnd(agent):
        return perm_ext, None
    if agent.shared_permutation:
        return perm_ext, perm_ext
    return perm_ext, torch.randperm(n, generator=generator)


def make_batch(
    segment: TrajectorySegment,
    targets: LearnTargets,
    perm_ext: torch.Tensor,
    perm_int: torch.Tensor | None = None,
) -> Batch:
    """Flatten [T, N] -> T*N; obs, actions and the extrinsic targets are indexed by perm_ext,
    the intrinsic targets by perm_int (batch[i] = flat[perm[i]])."""
    n = segment.rewards.numel()
    for name, perm in (("perm_ext", perm_ext), ("perm_int", perm_int)):
        if perm is None:
            continue
        ok = perm.shape == (n,) and torch.equal(torch.sort(perm).values, torch.arange(n))
        if not ok:
            raise ValueError(f"{name} must be a permutation of range({n})")
    obs = segment.obs.permute(0, 1, 4, 2, 3).flatten(0, 1)[perm_ext]
    batch = Batch(
        obs=obs,
        actions=segment.actions.flatten(0, 1)[perm_ext],
        adv_ext=targets.adv_ext.flatten(0, 1)[perm_ext],
        ret_ext=targets.ret_ext.flatten(0, 1)[perm_ext],
    )
    if targets.adv_int is not None:
        if perm_int is None:
            raise ValueError("the RND agent needs perm_int")
        batch.adv_int = targets.adv_int.flatten(0, 1)[perm_int]
        batch.ret_int = targets.ret_int.flatten(0, 1)[perm_int]
    return batch


def loss_terms(
    agent: AgentA2C,
    batch: Batch,
    *,
    rnd_deterministic: bool = False,
    rnd_dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The notebook's loss on one batch, as scalar tensors (graph attached):
    loss = policy + value_coef * value - ent_coef * entropy (+ rnd_loss), with
    policy = -(logprob * (eta_ext * adv_ext [+ eta_int * adv_int])).mean(),
    value = MSE(v_ext, ret_ext) [+ MSE(v_int, ret_int)], rnd_loss = mean RND error on batch.obs
    (predictor in train mode unless `rnd_deterministic`, or with the given dropout masks)."""
    dist, values = agent.model(batch.obs)
    logprobs = dist.log_prob(batch.actions)
    entropy = dist.entropy().mean()
    value_loss_ext = F.mse_loss(values[:, 0], batch.ret_ext)
    if _has_rnd(agent):
        advantages = batch.adv_ext * agent.eta_extr + batch.adv_int * agent.eta_intr
        value_loss_int = F.mse_loss(values[:, 1], batch.ret_int)
    else:  # x * 1.0 == x exactly: the notebook's A2C (eta_extr 1) is unchanged
        advantages = batch.adv_ext * agent.eta_extr
        value_loss_int = torch.zeros(())
    policy_loss = -(logprobs * advantages).mean()
    value_loss = value_loss_ext + value_loss_int
    loss = policy_loss + value_loss * agent.vloss_coeff - entropy * agent.ent_coeff
    rnd_loss = torch.zeros(())
    if _has_rnd(agent):
        rnd = agent.rnd_module
        was_training = rnd.training
        if rnd_deterministic:
            rnd.eval()
        try:
            rnd_loss = rnd(batch.obs, rnd_dropout_masks).mean()
        finally:
            rnd.train(was_training)
        loss = loss + rnd_loss
    return {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "value_loss_ext": value_loss_ext,
        "value_loss_int": value_loss_int,
        "entropy": entropy,
        "rnd_loss": rnd_loss,
    }


def trainable_named_parameters(agent: AgentA2C) -> dict[str, dict[str, torch.nn.Parameter]]:
    """{"a2c_params": actor-critic params, "rnd_params": predictor params} by state-dict key."""
    out = {"a2c_params": dict(agent.model.named_parameters())}
    if _has_rnd(agent):
        out["rnd_params"] = {
            f"predictor.{k}": v for k, v in agent.rnd_module.predictor.named_parameters()
        }
    return out


def loss_and_grads(
    agent: AgentA2C,
    batch: Batch,
    *,
    rnd_deterministic: bool = False,
    rnd_dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
    """Zero the grads, compute `loss_terms` and backpropagate. Returns (scalar terms, gradients
    as numpy by state-dict key, grouped like `trainable_named_parameters`; a parameter the loss
    does not reach, e.g. plain A2C's intrinsic value head, gets zeros). The .grad fields stay
    set, ready for `apply_gradients`."""
    terms = _backward(agent, batch, rnd_deterministic, rnd_dropout_masks)
    grads = {
        group: {
            k: (p.grad.detach().numpy().copy() if p.grad is not None else np.zeros(p.shape, "f4"))
            for k, p in params.items()
        }
        for group, params in trainable_named_parameters(agent).items()
    }
    return terms, grads


def _backward(agent, batch, rnd_deterministic, rnd_dropout_masks) -> dict[str, float]:
    agent.optimizer.zero_grad()
    terms = loss_terms(
        agent, batch, rnd_deterministic=rnd_deterministic, rnd_dropout_masks=rnd_dropout_masks
    )
    terms["loss"].backward()
    return {k: float(v.detach()) for k, v in terms.items()}


def apply_gradients(agent: AgentA2C) -> dict[str, float]:
    """Clip the current .grad by global norm per group (actor-critic, predictor) and take one
    RMSprop step. Returns the pre-clip global norms."""
    norms = {
        "grad_norm_ac": float(
            nn.utils.clip_grad_norm_(agent.model.parameters(), agent.max_grad_norm_ac)
        )
    }
    if _has_rnd(agent):
        norms["grad_norm_rnd"] = float(
            nn.utils.clip_grad_norm_(
                agent.rnd_module.predictor.parameters(), agent.max_grad_norm_rnd
            )
        )
    agent.optimizer.step()
    return norms


def one_update(
    agent: AgentA2C,
    segment: TrajectorySegment,
    generator: torch.Generator | None = None,
    *,
    perm_ext: torch.Tensor | None = None,
    perm_int: torch.Tensor | None = None,
    rnd_deterministic: bool = False,
    rnd_dropout_masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """The notebook's `learn(segment)`: targets, permutation(s) (drawn from `generator`, default the
    global torch RNG, unless given), loss, backward, per-group clipping, RMSprop step.

    Returns the notebook's stats ("loss", "rnd_reward_avg", "rnd_loss") plus every loss term
    and the pre-clip gradient norms."""
    targets = compute_targets(agent, segment)
    n = segment.rewards.numel()
    if perm_ext is None:
        if perm_int is not None:
            raise ValueError("perm_int given without perm_ext")
        perm_ext, perm_int = draw_permutations(agent, n, generator)
    elif perm_int is None and _has_rnd(agent):
        perm_int = perm_ext if agent.shared_permutation else None
        if perm_int is None:
            raise ValueError("the RND agent needs perm_int (or shared_permutation=True)")
    batch = make_batch(segment, targets, perm_ext, perm_int)
    stats = _backward(agent, batch, rnd_deterministic, rnd_dropout_masks)
    stats.update(apply_gradients(agent))
    stats["rnd_reward_avg"] = (
        float(targets.reward_int.mean()) if targets.reward_int is not None else 0.0
    )
    return stats
