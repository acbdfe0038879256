"""Load a trained run: its config and its model or policy, ready to call.

``load_run(RUN_DIR)`` is the programmatic way to use what ``scripts/train.py`` trained; it reads the
run's ``config.yaml`` (validated like any config) and a checkpoint (``torch.load(weights_only=True)``),
and never imports anything a run directory names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from amorctl.agents import AGENTS, Learner
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.config import resolve_device
from amorctl.run.errors import AmorctlError, CheckpointError
from amorctl.run.rundir import RunDir
from amorctl.schema import RunConfig

_CHECKPOINT_NAME = re.compile(r"^step_\d+\.pt$")


@dataclass
class LoadedRun:
    """A trained run: its config, the checkpoint read, and the learner rebuilt from it.

    ``policy`` maps a batch of contexts (direct runs) or observations (control runs) to solutions or
    actions in the policy box [-1, 1].
    """

    run: RunDir
    config: RunConfig
    checkpoint: Path
    step: int
    learner: Learner
    device: torch.device

    @property
    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.learner.policy()


def load_run(
    path: str | Path, checkpoint: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> LoadedRun:
    """Load a run directory (its latest checkpoint, or ``checkpoint``) for inference.

    ``path`` may also be a checkpoint file ``<run>/checkpoints/step_*.pt``. ``overrides`` apply to the
    run's config (``device=cpu``, say). Raises one-sentence :class:`AmorctlError` subclasses for a
    missing path, a folder that is not a run, a missing or corrupt checkpoint.
    """
    run, found = locate_run(path)
    checkpoint = Path(checkpoint) if checkpoint is not None else found
    config = run.load_config(overrides)
    if checkpoint is None:
        checkpoint = latest_checkpoint(run.checkpoints)
        if checkpoint is None:
            raise CheckpointError(f"run directory {str(run.root)!r} has no checkpoint; train it first")
    state = load_checkpoint(checkpoint)
    device = resolve_device(config)
    learner = AGENTS[config.agent].build(config, device, True)
    try:
        learner_state = state.get("learner")
        if not isinstance(learner_state, dict):
            raise KeyError("learner")
        learner.load_state_dict(learner_state)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        learner.close()
        raise CheckpointError(
            f"checkpoint {str(checkpoint)!r} does not match the run's config ({type(error).__name__})"
        ) from None
    return LoadedRun(run, config, checkpoint, int(state["step"]), learner, device)


def locate_run(path: str | Path) -> tuple[RunDir, Path | None]:
    """The run of ``path`` and the checkpoint it names: a run folder (``None``: its latest) or a checkpoint file.

    A checkpoint file must lie in its run's ``checkpoints/`` folder (``<run>/checkpoints/step_*.pt``),
    whose ``config.yaml`` describes it.
    """
    path = Path(path)
    if not path.exists():
        raise AmorctlError(f"{str(path)!r} does not exist; pass a run directory or a checkpoint file")
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            hint = ""
            if path.name == "checkpoints":
                hint = "; pass a run directory (<runs_dir>/<name>/<time>), not its checkpoints folder"
            raise CheckpointError(f"directory {str(path)!r} has no config.yaml, so it is not an amorctl run{hint}")
        return RunDir.open(path), None
    if not _CHECKPOINT_NAME.match(path.name):
        raise AmorctlError(f"{str(path)!r} is neither a run directory nor a checkpoint file (step_*.pt)")
    root = path.resolve().parent.parent
    if path.resolve().parent.name != "checkpoints" or not (root / "config.yaml").is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not inside a run directory "
            "(<run>/checkpoints/step_*.pt beside <run>/config.yaml)"
        )
    return RunDir.open(root), path
