"""Command-line entry points behind ``scripts/``: parse, call the library, exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from amorctl.run.errors import AmorctlError, ConfigError
from amorctl.run.plugins import load_plugins

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


def train_main(argv: list[str] | None = None) -> int:
    """``scripts/train.py``: train from a config (or resume a run); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train an amortization model. Overrides are dotted.key=value pairs, e.g. train.steps=2000.",
    )
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config (default: {DEFAULT_CONFIG.name})")
    parser.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint"
    )
    _add_import_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from amorctl.sweep.cli import add_seed_options, train_seeds

    add_seed_options(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_intermixed_args(argv)

    if args.seeds is not None:
        return _exit_status(lambda: train_seeds(args), "interrupted; the seeds' last checkpoints are kept")
    return _exit_status(lambda: _train(args), "interrupted; the last checkpoint is kept")


def _train(args: argparse.Namespace) -> None:
    load_plugins(args.imports)
    from amorctl.run.config import load_config
    from amorctl.run.loop import train
    from amorctl.run.rundir import RunDir

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


def _exit_status(command: Callable[[], None], interrupted: str) -> int:
    """Run a command line's work: 0 when it succeeds, else one sentence on stderr and the error's status."""
    try:
        command()
    except AmorctlError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return 0


def _add_import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import a module (a dotted name or a .py file) that registers your own agents, environment kinds, "
             "models or problem families, before the config is read; repeatable",
    )


def evaluate_main(argv: list[str] | None = None) -> int:
    """``scripts/evaluate.py``: score a trained policy on fresh episodes (optionally filmed); returns the exit status.

    Exit status 0 on success, 2 for bad input (a missing path, a folder that is no run, no or a corrupt
    checkpoint, an impossible option), with one sentence on stderr. A direct amortization run has no
    policy to roll out: its held-out metrics are printed again from ``eval/metrics.json`` and its amortization
    report (:mod:`amorctl.eval.amortization_report`) is written beside the JSON.
    """
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description=(
            "Evaluate a trained policy on fresh, deterministic episodes: mean ± std of return and length, "
            "written as JSON. Overrides are dotted.key=value pairs applied to the run's config, e.g. device=cpu."
        ),
    )
    parser.add_argument("path", type=Path, metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory (its latest checkpoint) or a checkpoint file <run>/checkpoints/step_*.pt")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default: 10)")
    parser.add_argument("--seed", type=int, default=None,
                        help="episode k starts from reset(seed=SEED+k) (default: the run's seed + 2000000, "
                             "apart from training's evaluation seeds)")
    parser.add_argument("--num-envs", type=int, default=1, help="copies playing episodes side by side (default: 1)")
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default: <run>/eval/evaluate.json)")
    parser.add_argument("--video", action="store_true",
                        help="also record mp4 videos of the first episodes in videos/ beside the JSON "
                             "(MuJoCo renders offscreen with MUJOCO_GL, default egl)")
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes to film with --video (default: 1)")
    parser.add_argument("--steps", type=int, default=100,
                        help="control steps per closed-loop episode of an amortized controller (default: 100)")
    parser.add_argument("--solver-steps", type=int, default=100,
                        help="direct runs' amortization report: the most classical solver steps, from scratch and "
                             "after the model's warm start (default: 100)")
    parser.add_argument("--clock", choices=("auto", "wall"), default="auto",
                        help="the report's timing clock: auto (the thread's CPU time on a CPU, robust on a shared "
                             "machine; synchronised wall-clock on CUDA) or wall (default: auto)")
    _add_import_option(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_intermixed_args(argv)

    return _exit_status(lambda: _checked_evaluate(args), "interrupted")


def _checked_evaluate(args: argparse.Namespace) -> None:
    for option, value in (("--episodes", args.episodes), ("--num-envs", args.num_envs),
                          ("--video-episodes", args.video_episodes), ("--steps", args.steps),
                          ("--solver-steps", args.solver_steps)):
        if value < 1:
            raise AmorctlError(f"{option} must be at least 1, got {value}")
    load_plugins(args.imports)
    if args.video:
        from amorctl.eval.video import default_gl_backend

        default_gl_backend()  # before anything imports MuJoCo's renderer
    _evaluate(args)


def _evaluate(args: argparse.Namespace) -> None:

    from amorctl.envs.kinds import make_env
    from amorctl.eval.direct import format_table
    from amorctl.eval.load import load_run, locate_run
    from amorctl.eval.reports import REPORTS, VIDEOS, write_json
    from amorctl.eval.rollouts import run_episodes
    from amorctl.eval.seeds import EVALUATE_SEED_OFFSET
    from amorctl.run.errors import EvaluationError

    run, checkpoint = locate_run(args.path)
    try:
        config = run.load_config(args.overrides)
    except ConfigError:
        if args.video:
            _refuse_broken_renderer()  # building the environment failed, maybe in MuJoCo's renderer setup
        raise
    env_section = getattr(config, "env", None)
    if env_section is None:  # a model of contexts, not a policy
        _evaluate_model(args, run, checkpoint, config)
        return

    kind = env_section.kind
    if args.video and kind not in VIDEOS:
        raise EvaluationError(
            f"--video needs an environment that can be filmed (env.kind {', '.join(sorted(VIDEOS))}); "
            f"env.kind={kind!r} runs have nothing to render"
        )
    seed = args.seed if args.seed is not None else config.seed + EVALUATE_SEED_OFFSET
    output = args.output if args.output is not None else run.eval / "evaluate.json"
    loaded = load_run(run.root, checkpoint, args.overrides)
    env = None
    try:
        env = make_env(env_section, args.num_envs, loaded.device)
        result = run_episodes(loaded.policy, env, args.episodes, seed)
        report = {"run": str(run.root), "checkpoint": str(loaded.checkpoint), "step": loaded.step, "env": env.name,
                  "seed": seed, "deterministic": True, **result}
        print(f"{loaded.checkpoint} (step {loaded.step}) on {env.name}: "
              f"{args.episodes} deterministic episodes, seeds {seed}..{seed + args.episodes - 1}")
        print(f"return  {result['mean_return']:.2f} ± {result['std_return']:.2f}")
        print(f"length  {result['mean_length']:.1f} ± {result['std_length']:.1f}")
        if args.video:
            videos = VIDEOS[kind](env_section, loaded.policy, output.parent / "videos", seed, args.video_episodes,
                                  loaded.checkpoint.stem)
            report["videos"] = videos
            for video in videos:
                print(f"video: {video['path']} ({video['frames']} frames, return {video['return']:.2f})")
        if kind in REPORTS:
            try:
                extra = REPORTS[kind](run.root, config, loaded.policy, output.parent)
            except (ValueError, RuntimeError) as error:
                raise EvaluationError(f"cannot report on {str(run.root)!r}: {error}") from None
            report["report"] = extra
            summary = {key: value for key, value in extra.items() if isinstance(value, int | float | str)}
            if summary:
                print(format_table(summary))
    finally:
        for resource in (env, loaded.learner):
            if resource is not None:
                resource.close()
    write_json(output, report)
    print(f"results: {output}")


def _evaluate_model(args: argparse.Namespace, run, checkpoint, config) -> None:
    """A model's held-out metrics from training, its amortization report and, where its family has one, its
    closed-loop report."""
    import json

    from amorctl.eval.amortization_report import report_on_run
    from amorctl.eval.direct import format_table
    from amorctl.eval.load import load_run
    from amorctl.eval.reports import MODEL_REPORTS, write_json
    from amorctl.eval.seeds import EVALUATE_SEED_OFFSET
    from amorctl.run.errors import EvaluationError

    path = run.eval / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        raise EvaluationError(
            f"{str(run.root)!r} is a {config.agent} run without a readable eval/metrics.json; evaluate.py rolls "
            "out policies, and train.py writes a model's held-out metrics when it ends"
        ) from None
    print(f"{run.root} is a {config.agent} run of a model, not a policy; its held-out metrics ({path}):")
    print(format_table(metrics))
    output = args.output if args.output is not None else run.eval / "evaluate.json"
    loaded = load_run(run.root, checkpoint, args.overrides)
    problem, model = loaded.learner.problem, loaded.learner.model
    result: dict = {"run": str(run.root), "checkpoint": str(loaded.checkpoint), "step": loaded.step}
    try:
        report = report_on_run(config, problem, model, loaded.device, output.parent, run.events,
                               max_steps=args.solver_steps, clock=args.clock)
    except (ValueError, RuntimeError) as error:  # no reference solver (no gaps), or every step size diverged
        print(f"no amortization report: {error}")
    else:
        result["amortization"] = report
        print(f"amortization report ({report['png']}): {report['sentence']}")
    family = config.problem["name"]
    if family in MODEL_REPORTS:
        seed = args.seed if args.seed is not None else config.seed + EVALUATE_SEED_OFFSET
        closed = MODEL_REPORTS[family](problem, model.eval(), args.episodes, args.steps, seed, loaded.device)
        print(f"closed loop, {args.episodes} episodes of {args.steps} control steps from seed {seed}:")
        print(format_table({key: value for key, value in closed.items() if not isinstance(value, list)}))
        result.update(seed=seed, closed_loop=closed)
    write_json(output, result)
    print(f"results: {output}")


def _refuse_broken_renderer() -> None:
    """Raise one sentence when MuJoCo cannot even be imported with the ``MUJOCO_GL`` in force."""
    import os

    from amorctl.eval.video import renderer_trouble
    from amorctl.run.errors import EvaluationError

    try:
        import mujoco  # noqa: F401  (MuJoCo reads MUJOCO_GL when it is imported)
    except Exception as error:
        raise EvaluationError(renderer_trouble("MuJoCo", os.environ.get("MUJOCO_GL", ""), error)) from None
