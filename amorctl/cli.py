"""Command-line entry points behind ``scripts/``: parse, call the library, exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amorctl.config import load_config
from amorctl.errors import AmorctlError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


def train_main(argv: list[str] | None = None) -> int:
    """``scripts/train.py``: train from a config (or resume a run); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train an amortization model. Overrides are dotted.key=value pairs, e.g. train.steps=2000.",
    )
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config (default: {DEFAULT_CONFIG.name})")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)

    from amorctl.rundir import RunDir
    from amorctl.training import train

    try:
        if args.resume is not None:
            if args.config is not None:
                raise AmorctlError("--resume continues a run with its own config.yaml; pass overrides instead of --config")
            run = RunDir.open(args.resume)
            config = run.load_config(args.overrides)
            print(f"resuming {run.root}")
        else:
            config = load_config(args.config or DEFAULT_CONFIG, args.overrides)
            run = RunDir.create(config)
            print(f"run directory: {run.root}")
        train(config, run, resume=args.resume is not None, show_progress=not args.no_progress)
        print(f"metrics: {run.eval / 'metrics.json'}")
    except AmorctlError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0
