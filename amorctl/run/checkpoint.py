"""Atomic checkpoints: written to a temporary file in the same folder, then renamed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amorctl.run.atomic import atomic_write, remove_temporaries
from amorctl.run.errors import CheckpointError

_NAME = re.compile(r"step_(\d+)\.pt")


def checkpoint_path(directory: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in ``directory``: ``step_<9 digits>.pt``."""
    return directory / f"step_{step:09d}.pt"


def save_checkpoint(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as ``step_<step>.pt`` atomically and keep only the ``keep`` newest files.

    The temporary files of a save that a kill interrupted are removed first: a run's checkpoints
    have one writer, the process that calls this.
    """
    directory.mkdir(parents=True, exist_ok=True)
    remove_temporaries(directory)
    path = atomic_write(checkpoint_path(directory, step), lambda file: torch.save(state, file))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink()
    return path


def list_checkpoints(directory: Path) -> list[Path]:
    """The checkpoints in ``directory``, oldest step first."""
    if not directory.is_dir():
        return []
    found = [path for path in directory.iterdir() if _NAME.fullmatch(path.name)]
    return sorted(found, key=lambda path: int(_NAME.fullmatch(path.name).group(1)))


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint of the highest step in ``directory``, or ``None`` when there is none."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, or raise one clear :class:`CheckpointError`.

    Refused: a missing file, one that ``torch.load(weights_only=True)`` cannot read, and a state
    that is not a mapping with a ``step`` counter that is a non-negative ``int`` (not a bool,
    float, string or tensor).
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        kind = type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not an amorctl checkpoint ({kind})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an amorctl checkpoint (no step counter)")
    step = state["step"]
    if type(step) is not int or step < 0:  # not isinstance: a bool is an int, a tensor is not a counter
        raise CheckpointError(
            f"checkpoint {str(path)!r} has step {_short_repr(step)}, which is not a non-negative integer"
        )
    return state


def _short_repr(value: Any) -> str:
    """A short description of a stored value for an error message: its repr, or its type when long."""
    text = repr(value)
    return text if len(text) <= 40 and "\n" not in text else f"of type {type(value).__name__}"


def restore_latest(directory: Path, load_state: Callable[[dict[str, Any]], None]) -> tuple[Path, dict[str, Any]]:
    """Load the newest checkpoint in ``directory`` with ``load_state``; returns its path and state.

    The state is read onto the CPU: random-number states must stay there, and ``load_state_dict``
    of modules and optimizers copies everything else to where the learner lives.

    A missing checkpoint, an unreadable file or a state that does not fit the learner (another
    network shape, say) raises one clear :class:`CheckpointError`.

    Only the process that resumes (and so writes) the run may call this: it first removes the
    temporary files of saves that a kill interrupted.
    """
    remove_temporaries(directory)
    path = latest_checkpoint(directory)
    if path is None:
        raise CheckpointError(f"run directory {str(directory.parent)!r} has no checkpoint to resume from")
    state = load_checkpoint(path)
    try:
        load_state(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        kind = type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the run's config ({kind})") from None
    return path, state
