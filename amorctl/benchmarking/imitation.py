"""How sensitive an imitated solver rule's gap is to small action errors: the expert against itself, perturbed.

``python scripts/benchmark.py expert-sensitivity`` runs the Barzilai–Borwein step-size rule on held-out
quadratics of ``configs/dagger_opt_quadratic.yaml``'s environment (at its horizon T, or at each of
``--iterations``), as is, with zero-mean Gaussian noise of std σ added to its actions, and with a constant
offset δ added to them (in the [-1, 1] action units a policy outputs), and reports the mean over problems
of the last iterate's gap and of the best iterate's gap, for several held-out seeds. It is the yardstick
for imitation results: a learned policy cannot be expected to match the expert more closely than the
expert matches itself under an action error of the policy's size, random (σ) or systematic (δ).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from amorctl.envs import IterateEnv
from amorctl.eval.optimizer_comparison import policy_gaps
from amorctl.eval.seeds import HELDOUT_SEED_OFFSET
from amorctl.problems import make_problem
from amorctl.run.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "dagger_opt_quadratic.yaml"


def expert_sensitivity(
    num_problems: int,
    sigmas: Sequence[float],
    seeds: Sequence[int],
    biases: Sequence[float] = (),
    iterations: Sequence[int] = (),
) -> str:
    """The Markdown table: per horizon T, held-out seed and perturbation (noise σ or offset δ), the mean
    last-iterate and best-iterate gaps and their ratios to the unperturbed expert's.

    ``iterations`` defaults to the config's T; the unperturbed expert is always the first row of a block.
    """
    torch.set_num_threads(1)
    config = load_config(CONFIG, ["device=cpu"])
    problem = make_problem(**config.env.problem)
    fallback = config.expert.fallback_step
    horizons = list(iterations) or [config.env.iterate["max_iterations"]]
    perturbations = [("σ", 0.0)] + [("σ", s) for s in sigmas if s != 0] + [("δ", d) for d in biases]
    lines = [f"Barzilai–Borwein expert on {num_problems:,} held-out problems of `{CONFIG.name}`, its actions "
             "perturbed by noise N(0, σ²) or by a constant offset δ",
             "", "| T | held-out seed | perturbation | mean last gap | × expert | mean best gap | × expert |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for horizon in horizons:
        options = {**dict(config.env.iterate), "max_iterations": horizon}
        for seed in seeds:
            reference = None
            for kind, size in perturbations:
                env = IterateEnv(problem, num_problems, **options)
                generator = torch.Generator().manual_seed(seed)

                def act(obs: torch.Tensor, env: IterateEnv = env, kind: str = kind, size: float = size,
                        generator: torch.Generator = generator) -> torch.Tensor:
                    action = env.barzilai_borwein_action(fallback)
                    error = size * torch.randn(action.shape, generator=generator) if kind == "σ" else size
                    return (action + error).clamp(-1.0, 1.0)

                gaps = policy_gaps(env, act, HELDOUT_SEED_OFFSET + seed)[0]
                last, best = float(gaps[-1].mean()), float(gaps.min(dim=0).values.mean())
                reference = reference or (last, best)
                lines.append(f"| {horizon} | {HELDOUT_SEED_OFFSET + seed} | {kind} = {size:g} | {last:.3g} | "
                             f"{last / reference[0]:.2f} | {best:.3g} | {best / reference[1]:.2f} |")
    return "\n".join(lines)
