"""Classical iterative optimizers, batched over problems: the baselines for learned optimizers.

Every optimizer advances a whole batch of problems ``argmin_y f(y; x_b)`` in lock-step, as
``(B, n)`` tensors; there is never a Python loop over the batch. Gradients come from
``problem.gradient`` (torch.func), so any :class:`~amorctl.problems.Problem` works; ISTA and FISTA
need a composite problem f = g + h that also exposes ``smooth_gradient(y, x)`` (∇g) and
``prox(v, step)`` (the proximal map of step·h), such as :class:`~amorctl.problems.Lasso`.

The uniform entry points::

    run = run_optimizer("lbfgs", problem, x, y0, num_iterations=100)
    run.objective_values      # (num_iterations + 1, B): f(y_0), f(y_1), ...; +inf once a problem diverged
    run.solution              # (B, n): the last iterate
    run.diverged              # (B,) bool: some iterate or objective value became NaN or ±inf

    hyper = tune_step_size("momentum", problem, train_contexts, y0_fn, num_iterations=100)
    run_optimizer("momentum", problem, test_contexts, y0_fn(test_contexts), 100, **hyper)

Every optimizer has one ``step_size`` (the learning rate; for L-BFGS the first trial step of
its line search; for the Barzilai–Borwein methods ``bb1`` and ``bb2`` the safeguarded first step),
a number or a ``(B,)`` tensor of one step size per problem.
:func:`tune_step_size` uses the per-problem form to try a whole grid of step sizes in a single
batched run. Runs are not differentiated (``torch.no_grad``); learned optimizers that unroll
and backpropagate live in ``amorctl.models``. For objective gaps below ~1e-6 run in float64.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch

from amorctl.problems.base import Problem

State = dict[str, torch.Tensor]


class OptimizerRun(NamedTuple):
    """The result of :func:`run_optimizer`.

    Attributes:
        objective_values: ``(num_iterations + 1, B)``, f at y_0, y_1, ..., y_T. Once a problem has
            diverged (a NaN or ±inf in its iterate or objective), its values are +inf from then on.
        solution: ``(B, n)``, the last iterate y_T (may hold NaN or inf where ``diverged``).
        diverged: ``(B,)`` bool.
    """

    objective_values: torch.Tensor
    solution: torch.Tensor
    diverged: torch.Tensor


# ------------------------------------------------------------------- the update rules, written once
def is_composite(problem: Problem) -> bool:
    """Whether ``problem`` is split as f = g + h with ``smooth_gradient`` (∇g) and ``prox`` (of step·h)."""
    return callable(getattr(problem, "smooth_gradient", None)) and callable(getattr(problem, "prox", None))


def gradient_step(
    problem: Problem,
    y: torch.Tensor,
    x: torch.Tensor,
    step_size: torch.Tensor | float,
    detach_gradient: bool = False,
    gradient: torch.Tensor | None = None,
) -> torch.Tensor:
    """y − α ∇f(y; x), eq. 2.1; differentiable in ``y`` and α (second-order terms included).

    ``detach_gradient`` stops derivatives through ∇f (first-order MAML, D∇f ≈ 0); α may be a number,
    a ``(B, 1)`` column, or one step size per coordinate ``(n,)``. ``gradient`` is ∇f(y; x) when the
    caller has it already (it is then not recomputed).
    """
    gradient = problem.gradient(y, x) if gradient is None else gradient
    return y - step_size * (gradient.detach() if detach_gradient else gradient)


def projected_gradient_step(
    problem: Problem,
    y: torch.Tensor,
    x: torch.Tensor,
    step_size: torch.Tensor | float,
    detach_gradient: bool = False,
    gradient: torch.Tensor | None = None,
) -> torch.Tensor:
    """Π_box(y − α ∇f(y; x)): the gradient step clipped onto the problem's box ``bounds``."""
    low, high = problem.bounds
    return gradient_step(problem, y, x, step_size, detach_gradient, gradient).clamp(low, high)


def proximal_gradient_step(
    problem: Problem,
    y: torch.Tensor,
    x: torch.Tensor,
    step_size: torch.Tensor | float,
    detach_gradient: bool = False,
    gradient: torch.Tensor | None = None,
) -> torch.Tensor:
    """prox_{αh}(y − α ∇g(y; x)) for a composite f = g + h (ISTA's update; the soft threshold for the lasso).

    ``gradient`` is ∇g(y; x) when the caller has it already."""
    gradient = problem.smooth_gradient(y, x) if gradient is None else gradient
    return problem.prox(y - step_size * (gradient.detach() if detach_gradient else gradient), step_size)


def descent_gradient(problem: Problem, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The gradient :func:`descent_step_rule`'s step moves along: ∇g for a composite family, else ∇f."""
    return problem.smooth_gradient(y, x) if is_composite(problem) else problem.gradient(y, x)


def barzilai_borwein_steps(s: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two Barzilai–Borwein (1988) step sizes of an update s and the gradient change z it caused, per row.

    For rows ``(..., n)``: ``valid`` (bool ``(...)``: sᵀz > 0 with s, z ≠ 0, i.e. positive curvature along s),
    the long step BB1 = sᵀs / sᵀz and the short step BB2 = sᵀz / zᵀz (BB2 ≤ BB1 by Cauchy–Schwarz).
    Both are inverse Rayleigh-quotient estimates of the curvature along s: on f = ½yᵀAy − bᵀy,
    z = As and 1/BB1, 1/BB2 lie in [λ_min(A), λ_max(A)]. Where ``valid`` is false both steps are 1.
    """
    sz, ss, zz = (s * z).sum(-1), s.square().sum(-1), z.square().sum(-1)
    valid = (sz > 0) & (ss > 0) & (zz > 0)
    safe_sz = torch.where(valid, sz, torch.ones_like(sz))
    long_step = torch.where(valid, ss, torch.ones_like(ss)) / safe_sz
    short_step = safe_sz / torch.where(valid, zz, torch.ones_like(zz))
    return valid, long_step, short_step


def descent_step_rule(problem: Problem) -> Callable[..., torch.Tensor]:
    """The family's plain descent step: proximal for composite families, projected for boxes, else plain."""
    if is_composite(problem):
        return proximal_gradient_step
    if problem.bounds is not None:
        return projected_gradient_step
    return gradient_step


class BatchedOptimizer(ABC):
    """An iterative optimizer over a batch of problems: ``init`` once, then ``step`` repeatedly.

    Subclasses take their hyper-parameters as keyword-only constructor arguments with defaults
    and implement :meth:`step`. ``state`` is a dict of tensors with leading size B (plus the
    per-problem ``step_size`` column), so an optimizer can be checkpointed or driven one step at
    a time, e.g. by an optimizer-as-MDP environment.
    """

    name: ClassVar[str]

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor):
        _check_step_size(step_size)
        self.problem, self.step_size = problem, step_size

    @classmethod
    def default_grid(cls, problem: Problem) -> list[float]:
        """The step sizes :func:`tune_step_size` tries by default: 1e-4 to 10, three per decade."""
        return [10.0 ** (k / 3) for k in range(-12, 4)]

    def init(self, y: torch.Tensor, x: torch.Tensor) -> State:
        """The state before the first step from ``y`` (the per-problem step size, as a ``(B, 1)`` column)."""
        return {"step_size": _step_column(self.step_size, y)}

    @abstractmethod
    def step(self, y: torch.Tensor, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One iteration: the next iterate ``(B, n)`` and the next state."""


class GradientDescent(BatchedOptimizer):
    """y ← y − α ∇f(y)."""

    name = "gd"

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor = 0.01):
        super().__init__(problem, step_size=step_size)

    def step(self, y, x, state):
        return gradient_step(self.problem, y, x, state["step_size"]), state


class ProjectedGradientDescent(BatchedOptimizer):
    """y ← Π_box(y − α ∇f(y)): gradient descent kept in a family's box ``bounds`` (e.g. pendulum_mpc)."""

    name = "projected_gd"

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor = 0.01):
        if problem.bounds is None:
            raise TypeError(f"{self.name} needs a family with box bounds; {type(problem).__name__} has none")
        super().__init__(problem, step_size=step_size)

    def step(self, y, x, state):
        return projected_gradient_step(self.problem, y, x, state["step_size"]), state


class HeavyBall(BatchedOptimizer):
    """Polyak's heavy-ball momentum: v ← βv − α ∇f(y), y ← y + v (v₀ = 0)."""

    name = "momentum"

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor = 0.01, momentum: float = 0.9):
        super().__init__(problem, step_size=step_size)
        _check(0.0 <= momentum < 1.0, "momentum", "in [0, 1)", momentum)
        self.momentum = momentum

    def init(self, y, x):
        return {**super().init(y, x), "velocity": torch.zeros_like(y)}

    def step(self, y, x, state):
        velocity = self.momentum * state["velocity"] - state["step_size"] * self.problem.gradient(y, x)
        return y + velocity, {**state, "velocity": velocity}


class Nesterov(HeavyBall):
    """Nesterov's accelerated gradient with constant momentum (Sutskever et al. 2013 form).

    v ← βv − α ∇f(y + βv), y ← y + v: the gradient is taken at the look-ahead point.
    """

    name = "nesterov"

    def step(self, y, x, state):
        lookahead = y + self.momentum * state["velocity"]
        velocity = self.momentum * state["velocity"] - state["step_size"] * self.problem.gradient(lookahead, x)
        return y + velocity, {**state, "velocity": velocity}


class Adam(BatchedOptimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``step_size`` is the learning rate α."""

    name = "adam"

    def __init__(
        self,
        problem: Problem,
        *,
        step_size: float | torch.Tensor = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        super().__init__(problem, step_size=step_size)
        _check(0.0 <= beta1 < 1.0, "beta1", "in [0, 1)", beta1)
        _check(0.0 <= beta2 < 1.0, "beta2", "in [0, 1)", beta2)
        _check(eps > 0.0, "eps", "positive", eps)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, y, x):
        zeros = torch.zeros_like(y)
        return {**super().init(y, x), "first_moment": zeros, "second_moment": zeros, "count": y.new_zeros(())}

    def step(self, y, x, state):
        gradient = self.problem.gradient(y, x)
        count = state["count"] + 1
        first = self.beta1 * state["first_moment"] + (1.0 - self.beta1) * gradient
        second = self.beta2 * state["second_moment"] + (1.0 - self.beta2) * gradient.square()
        first_hat = first / (1.0 - self.beta1**count)
        second_hat = second / (1.0 - self.beta2**count)
        y = y - state["step_size"] * first_hat / (second_hat.sqrt() + self.eps)
        return y, {**state, "first_moment": first, "second_moment": second, "count": count}


BB_MIN_STEP, BB_MAX_STEP = 1e-10, 1e10
"""The default clip [min_step, max_step] of a Barzilai–Borwein step (:class:`BarzilaiBorwein`)."""


class BarzilaiBorwein(BatchedOptimizer):
    """Gradient descent with Barzilai–Borwein step sizes (Barzilai & Borwein 1988), safeguarded.

    y_{k+1} = y_k − α_k ∇f(y_k) with α_k from the last update s = y_k − y_{k−1} and gradient change
    z = ∇f(y_k) − ∇f(y_{k−1}) (:func:`barzilai_borwein_steps`): α = sᵀs / sᵀz (``bb1``, the long step)
    or α = sᵀz / zᵀz (``bb2``, the short step). The step goes through the family's
    :func:`descent_step_rule`, so a box family gets the projected (spectral projected gradient without
    a line search) and a composite family the proximal form (SpaRSA-like, with ∇g).

    Safeguards: the first step, which has no secant pair yet, is ``step_size`` (tuned like every other
    optimizer's by :func:`tune_step_size`, so it is the largest that does not diverge on the tuning
    contexts); so is every step where the last update shows no positive curvature (sᵀz ≤ 0: a nonconvex
    region, or a zero update at a fixed point); and every BB step is clipped to
    [``min_step``, ``max_step``]. Nonmonotone: f may rise on some iterations (BB's typical behaviour);
    on a strictly convex quadratic the iteration still converges R-linearly (Raydan 1993, Dai & Liao 2002).
    """

    long_step: ClassVar[bool]

    def __init__(
        self,
        problem: Problem,
        *,
        step_size: float | torch.Tensor = 0.01,
        min_step: float = BB_MIN_STEP,
        max_step: float = BB_MAX_STEP,
    ):
        super().__init__(problem, step_size=step_size)
        _check(0.0 < min_step <= max_step < math.inf, "min_step, max_step", "0 < min_step <= max_step < inf",
               (min_step, max_step))
        self.min_step, self.max_step = min_step, max_step
        self._rule = descent_step_rule(problem)

    def init(self, y, x):
        return {**super().init(y, x), "gradient": descent_gradient(self.problem, y, x),
                "update": torch.zeros_like(y), "gradient_change": torch.zeros_like(y)}

    def step(self, y, x, state):
        valid, long_step, short_step = barzilai_borwein_steps(state["update"], state["gradient_change"])
        secant_step = (long_step if self.long_step else short_step).clamp(self.min_step, self.max_step)
        fallback = state["step_size"].expand(y.shape[0], 1)
        step = torch.where(valid.unsqueeze(-1), secant_step.unsqueeze(-1), fallback)
        new_y = self._rule(self.problem, y, x, step, gradient=state["gradient"])
        new_gradient = descent_gradient(self.problem, new_y, x)
        return new_y, {**state, "gradient": new_gradient, "update": new_y - y,
                       "gradient_change": new_gradient - state["gradient"]}


class BarzilaiBorweinLong(BarzilaiBorwein):
    """BB1: α_k = sᵀs / sᵀz (the long step); see :class:`BarzilaiBorwein`."""

    name = "bb1"
    long_step = True


class BarzilaiBorweinShort(BarzilaiBorwein):
    """BB2: α_k = sᵀz / zᵀz (the short step); see :class:`BarzilaiBorwein`."""

    name = "bb2"
    long_step = False


def push_history(history: torch.Tensor, newest: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """A rolling history ``(B, k, ...)``, oldest first, with its oldest entry dropped and ``newest`` ``(B, ...)``
    appended — in the rows ``where`` ``(B,)`` only (every row when ``None``)."""
    shifted = torch.cat([history[:, 1:], newest.unsqueeze(1)], dim=1)
    if where is None:
        return shifted
    return torch.where(where.view(-1, *([1] * (history.dim() - 1))), shifted, history)


def ritz_values(steps: torch.Tensor, gradient_changes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values of the Hessian on the span of the last updates, from updates and gradient changes alone.

    For rows ``(..., k, n)`` of updates s_j and the gradient changes z_j they caused (on f = ½yᵀAy − bᵀy,
    z_j = A s_j), the Ritz values θ are the eigenvalues of the pencil (Sᵀ Z, Sᵀ S), i.e. of A restricted to
    span{s_j} (Rayleigh–Ritz; Fletcher 2012, "A limited memory steepest descent method", Math. Program.,
    where the s_j are multiples of the back gradients, so the span is theirs). No Hessian is touched: Sᵀ Z is
    symmetrized, the updates are normalized, and the Gram matrix Sᵀ S is inverted on its numerically
    nonsingular part only (eigenvalues above the input dtype's eps times its largest), which drops zero
    (unfilled) slots and nearly dependent updates. The small eigenproblems are solved in float64 whatever the
    input dtype (in float32 they alone made a 10-d quadratic diverge at memory 10). With one pair,
    θ = sᵀz / sᵀs = 1 / BB1.

    Returns ``(theta, valid)``, both ``(..., k)``: θ sorted from largest to smallest, ``valid`` where θ is a
    positive curvature of a kept direction (false for dropped directions and non-positive curvature).
    """
    dtype = steps.dtype
    steps, gradient_changes = steps.double(), gradient_changes.double()
    norms = torch.linalg.vector_norm(steps, dim=-1, keepdim=True)
    kept = (norms > 0) & torch.isfinite(norms) & torch.isfinite(gradient_changes).all(-1, keepdim=True)
    scale = torch.where(kept, 1.0 / torch.where(kept, norms, 1.0), 0.0)
    s, z = steps * scale, torch.where(kept, gradient_changes * scale, 0.0)
    gram = s @ s.transpose(-1, -2)
    curvature = s @ z.transpose(-1, -2)
    curvature = 0.5 * (curvature + curvature.transpose(-1, -2))
    tolerance = torch.finfo(dtype).eps
    weights, basis = torch.linalg.eigh(gram)
    nonsingular = weights > tolerance * weights[..., -1:].clamp_min(0.0)
    whiten = basis * torch.where(nonsingular, weights.clamp_min(tolerance).rsqrt(), 0.0).unsqueeze(-2)
    theta = torch.linalg.eigvalsh(whiten.transpose(-1, -2) @ curvature @ whiten).flip(-1)
    valid = theta > tolerance * theta[..., :1].abs()
    return theta.to(dtype), valid


def lmsd_sweep(
    steps: torch.Tensor,
    gradient_changes: torch.Tensor,
    fallback: float | torch.Tensor,
    min_step: float = BB_MIN_STEP,
    max_step: float = BB_MAX_STEP,
) -> torch.Tensor:
    """A sweep of limited-memory steepest descent from the stored pairs ``(B, m, n)``: step sizes ``(B, m)``.

    1/θ for the :func:`ritz_values` θ₁ ≥ … ≥ θ_m, i.e. shortest step first; a slot without a valid Ritz value
    takes the sweep's shortest valid step, or ``fallback`` (a number or a ``(B, 1)`` column) where there is
    none; all clipped to [``min_step``, ``max_step``]."""
    theta, valid = ritz_values(steps, gradient_changes)
    sweep = torch.where(valid, 1.0 / torch.where(valid, theta, 1.0), math.inf)
    shortest = sweep.min(-1, keepdim=True).values
    fallback = torch.as_tensor(fallback, dtype=sweep.dtype, device=sweep.device).expand(sweep.shape[0], 1)
    shortest = torch.where(torch.isfinite(shortest), shortest, fallback)
    return torch.where(valid, sweep, shortest).clamp(min_step, max_step)


class LimitedMemorySteepestDescent(BatchedOptimizer):
    """Limited-memory steepest descent (LMSD; Fletcher 2012, Math. Program. 135), batched, in sweeps.

    Gradient descent whose step sizes come in sweeps: at the start of a sweep the Ritz values θ₁ ≥ … ≥ θ_k
    of the Hessian on the span of the last k = min(``memory``, iterations so far) updates are computed
    (:func:`ritz_values`, from the stored updates and gradient changes only) and the sweep takes the k steps
    1/θ₁, …, 1/θ_k, shortest first. On a quadratic the last ``memory`` gradients span a Krylov space, the
    θ are the Lanczos estimates of the extreme eigenvalues, and the gradient after a whole sweep is
    ∏ᵢ(I − A/θᵢ) g whatever the order; with ``memory`` ≥ n the space becomes invariant and one further
    sweep solves the problem up to rounding. With ``memory=1`` every step is 1/θ = BB1 (:class:`BarzilaiBorweinLong`).

    Safeguards as in :class:`BarzilaiBorwein`: the first step is ``step_size`` (tuned by :func:`tune_step_size`;
    the sweeps then grow 1, 1, 2, 4, … up to ``memory`` steps); a slot of a sweep without a valid Ritz value
    (nearly dependent updates, non-positive curvature) takes the sweep's shortest valid step, or ``step_size``
    where there is none; every step is clipped to [``min_step``, ``max_step``]. Steps go through the family's
    :func:`descent_step_rule` (projected or proximal forms). All problems of the batch keep the same sweep
    schedule, so the schedule is three counters shared by the batch (pairs stored, next index, sweep length).
    """

    name = "lmsd"

    def __init__(
        self,
        problem: Problem,
        *,
        step_size: float | torch.Tensor = 0.01,
        memory: int = 5,
        min_step: float = BB_MIN_STEP,
        max_step: float = BB_MAX_STEP,
    ):
        super().__init__(problem, step_size=step_size)
        _check(isinstance(memory, int) and memory >= 1, "memory", "a positive integer", memory)
        _check(0.0 < min_step <= max_step < math.inf, "min_step, max_step", "0 < min_step <= max_step < inf",
               (min_step, max_step))
        self.memory, self.min_step, self.max_step = memory, min_step, max_step
        self._rule = descent_step_rule(problem)

    def init(self, y, x):
        history = y.new_zeros(y.shape[0], self.memory, y.shape[1])
        counter = y.new_zeros((), dtype=torch.long).new_tensor
        return {**super().init(y, x), "gradient": descent_gradient(self.problem, y, x),
                "steps": history, "gradient_changes": history.clone(),  # oldest first, zeros until filled
                "sweep": y.new_zeros(y.shape[0], self.memory), "pairs": counter(0), "position": counter(0),
                "length": counter(0)}  # the sweep's steps, the next one's index and how many it has

    def sweep_steps(self, state: State) -> torch.Tensor:
        """The next sweep's step sizes ``(B, memory)`` from the stored pairs (:func:`lmsd_sweep`)."""
        return lmsd_sweep(state["steps"], state["gradient_changes"], state["step_size"], self.min_step, self.max_step)

    def step(self, y, x, state):
        pairs, position, length = int(state["pairs"]), int(state["position"]), int(state["length"])
        sweep = state["sweep"]
        if pairs == 0:
            step = state["step_size"].expand(y.shape[0], 1)
        else:
            if position >= length:  # a new sweep, over every stored pair
                sweep, position, length = self.sweep_steps(state), 0, min(pairs, self.memory)
            step = sweep[:, position : position + 1]
            position += 1
        new_y = self._rule(self.problem, y, x, step, gradient=state["gradient"])
        new_gradient = descent_gradient(self.problem, new_y, x)

        counter = state["pairs"].new_tensor
        return new_y, {**state, "gradient": new_gradient, "steps": push_history(state["steps"], new_y - y),
                       "gradient_changes": push_history(state["gradient_changes"], new_gradient - state["gradient"]),
                       "sweep": sweep, "position": counter(position), "length": counter(length),
                       "pairs": counter(pairs + 1)}


class LBFGS(BatchedOptimizer):
    """Limited-memory BFGS with the two-loop recursion, batched, and a backtracking line search.

    Each problem keeps its own last ``memory`` curvature pairs (s, z) = (y_{k+1} − y_k,
    ∇f_{k+1} − ∇f_k) in ``(B, memory, n)`` tensors; a pair enters only where sᵀz > 1e-10·‖s‖‖z‖
    (curvature condition), so H stays positive definite. The initial inverse Hessian is γI with
    γ = sᵀz / zᵀz of the newest pair (1 before the first pair). Where the quasi-Newton direction d
    is not a descent direction, d = −∇f.

    With ``line_search=True`` (default) the step t starts at ``step_size`` and is halved, per
    problem, until the Armijo condition f(y + t d) ≤ f(y) + c·t·∇fᵀd holds (c = ``armijo``),
    at most ``max_backtracks`` times; a problem with no acceptable step stays where it is that
    iteration. So one iteration may evaluate f several times, and f does not increase (beyond
    rounding, once a problem has converged to machine precision). With
    ``line_search=False`` the step is ``step_size`` always.
    """

    name = "lbfgs"

    def __init__(
        self,
        problem: Problem,
        *,
        step_size: float | torch.Tensor = 1.0,
        memory: int = 10,
        line_search: bool = True,
        armijo: float = 1e-4,
        max_backtracks: int = 30,
    ):
        super().__init__(problem, step_size=step_size)
        _check(memory >= 1, "memory", "a positive integer", memory)
        _check(0.0 < armijo < 1.0, "armijo", "in (0, 1)", armijo)
        _check(max_backtracks >= 0, "max_backtracks", "a non-negative integer", max_backtracks)
        self.memory, self.line_search, self.armijo, self.max_backtracks = memory, line_search, armijo, max_backtracks

    @classmethod
    def default_grid(cls, problem: Problem) -> list[float]:
        """With a line search the first trial step hardly matters: 1e-2 to 10, three per decade."""
        return [10.0 ** (k / 3) for k in range(-6, 4)]

    def init(self, y, x):
        batch, n = y.shape
        history = y.new_zeros(batch, self.memory, n)
        return {
            **super().init(y, x),
            "steps": history,  # s_i, oldest first; index memory - 1 is the newest pair
            "gradient_changes": history.clone(),  # z_i
            "inverse_curvatures": y.new_zeros(batch, self.memory),  # ρ_i = 1 / s_iᵀz_i, 0 for an empty slot
            "gradient": self.problem.gradient(y, x),
            "value": self.problem.objective(y, x),
        }

    def step(self, y, x, state):
        gradient, value = state["gradient"], state["value"]
        direction = -self._two_loop(gradient, state)
        slope = (gradient * direction).sum(-1, keepdim=True)
        not_descent = ~(slope < 0)  # also catches NaN
        direction = torch.where(not_descent, -gradient, direction)
        slope = torch.where(not_descent, -gradient.square().sum(-1, keepdim=True), slope)

        if self.line_search:
            step, new_value = self._backtrack(y, x, value, direction, slope, state["step_size"])
            new_y = y + step * direction
        else:
            new_y = y + state["step_size"] * direction
            new_value = self.problem.objective(new_y, x)
        new_gradient = self.problem.gradient(new_y, x)

        s, z = new_y - y, new_gradient - gradient
        curvature = (s * z).sum(-1, keepdim=True)
        scale = torch.linalg.vector_norm(s, dim=-1, keepdim=True) * torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        accept = curvature > 1e-10 * scale  # False for NaN as well
        rho = torch.where(accept, 1.0 / torch.where(accept, curvature, 1.0), 0.0)

        rows = accept.squeeze(-1)
        state = {
            **state,
            "steps": push_history(state["steps"], s, rows),
            "gradient_changes": push_history(state["gradient_changes"], z, rows),
            "inverse_curvatures": push_history(state["inverse_curvatures"], rho.squeeze(-1), rows),
            "gradient": new_gradient,
            "value": new_value,
        }
        return new_y, state

    def _two_loop(self, gradient: torch.Tensor, state: State) -> torch.Tensor:
        """H·∇f by the two-loop recursion (Nocedal & Wright, Algorithm 7.4); empty slots have ρ = 0."""
        steps, changes, rho = state["steps"], state["gradient_changes"], state["inverse_curvatures"]
        q = gradient
        alphas = []
        for i in reversed(range(self.memory)):
            alpha = rho[:, i : i + 1] * (steps[:, i] * q).sum(-1, keepdim=True)
            q = q - alpha * changes[:, i]
            alphas.append(alpha)
        newest_z = changes[:, -1]
        has_pair = rho[:, -1:] > 0
        gamma_denominator = torch.where(has_pair, newest_z.square().sum(-1, keepdim=True), 1.0)
        gamma = torch.where(has_pair, 1.0 / (rho[:, -1:] * gamma_denominator), 1.0)
        r = gamma * q
        for i, alpha in zip(range(self.memory), reversed(alphas)):
            beta = rho[:, i : i + 1] * (changes[:, i] * r).sum(-1, keepdim=True)
            r = r + (alpha - beta) * steps[:, i]
        return r

    def _backtrack(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        value: torch.Tensor,
        direction: torch.Tensor,
        slope: torch.Tensor,
        initial_step: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Armijo step ``(B, 1)`` per problem (0 where none was found) and f at the new point ``(B,)``.

        A trial step whose predicted decrease t·|∇fᵀd| is below the rounding error of f (a
        converged problem) is taken without the Armijo test, instead of backtracking in vain
        ``max_backtracks`` times.
        """
        step = initial_step.expand(y.shape[0], 1).clone()
        accepted = torch.zeros(y.shape[0], 1, dtype=torch.bool, device=y.device)
        new_value = value.clone()
        resolution = 8 * torch.finfo(value.dtype).eps * value.abs()
        for _ in range(self.max_backtracks + 1):
            trial = self.problem.objective(y + step * direction, x)
            predicted_change = (step * slope).squeeze(-1)  # t·∇fᵀd < 0
            # Armijo, or a predicted decrease below f's rounding error (converged: don't backtrack in vain).
            ok = (trial <= value + self.armijo * predicted_change) | (-predicted_change <= resolution)
            ok = (ok & torch.isfinite(trial)).unsqueeze(-1) & ~accepted
            new_value = torch.where(ok.squeeze(-1), trial, new_value)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, 0.5 * step)
        return torch.where(accepted, step, 0.0), new_value


class _ProximalGradient(BatchedOptimizer):
    """Shared set-up of ISTA and FISTA: f = g + h with ∇g and prox_h from the problem."""

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor | None = None):
        if not is_composite(problem):
            raise TypeError(
                f"{self.name} needs a composite problem with smooth_gradient(y, x) and prox(v, step) "
                f"(e.g. Lasso); {type(problem).__name__} has no such split"
            )
        if step_size is None:
            lipschitz = getattr(problem, "lipschitz", None)
            if lipschitz is None:
                raise ValueError(f"{self.name}: {type(problem).__name__} has no lipschitz constant; pass step_size")
            step_size = 1.0 / lipschitz
        super().__init__(problem, step_size=step_size)

    @classmethod
    def default_grid(cls, problem: Problem) -> list[float]:
        """(1/L)·2^{k/2} for k = −8..1, i.e. 1/(16L) to √2/L, where L is ``problem.lipschitz``.

        Steps of 2/L and more can diverge; √2/L leaves a margin for contexts not seen in tuning.
        """
        lipschitz = getattr(problem, "lipschitz", None)
        if lipschitz is None:
            return super().default_grid(problem)
        return [2.0 ** (k / 2) / lipschitz for k in range(-8, 2)]

    def _prox_gradient_step(self, point: torch.Tensor, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return proximal_gradient_step(self.problem, point, x, step)


class ISTA(_ProximalGradient):
    """Proximal gradient descent: y ← prox_{αh}(y − α∇g(y)); ``step_size`` defaults to 1/L.

    Monotone (f never increases) for α ≤ 1/L; f − f* = O(1/k).
    """

    name = "ista"

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor | None = None):
        super().__init__(problem, step_size=step_size)

    def step(self, y, x, state):
        return self._prox_gradient_step(y, x, state["step_size"]), state


class FISTA(_ProximalGradient):
    """Accelerated proximal gradient (Beck & Teboulle 2009); ``step_size`` defaults to 1/L.

    y_{k+1} = prox_{αh}(z_k − α∇g(z_k)), t_{k+1} = (1 + √(1 + 4t_k²))/2,
    z_{k+1} = y_{k+1} + ((t_k − 1)/t_{k+1})(y_{k+1} − y_k); f − f* = O(1/k²), not monotone.
    ``restart=True`` resets t to 1 where (z_k − y_{k+1})ᵀ(y_{k+1} − y_k) > 0 (gradient-based adaptive
    restart, O'Donoghue & Candès 2015), which restores linear convergence on locally strongly
    convex problems.
    """

    name = "fista"

    def __init__(self, problem: Problem, *, step_size: float | torch.Tensor | None = None, restart: bool = False):
        super().__init__(problem, step_size=step_size)
        self.restart = restart

    def init(self, y, x):
        return {**super().init(y, x), "lookahead": y, "momentum": y.new_ones(y.shape[0], 1)}

    def step(self, y, x, state):
        lookahead, momentum = state["lookahead"], state["momentum"]
        new_y = self._prox_gradient_step(lookahead, x, state["step_size"])
        new_momentum = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * momentum.square()))
        extrapolation = (momentum - 1.0) / new_momentum
        if self.restart:
            restart = ((lookahead - new_y) * (new_y - y)).sum(-1, keepdim=True) > 0
            new_momentum = torch.where(restart, 1.0, new_momentum)
            extrapolation = torch.where(restart, 0.0, extrapolation)
        lookahead = new_y + extrapolation * (new_y - y)
        return new_y, {**state, "lookahead": lookahead, "momentum": new_momentum}


OPTIMIZERS: dict[str, type[BatchedOptimizer]] = {
    cls.name: cls
    for cls in (GradientDescent, ProjectedGradientDescent, HeavyBall, Nesterov, Adam, BarzilaiBorweinLong,
                BarzilaiBorweinShort, LimitedMemorySteepestDescent, LBFGS, ISTA, FISTA)
}


def make_optimizer(name: str, problem: Problem, **hyper: Any) -> BatchedOptimizer:
    """Build the registered optimizer ``name`` for ``problem`` with its hyper-parameters."""
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {name!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    cls = OPTIMIZERS[name]
    known = [key for key in inspect.signature(cls.__init__).parameters if key not in ("self", "problem")]
    unknown = sorted(set(hyper) - set(known))
    if unknown:
        raise TypeError(f"optimizer {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(known)}")
    return cls(problem, **hyper)


@torch.no_grad()
def run_optimizer(
    name: str,
    problem: Problem,
    x: torch.Tensor,
    y0: torch.Tensor,
    num_iterations: int,
    **hyper: Any,
) -> OptimizerRun:
    """Run optimizer ``name`` from ``y0`` ``(B, n)`` on the contexts ``x`` ``(B, m)`` for ``num_iterations`` steps.

    ``hyper`` are the optimizer's keyword arguments (``step_size`` and e.g. ``momentum``); see
    :data:`OPTIMIZERS`. Diverging problems never raise: their objective values become +inf and
    ``diverged`` marks them; when every problem has diverged the run stops early (remaining rows +inf).
    """
    _check(num_iterations >= 0, "num_iterations", "a non-negative integer", num_iterations)
    _check(y0.dim() == 2 and x.dim() == 2 and y0.shape[0] == x.shape[0], "y0",
           f"a (B, n) tensor with the B = {x.shape[0]} rows of x", tuple(y0.shape))
    optimizer = make_optimizer(name, problem, **hyper)
    y = y0
    state = optimizer.init(y, x)
    value = problem.objective(y, x)
    diverged = ~torch.isfinite(value) | ~torch.isfinite(y).all(-1)
    values = [torch.where(diverged, math.inf, value)]
    for iteration in range(num_iterations):
        if iteration % 10 == 0 and bool(diverged.all()):
            values.extend([values[-1]] * (num_iterations - iteration))
            break
        y, state = optimizer.step(y, x, state)
        value = problem.objective(y, x)
        diverged = diverged | ~torch.isfinite(value) | ~torch.isfinite(y).all(-1)
        values.append(torch.where(diverged, math.inf, value))
    return OptimizerRun(torch.stack(values), y, diverged)


def step_size_scores(
    name: str,
    problem: Problem,
    train_contexts: torch.Tensor,
    y0_fn: Callable[[torch.Tensor], torch.Tensor],
    num_iterations: int,
    grid: Sequence[float] | torch.Tensor | None = None,
    **hyper: Any,
) -> tuple[list[float], list[float]]:
    """Score every step size of ``grid``: the mean final objective over ``train_contexts``.

    All G step sizes run together in one batched run over G copies of the B training problems
    (one step size per copy), so the cost is one run of G·B problems. A step size under which any
    training problem diverges scores +inf. Returns ``(grid, scores)`` as lists of floats.
    """
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {name!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    grid = OPTIMIZERS[name].default_grid(problem) if grid is None else grid
    grid = [float(value) for value in (grid.tolist() if isinstance(grid, torch.Tensor) else (grid or []))]
    _check(len(grid) > 0 and all(value > 0 and math.isfinite(value) for value in grid), "grid",
           "a non-empty list of positive step sizes", grid)
    _check("step_size" not in hyper, "hyper", "free of step_size (it is what is tuned)", sorted(hyper))
    batch = train_contexts.shape[0]
    y0 = y0_fn(train_contexts)
    repeats = len(grid)
    steps = torch.tensor(grid, dtype=y0.dtype, device=y0.device).repeat_interleave(batch)
    run = run_optimizer(
        name, problem, train_contexts.repeat(repeats, 1), y0.repeat(repeats, 1), num_iterations,
        step_size=steps, **hyper,
    )
    scores = run.objective_values[-1].view(repeats, batch).mean(-1)  # +inf wherever a problem diverged
    return grid, scores.tolist()


def tune_step_size(
    name: str,
    problem: Problem,
    train_contexts: torch.Tensor,
    y0_fn: Callable[[torch.Tensor], torch.Tensor],
    num_iterations: int,
    grid: Sequence[float] | torch.Tensor | None = None,
    **hyper: Any,
) -> dict[str, Any]:
    """The step size of ``grid`` with the lowest mean final objective on ``train_contexts``.

    Only ``train_contexts`` are ever evaluated; tune on training contexts and report on held-out
    ones. ``y0_fn(contexts) -> (B, n)`` gives the starting points, ``hyper`` the optimizer's other
    (fixed) hyper-parameters. ``grid`` defaults to the optimizer's :meth:`~BatchedOptimizer.default_grid`
    (log-spaced). Step sizes that diverge on any training problem are never chosen; if every one
    diverges, ``RuntimeError``. Returns ``{**hyper, "step_size": best}``, ready for
    ``run_optimizer(name, problem, x, y0, num_iterations, **result)``.

    The best step often sits just below the edge of stability of the training contexts (e.g.
    2/λ_max for gradient descent), so a held-out context with a larger curvature can diverge under
    it: tune on enough contexts to cover the family's curvature range.
    """
    grid, scores = step_size_scores(name, problem, train_contexts, y0_fn, num_iterations, grid, **hyper)
    finite = [(score, step) for score, step in zip(scores, grid) if math.isfinite(score)]
    if not finite:
        raise RuntimeError(
            f"tune_step_size({name!r}): every step size in the grid diverged on the training contexts "
            f"({grid[0]:.3g} to {grid[-1]:.3g}); try smaller step sizes"
        )
    _, best_step = min(finite)
    return {**hyper, "step_size": best_step}


def _step_column(step_size: float | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A step size as a ``(B, 1)`` column (or a ``()`` scalar) on ``y``'s device and dtype."""
    if isinstance(step_size, torch.Tensor):
        if step_size.numel() not in (1, y.shape[0]):
            raise ValueError(f"step_size must be a number or have one entry per problem ({y.shape[0]}), "
                             f"got shape {tuple(step_size.shape)}")
        column = step_size.to(device=y.device, dtype=y.dtype).reshape(-1, 1)
        return column if column.shape[0] > 1 else column.reshape(())
    return torch.tensor(float(step_size), device=y.device, dtype=y.dtype)


def _check_step_size(step_size: float | torch.Tensor) -> None:
    if isinstance(step_size, torch.Tensor):
        ok = bool(((step_size > 0) & torch.isfinite(step_size)).all())
    else:
        ok = step_size > 0 and math.isfinite(step_size)
    _check(ok, "step_size", "positive and finite", step_size)


def _check(condition: bool, argument: str, expected: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{argument} must be {expected}, got {value!r}")
