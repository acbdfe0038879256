"""Command lines of sweeps and seed groups: ``scripts/sweep.py``, and ``scripts/train.py --seeds``."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from amorctl.run.cli import DEFAULT_CONFIG, _add_import_option, _exit_status
from amorctl.run.errors import AmorctlError
from amorctl.sweep.backends import BACKENDS, Backend


def add_backend_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--workers``, ``--backend``, ``--ray-address`` and the per-``unit`` resource requests."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"{unit}s at a time on the local backend, each in its own process (default: 1)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help=f"local: this machine's process pool; ray: every {unit} a Ray task (default: local)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="with --backend ray: a running cluster ('auto', or ray://host:10001); default: start a local Ray instance",
    )
    parser.add_argument(
        f"--cpus-per-{unit}",
        dest="cpus",
        type=float,
        default=1.0,
        help=f"CPUs each {unit} requests from Ray and torch threads it uses (default: 1)",
    )
    parser.add_argument(
        f"--gpus-per-{unit}",
        dest="gpus",
        type=float,
        default=0.0,
        help=f"GPUs each {unit} requests from Ray, e.g. 0.5 to share one by two (default: 0)",
    )


def backend_of(args: argparse.Namespace) -> Backend:
    """The :class:`Backend` the options name."""
    if args.ray_address is not None and args.backend != "ray":
        raise AmorctlError("--ray-address needs --backend ray")
    return Backend(args.backend, args.workers, args.ray_address, args.cpus, args.gpus)


def terminate_as_interrupt() -> None:
    """Let ``kill PID`` (SIGTERM) stop a sweep as Ctrl-C does: workers are ended, the study stays resumable."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def sweep_main(argv: list[str] | None = None) -> int:
    """``scripts/sweep.py``: run or resume an Optuna study over a search space; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="sweep.py",
        description="Search hyper-parameters with Optuna: every trial a run of the config with the search "
        "space's values. Running the same command again resumes the study. Overrides are "
        "dotted.key=value pairs applied to the config before the space's values (e.g. "
        "train.total_steps=8000).",
    )
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config (default: {DEFAULT_CONFIG.name})")
    parser.add_argument("--space", type=Path, required=True, help="search-space YAML (see configs/spaces/)")
    parser.add_argument("--trials", type=int, default=20, help="trials the study should have finished (default: 20)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="sweep folder: study.db, trials/, best_config.yaml, plots (default: sweeps/<name>)",
    )
    parser.add_argument("--study-name", help="the study's name in its storage (default: the config's name)")
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default: sqlite:///<out>/study.db; a cluster: a PostgreSQL URL)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default: 0)")
    add_backend_options(parser, "trial")
    _add_import_option(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_intermixed_args(argv)
    terminate_as_interrupt()
    return _exit_status(lambda: _sweep(args), "interrupted; run the same command again to resume the study")


def _sweep(args: argparse.Namespace) -> None:
    from amorctl.run.config import apply_override, read_yaml, validate_config
    from amorctl.run.plugins import load_plugins

    if args.trials < 1:
        raise AmorctlError(f"--trials must be at least 1, got {args.trials}")
    backend = backend_of(args)
    try:
        from amorctl.sweep.study import run_sweep
    except ImportError as error:
        raise AmorctlError(f"sweeps need Optuna ({error}): pip install -e '.[sweep]'") from None
    from amorctl.sweep.space import load_space

    load_plugins(args.imports)
    raw = read_yaml(args.config or DEFAULT_CONFIG)
    for override in args.overrides:
        apply_override(raw, override)
    config = validate_config(raw)
    space = load_space(args.space, raw)
    out = args.out or Path("sweeps") / config.name
    run_sweep(
        raw, space, args.trials, backend, out, args.study_name or config.name, args.storage, args.imports, args.seed
    )


def add_seed_options(parser: argparse.ArgumentParser) -> None:
    """``train.py``'s options for a group of seeds."""
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="SEEDS",
        help="train once per seed (0-4, or 1,3,7) and write the aggregate: IQM with 95%% bootstrap CI, "
        "mean, standard error, median, curves with their band (JSON, PNG, TensorBoard)",
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="with --seeds: the final metric of eval/metrics.json to aggregate "
        "(default: mean_return, else objective_gap_mean)",
    )
    parser.add_argument(
        "--curve-metric",
        default=None,
        help="with --seeds: the evaluation key whose curves get a band (default: from --metric)",
    )
    add_backend_options(parser, "run")


def train_seeds(args: argparse.Namespace) -> None:
    """``train.py --seeds``: the config (with overrides) once per seed, then the aggregate."""
    from amorctl.run.config import apply_override, read_yaml
    from amorctl.run.plugins import load_plugins
    from amorctl.sweep.multiseed import parse_seeds, run_seeds

    if args.resume is not None:
        raise AmorctlError("--seeds starts new runs; resume each seed's run directory on its own")
    seeds = parse_seeds(args.seeds)
    backend = backend_of(args)
    load_plugins(args.imports)
    raw = read_yaml(args.config or DEFAULT_CONFIG)
    for override in args.overrides:
        apply_override(raw, override)
    run_seeds(raw, seeds, backend, args.imports, args.metric, args.curve_metric)
