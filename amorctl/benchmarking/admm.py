"""Throughput of the batched ADMM solver against the osqp package called in a loop on the same problems.

``scripts/benchmark.py admm-throughput`` calls :func:`admm_throughput`. For each QP family spec, one set of
problems is drawn (float64, seed 0); both solvers run OSQP's iteration with the same settings: scaling off
(this solver has no Ruiz scaling), polishing off, osqp 1.x's duality-gap test off (the issue's termination
is the residual test only), ε_abs = ε_rel as given, ρ₀ = 0.1, σ = 10⁻⁶, α = 1.6, termination checked every 25
iterations, OSQP's adaptive ρ every 50 iterations with tolerance 5, at most 4000 iterations.

- osqp: ``osqp.OSQP()``, ``setup`` and ``solve`` per problem, timed; the problems are handed over as scipy
  CSC matrices built before the clock starts (osqp's native input, so its loop pays only for itself).
- batched ADMM at N: :class:`~amorctl.solvers.BatchedADMM` built (its factorizations included) and solved with
  :class:`~amorctl.solvers.OSQPAdaptiveRho` on N problems at once; at N = 1 the problems are solved one by one.
  On the CPU this is the numba backend; a solve of two problems before the clock starts compiles its kernels (or
  loads them from numba's cache), a once-per-install cost that is not the solver's throughput.

QPs per second = problems / wall-clock seconds; the ratio is against osqp measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, one_thread
from amorctl.run.errors import AmorctlError

DEFAULT_FAMILIES = (
    "random_qp:n=10",
    "random_qp:n=50",
    "eq_qp:n=50",
    "portfolio",
    "lasso:data=30",
    "huber:data=15",
    "svm",
    "control:states=3",
)
"""Family specs of the default run: every class at a size with n ≤ 50 variables."""

OSQP_SETTINGS: dict[str, Any] = {
    "scaling": 0,
    "polishing": 0,
    "check_dualgap": 0,
    "adaptive_rho_interval": 50,
    "check_termination": 25,
    "max_iter": 4000,
    "rho": 0.1,
    "sigma": 1e-6,
    "alpha": 1.6,
}
"""osqp settings that make its iteration the batched solver's (besides the tolerances)."""


def parse_family(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` → (name, keyword arguments with int / float values)."""
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise AmorctlError(f"--families entry {spec!r}: expected NAME[:KEY=VALUE,...], got {item!r}")
        try:
            kwargs[key] = int(value)
        except ValueError:
            try:
                kwargs[key] = float(value)
            except ValueError:
                raise AmorctlError(f"--families entry {spec!r}: {key} must be a number, got {value!r}") from None
    return name, kwargs


def admm_throughput(
    families: Sequence[str] = DEFAULT_FAMILIES,
    sizes: Sequence[int] = (1, 64, 1024),
    eps: float = 1e-3,
    single_problems: int = 64,
    dtype: str = "float64",
    refine_solve: bool = True,
    backend: str = "auto",
    threads: int = 1,
) -> str:
    """A Markdown report: per family, QPs/s of osqp's loop and of the batched ADMM at each N in ``sizes``.

    osqp solves max(sizes) problems; at N = 1 the batched solver solves the first ``single_problems`` one by one.
    ``refine_solve``, ``backend`` and ``threads`` are :class:`~amorctl.solvers.ADMMSettings`'s (osqp runs on one
    thread whatever ``threads`` is; torch's own threads stay at one).
    ``dtype`` is the batched solver's (osqp always computes in float64; the problems are drawn in float64 and
    cast). A line per family after the table says on how many of the first 64 problems the two solvers' iteration
    counts are identical.
    """
    import osqp

    from amorctl.problems.qp import QP_FAMILIES, osqp_solve, reference_solutions
    from amorctl.problems.qp.reference import problem_data
    from amorctl.solvers import ADMMSettings, BatchedADMM, OSQPAdaptiveRho, Status
    from amorctl.solvers.admm import check_threads

    if dtype not in ("float32", "float64"):
        raise AmorctlError(f"--dtype must be float32 or float64, got {dtype!r}")
    one_thread()
    try:
        settings = ADMMSettings(
            eps_abs=eps, eps_rel=eps, refine_solve=refine_solve, backend=backend, threads=threads
        )
        check_threads(threads)
    except ValueError as error:
        raise AmorctlError(str(error)) from None
    rows, notes = [], []
    for spec in families:
        name, kwargs = parse_family(spec)
        try:
            family = QP_FAMILIES.lookup(name, "--families")(**kwargs)
        except (KeyError, ValueError) as error:
            raise AmorctlError(f"--families entry {spec!r}: {error}") from None
        count = max(sizes)
        batch = family.sample(count, torch.Generator().manual_seed(0))
        log(f"{spec}: n={family.num_variables} m={family.num_constraints}, osqp on {count} problems")
        data = [problem_data(batch, i) for i in range(count)]
        start = time.perf_counter()
        iterations, solved = [], 0
        for problem in data:
            solver = osqp.OSQP()
            solver.setup(*problem, verbose=False, eps_abs=eps, eps_rel=eps, **OSQP_SETTINGS)
            result = solver.solve(raise_error=False)
            iterations.append(result.info.iter)
            solved += result.info.status == "solved"
        osqp_rate = count / (time.perf_counter() - start)
        osqp_iterations = torch.tensor(iterations, dtype=torch.float64)
        rows.append(
            [
                spec,
                family.num_variables,
                family.num_constraints,
                "osqp (loop)",
                count,
                osqp_rate,
                1.0,
                float(osqp_iterations.median()),
                f"{solved}/{count}",
            ]
        )
        for size in sizes:
            log(f"{spec}: batched ADMM at N={size}")
            work = batch.to(dtype=getattr(torch, dtype))
            BatchedADMM(work[:2], settings).solve(OSQPAdaptiveRho())  # compiles (or loads) the numba kernels
            chunks = [work[i] for i in range(min(single_problems, count))] if size == 1 else [work[:size]]
            start = time.perf_counter()
            solvers = [BatchedADMM(chunk, settings).solve(OSQPAdaptiveRho()) for chunk in chunks]
            seconds = time.perf_counter() - start
            problems = sum(chunk.num_problems for chunk in chunks)
            its = torch.cat([s.iterations for s in solvers]).double()
            done = sum(int((s.status == Status.SOLVED).sum()) for s in solvers)
            rows.append(
                [
                    spec,
                    family.num_variables,
                    family.num_constraints,
                    f"batched ADMM, N={size}",
                    problems,
                    problems / seconds,
                    problems / seconds / osqp_rate,
                    float(its.median()),
                    f"{done}/{problems}",
                ]
            )
        check = batch[:64]
        theirs = osqp_solve(check, eps_abs=eps, eps_rel=eps, **OSQP_SETTINGS)
        mine = BatchedADMM(work[:64], settings).solve(OSQPAdaptiveRho())
        both = (mine.status == Status.SOLVED) & torch.tensor([s == "solved" for s in theirs.status])
        f_star = check.objective(reference_solutions(check).x)
        gap = ((check.objective(mine.x.double()) - f_star).abs() / (1 + f_star.abs()))[both]
        notes.append(
            f"- {spec}: identical iteration counts on {int((theirs.iterations == mine.iterations).sum())} of the "
            f"first {check.num_problems} problems (median {float(theirs.iterations.double().median()):g} osqp, "
            f"{float(mine.iterations.double().median()):g} batched); where both solved ({int(both.sum())}), "
            f"max ‖x − x_osqp‖∞ = {float((mine.x.double() - theirs.x).abs()[both].max()):.1e}, "
            f"max |f − f*| / (1 + |f*|) = {float(gap.max()):.1e} against osqp at 1e-9 with polishing"
        )
    header = ["family", "n", "m", "solver", "problems", "QPs/s", "× osqp", "median iterations", "solved"]
    refinement = "on" if refine_solve else "off"
    return (
        f"### Batched ADMM throughput against osqp (ε_abs = ε_rel = {eps:g}, batched in {dtype}, "
        f"solve refinement {refinement}, {backend} backend, {threads} thread(s), CPU)\n\n"
        f"{markdown_table(header, rows)}\n\n"
        + "\n".join(notes)
        + f"\n\nCommand: `{command_line()}`\n\nMachine: {machine_info()}\n"
    )
