"""How sensitive an imitated solver rule's gap is to small action errors: the expert against itself, perturbed.

``python scripts/benchmark.py expert-sensitivity`` runs the Barzilai–Borwein step-size rule on held-out
quadratics of ``configs/dagger_opt_quadratic.yaml``'s environment, as is and with zero-mean Gaussian
noise of std σ added to its actions (in the [-1, 1] action units a policy outputs), and reports the
mean over problems of the last iterate's gap and of the best iterate's gap, for several held-out
seeds. It is the yardstick for imitation results: a learned policy cannot be expected to match the
expert more closely than the expert matches itself under an action error of the policy's size.
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


def expert_sensitivity(num_problems: int, sigmas: Sequence[float], seeds: Sequence[int]) -> str:
    """The Markdown table: per held-out seed and σ, the mean last-iterate and best-iterate gaps and their ratios
    to the unperturbed expert's."""
    torch.set_num_threads(1)
    config = load_config(CONFIG, ["device=cpu"])
    problem = make_problem(**config.env.problem)
    fallback = config.expert.fallback_step
    lines = [f"Barzilai–Borwein expert on {num_problems:,} held-out problems of `{CONFIG.name}` "
             f"(T = {config.env.iterate['max_iterations']}), its actions perturbed by N(0, σ²)",
             "", "| held-out seed | σ | mean last gap | × σ = 0 | mean best gap | × σ = 0 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for seed in seeds:
        reference = None
        for sigma in sigmas:
            env = IterateEnv(problem, num_problems, **dict(config.env.iterate))
            generator = torch.Generator().manual_seed(seed)

            def act(obs: torch.Tensor, env: IterateEnv = env, sigma: float = sigma,
                    generator: torch.Generator = generator) -> torch.Tensor:
                action = env.barzilai_borwein_action(fallback)
                return (action + sigma * torch.randn(action.shape, generator=generator)).clamp(-1.0, 1.0)

            gaps = policy_gaps(env, act, HELDOUT_SEED_OFFSET + seed)[0]
            last, best = float(gaps[-1].mean()), float(gaps.min(dim=0).values.mean())
            reference = reference or (last, best)
            lines.append(f"| {HELDOUT_SEED_OFFSET + seed} | {sigma:g} | {last:.3g} | {last / reference[0]:.2f} | "
                         f"{best:.3g} | {best / reference[1]:.2f} |")
    return "\n".join(lines)
