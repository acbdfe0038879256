#!/usr/bin/env python
"""Benchmarks: ``python scripts/benchmark.py SECTION [options]``; each prints a Markdown table and its command.

Sections: ``td3-throughput`` and ``sac-throughput`` (amorctl's TD3 / SAC against stable-baselines3's with
identical settings), ``time-to-solve --algo {td3,sac,ddpg}`` (against stable-baselines3 with the RL Zoo's
settings; ``td3-time-to-solve`` is ``--algo td3``), ``td3-budget``, ``iterate-throughput``, ``gym-ids-sb3``
(stable-baselines3's SAC, TD3 and PPO with their default hyper-parameters on the registered ``amorctl/*`` ids,
against the random policy and the zero action), ``expert-sensitivity`` (the Barzilai–Borwein expert's gaps
under small action noise), ``learned-optimizers`` (tuned classical optimizers, Barzilai–Borwein and L-BFGS
included, on a learned-optimizer config's held-out problems, and trained runs against them),
``report-timing`` (the amortization report's speed-ups of trained direct runs under the current load
and with two busy-loop processes more), ``lista`` (LISTA against ISTA and FISTA,
NMSE against layers / iterations on the sparse-coding setting), ``semi-amortized`` (fully- and
semi-amortized models × gradient estimators on one family with one training budget) and ``estimators``
(the gradient estimators' bias and variance against the exact gradient on quadratics, and a training step's
memory against K for implicit and bptt), ``admm-throughput`` (QPs solved per second by the batched ADMM
solver at N = 1, 64, 1024 against the osqp package called in a loop on the same problems) and ``mjwarp-throughput``
(MuJoCo Warp environment steps per second against N on the CPU and CUDA, next to gymnasium's vector
environments). Record results in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys

from amorctl.envs.mjwarp_tasks import MJ_TASKS
from amorctl.run.errors import AmorctlError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sections = parser.add_subparsers(dest="section", required=True)

    for algorithm in ("td3", "sac"):
        p = sections.add_parser(f"{algorithm}-throughput", help=f"{algorithm.upper()}: env steps/s, bare update "
                                "and env step on HalfCheetah-v5, amorctl against stable-baselines3")
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--steps", type=int, default=3000, help="timed env steps after learning_starts")
        p.add_argument("--learning-starts", type=int, default=1000)
        p.add_argument("--update-steps", type=int, default=1000, help="bare updates timed per repeat")

    for section in ("time-to-solve", "td3-time-to-solve"):
        p = sections.add_parser(section, help="training seconds to reach the task's return threshold, amorctl "
                                "against stable-baselines3 with the RL Zoo's settings"
                                + (" (TD3; = time-to-solve --algo td3)" if section.startswith("td3") else ""))
        if section == "time-to-solve":
            p.add_argument("--algo", choices=["td3", "sac", "ddpg"], default="td3")
            p.add_argument("--only", choices=["amorctl", "stable-baselines3"], default=None,
                           help="run one implementation only (no ratio)")
            p.add_argument("--max-steps", type=int, default=None, help="give a run up after this many env steps")
        p.add_argument("--task", choices=["pendulum", "inverted_pendulum"], default="pendulum")
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
        p.add_argument("--max-seconds", type=float, default=None, help="give a run up after this much training")
        p.add_argument("--out", default="benchmarks")
        p.add_argument("overrides", nargs="*", help="key=value overrides of the amorctl config")

    p = sections.add_parser("td3-budget", help="HalfCheetah-v5 with a wall-clock training budget")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true", help="table and plot from the CSVs already in --out")
    p.add_argument("--out", default="benchmarks")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the amorctl config")

    p = sections.add_parser("iterate-throughput", help="optimizer-as-MDP environment throughput")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--device", default="cpu", help="where the batched IterateEnv runs (e.g. cuda)")
    p.add_argument("--family", default="quadratic")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sync-num-envs", type=int, default=None,
                   help="N of the gymnasium sync reference (default --num-envs; its per-step rate barely depends on N)")

    p = sections.add_parser("mjwarp-throughput", help="MuJoCo Warp environment steps/s against N (CPU, and CUDA "
                            "when available), next to gymnasium's vector environments")
    p.add_argument("--id", default="HalfCheetah-v5", choices=list(MJ_TASKS), help="an MjWarpEnv task")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 256, 1024])
    p.add_argument("--device", nargs="+", default=None, help="devices to run MjWarpEnv on (default: cpu, and cuda "
                   "when available)")
    p.add_argument("--gym-num-envs", type=int, nargs="*", default=[1, 16])
    p.add_argument("--steps", type=int, default=10, help="timed vectorized steps per repeat")
    p.add_argument("--repeats", type=int, default=3)

    p = sections.add_parser("expert-sensitivity", help="the Barzilai–Borwein expert's mean gaps under small "
                            "action noise (the yardstick of DAgger's imitation)")
    p.add_argument("--problems", type=int, default=16384)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1e-4, 1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--biases", type=float, nargs="*", default=[1e-3, -1e-3],
                   help="constant action offsets δ (a systematic imitation error)")
    p.add_argument("--iterations", type=int, nargs="*", default=[],
                   help="horizons T to compare (default: the config's)")

    p = sections.add_parser("learned-optimizers", help="tuned GD / momentum / Adam / BB1 / BB2 / L-BFGS on a "
                            "learned-optimizer config's held-out problems, and trained runs against them")
    p.add_argument("--config", default="configs/td3_opt_quadratic.yaml")
    p.add_argument("--runs", nargs="*", default=[], help="trained runs of iterate environments to compare")
    p.add_argument("--heldout", type=int, default=512)
    p.add_argument("--tuning", type=int, default=512)
    p.add_argument("--blocks", type=int, default=0, help="also compare each run with the better BB on this many "
                   "further held-out blocks of --heldout problems (pooled means; a 512-problem mean is noisy)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config (e.g. seed=1)")

    p = sections.add_parser("gym-ids-sb3", help="stable-baselines3 SAC/TD3/PPO with default hyper-parameters on "
                            "every registered amorctl/* id, against the random policy and the zero action")
    p.add_argument("--steps", type=int, default=20_000, help="training env steps per run")
    p.add_argument("--episodes", type=int, default=50, help="evaluation episodes per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--algos", nargs="+", choices=["SAC", "TD3", "PPO"], default=["SAC", "TD3", "PPO"])
    p.add_argument("--ids", nargs="+", default=None, help="registered ids (default: all of ITERATE_ENV_IDS)")
    p.add_argument("--out", default="benchmarks")

    p = sections.add_parser("report-timing", help="the amortization report's speed-ups of trained direct runs "
                            "under the current load and with extra busy-loop processes")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--clocks", nargs="+", choices=["auto", "wall"], default=["auto", "wall"])
    p.add_argument("--busy", type=int, default=2, help="busy-loop processes added for the second measurement")
    p.add_argument("--solver-steps", type=int, default=100)

    p = sections.add_parser("lista", help="LISTA against ISTA and FISTA: NMSE (dB) against layers / iterations "
                            "on the held-out signals of a run of configs/amortize_lasso_lista.yaml")
    p.add_argument("--run", default=None, help="a trained run directory (default: train the shipped config first)")
    p.add_argument("--max-iterations", type=int, default=1000, help="ISTA / FISTA iterations")
    p.add_argument("--tuning-signals", type=int, default=256, help="signals the ISTA / FISTA λ is tuned on")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help="the λ grid of the tuning")
    p.add_argument("--out", default="benchmarks")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config when training")

    p = sections.add_parser("semi-amortized", help="fully- and semi-amortized models × gradient estimators on one "
                            "family with one training budget: held-out gap, training time, seconds per solution")
    p.add_argument("--family", default="logistic_regression")
    p.add_argument("--models", nargs="+", default=None, metavar="KIND[:K]",
                   help="registered model kinds, KIND:K sets model.steps (default: mlp unrolled_gd:5 "
                   "unrolled_gd:10 unrolled_gd:20 learned_update warm_start)")
    p.add_argument("--estimators", nargs="+", default=["bptt", "first_order", "truncated"])
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--horizon", type=int, default=3, help="gradient.horizon of truncated (at most K)")
    p.add_argument("--eval-contexts", type=int, default=256)
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("LABEL", "KEY=VALUE"),
                   help="an override for the models whose kind or KIND:K label is LABEL (repeatable)")
    p.add_argument("--out", default="benchmarks/semi_amortized")
    p.add_argument("overrides", nargs="*", help="key=value overrides of every run's config")

    p = sections.add_parser("estimators", help="bias and variance of every gradient estimator against the exact "
                            "gradient on quadratics; peak memory of a training step against K, implicit vs bptt")
    p.add_argument("--repeats", type=int, default=200, help="draws of each random estimator (es)")
    p.add_argument("--ks", type=int, nargs="+", default=[10, 100, 1000], help="model.steps K of the memory table")
    p.add_argument("--tables", nargs="+", choices=["bias", "memory"], default=["bias", "memory"])

    p = sections.add_parser("admm-throughput", help="QPs solved per second: the batched ADMM solver at several N "
                            "against the osqp package called in a loop on the same problems")
    p.add_argument("--families", nargs="+", default=None, metavar="NAME[:KEY=VALUE,...]",
                   help="QP families and sizes (default: every class at n <= 50)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024], help="batch sizes N")
    p.add_argument("--eps", type=float, default=1e-3, help="eps_abs = eps_rel of both solvers")
    p.add_argument("--single-problems", type=int, default=64, help="problems solved one by one at N = 1")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="the batched solver's dtype")
    p.add_argument("--no-refine", action="store_true",
                   help="the batched solver without its solve refinement step (ADMMSettings.refine_solve)")
    p.add_argument("--backend", choices=["auto", "numba", "torch"], default="auto",
                   help="the batched solver's backend (ADMMSettings.backend; auto: numba on the CPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of the numba backend (ADMMSettings.threads; osqp's loop always runs on one)")

    args = parser.parse_args(argv)
    try:
        print(_run_section(args))
    except AmorctlError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def _run_section(args: argparse.Namespace) -> str:
    """The Markdown report of the chosen section."""
    if args.section == "expert-sensitivity":
        from amorctl.benchmarking.imitation import expert_sensitivity

        return expert_sensitivity(args.problems, args.sigmas, args.seeds, args.biases, args.iterations)

    if args.section == "learned-optimizers":
        from amorctl.benchmarking.learned_optimizers import learned_optimizers

        return learned_optimizers(args.config, args.overrides, args.runs, args.heldout, args.tuning, args.blocks)

    if args.section == "report-timing":
        from amorctl.benchmarking.report_timing import report_timing

        return report_timing(args.runs, args.clocks, args.busy, args.solver_steps)

    if args.section == "lista":
        from amorctl.benchmarking.lista import LAMBDAS, lista_benchmark

        return lista_benchmark(args.run, args.max_iterations, args.tuning_signals, tuple(args.lambdas or LAMBDAS),
                               args.out, tuple(args.overrides))

    if args.section == "semi-amortized":
        from amorctl.benchmarking.semi_amortized import DEFAULT_MODELS, semi_amortized

        return semi_amortized(args.family, args.models or DEFAULT_MODELS, args.estimators, args.train_steps,
                              args.batch_size, args.horizon, args.eval_contexts, [tuple(s) for s in args.set],
                              args.overrides, args.out)

    if args.section == "estimators":
        from amorctl.benchmarking.estimators import estimators_benchmark

        return estimators_benchmark(args.repeats, tuple(args.ks), tuple(args.tables))

    if args.section == "admm-throughput":
        from amorctl.benchmarking.admm import DEFAULT_FAMILIES, admm_throughput

        if min(args.sizes) < 1 or args.eps <= 0 or args.single_problems < 1 or args.threads < 1:
            raise AmorctlError(
                "admm-throughput needs --sizes >= 1, --eps > 0, --single-problems >= 1 and --threads >= 1"
            )
        return admm_throughput(args.families or DEFAULT_FAMILIES, args.sizes, args.eps, args.single_problems,
                               args.dtype, not args.no_refine, args.backend, args.threads)

    if args.section == "iterate-throughput":
        from amorctl.benchmarking.iterate import iterate_throughput

        return iterate_throughput(num_envs=args.num_envs, family=args.family, steps=args.steps, repeats=args.repeats,
                                  device=args.device, sync_num_envs=args.sync_num_envs)

    if args.section == "mjwarp-throughput":
        import torch

        from amorctl.benchmarking.mjwarp import mjwarp_throughput

        devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        return mjwarp_throughput(args.id, args.num_envs, args.steps, args.repeats, devices, args.gym_num_envs)

    if args.section == "gym-ids-sb3":
        from amorctl.benchmarking.gym_ids import gym_ids_sb3

        return gym_ids_sb3(steps=args.steps, episodes=args.episodes, seed=args.seed, workers=args.workers,
                           algorithms=tuple(args.algos), env_ids=tuple(args.ids) if args.ids else None, out=args.out)

    if args.section.endswith("-throughput"):
        from amorctl.benchmarking.throughput import throughput

        algorithm = args.section.removesuffix("-throughput")
        return throughput(algorithm, args.repeats, args.steps, args.learning_starts, args.update_steps)

    if args.section.endswith("time-to-solve"):
        from amorctl.benchmarking.time_to_solve import NAMES, SPECS, time_to_solve

        algorithm = getattr(args, "algo", "td3")
        if args.task not in SPECS[algorithm].configs:
            raise AmorctlError(f"no {args.task} config for {algorithm}: choose --task from "
                               f"{', '.join(SPECS[algorithm].configs)}")
        only = getattr(args, "only", None)
        return time_to_solve(
            algorithm, args.task, args.seeds, args.workers, args.out, tuple(args.overrides), args.max_seconds,
            implementations=(only,) if only else NAMES, max_steps=getattr(args, "max_steps", None),
        )

    from amorctl.benchmarking import td3

    if args.report_only:
        return td3.budget_report(args.minutes, args.out)
    return td3.td3_budget(args.minutes, args.seeds, args.first_seed, args.out, tuple(args.overrides))

if __name__ == "__main__":
    sys.exit(main())
