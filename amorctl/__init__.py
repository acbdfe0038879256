"""amorctl: amortized optimization and control in PyTorch.

The programmatic path (what ``scripts/train.py`` does)::

    from amorctl import RunDir, load_config, load_run, train

    config = load_config("configs/default.yaml", ["train.steps=2000", "device=cpu"])
    run = RunDir.create(config)          # runs/<name>/<time>/ with config.yaml
    metrics = train(config, run)         # the one run loop; also writes eval/metrics.json
    model = load_run(run.root).policy    # the trained model or policy, ready to call

Importing ``amorctl`` defines names only: the subpackages are imported on first use, and nothing is
registered with gymnasium (:func:`amorctl.envs.register_iterate_envs` does that explicitly).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "RunDir": "amorctl.run.rundir",
    "load_config": "amorctl.run.config",
    "train": "amorctl.run.loop",
    "load_run": "amorctl.eval.load",
    "LoadedRun": "amorctl.eval.load",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'amorctl' has no attribute {name!r}")
