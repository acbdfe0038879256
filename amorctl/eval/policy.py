"""Load a trained policy from a run (or one checkpoint), ready to play: the library behind ``scripts/evaluate.py``.

A TD3 run's policy π(s) is loaded with the run's own ``config.yaml``: :func:`locate_run` finds the
run and checkpoint a path names, :func:`load_policy` rebuilds the learner and an environment to play
on. Playing and scoring episodes is :func:`amorctl.eval.rollouts.run_episodes` (seeds:
:mod:`amorctl.eval.seeds`), filming them :func:`amorctl.eval.video.record_video`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from amorctl.agents.td3 import TD3
from amorctl.control import make_env, make_td3
from amorctl.envs import BatchedEnv
from amorctl.eval.video import renderer_trouble
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.config import TD3Config, resolve_device
from amorctl.run.errors import CheckpointError, EvaluationError
from amorctl.run.rundir import RunDir

_CHECKPOINT_NAME = re.compile(r"^step_\d+\.pt$")


@dataclass
class LoadedPolicy:
    """A trained TD3 learner with the config and the checkpoint it came from."""

    run: RunDir
    config: TD3Config
    checkpoint: Path
    step: int
    agent: TD3
    device: torch.device

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions π(s) in [-1, 1] for observations (N, observation_dim)."""
        return self.agent.predict(obs, deterministic=True)


def locate_run(path: str | Path) -> tuple[RunDir, Path | None]:
    """The run of ``path`` and the checkpoint it names: a run folder (``None``: its latest) or a checkpoint file.

    A checkpoint file must lie in its run's ``checkpoints/`` folder (``<run>/checkpoints/step_*.pt``),
    whose ``config.yaml`` describes it. Raises :class:`EvaluationError` or :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{str(path)!r} does not exist; pass a run directory or a checkpoint file")
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            hint = ""
            if path.name == "checkpoints":
                hint = "; pass a run directory (<runs_dir>/<name>/<time>), not its checkpoints folder"
            raise CheckpointError(f"directory {str(path)!r} has no config.yaml, so it is not an amorctl run{hint}")
        return RunDir.open(path), None
    if not _CHECKPOINT_NAME.match(path.name):
        raise EvaluationError(f"{str(path)!r} is neither a run directory nor a checkpoint file (step_*.pt)")
    root = path.resolve().parent.parent
    if path.resolve().parent.name != "checkpoints" or not (root / "config.yaml").is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not inside a run directory "
            "(<run>/checkpoints/step_*.pt beside <run>/config.yaml)"
        )
    return RunDir.open(root), path


def load_policy(
    run: RunDir, config: TD3Config, checkpoint: Path | None = None, num_envs: int = 1
) -> tuple[LoadedPolicy, BatchedEnv]:
    """Load the TD3 policy of ``checkpoint`` (default: the run's latest) and an environment of ``num_envs`` copies.

    The learner is built as in training (same networks) but with a replay buffer of one step and
    without the checkpoint's stored buffer; the returned environment is the caller's to close.
    """
    if checkpoint is None:
        checkpoint = latest_checkpoint(run.checkpoints)
        if checkpoint is None:
            raise CheckpointError(f"run directory {str(run.root)!r} has no checkpoint to evaluate; train it first")
    device = resolve_device(config)
    state = load_checkpoint(checkpoint)  # onto the CPU: random-number states must stay there
    agent_state = state.get("agent")
    if not isinstance(agent_state, dict):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} holds no TD3 agent; is it from a {config.agent} run?")
    try:
        env = make_env(config, num_envs, device)
    except Exception as error:  # importing MuJoCo sets up MUJOCO_GL's backend, which fails in many ways
        if "MUJOCO_GL" not in os.environ or config.env.kind != "gym":
            raise
        raise EvaluationError(renderer_trouble(config.env.id, os.environ["MUJOCO_GL"], error)) from None
    try:
        small = config.model_copy(update={"td3": config.td3.model_copy(update={"buffer_size": num_envs})})
        agent = make_td3(small, env, device)
        try:
            agent.load_state_dict({key: value for key, value in agent_state.items() if key != "replay_buffer"})
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} does not match the run's config ({type(error).__name__})"
            ) from None
    except BaseException:
        env.close()
        raise
    return LoadedPolicy(run, config, checkpoint, int(state["step"]), agent, device), env


def write_json(path: Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as indented JSON (creating the folder); values JSON cannot hold become strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
