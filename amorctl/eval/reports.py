"""What ``scripts/evaluate.py`` adds for some environment kinds, as registries keyed by ``env.kind``.

- :data:`VIDEOS`: kinds that can be filmed (``gym``: MuJoCo and classic-control tasks through
  :func:`~amorctl.eval.video.record_video`; ``mjwarp``: through :func:`~amorctl.eval.video.record_mjwarp_video`);
- :data:`REPORTS`: extra reports on a trained policy (``iterate``: the learned optimizer against tuned
  classical optimizers, :func:`~amorctl.eval.optimizer_comparison.compare_with_baselines`; ``admm``: the learned
  ρ policy against OSQP's ρ rules on every QP class, :func:`~amorctl.eval.rho_comparison.compare_rho_policies`);
- :data:`MODEL_REPORTS`, keyed by ``problem.name``: reports on a trained amortization model
  (``pendulum_mpc``: the model as a receding-horizon controller against the solver-in-the-loop MPC
  controller, :func:`~amorctl.eval.closed_loop.compare_pendulum_controllers`).

A kind of your own registers here from its plugin module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amorctl.eval.closed_loop import compare_pendulum_controllers
from amorctl.eval.optimizer_comparison import compare_with_baselines
from amorctl.eval.rho_comparison import compare_rho_policies
from amorctl.eval.video import record_mjwarp_video, record_video
from amorctl.registry import Registry
from amorctl.run.atomic import atomic_write_text

Policy = Callable[[torch.Tensor], torch.Tensor]

VideoRecorder = Callable[[Any, Policy, Path, int, int, str], list[dict[str, Any]]]
"""``record(env_section, policy, folder, seed, episodes, name_prefix)`` → one dict per filmed episode."""

Report = Callable[[Path, Any, Policy, Path], dict[str, Any]]
"""``report(run_root, config, policy, output_dir)`` → a JSON-able summary (files written to ``output_dir``)."""

ModelReport = Callable[[Any, Policy, int, int, int, torch.device], dict[str, Any]]
"""``report(problem, model, episodes, steps, seed, device)`` → a JSON-able summary."""

VIDEOS: Registry[VideoRecorder] = Registry("environment kind that can be filmed", "env.kind")
REPORTS: Registry[Report] = Registry("environment kind with an evaluation report", "env.kind")
MODEL_REPORTS: Registry[ModelReport] = Registry("problem family with a model report", "problem.name")


def _film_gym(env: Any, policy: Policy, folder: Path, seed: int, episodes: int, prefix: str) -> list[dict[str, Any]]:
    return record_video(policy, env.id, folder, seed, episodes, prefix, env.max_episode_steps)


def _film_mjwarp(env: Any, policy: Policy, folder: Path, seed: int, episodes: int, prefix: str) -> list[dict]:
    return record_mjwarp_video(policy, env.id, folder, seed, episodes, prefix, env.max_episode_steps)


def _pendulum_closed_loop(problem: Any, model: Policy, episodes: int, steps: int, seed: int,
                          device: torch.device) -> dict[str, Any]:
    generator = torch.Generator(device=device).manual_seed(seed)
    return compare_pendulum_controllers(problem, model, problem.sample_contexts(episodes, generator, device), steps)


VIDEOS.register("gym", _film_gym)
VIDEOS.register("mjwarp", _film_mjwarp)
REPORTS.register("iterate", compare_with_baselines)
REPORTS.register("admm", compare_rho_policies)
MODEL_REPORTS.register("pendulum_mpc", _pendulum_closed_loop)


def write_json(path: Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as indented JSON atomically (creating the folder); values JSON cannot hold become strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    return path
