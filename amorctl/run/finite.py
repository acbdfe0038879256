"""Stopping on NaN or Inf: the first non-finite quantity, the step and the checkpoint that is kept."""

from __future__ import annotations

from pathlib import Path

import torch

from amorctl.run.errors import NonFiniteError


def check_finite(quantities: dict[str, torch.Tensor], step: int, last_checkpoint: Path | None) -> None:
    """Raise :class:`NonFiniteError` naming the first of ``quantities`` (in order) holding a NaN or Inf.

    One host synchronisation for all of them. The message names the quantity, the step and the last
    good checkpoint, which training leaves untouched.
    """
    finite = torch.stack([torch.isfinite(value).all() for value in quantities.values()]).cpu()
    if bool(finite.all()):
        return
    name = list(quantities)[int((~finite).nonzero()[0])]
    value = quantities[name]
    what = f"{name} became {value.item()}" if value.dim() == 0 else f"{name} became non-finite"
    kept = "no checkpoint was written yet"
    if last_checkpoint:
        kept = f"the last good checkpoint is {str(last_checkpoint)!r}"
    raise NonFiniteError(f"{what} at step {step}; training stopped and {kept}")
