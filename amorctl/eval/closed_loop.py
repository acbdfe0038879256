"""Amortized controllers in closed loop: receding-horizon control with a model instead of a solver.

A direct run on the ``pendulum_mpc`` family amortizes model-predictive control: ŷθ(x) predicts the
optimal torque sequence from the state x. In closed loop both controllers act the same way — predict
(or solve for) the torque sequence from the current state, apply its first torque, re-plan at the next
state — and are scored by the episode's accumulated stage cost; the seconds each spends per control
step (the whole batch of episodes at once, device synchronised) show what amortization saves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amorctl.eval.direct import timed
from amorctl.problems import PendulumMPC

Controller = Callable[[torch.Tensor], torch.Tensor]
"""Maps states (B, context_dim) to normalised torque sequences (B, horizon) in [-1, 1]."""


@torch.no_grad()
def pendulum_closed_loop(problem: PendulumMPC, controller: Controller, initial: torch.Tensor, steps: int) -> dict:
    """Run ``steps`` receding-horizon control steps from the states ``initial`` (B, context_dim).

    Returns the per-episode ``costs`` (B,) — Σ_t stage cost of the state reached and the torque applied,
    the same terms as the family's objective without its terminal cost — and ``seconds_per_step``, the
    controller's mean time per control step for the whole batch.
    """
    x = initial.clone()
    target = x[:, 2] if problem.context_dim == 3 else torch.zeros_like(x[:, 0])
    costs = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    seconds = 0.0
    for _ in range(steps):
        plan, elapsed = timed(lambda x=x: controller(x), x.device)
        seconds += elapsed
        u = plan[:, 0].to(x.dtype).clamp(-1.0, 1.0)
        error, velocity = problem.step(x[:, 0], x[:, 1], target, u)
        costs += problem.stage_cost(error, velocity, u).double()
        x = torch.stack([error, velocity, target][: problem.context_dim], dim=1)
    return {"costs": costs, "seconds_per_step": seconds / steps}


def compare_pendulum_controllers(
    problem: PendulumMPC, model: Controller, contexts: torch.Tensor, steps: int, output_dir: Path | None = None
) -> dict[str, Any]:
    """The amortized model against the solver-in-the-loop MPC controller from the same initial states.

    Returns mean (and per-episode) costs of both, ``cost_ratio`` = amortized / MPC mean cost, seconds per
    control step of both and ``speedup`` = MPC seconds / model seconds.
    """
    model(contexts[:2])  # warm both up, as the held-out timing does
    problem.solve(contexts[:2])
    amortized = pendulum_closed_loop(problem, model, contexts, steps)
    mpc = pendulum_closed_loop(problem, problem.solve, contexts, steps)
    return {
        "episodes": len(contexts),
        "steps": steps,
        "amortized_mean_cost": amortized["costs"].mean().item(),
        "mpc_mean_cost": mpc["costs"].mean().item(),
        "cost_ratio": (amortized["costs"].mean() / mpc["costs"].mean()).item(),
        "amortized_seconds_per_step": amortized["seconds_per_step"],
        "mpc_seconds_per_step": mpc["seconds_per_step"],
        "speedup": mpc["seconds_per_step"] / amortized["seconds_per_step"],
        "amortized_costs": amortized["costs"].tolist(),
        "mpc_costs": mpc["costs"].tolist(),
    }
