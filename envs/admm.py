"""OSQP's ADMM iterations on a QP family as a batched MDP whose action is the step size ρ (RLQP).

Ichnowski et al. 2021 ("Accelerating quadratic optimization with reinforcement learning") let a policy set
the ρ of every constraint of OSQP between blocks of ADMM iterations and train it with TD3; the reward is −1
per step until the QP is solved, so the return counts the steps to a solution. :class:`ADMMEnv` is that MDP
over N problems of one :class:`~amorctl.problems.qp.QPFamily` at once, on top of
:class:`~amorctl.solvers.BatchedADMM`.

Batches are grouped by size: every row of an :class:`ADMMEnv` holds a problem of the same family at the
same size (the family fixes n and m), so observations and actions have fixed widths and need no padding or
masks. Problems of other sizes or classes are other environments; a per-row policy (one network applied to
each constraint's features, as RLQP's) runs unchanged on any of them, since the observation is laid out
constraint by constraint.

In ``per_constraint`` mode the environment declares that layout (:attr:`ADMMEnv.row_layout`: m rows of the six
:data:`FEATURES`, one action per row, nothing shared — the two residual ratios are already on every row), so
``td3.policy: rowwise`` trains RLQP's factored agent: one small actor applied to every constraint and a critic
per constraint. The reward stays one scalar per problem (RLQP's −1 per step, or the log-residual decrease):
every row's critic regresses onto the same TD target, each from its own row's features and action
(:class:`~amorctl.agents.networks.RowwiseCritic`), and the actor ascends the rows' mean value. No row is padded
(one size per batch), so no row needs a mask, and the networks do not depend on m: a policy trained at one size
acts on QPs of any size and any class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from annotated_types import Gt, MinLen
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from amorctl.envs.base import BatchedEnv, RowLayout, StepResult
from amorctl.problems.qp import QPFamily
from amorctl.solvers.admm import ADMMSettings, BatchedADMM, Residuals, Status, rho_vector

ActionMode = Literal["per_constraint", "scalar"]
RewardMode = Literal["per_step", "log_residual"]

Feature = Literal["log_slack", "dual", "residual", "log_rho", "log_primal_ratio", "log_dual_ratio"]
FEATURES: tuple[Feature, ...] = ("log_slack", "dual", "residual", "log_rho", "log_primal_ratio", "log_dual_ratio")
"""Every feature of one constraint row (see :class:`ADMMEnv`), the observation's order by default."""


def _is_selection(features: Sequence[str]) -> bool:
    return len(set(features)) == len(features) and set(features) <= set(FEATURES)


def _distinct(features: Sequence[str]) -> Sequence[str]:
    if not _is_selection(features):
        raise PydanticCustomError("distinct_features", "a list of distinct feature names")
    return features


FeatureSelection = Annotated[Sequence[Feature], MinLen(1), AfterValidator(_distinct)]
"""A non-empty selection of distinct :data:`FEATURES` (a config's ``env.admm.features``)."""

LOG_CLIP = 8.0
"""log₁₀ features are clipped to ±this (slack, residual ratios)."""


class ADMMEnv(BatchedEnv):
    """N QPs of one family solved by OSQP's ADMM, a policy choosing ρ every ``iterations_per_step`` iterations.

    **Observation** ``(N, m·6)`` float32, constraint by constraint (reshape to ``(N, m, 6)``), for row i:
    log₁₀ of the slack to the nearer bound min(z_i − l_i, u_i − z_i) (clipped to [10⁻⁸, 10⁸]), the dual y_i
    and the residual z_i − (Ax)_i (both clipped to ±``observation_clip``), log₁₀ ρ_i, and the problem's
    log₁₀(‖r_prim‖∞ / ε_prim) and log₁₀(‖r_dual‖∞ / ε_dual) (OSQP's residuals over their tolerances, clipped to
    ±8; the problem is solved when both are ≤ 0), repeated on every row. These are RLQP's per-constraint
    features plus the residual ratios that tell a per-row policy how far the whole problem is from done.
    ``features`` selects some of them, in its order (the observation is then ``(N, m·len(features))``). With
    ``row_mean=False`` the declared :class:`~amorctl.envs.base.RowLayout` is not pooled: a per-row policy then reads
    each constraint's own features only, not also their mean over the QP's constraints (a summary that differs
    from one QP class to another, where a policy trained on one class meets it out of distribution).

    **Action** in [−1, 1]: ``per_constraint`` (``action_dim = m``) sets ρ_i = 10^(a_i·``rho_log_range``) for
    every row; ``scalar`` (``action_dim = 1``) sets OSQP's vector from one ρ = 10^(a·``rho_log_range``)
    (10³ρ on equality rows, 10⁻⁶ on rows without bounds). The matrix is refactored only where ρ changed.

    **Step**: set ρ, run ``iterations_per_step`` ADMM iterations, check OSQP's termination at ``eps_abs`` /
    ``eps_rel`` (infeasibility detection on). **Reward**: ``per_step`` −1 every step (the return is minus the
    number of steps to a solution); ``log_residual`` the decrease of log₁₀ max(‖r_prim‖/ε_prim, ‖r_dual‖/ε_dual)
    over the step (a fresh problem's residuals are measured at x = 0, y = 0, z = Π_[l,u](0)). **Termination**:
    the problem is solved (or certified infeasible); **truncation** after ``max_steps`` steps. A finished row
    gets a fresh problem from the family (auto-reset).

    Args:
        family: the QP family (its sizes fix n and m).
        num_envs: N.
        iterations_per_step: ADMM iterations per environment step.
        max_steps: the time limit in steps.
        action: ``"per_constraint"`` or ``"scalar"``.
        reward: ``"per_step"`` or ``"log_residual"``.
        eps_abs, eps_rel: OSQP's termination tolerances (the issue's bar: 1e-6).
        rho_log_range: the action's scale: ρ ∈ [10^−range, 10^range].
        observation_clip: bound of the y and z − Ax features.
        features: the row features observed, names of :data:`FEATURES` in observation order (default: all).
        row_mean: whether per-row policies also read the mean of the rows' features (:attr:`row_layout`).
        device: where the problems and returned tensors live.
        dtype: the solver's dtype (observations are float32 regardless).
    """

    def __init__(
        self,
        family: QPFamily,
        num_envs: int = 1,
        *,
        iterations_per_step: Annotated[int, Gt(0)] = 10,
        max_steps: Annotated[int, Gt(0)] = 100,
        action: ActionMode = "per_constraint",
        reward: RewardMode = "per_step",
        eps_abs: Annotated[float, Gt(0)] = 1e-6,
        eps_rel: Annotated[float, Gt(0)] = 1e-6,
        rho_log_range: Annotated[float, Gt(0)] = 6.0,
        observation_clip: Annotated[float, Gt(0)] = 1e3,
        features: FeatureSelection = FEATURES,
        row_mean: bool = True,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        if num_envs < 1 or iterations_per_step < 1 or max_steps < 1:
            raise ValueError(
                f"num_envs, iterations_per_step and max_steps must be at least 1, got {num_envs}, "
                f"{iterations_per_step} and {max_steps}"
            )
        if action not in ("per_constraint", "scalar") or reward not in ("per_step", "log_residual"):
            raise ValueError(
                f"action must be 'per_constraint' or 'scalar' and reward 'per_step' or 'log_residual', "
                f"got {action!r} and {reward!r}"
            )
        if not features or not _is_selection(features):
            raise ValueError(f"features must be distinct names of {FEATURES}, got {list(features)}")
        self.features = features = tuple(features)
        self.family, self.num_envs, self.device, self.dtype = family, num_envs, torch.device(device), dtype
        self.iterations_per_step, self.max_steps = iterations_per_step, max_steps
        self.action_mode, self.reward_mode = action, reward
        self.rho_log_range, self.observation_clip = rho_log_range, observation_clip
        self.settings = ADMMSettings(
            eps_abs=eps_abs,
            eps_rel=eps_rel,
            max_iter=iterations_per_step * max_steps,
            check_termination=iterations_per_step,
        )
        self.name = f"admm/{type(family).__name__}"
        self.num_constraints = family.num_constraints
        self.observation_dim = family.num_constraints * len(features)
        self.action_dim = family.num_constraints if action == "per_constraint" else 1
        self.row_layout = (
            RowLayout(family.num_constraints, len(features), pooled=row_mean) if action == "per_constraint" else None
        )
        self.generator = torch.Generator(device=self.device)
        self.solver: BatchedADMM | None = None
        self._t = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._return = torch.zeros(num_envs, dtype=torch.float32, device=self.device)
        self._log_ratio = torch.zeros(num_envs, dtype=torch.float64, device=self.device)

    def _sample(self, count: int):
        return self.family.sample(count, self.generator, self.device, self.dtype)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.solver = BatchedADMM(self._sample(self.num_envs), self.settings)
        self._t.zero_()
        self._return.zero_()
        residuals = self._start_residuals()
        self._log_ratio = self._log_ratios(residuals).amax(-1)
        return self._observe(residuals)

    def _start_residuals(self) -> Residuals:
        return start_residuals(self.solver)

    def rho_from_action(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The per-row ρ ``(N, m)`` an action asks for, and the scalar ρ ``(N,)`` in ``scalar`` mode."""
        return rho_from_action(action, self.solver.types, self.action_mode, self.rho_log_range)

    def step(self, action: torch.Tensor) -> StepResult:
        if self.solver is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        self.validate_action(action)
        solver = self.solver
        rho, scalar = self.rho_from_action(action)
        solver.set_rho(rho, scalar=scalar)
        solver.iterate(self.iterations_per_step)
        residuals = solver.check()
        terminated = solver.status != Status.UNSOLVED
        log_ratio = self._log_ratios(residuals).amax(-1)
        if self.reward_mode == "per_step":
            reward = -torch.ones(self.num_envs, dtype=torch.float32, device=self.device)
        else:
            reward = (self._log_ratio - log_ratio).to(torch.float32)
        self._log_ratio = log_ratio
        self._t += 1
        self._return += reward
        truncated = (self._t >= self.max_steps) & ~terminated
        final_obs = self._observe(residuals)
        info = {
            "final_obs": final_obs,
            "episode_return": self._return.clone(),
            "episode_length": self._t.clone(),
            "solved": solver.status == Status.SOLVED,
            "iterations": solver.iterations.clone(),
        }
        ended = terminated | truncated
        if bool(ended.any()):
            solver.replace(ended, self._sample(int(ended.sum())))
            self._t.masked_fill_(ended, 0)
            self._return.masked_fill_(ended, 0.0)
            fresh = self._start_residuals()
            self._log_ratio = torch.where(ended, self._log_ratios(fresh).amax(-1), self._log_ratio)
            obs = torch.where(ended.unsqueeze(-1), self._observe(fresh), final_obs)
        else:
            obs = final_obs.clone()
        return obs, reward, terminated, truncated, info

    def _log_ratios(self, residuals: Residuals) -> torch.Tensor:
        return log_residual_ratios(residuals, self.settings)

    def _observe(self, residuals: Residuals) -> torch.Tensor:
        return observe(self.solver, residuals, self.observation_clip, self.features)


def start_residuals(solver: BatchedADMM) -> Residuals:
    """The residuals of a fresh problem's cold start x = 0, y = 0 with z = Π_[l,u](0), ``(N,)`` each.

    The solver starts from z = 0 (as OSQP does) and projects z in its first iteration; at z = 0 itself both
    residuals can vanish (q = 0 in Control), which would read as solved, so fresh rows are measured at the
    projected point: ‖r_prim‖ = ‖Π(0)‖∞, ‖r_dual‖ = ‖q‖∞.
    """
    qp = solver.qp
    projected = torch.zeros_like(qp.lower).clamp(qp.lower, qp.upper).abs().amax(-1)
    q = qp.q.abs().amax(-1)
    return Residuals(projected, q, projected, q)


def rho_from_action(
    action: torch.Tensor, types: torch.Tensor, mode: ActionMode, rho_log_range: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ρ = 10^(a·``rho_log_range``) per row ``(N, m)`` for actions in [−1, 1] (``types``: the rows'
    :class:`~amorctl.solvers.admm.ConstraintType`), and in ``scalar`` mode also the scalar ρ ``(N,)`` OSQP's
    vector was built from."""
    rho = torch.pow(10.0, action.to(types.device, torch.float64).clamp(-1, 1) * rho_log_range)
    if mode == "scalar":
        scalar = rho[:, 0]
        return rho_vector(scalar, types), scalar
    return rho, None


def log_residual_ratios(residuals: Residuals, settings: ADMMSettings) -> torch.Tensor:
    """log₁₀ of OSQP's residuals over their tolerances, ``(N, 2)`` (primal, dual), clipped to ±8; the problem
    is solved where both are ≤ 0."""
    eps_abs, eps_rel = settings.eps_abs, settings.eps_rel
    primal = residuals.primal / (eps_abs + eps_rel * residuals.primal_scale)
    dual = residuals.dual / (eps_abs + eps_rel * residuals.dual_scale)
    ratios = torch.stack([primal, dual], -1).clamp(10**-LOG_CLIP, 10**LOG_CLIP)
    return torch.log10(ratios)


def observe(
    solver: BatchedADMM, residuals: Residuals, observation_clip: float, features: Sequence[str] = FEATURES
) -> torch.Tensor:
    """The :class:`ADMMEnv` observation of ``solver``'s state, ``(N, m·len(features))`` float32 (see the class
    docstring), with ``residuals`` those of the current iterate."""
    qp, clip, z = solver.qp, observation_clip, solver.z
    ratios = log_residual_ratios(residuals, solver.settings)
    columns = {  # computed only when selected
        "log_slack": lambda: torch.log10(torch.minimum(z - qp.lower, qp.upper - z).clamp(10**-LOG_CLIP, 10**LOG_CLIP)),
        "dual": lambda: solver.y.clamp(-clip, clip),
        "residual": lambda: (z - torch.matmul(solver.x.unsqueeze(-2), qp.A.mT).squeeze(-2)).clamp(-clip, clip),
        "log_rho": lambda: torch.log10(solver.rho),
        "log_primal_ratio": lambda: ratios[:, :1].expand_as(z),
        "log_dual_ratio": lambda: ratios[:, 1:].expand_as(z),
    }
    return torch.stack([columns[name]() for name in features], -1).flatten(-2).to(torch.float32)
