"""A solver's iterations as a natively batched MDP over any problem family (seed section 2.2.3).

Li & Malik (2017) and Ichnowski et al. (2021) view an iterative solver as a Markov decision process:
the state is the context, the current iterate, its gradient and the recent history; the action is
the update (or a solver parameter such as the step size); the reward is the decrease of the
objective. Any RL agent then learns an optimizer, and the policy is the update rule of a
semi-amortized model (eq. 2.2). :class:`IterateEnv` holds N such problems at once as tensors on one
device and implements the :class:`~amorctl.envs.base.BatchedEnv` interface.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from annotated_types import Ge, Gt
from pydantic import AllowInfNan

from amorctl.envs.base import BatchedEnv, RowLayout, StepResult
from amorctl.optimizers import BB_MAX_STEP, BB_MIN_STEP, barzilai_borwein_steps, lmsd_sweep, push_history
from amorctl.problems.base import Problem, ProblemArgumentError

ActionMode = Literal["update", "step_size"]
StepSizeBase = Literal["range", "bb1", "bb2"]
RewardMode = Literal["improvement", "log_gap", "objective", "per_step"]
Convergence = Literal["gradient", "gap"]
Seeding = Literal["shared", "per_row"]
Layout = Literal["blocks", "rows"]
InitSpec = Literal["zeros", "random"] | Callable[[torch.Tensor], torch.Tensor]
Block = Literal["iterate", "gradient", "objective", "stationarity", "budget", "update_history",
                "gradient_history", "secant_update", "secant", "ritz", "context"]
_PositiveInt = Annotated[int, Gt(0)]
_NonNegativeInt = Annotated[int, Ge(0)]
_Positive = Annotated[float, Gt(0)]
"""A positive float; a config refuses NaN and ±inf for it (the schema's convention for floats)."""
_NonNegative = Annotated[float, Ge(0)]

OMITTABLE_BLOCKS = ("iterate", "gradient", "objective", "stationarity", "budget", "update_history",
                    "gradient_history", "secant_update", "secant", "ritz", "context")
"""Observation block names, in observation order (``secant_update``, ``secant``, ``ritz`` and ``context`` only
when enabled)."""

COORDINATE_BLOCKS = ("iterate", "gradient", "update_history", "gradient_history", "secant_update")
"""The blocks with entries per coordinate of y; with ``observation_layout="rows"`` they form each coordinate's row."""

OBSERVATION_BOUND = 1e6
"""Every observation entry is clipped to ±this (only a raw context entry can get near it)."""

SCALE_EPS = 1e-6
"""Relative floor of the episode's objective scale S (see :class:`IterateEnv`)."""

_TINY = 1e-12
"""Floor of the gradient normalizers, so that a zero initial gradient does not divide by zero."""


def signed_log(v: torch.Tensor) -> torch.Tensor:
    """sign(v)·log(1 + |v|): the identity near 0, logarithmic for large |v|, finite for finite v."""
    return torch.sign(v) * torch.log1p(v.abs())


def _overrides(problem: Problem, method: str) -> bool:
    return getattr(type(problem), method, None) is not getattr(Problem, method, None)


class IterateEnv(BatchedEnv):
    """N problems of one family solved by a learned update rule; one step is one solver iteration.

    **Episodes.** Each copy draws a context x ~ p(x) and an initial iterate y₀ (``init``: ``"zeros"``,
    ``"random"`` for N(0, init_scale²) entries, or a callable such as a fully-amortized model mapping
    contexts ``(k, context_dim)`` to warm starts ``(k, solution_dim)``, called under ``no_grad``), then
    runs at most T = ``max_iterations`` iterations. With a reference solver (``solve``; by default used
    whenever the family overrides :meth:`Problem.solve`) f* = f(y*(x); x) is computed at the episode's
    start, batched over the rows that start together. Finished copies are redrawn automatically
    (only those rows, with masks and index writes; the rest of the batch is untouched).

    **Objective scale.** Each episode has a scale S > 0 that makes rewards and features comparable
    across problems of very different magnitude: with f*, S = max(f(y₀) − f*, SCALE_EPS·(1 + |f*|))
    (the initial gap); without, S = |f(y₀)| + ‖∇f(y₀)‖ + SCALE_EPS (a heuristic). The reference value
    is f_ref = f* with a solver, f(y₀) without; ρ = ``gap_floor`` is a relative floor on the gap.

    **Stationarity.** ‖∇f(y)‖₂ for a smooth unconstrained family; for a composite family f = g + h
    exposing ``smooth_gradient``, ``prox`` and ``lipschitz`` (the lasso) the gradient mapping
    L‖y − prox_{1/L}(y − ∇g(y)/L)‖₂, which is 0 exactly at a minimiser; for a box-constrained family
    (``bounds``) the projected gradient ‖y − Π(y − ∇f(y))‖₂. "Gradient" below means ∇g for composite
    families and ∇f otherwise.

    **Observation** (float32, ``observation_dim = 3 + (2 + 2H)·n + (n if secant_update)
    + (3 if secant_features) + (2M if ritz_memory = M > 0) + (m if include_context)`` less the blocks named in
    ``omit_blocks``, n = ``solution_dim``, m = ``context_dim``, H = ``history``), in this order
    (:attr:`observation_slices` names each block):

    ======================  ======  ===========================================================
    block                   size    value
    ======================  ======  ===========================================================
    ``iterate``             n       slog(y_t), slog(v) = sign(v)·log(1 + |v|)
    ``gradient``            n       slog(∇f(y_t) / r₀), r₀ = max(‖∇f(y₀)‖₂/√n, 1e-12) (RMS of ∇f(y₀))
    ``objective``           1       log((f(y_t) − f*)/S + ρ) with f* (0 at the start, ≈ log ρ at the
                                    optimum); slog((f(y_t) − f(y₀))/S) without
    ``stationarity``        1       log(σ_t/σ₀ + ρ) with σ the stationarity measure (σ₀ floored)
    ``budget``              1       t / T, the fraction of the iteration budget used
    ``update_history``      H·n     slog(Δ_{t−1}), …, slog(Δ_{t−H}), Δ_s = y_{s+1} − y_s, most recent first
    ``gradient_history``    H·n     slog(∇f(y_{t−1})/r₀), …, slog(∇f(y_{t−H})/r₀): the gradient each
                                    update Δ_s was taken from, so (Δ_{t−1}, ∇f(y_t) − ∇f(y_{t−1})) is
                                    a secant pair
    ``secant_update``       n       (``secant_update=True`` only) α₂∇f(y_t)/r₀ with α₂ = sᵀz / zᵀz the short
                                    Barzilai–Borwein step of the last update (0 where sᵀz ≤ 0): per
                                    coordinate, minus the update BB2 would make, in units of r₀, not
                                    signed-logged (a coordinatewise policy reproduces BB2 by one odd
                                    linear map, ``a = −secant_update / action_scale``)
    ``secant``              3       (``secant_features=True`` only) curvature along the last update:
                                    with s = y_t − y_{t−1} and z = ∇f(y_t) − ∇f(y_{t−1}), the flag
                                    [sᵀz > 0] and, where it is 1, log(sᵀs / sᵀz) and log(sᵀz / zᵀz),
                                    the logs of the two Barzilai–Borwein step sizes (0 otherwise)
    ``ritz``                2M      (``ritz_memory=M`` > 0 only) the curvature history of limited-memory steepest
                                    descent (LMSD, Fletcher 2012): the current sweep's M step sizes
                                    α_i = 1/θ_i from the Ritz values θ₁ ≥ … ≥ θ_M of the Hessian on the
                                    span of the last M updates (:func:`~amorctl.optimizers.lmsd_sweep`),
                                    as log(α_i / α_base) (log α_i with ``step_size_base="range"``; 0 in
                                    slots beyond the sweep), then a one-hot of the sweep's next index
    ``context``             m       the raw context x (``include_context=True`` only)
    ======================  ======  ===========================================================

    History slots not yet filled in the episode are zeros. ``omit_blocks`` drops named blocks (the rest
keep this order): e.g. ``("iterate", "gradient")`` leaves a policy only scale-free summaries, which
is what an update rule meant to transfer across problems of one family should read. Every entry is clipped to
    ±:data:`OBSERVATION_BOUND`. The signed-log keeps iterates and updates readable across scales,
    dividing by r₀ makes the gradient scale-free per episode while keeping its decay visible.
The ``secant`` block hands the policy what the signed-log history blocks hide: inner products of
the secant pair, i.e. the inverse curvature 1/λ of the objective along the last update, on the log
scale of the ``step_size`` action (a Barzilai–Borwein step is then one affine map away). An MLP
cannot compute such inner products from element-wise signed logs with any accuracy.
The ``ritz`` block goes further back: the environment runs LMSD's sweep schedule beside whatever the policy
does (a sweep of k = min(M, updates so far) steps starts, from the last k updates and gradient changes,
whenever the previous one is used up: lengths 1, 1, 2, 4, …, M), so a step-size policy sees the Ritz
values of several past updates, which the last secant pair alone cannot give, and
:meth:`lmsd_action` is LMSD's own step as an expert to imitate.

    **Per-coordinate layout.** ``observation_layout="rows"`` (with ``action="update"``) orders the same
    entries coordinate by coordinate, for a coordinatewise learned optimizer (Andrychowicz et al. 2016; one
    small network applied to every coordinate, :class:`~amorctl.agents.networks.RowwiseActor`): row i holds
    coordinate i's entries of the per-coordinate blocks (:data:`COORDINATE_BLOCKS`, in the table's order:
    slog y_i, slog(∇f_i/r₀), then the H updates and H gradients of coordinate i, most recent first), the
    n rows come first, then the shared blocks (``objective``, ``stationarity``, ``budget``, ``secant``,
    ``context``). :attr:`row_layout` declares it (:class:`~amorctl.envs.RowLayout`; one action per row);
    :attr:`row_slices` names the blocks within a row and :attr:`observation_slices` the shared blocks
    within the observation. The default ``"blocks"`` is the table's order, and ``row_layout`` is ``None``.

    **Actions** a ∈ [-1, 1]^action_dim (clipped):

    - ``action="update"`` (action_dim = n): y ← y + action_scale·u·a, with u = 1
      (``update_scaling="fixed"``) or u = r₀ (``"gradient"``: the step is measured in units of the
      initial gradient's RMS, which tracks the family's scale).
    - ``action="step_size"`` (action_dim = 1): α = exp(log α_min + (a + 1)/2·(log α_max − log α_min)),
      log-uniform over ``step_size_range`` (``step_size_base="range"``, the default), or a residual on a
      classical rule (``step_size_base="bb1"`` or ``"bb2"``): α = α_BB·exp(``residual_scale``·a) with α_BB
      the Barzilai–Borwein step of the last update (sᵀs/sᵀz or sᵀz/zᵀz, clipped as
      :class:`~amorctl.optimizers.BarzilaiBorwein` clips it) and ``first_step`` where there is no secant
      pair with sᵀz > 0 (the first iteration); ``step_size_range`` is then unused. At a = 0 the iterates
      are those of ``run_optimizer("bb2", ..., step_size=first_step)`` exactly (residual policy learning on
      top of BB, Silver et al. 2018; Johannink et al. 2019). Either way y ← y − α∇f(y) (gradient descent),
      y ← prox_α(y − α∇g(y)) for a composite family (ISTA), and the result is projected onto ``bounds`` for a box domain
      (in both modes).

    **Rewards** (per step t → t+1):

    - ``"improvement"``: (f(y_t) − f(y_{t+1}))/S; an episode's return is 1 − gap_T/gap_0 with f*.
    - ``"log_gap"``: log((f(y_t) − f*)/S + ρ) − log((f(y_{t+1}) − f*)/S + ρ) (needs a solver); the
      return is at most log(1/ρ + 1).
    - ``"objective"``: −(f(y_{t+1}) − f_ref)/S.
    - ``"per_step"``: −1 every iteration, so the return is minus the iterations used (as in RLQP).

    ``reward_clip`` = c (default ``None``: no clipping) clips every per-step reward, the divergence
    penalty included, to [−c, c], so that a client sees rewards on a known scale whatever the
    problem does (a huge overshoot that does not yet count as divergence, or a step to the gap floor).

    **Termination.** ``terminated`` when the reached iterate is converged (``convergence="gradient"``:
    stationarity ≤ ``tolerance``; ``"gap"``: f − f* ≤ ``tolerance``, needs a solver) or diverged;
    ``truncated`` after T iterations otherwise. A step diverges when the new iterate, its objective
    or its gradient is not finite, or when (f − f_ref)/S exceeds ``divergence_threshold``: the update
    is rejected (the copy keeps its last finite iterate, which ``final_obs`` shows), the reward is
    −``divergence_penalty`` (default ``max_iterations`` for ``"per_step"`` and ``"objective"``
    rewards, so that diverging never beats running out the budget, and 10 otherwise), and the episode
    ends as terminated. Nothing non-finite reaches observations or rewards.

    **info** (besides ``final_obs``, ``episode_return``, ``episode_length``): ``converged`` and
    ``diverged`` (bool (N,)), ``total_diverged`` (int64 scalar: diverged episodes since construction),
    and, with a solver, ``final_gap`` (float32 (N,)): f − f* ≥ 0 of the state each copy reached
    (its episode's final gap in the rows that ended).

    **Seeding.** ``seeding="shared"`` (default, fully vectorized): one generator on ``device``, seeded by
    ``reset(seed)``; a reset draws the contexts (then the random initial iterates) of all the rows
    that start together in one batched call, in row order. Reproducible for a given seed, N and
    sequence of actions, but copy i does not see the same problems as a single environment seeded
    ``seed + i``. ``seeding="per_row"``: copy i has its own generator seeded ``seed + i`` and draws its
    own episodes, so row i of an N-copy environment reproduces, episode after episode, a 1-copy
    environment (or :class:`~amorctl.envs.iterate_gym.IterateGymEnv`) reset with ``seed + i`` and fed the
    same actions; it costs one small Python-level draw per finishing row. The two modes coincide for
    N = 1. Without a seed, a first reset seeds from the operating system.

    Cost per step: one objective and gradient evaluation of the batch (``torch.func.grad`` of the
    summed objective, or the family's ``smooth_gradient``), no ``.item()``, no loop over the copies; one
    host synchronization to find the rows that ended, and one more when some are redrawn (the
    finiteness check of their initial iterates; a family's iterative solver adds its own).
    """

    def __init__(
        self,
        problem: Problem,
        num_envs: int = 1,
        *,
        max_iterations: _PositiveInt = 50,
        history: _NonNegativeInt = 3,
        action: ActionMode = "update",
        action_scale: _Positive = 0.1,
        update_scaling: Literal["fixed", "gradient"] = "fixed",
        step_size_range: tuple[_Positive, _Positive] = (1e-4, 10.0),
        step_size_base: StepSizeBase = "range",
        residual_scale: _Positive = 1.0,
        first_step: _Positive = 0.01,
        reward: RewardMode = "improvement",
        convergence: Convergence = "gradient",
        tolerance: _NonNegative = 1e-4,
        init: InitSpec = "zeros",
        init_scale: _NonNegative = 1.0,
        include_context: bool = False,
        secant_features: bool = False,
        secant_update: bool = False,
        ritz_memory: _NonNegativeInt = 0,
        omit_blocks: tuple[Block, ...] = (),
        observation_layout: Layout = "blocks",
        solve: bool | None = None,
        gap_floor: _Positive = 1e-6,
        divergence_threshold: Annotated[float, Gt(0), AllowInfNan(True)] = 1e6,
        divergence_penalty: _NonNegative | None = None,
        reward_clip: _Positive | None = None,
        seeding: Seeding = "shared",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        """Build N copies of the optimizer MDP over ``problem``; see the class docstring for every option.

        Raises ``ValueError`` (naming the argument) for an impossible option, e.g. ``reward="log_gap"``
        on a family without a reference solver.
        """
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be an amorctl.problems.Problem, got {type(problem).__name__}")
        _check(isinstance(num_envs, int) and num_envs >= 1, "num_envs", "a positive integer", num_envs)
        _check(isinstance(max_iterations, int) and max_iterations >= 1, "max_iterations", "a positive integer",
               max_iterations)
        _check(isinstance(history, int) and history >= 0, "history", "a non-negative integer", history)
        _check(isinstance(ritz_memory, int) and ritz_memory >= 0, "ritz_memory", "a non-negative integer",
               ritz_memory)
        _check(action in ("update", "step_size"), "action", "'update' or 'step_size'", action)
        _check(0 < action_scale < math.inf, "action_scale", "a positive finite number", action_scale)
        _check(update_scaling in ("fixed", "gradient"), "update_scaling", "'fixed' or 'gradient'", update_scaling)
        _check(len(step_size_range) == 2 and 0 < step_size_range[0] <= step_size_range[1] < math.inf,
               "step_size_range", "(alpha_min, alpha_max) with 0 < alpha_min <= alpha_max < inf", step_size_range)
        _check(step_size_base in ("range", "bb1", "bb2"), "step_size_base", "'range', 'bb1' or 'bb2'",
               step_size_base)
        _check(step_size_base == "range" or action == "step_size", "step_size_base",
               "'range' with action='update' (a Barzilai–Borwein base step needs action='step_size')", step_size_base)
        _check(0 < residual_scale < math.inf, "residual_scale", "a positive finite number", residual_scale)
        _check(0 < first_step < math.inf, "first_step", "a positive finite number", first_step)
        _check(reward in ("improvement", "log_gap", "objective", "per_step"), "reward",
               "'improvement', 'log_gap', 'objective' or 'per_step'", reward)
        _check(convergence in ("gradient", "gap"), "convergence", "'gradient' or 'gap'", convergence)
        _check(tolerance >= 0, "tolerance", "a non-negative number", tolerance)
        _check(callable(init) or init in ("zeros", "random"), "init",
               "'zeros', 'random' or a callable mapping contexts to initial iterates", init)
        _check(init_scale >= 0, "init_scale", "a non-negative number", init_scale)
        _check(gap_floor > 0, "gap_floor", "a positive number", gap_floor)
        _check(divergence_threshold > 0, "divergence_threshold", "a positive number or inf (never by size)",
               divergence_threshold)
        _check(divergence_penalty is None or divergence_penalty >= 0, "divergence_penalty",
               "a non-negative number or None", divergence_penalty)
        _check(reward_clip is None or 0 < reward_clip < math.inf, "reward_clip", "a positive finite number or None",
               reward_clip)
        omit_blocks = tuple(omit_blocks)
        _check(all(b in OMITTABLE_BLOCKS for b in omit_blocks), "omit_blocks",
               f"a list of block names out of {', '.join(OMITTABLE_BLOCKS)}", omit_blocks)
        _check(seeding in ("shared", "per_row"), "seeding", "'shared' or 'per_row'", seeding)
        _check(observation_layout in ("blocks", "rows"), "observation_layout", "'blocks' or 'rows'", observation_layout)
        _check(observation_layout == "blocks" or action == "update", "observation_layout",
               "'blocks' with action='step_size' (one step size for the whole iterate has no per-coordinate rows)",
               observation_layout)
        has_solver = _overrides(problem, "solve")
        if solve is None:
            solve = has_solver
        elif solve and not has_solver:
            raise ValueError(f"solve=True, but {type(problem).__name__} has no reference solver")
        needs = "reward='log_gap'" if reward == "log_gap" else "convergence='gap'" if convergence == "gap" else None
        if needs and not solve:
            why = "solve=False" if has_solver else f"{type(problem).__name__} has no reference solver"
            raise ValueError(f"{needs} needs the optimal value f* from a reference solver, but {why}")

        self.problem = problem
        self.name = f"Iterate{type(problem).__name__}"
        self.num_envs, self.max_iterations, self.history = num_envs, max_iterations, history
        self.action_mode, self.action_scale, self.update_scaling = action, float(action_scale), update_scaling
        self.step_size_range = (float(step_size_range[0]), float(step_size_range[1]))
        self.step_size_base = step_size_base
        self.residual_scale, self.first_step = float(residual_scale), float(first_step)
        self.reward_mode, self.convergence, self.tolerance = reward, convergence, float(tolerance)
        self.init, self.init_scale, self.include_context = init, float(init_scale), include_context
        self.secant_features, self.secant_update = bool(secant_features), bool(secant_update)
        self.ritz_memory = ritz_memory
        self.omit_blocks = omit_blocks
        self.uses_solver = bool(solve)
        self.gap_floor, self.divergence_threshold = float(gap_floor), float(divergence_threshold)
        if divergence_penalty is None:
            divergence_penalty = float(max_iterations) if reward in ("per_step", "objective") else 10.0
        self.divergence_penalty = float(divergence_penalty)
        self.reward_clip = None if reward_clip is None else float(reward_clip)
        self.seeding = seeding
        self.device, self.dtype = torch.device(device), dtype

        self.composite = all(callable(getattr(problem, attr, None)) for attr in ("smooth_gradient", "prox"))
        if self.composite and not getattr(problem, "lipschitz", None):
            raise ValueError(f"{type(problem).__name__} has smooth_gradient and prox but no positive `lipschitz`")
        self.bounds = problem.bounds

        n, m, h = problem.solution_dim, problem.context_dim, history
        self.solution_dim, self.context_dim = n, m
        self.action_dim = n if action == "update" else 1
        self.observation_layout = observation_layout
        widths = [("iterate", 1), ("gradient", 1), ("objective", 1), ("stationarity", 1), ("budget", 1),
                  ("update_history", h), ("gradient_history", h)]
        if secant_update:
            widths.append(("secant_update", 1))
        if secant_features:
            widths.append(("secant", 3))
        if ritz_memory:
            widths.append(("ritz", 2 * ritz_memory))
        if include_context:
            widths.append(("context", m))
        widths = [(block, width) for block, width in widths if block not in omit_blocks]
        per_row = [(block, width) for block, width in widths if block in COORDINATE_BLOCKS]
        shared = [(block, width) for block, width in widths if block not in COORDINATE_BLOCKS]
        self.row_slices: dict[str, slice] = {}
        self.row_layout: RowLayout | None = None
        if observation_layout == "rows":
            self.row_slices = _slices(per_row)
            row_width = sum(width for _, width in per_row)
            _check(row_width > 0, "omit_blocks", "leaving a per-coordinate block with observation_layout='rows'",
                   omit_blocks)
            self.observation_slices = _slices(shared, start=n * row_width)
            self.row_layout = RowLayout(n, row_width, sum(width for _, width in shared))
        else:
            self.observation_slices = _slices(
                [(block, width * n if block in COORDINATE_BLOCKS else width) for block, width in widths])
        self.observation_dim = sum(width * (n if block in COORDINATE_BLOCKS else 1) for block, width in widths)

        if seeding == "shared":
            self._generators = [torch.Generator(device=self.device)]
        else:
            self._generators = [torch.Generator(device=self.device) for _ in range(num_envs)]
        self._seeded = False
        self._started = False  # whether reset() drew the first episodes
        self.total_diverged = torch.zeros((), dtype=torch.int64, device=self.device)
        self._allocate()

    # ------------------------------------------------------------------ public interface

    @torch.no_grad()
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Draw a new episode in every copy; returns observations ``(N, observation_dim)``.

        ``seed`` seeds the environment's generator (``seeding="shared"``) or copy i's generator with
        ``seed + i`` (``"per_row"``); without it the draws continue the current streams.
        """
        if seed is not None:
            for i, generator in enumerate(self._generators):
                generator.manual_seed(int(seed) + i)
            self._seeded = True
        elif not self._seeded:
            for generator in self._generators:
                generator.seed()
            self._seeded = True
        self._start_episodes(torch.arange(self.num_envs, device=self.device))
        self._started = True
        return self._observe()

    @torch.no_grad()
    def step(self, action: torch.Tensor) -> StepResult:
        """One solver iteration in every copy; see the class docstring for rewards, flags and ``info``.

        Raises ``RuntimeError`` before the first :meth:`reset`, which draws the problems to iterate on.
        """
        if not self._started:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        self.validate_action(action)
        a = action.to(device=self.device, dtype=self.dtype).clamp(-1.0, 1.0)
        y, x = self._y, self._x
        if self.action_mode == "update":
            unit = self._grad_unit.unsqueeze(-1) if self.update_scaling == "gradient" else 1.0
            proposal = y + self.action_scale * unit * a
        else:
            if self.step_size_base == "range":
                low, high = (math.log(v) for v in self.step_size_range)
                alpha = torch.exp(low + 0.5 * (a + 1.0) * (high - low))  # (N, 1)
            else:  # a residual on the Barzilai–Borwein step: a = 0 is the classical rule exactly
                alpha = self._base_step.unsqueeze(-1) * torch.exp(self.residual_scale * a)
            proposal = y - alpha * self._g
            if self.composite:
                proposal = self.problem.prox(proposal, alpha)
        if self.bounds is not None:
            proposal = proposal.clamp(*self.bounds)
        f_new, g_new, stat_new = self._evaluate(proposal, x)

        finite = torch.isfinite(proposal).all(-1) & torch.isfinite(g_new).all(-1) & torch.isfinite(f_new)
        finite = finite & torch.isfinite(stat_new)
        diverged = ~finite | ((f_new - self._f_ref) / self._scale > self.divergence_threshold)
        keep = diverged.unsqueeze(-1)

        reward = self._reward(self._f, f_new)
        reward = torch.where(diverged, torch.full_like(reward, -self.divergence_penalty), reward)
        if self.reward_clip is not None:
            reward = reward.clamp(-self.reward_clip, self.reward_clip)

        if self.history > 0:
            update = proposal - y
            new_dy = torch.cat([update.unsqueeze(1), self._hist_dy[:, :-1]], dim=1)
            new_hg = torch.cat([self._g.unsqueeze(1), self._hist_g[:, :-1]], dim=1)
            self._hist_dy = torch.where(keep.unsqueeze(-1), self._hist_dy, new_dy)
            self._hist_g = torch.where(keep.unsqueeze(-1), self._hist_g, new_hg)
        if self.secant_features or self.secant_update:
            self._secant = torch.where(keep, self._secant, _secant(proposal - y, g_new - self._g))
        if self.step_size_base != "range":
            self._base_step = torch.where(diverged, self._base_step, self._bb_step(proposal - y, g_new - self._g))
        if self.ritz_memory:
            self._advance_sweep(proposal - y, g_new - self._g, ~diverged)
        self._y = torch.where(keep, y, proposal)
        self._g = torch.where(keep, self._g, g_new)
        self._f = torch.where(diverged, self._f, f_new)
        self._stat = torch.where(diverged, self._stat, stat_new)
        self._t = self._t + 1
        self._return = self._return + reward.to(torch.float32)

        if self.convergence == "gradient":
            converged = self._stat <= self.tolerance
        else:
            converged = self._gap() <= self.tolerance
        converged = converged & ~diverged
        terminated = converged | diverged
        truncated = (self._t >= self.max_iterations) & ~terminated
        ended = terminated | truncated
        self.total_diverged = self.total_diverged + diverged.sum()

        final_obs = self._observe()
        info: dict[str, Any] = {
            "final_obs": final_obs,
            "episode_return": self._return.clone(),
            "episode_length": self._t.clone(),
            "converged": converged,
            "diverged": diverged,
            "total_diverged": self.total_diverged.clone(),
        }
        if self.uses_solver:
            info["final_gap"] = self._gap().to(torch.float32)

        rows = ended.nonzero().squeeze(-1)
        if rows.numel() > 0:  # the one host synchronization per step
            self._start_episodes(rows)
            obs = torch.where(ended.unsqueeze(-1), self._observe(), final_obs)
        else:
            obs = final_obs.clone()
        return obs, reward.to(torch.float32), terminated, truncated, info

    @property
    def contexts(self) -> torch.Tensor:
        """A copy of every copy's current context x, ``(N, context_dim)``: after :meth:`reset`, the problems drawn."""
        return self._x.clone()

    @property
    def iterates(self) -> torch.Tensor:
        """A copy of every copy's current iterate y_t, ``(N, solution_dim)``: after :meth:`reset`, the y₀ used."""
        return self._y.clone()

    def barzilai_borwein_action(self, fallback_step: float, long_step: bool = True) -> torch.Tensor:
        """The action of a Barzilai–Borwein gradient step of each copy's last update: BB1 = sᵀs / sᵀz
        (``long_step``, the default) or BB2 = sᵀz / zᵀz.

        A classical solver rule as an expert to imitate (behavioural cloning, DAgger, warm starts): where the
        last update shows no positive curvature (the first iteration, a rejected update) the step is
        ``fallback_step`` (the safeguarded first step of :class:`~amorctl.optimizers.BarzilaiBorwein`). In
        ``step_size`` mode the action picks that step, clipped to ``step_size_range`` (with a Barzilai–Borwein
        ``step_size_base``: log(step / base step) / ``residual_scale``, clipped; exactly 0 when the expert is
        the base rule with ``fallback_step = first_step``); in ``update`` mode it
        is the update −α∇f(y_t) in action units, clipped to the box (a step longer than ``action_scale``·u
        per coordinate is cut there). Needs ``secant_features`` or ``secant_update`` (else every step is the
        fallback). Returns float32 actions (N, action_dim) in [-1, 1].
        """
        secant = self._secant[:, 1] if long_step else self._secant[:, 2]
        return self._step_action(torch.where(self._secant[:, 0] > 0, secant, math.log(fallback_step)))

    def lmsd_action(self, fallback_step: float) -> torch.Tensor:
        """The action of limited-memory steepest descent's next step (Fletcher 2012), ``(N, action_dim)``.

        The step of the current sweep at its next index (the ``ritz`` block; needs ``ritz_memory`` > 0), and
        ``fallback_step`` before the first update of an episode (LMSD's safeguarded first step). Mapped to
        the action as :meth:`barzilai_borwein_action` maps its step: with ``fallback_step = first_step`` and
        a ``step_size_base`` the iterates are those of ``run_optimizer("lmsd", ..., step_size=first_step,
        memory=ritz_memory)`` up to rounding.
        """
        if not self.ritz_memory:
            raise ValueError(f"{self.name}: the LMSD expert needs the Ritz history (ritz_memory > 0)")
        next_step = self._sweep.gather(1, self._sweep_next.clamp_max(self.ritz_memory - 1).unsqueeze(-1)).squeeze(-1)
        started = self._sweep_length > 0
        return self._step_action(torch.where(started, next_step.clamp_min(BB_MIN_STEP).log(), math.log(fallback_step)))

    def _step_action(self, log_step: torch.Tensor) -> torch.Tensor:
        """The action ``(N, action_dim)`` in [-1, 1] that takes the gradient step of size exp(``log_step``) ``(N,)``."""
        if self.action_mode == "update":
            unit = self._grad_unit.unsqueeze(-1) if self.update_scaling == "gradient" else 1.0
            update = -log_step.exp().unsqueeze(-1) * self._g / (self.action_scale * unit)
            return update.clamp(-1.0, 1.0).to(torch.float32)
        if self.step_size_base != "range":  # the residual on the base step; 0 where the expert is the base rule
            residual = (log_step - self._base_step.log()) / self.residual_scale
            return residual.clamp(-1.0, 1.0).unsqueeze(-1).to(torch.float32)
        low, high = (math.log(v) for v in self.step_size_range)
        return (2 * (log_step - low) / (high - low) - 1).clamp(-1.0, 1.0).unsqueeze(-1).to(torch.float32)

    # ------------------------------------------------------------------ internals

    def _allocate(self) -> None:
        n, m, h, N = self.solution_dim, self.context_dim, self.history, self.num_envs
        zeros = lambda *shape: torch.zeros(*shape, device=self.device, dtype=self.dtype)  # noqa: E731
        self._x, self._y, self._g = zeros(N, m), zeros(N, n), zeros(N, n)
        self._f, self._stat, self._f_ref, self._f0 = zeros(N), zeros(N), zeros(N), zeros(N)
        self._scale, self._grad_unit, self._stat0 = zeros(N) + 1, zeros(N) + 1, zeros(N) + 1
        self._hist_dy, self._hist_g = zeros(N, h, n), zeros(N, h, n)
        self._secant = zeros(N, 3)
        self._base_step = zeros(N) + self.first_step
        M = self.ritz_memory
        self._ritz_steps, self._ritz_changes, self._sweep = zeros(N, M, n), zeros(N, M, n), zeros(N, M)
        counters = torch.zeros(3, N, dtype=torch.int64, device=self.device)
        self._pairs, self._sweep_next, self._sweep_length = counters[0], counters[1], counters[2]
        self._t = torch.zeros(N, dtype=torch.int64, device=self.device)
        self._return = torch.zeros(N, dtype=torch.float32, device=self.device)

    def _evaluate(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f(y; x), the gradient feature, the stationarity measure), batched."""
        f = self.problem.objective(y, x)
        if self.composite:
            grad = self.problem.smooth_gradient(y, x)
            lipschitz = float(self.problem.lipschitz)
            mapping = lipschitz * (y - self.problem.prox(y - grad / lipschitz, 1.0 / lipschitz))
            return f, grad, torch.linalg.vector_norm(mapping, dim=-1)
        grad = self.problem.gradient(y, x)
        if self.bounds is not None:
            projected = y - (y - grad).clamp(*self.bounds)
            return f, grad, torch.linalg.vector_norm(projected, dim=-1)
        return f, grad, torch.linalg.vector_norm(grad, dim=-1)

    def _draw(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Contexts ``(k, m)`` and, for ``init="random"``, standard normal draws ``(k, n)`` for ``rows``."""
        random_init = isinstance(self.init, str) and self.init == "random"
        n = self.solution_dim

        def draw(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
            x = self.problem.sample_contexts(count, generator, device=self.device)
            noise = None
            if random_init:
                noise = torch.randn(count, n, generator=generator, device=generator.device, dtype=self.dtype)
            return x, noise

        if self.seeding == "shared":
            return draw(rows.numel(), self._generators[0])
        draws = [draw(1, self._generators[i]) for i in rows.tolist()]
        x = torch.cat([d[0] for d in draws])
        noise = torch.cat([d[1] for d in draws]) if random_init else None
        return x, noise

    def _start_episodes(self, rows: torch.Tensor) -> None:
        """Draw fresh episodes into ``rows`` (a 1-D index tensor) and clear their per-episode state."""
        x, noise = self._draw(rows)
        x = x.to(device=self.device, dtype=self.dtype)
        k, n = x.shape[0], self.solution_dim
        if callable(self.init):
            y0 = torch.as_tensor(self.init(x)).to(device=self.device, dtype=self.dtype)
            if tuple(y0.shape) != (k, n):
                raise ValueError(f"init must map contexts ({k}, {self.context_dim}) to initial iterates ({k}, {n}),"
                                 f" got shape {tuple(y0.shape)}")
        elif self.init == "random":
            y0 = self.init_scale * noise
        else:
            y0 = torch.zeros(k, n, device=self.device, dtype=self.dtype)
        if self.bounds is not None:
            y0 = y0.clamp(*self.bounds)
        f0, g0, stat0 = self._evaluate(y0, x)
        start_finite = torch.isfinite(y0).all(-1) & torch.isfinite(g0).all(-1) & torch.isfinite(f0)
        if not bool(start_finite.all()):
            raise ValueError(f"{self.name}: the initial iterates from init={self.init!r} give non-finite iterates,"
                             " objectives or gradients")
        if self.uses_solver:
            f_star = self.problem.objective(self.problem.solve(x).to(self.dtype), x)
            scale = torch.maximum(f0 - f_star, SCALE_EPS * (1.0 + f_star.abs()))
            f_ref = f_star
        else:
            scale = f0.abs() + torch.linalg.vector_norm(g0, dim=-1) + SCALE_EPS
            f_ref = f0
        grad_unit = (torch.linalg.vector_norm(g0, dim=-1) / math.sqrt(n)).clamp_min(_TINY)

        self._x[rows], self._y[rows], self._g[rows] = x, y0, g0
        self._f[rows], self._stat[rows], self._f0[rows] = f0, stat0, f0
        self._f_ref[rows], self._scale[rows] = f_ref, scale
        self._grad_unit[rows], self._stat0[rows] = grad_unit, stat0.clamp_min(_TINY)
        self._hist_dy[rows] = 0.0
        self._hist_g[rows] = 0.0
        self._secant[rows] = 0.0
        self._base_step[rows] = self.first_step
        self._ritz_steps[rows], self._ritz_changes[rows], self._sweep[rows] = 0.0, 0.0, 0.0
        self._pairs[rows], self._sweep_next[rows], self._sweep_length[rows] = 0, 0, 0
        self._t[rows] = 0
        self._return[rows] = 0.0

    def _bb_step(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The base step of ``step_size_base`` after update s and gradient change z, ``(N,)``: the BB1 or BB2
        step clipped as :class:`~amorctl.optimizers.BarzilaiBorwein` clips it, ``first_step`` where sᵀz ≤ 0."""
        valid, long_step, short_step = barzilai_borwein_steps(s, z)
        step = (long_step if self.step_size_base == "bb1" else short_step).clamp(BB_MIN_STEP, BB_MAX_STEP)
        return torch.where(valid, step, torch.full_like(step, self.first_step))

    def _advance_sweep(self, s: torch.Tensor, z: torch.Tensor, taken: torch.Tensor) -> None:
        """LMSD's schedule after update s and gradient change z in the rows ``taken``: store the pair, move to
        the sweep's next index, and start a new sweep over the stored pairs where this one is used up."""
        self._ritz_steps = push_history(self._ritz_steps, s, taken)
        self._ritz_changes = push_history(self._ritz_changes, z, taken)
        in_sweep = taken & (self._pairs > 0)
        self._pairs = self._pairs + taken.long()
        self._sweep_next = self._sweep_next + in_sweep.long()
        renew = taken & (self._sweep_next >= self._sweep_length)
        fresh = lmsd_sweep(self._ritz_steps, self._ritz_changes, self.first_step)
        self._sweep = torch.where(renew.unsqueeze(-1), fresh, self._sweep)
        self._sweep_next = torch.where(renew, 0, self._sweep_next)
        self._sweep_length = torch.where(renew, self._pairs.clamp_max(self.ritz_memory), self._sweep_length)

    def _ritz(self) -> torch.Tensor:
        """The ``ritz`` block ``(N, 2M)``: the sweep's log step sizes (relative to the base step) and its next index."""
        slots = torch.arange(self.ritz_memory, device=self.device)
        base = self._base_step.unsqueeze(-1) if self.step_size_base != "range" else 1.0
        log_steps = (self._sweep / base).clamp_min(1e-30).log()
        log_steps = torch.where(slots < self._sweep_length.unsqueeze(-1), log_steps, 0.0)
        started = (self._sweep_length > 0).unsqueeze(-1)
        return torch.cat([log_steps, (started & (slots == self._sweep_next.unsqueeze(-1))).to(self.dtype)], dim=-1)

    def _gap(self) -> torch.Tensor:
        """f(y_t) − f* ≥ 0 per copy (only with a solver)."""
        return (self._f - self._f_ref).clamp_min(0.0)

    def _log_relative_gap(self, f: torch.Tensor) -> torch.Tensor:
        return torch.log((f - self._f_ref).clamp_min(0.0) / self._scale + self.gap_floor)

    def _reward(self, f_old: torch.Tensor, f_new: torch.Tensor) -> torch.Tensor:
        if self.reward_mode == "improvement":
            return (f_old - f_new) / self._scale
        if self.reward_mode == "log_gap":
            return self._log_relative_gap(f_old) - self._log_relative_gap(f_new)
        if self.reward_mode == "objective":
            return -(f_new - self._f_ref) / self._scale
        return torch.full_like(f_new, -1.0)

    def _observe(self) -> torch.Tensor:
        """The observation of every copy's current state, float32 ``(N, observation_dim)``."""
        N, unit = self.num_envs, self._grad_unit.unsqueeze(-1)
        if self.uses_solver:
            objective = self._log_relative_gap(self._f)
        else:
            objective = signed_log((self._f - self._f0) / self._scale)
        stationarity = torch.log(self._stat / self._stat0 + self.gap_floor)
        budget = self._t.to(self.dtype) / self.max_iterations
        values = {
            "iterate": lambda: signed_log(self._y).unsqueeze(-1),
            "gradient": lambda: signed_log(self._g / unit).unsqueeze(-1),
            "objective": lambda: objective.unsqueeze(-1),
            "stationarity": lambda: stationarity.unsqueeze(-1),
            "budget": lambda: budget.unsqueeze(-1),
            "update_history": lambda: signed_log(self._hist_dy).mT,
            "gradient_history": lambda: signed_log(self._hist_g / unit.unsqueeze(1)).mT,
            "secant_update": lambda: (self._secant[:, :1] * self._secant[:, 2:].exp() * self._g / unit).unsqueeze(-1),
            "secant": lambda: self._secant,
            "ritz": self._ritz,
            "context": lambda: self._x,
        }
        # per-coordinate blocks as (N, n, width): block-major (flattened width-major) or row by row
        rows = [values[block]().to(self.dtype) for block in (self.row_slices or ())]
        if rows:
            parts = [torch.cat(rows, dim=-1).reshape(N, -1)]
        else:
            parts = []
        for block in self.observation_slices:
            part = values[block]().to(self.dtype)
            parts.append(part.mT.reshape(N, -1) if block in COORDINATE_BLOCKS else part)
        obs = torch.cat(parts, dim=-1).to(torch.float32)
        return obs.clamp(-OBSERVATION_BOUND, OBSERVATION_BOUND)


def _slices(widths: list[tuple[str, int]], start: int = 0) -> dict[str, slice]:
    """Consecutive slices of the named widths, from ``start``."""
    found = {}
    for block, width in widths:
        found[block] = slice(start, start + width)
        start += width
    return found


def _secant(s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The ``secant`` block ``(N, 3)`` of update s and gradient change z: [sᵀz > 0, log sᵀs/sᵀz, log sᵀz/zᵀz].

    The logs of :func:`~amorctl.optimizers.barzilai_borwein_steps`; rows without positive curvature along
    s (sᵀz ≤ 0, e.g. a rejected or zero update) are all zeros.
    """
    valid, long_step, short_step = barzilai_borwein_steps(s, z)
    flag = valid.to(s.dtype)
    return torch.stack([flag, flag * long_step.log(), flag * short_step.log()], dim=-1)


def _check(condition: bool, argument: str, expected: str, value: object) -> None:
    """Raise :class:`~amorctl.problems.ProblemArgumentError` (a ``ValueError`` naming the argument) unless true."""
    if not condition:
        raise ProblemArgumentError(argument, expected, value)
