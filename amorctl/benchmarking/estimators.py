"""``scripts/benchmark.py estimators``: the gradient estimators against exact gradients, and their memory against K.

(a) **Bias and variance** on the quadratic family (float64), θ = the learned start ŷ⁰ of a MAML-style
``unrolled_gd`` (its step sizes frozen, so every estimator estimates the same vector): for a fixed batch
of contexts, each estimator's ĝ is drawn ``repeats`` times (only ``es`` is random) and compared with the
exact gradient of the model it trains, in closed form:

- K unrolled gradient steps (bptt, first_order, truncated, es): ŷᴷ = Πₜ(I − αₜA)ŷ⁰ + c, so
  g = E_b Πₜ(I − αₜA_b)ᵀ ∇f(ŷᴷ_b);
- the proximal model of eq. 2.13 (implicit): ŷ = (A + λI)⁻¹(b + λŷ⁰), so g = E_b λ(A_b + λI)⁻¹ ∇f(ŷ_b).

Relative bias ‖mean ĝ − g‖ / ‖g‖, relative standard deviation √(mean ‖ĝ − mean ĝ‖²) / ‖g‖, and, to show
what implicit differentiation changes (the seed's warning after eq. 2.13), the distance of mean ĝ to the
K-step unroll's gradient. For a quadratic loss the Gaussian-smoothed loss of eq. 2.14 differs from the
loss by a constant, so es must be unbiased here.

(b) **Memory of one training step** (``DirectAmortization.train_step``: forward, the estimator's gradient,
the optimizer step) of ``configs/amortize_quadratic_unrolled_gd_implicit.yaml`` against K = ``model.steps``,
for ``implicit`` (inner solve forced to run all K steps: ``gradient.tolerance`` 1e-30) and ``bptt``.
Measured on the CPU by ``torch.profiler`` with ``profile_memory``: its ``[memory]`` records (every
allocation and free of tensor storage by the CPU allocator, with its size and time) summed in time order;
the *peak* of that running sum over the step, and the bytes still held after the forward pass of the
loss (the autograd graph's saved tensors and the outputs). Both count tensor storage only (no Python
objects), relative to what was allocated before the step, and are deterministic: the same on a loaded
machine.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, one_thread
from amorctl.gradients import EvolutionStrategies, FirstOrder, Implicit, Truncated, UnrollEstimator
from amorctl.gradients.base import BatchLoss
from amorctl.losses import objective_loss
from amorctl.models import UnrolledGradientDescent
from amorctl.problems import Quadratic

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "amortize_quadratic_unrolled_gd_implicit.yaml"


@dataclass
class QuadraticCase:
    """A fixed batch of quadratics and a MAML-style start θ, in float64."""

    problem: Quadratic
    x: torch.Tensor
    theta: torch.Tensor

    @classmethod
    def draw(cls, dim: int, cond_max: float, batch: int, seed: int) -> QuadraticCase:
        problem = Quadratic(dim=dim, cond_max=cond_max, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        x = problem.sample_contexts(batch, generator).double()
        return cls(problem, x, torch.randn(dim, generator=generator, dtype=torch.float64))

    def model(self, steps: int, step_size: float, estimator: UnrollEstimator) -> UnrolledGradientDescent:
        """``unrolled_gd`` from the constant θ, every step of size ``step_size``, with ``estimator``."""
        model = UnrolledGradientDescent(self.problem, steps, None, step_size).double()
        with torch.no_grad():
            model.initial_constant.copy_(self.theta)
            model.log_step_sizes.fill_(torch.tensor(step_size, dtype=torch.float64).log())
        model.estimator = estimator
        return model

    def estimate(self, model: UnrolledGradientDescent) -> torch.Tensor:
        """One estimate of ∇θ E_b f(ŷθ(x_b); x_b) by the model's estimator, θ = ŷ⁰ only (es perturbs only θ)."""
        model.zero_grad(set_to_none=True)
        loss = BatchLoss(lambda: model.iterates(self.x), lambda y: objective_loss(self.problem, y, self.x, "none"),
                         lambda count: torch.eye(count, dtype=torch.float64)[-1])
        model.estimator.gradient(loss, [model.initial_constant], 0.0)
        grad = model.initial_constant.grad
        return torch.zeros_like(self.theta) if grad is None else grad.detach().clone()

    def unrolled_gradient(self, steps: int, step_size: float) -> torch.Tensor:
        """The exact g of K gradient steps of size α from θ: E_b (I − αA_b)ᴷ ∇f(ŷᴷ_b) (A_b symmetric)."""
        a, b = self.problem.matrix(self.x), self.problem.linear_term(self.x).unsqueeze(-1)
        identity = torch.eye(a.shape[-1], dtype=a.dtype)
        contraction = torch.linalg.matrix_power(identity - step_size * a, steps)
        y = contraction @ self.theta.unsqueeze(-1) + (identity - contraction) @ torch.linalg.solve(a, b)
        return (contraction.mT @ (a @ y - b)).squeeze(-1).mean(0)

    def proximal_gradient(self, lam: float) -> torch.Tensor:
        """The exact g of eq. 2.13's solution: E_b λ(A_b + λI)⁻¹ ∇f(ŷ_b), ŷ_b = (A_b + λI)⁻¹(b_b + λθ)."""
        a, b = self.problem.matrix(self.x), self.problem.linear_term(self.x)
        shifted = a + lam * torch.eye(a.shape[-1], dtype=a.dtype)
        y = torch.linalg.solve(shifted, b + lam * self.theta)
        return (lam * torch.linalg.solve(shifted, (a @ y.unsqueeze(-1)).squeeze(-1) - b)).mean(0)


def bias_and_variance(
    dim: int = 10, cond_max: float = 10.0, batch: int = 64, steps: int = 10, repeats: int = 200, seed: int = 0
) -> list[list]:
    """Rows of table (a): estimator, settings, reference, relative bias, noise floor, relative std, distance, draws."""
    case = QuadraticCase.draw(dim, cond_max, batch, seed)
    step_size, lam = 1.0 / cond_max, 1.0
    unrolled = case.unrolled_gradient(steps, step_size)
    proximal = case.proximal_gradient(lam)
    implicit_cap = 400  # steps of size 1/(L + λ) reach the tolerance well before it
    estimators: list[tuple[str, str, UnrollEstimator, int, float, torch.Tensor, str]] = [
        ("bptt", "", UnrollEstimator(), steps, step_size, unrolled, "unroll"),
        ("first_order", "", FirstOrder(), steps, step_size, unrolled, "unroll"),
        ("truncated", "H = 1", Truncated(horizon=1), steps, step_size, unrolled, "unroll"),
        ("truncated", "H = 5", Truncated(horizon=5), steps, step_size, unrolled, "unroll"),
        ("implicit", f"λ = {lam:g}, tol 1e-12, ≤ {implicit_cap} inner steps",
         Implicit(lam=lam, tolerance=1e-12, cg_steps=50), implicit_cap, 1.0 / (cond_max + lam), proximal,
         "proximal (eq. 2.13)"),
        ("implicit", f"λ = {lam:g}, tol 1e-12, cg_steps = 2",
         Implicit(lam=lam, tolerance=1e-12, cg_steps=2), implicit_cap, 1.0 / (cond_max + lam), proximal,
         "proximal (eq. 2.13)"),
    ]
    for perturb in ("parameters", "prediction"):
        for sigma in (0.01, 1.0):
            estimators.append(("es", f"{perturb}, σ = {sigma:g}, N = 8",
                               EvolutionStrategies(sigma=sigma, num_perturbations=8, perturb=perturb),
                               steps, step_size, unrolled, "unroll"))
    rows = []
    torch.manual_seed(seed)
    for name, settings, estimator, model_steps, size, exact, reference in estimators:
        model = case.model(model_steps, size, estimator)
        draws = repeats if isinstance(estimator, EvolutionStrategies) else 1
        samples = torch.stack([case.estimate(model) for _ in range(draws)])
        mean = samples.mean(0)
        scale = exact.norm().item()
        spread = (samples - mean).square().sum(-1).mean().sqrt().item() if draws > 1 else 0.0
        rows.append([name, settings, reference, (mean - exact).norm().item() / scale,
                     spread / scale / draws**0.5 if draws > 1 else 0.0, spread / scale,
                     (mean - unrolled).norm().item() / unrolled.norm().item(), draws])
        log(f"{name} {settings}: relative bias {rows[-1][3]:.3g}, relative std {rows[-1][5]:.3g}")
    return rows


def step_memory(estimator_overrides: list[str], steps: int, config: Path = CONFIG) -> dict[str, float]:
    """Peak and graph bytes of one training step of ``config`` with ``model.steps`` = ``steps`` (see the module)."""
    from amorctl.agents.direct import build_direct
    from amorctl.run.config import load_config

    config = load_config(config, ["device=cpu", f"model.steps={steps}", *estimator_overrides])
    torch.manual_seed(0)
    learner = build_direct(config, torch.device("cpu"), inference=True)
    learner.train_step()  # the optimizer's state exists before the measured step
    x = learner.problem.sample_contexts(learner.batch_size, learner.generator, learner.device)
    gc.collect()  # no garbage of earlier steps freed (counted negative) in the middle of a measurement
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as forward:
        loss = learner.loss(x)
    held = _running_bytes(forward)[1]
    del loss
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as step:
        learner.train_step()
    diagnostics = {key: float(value) for key, value in learner.estimator.diagnostics().items()}
    return {"peak": _running_bytes(step)[0], "graph": held, **diagnostics}


def _running_bytes(prof: profile) -> tuple[int, int]:
    """(peak, final) of the running sum of the profiler's ``[memory]`` records (allocations +, frees −) by time."""
    records = [event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"]
    current = peak = 0
    for event in sorted(records, key=lambda event: event.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak, current


def memory_rows(ks: tuple[int, ...] = (10, 100, 1000)) -> list[list]:
    """Rows of table (b): estimator, K, peak MiB, graph MiB, inner steps run."""
    settings = {"implicit": ["gradient.tolerance=1e-30"], "bptt": ["gradient={estimator: bptt}"]}
    rows = []
    for name, overrides in settings.items():
        for k in ks:
            measured = step_memory(overrides, k)
            inner = measured.get("gradient/inner_steps", float(k))
            rows.append([name, k, measured["peak"] / 2**20, measured["graph"] / 2**20, int(inner)])
            log(f"{name} K={k}: peak {rows[-1][2]:.2f} MiB, graph {rows[-1][3]:.2f} MiB")
    return rows


def estimators_benchmark(
    repeats: int = 200, ks: tuple[int, ...] = (10, 100, 1000), tables: tuple[str, ...] = ("bias", "memory")
) -> str:
    """The Markdown report of the ``tables`` asked for: ``bias`` (a) and ``memory`` (b)."""
    one_thread()
    parts = [f"`{command_line()}`", machine_info()]
    if "bias" in tables:
        parts += ["(a) 10-d quadratics, cond ≤ 10, 64 contexts, float64; θ = ŷ⁰ of unrolled_gd, K = 10 steps of "
                  "α = 0.1 (implicit: steps of 1/(L + λ) until tol):",
                  markdown_table(["estimator", "settings", "exact reference", "relative bias", "noise floor (std/√R)",
                                  "relative std", "distance to the K-step unroll's gradient", "R"],
                                 bias_and_variance(repeats=repeats))]
    if "memory" in tables:
        parts += [f"(b) one training step of {CONFIG.name} (batch 256, 10-d, 256-256 MLP start) against K:",
                  markdown_table(["estimator", "K (model.steps)", "peak MiB", "held after forward MiB",
                                  "inner steps run"], memory_rows(ks))]
    return "\n\n".join(parts)
