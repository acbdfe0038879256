"""LISTA against ISTA and FISTA: NMSE in dB against layers / iterations on the same held-out signals.

``python scripts/benchmark.py lista --run RUN_DIR`` reads a run of ``configs/amortize_lasso_lista.yaml``
(or trains one first when ``--run`` is left out) and evaluates, on the run's held-out signals (the
``eval.seed`` draw of ``eval.num_contexts`` signals, with their planted codes s):

- LISTA: every layer's iterate ŷᵏ, k = 1..K;
- ISTA and FISTA (step 1/L, from 0) for 1..``max_iterations`` iterations, each at two l1 weights λ chosen
  on separate tuning signals: the λ with the lowest NMSE after K iterations (their best at LISTA's depth)
  and the λ with the lowest NMSE after ``max_iterations`` (their best given the whole budget).

NMSE = 10 log₁₀(Σ‖ŷ − s‖² / Σ‖s‖²) over the signals, in dB. It prints a Markdown table and writes it
as CSV (``<out>/lista_nmse.csv``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from amorctl.benchmarking.common import command_line, fmt, log, machine_info, markdown_table, one_thread
from amorctl.eval.direct import ReferenceSet
from amorctl.eval.load import load_run
from amorctl.optimizers import make_optimizer
from amorctl.problems import Lasso, make_problem
from amorctl.run.cli import train_main
from amorctl.run.errors import AmorctlError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "amortize_lasso_lista.yaml"
LAMBDAS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
TUNING_SEED_OFFSET = 1
"""Tuning signals are drawn from ``eval.seed + 1``, never from the held-out draw."""


def nmse_db(estimate: torch.Tensor, codes: torch.Tensor) -> float:
    """10 log₁₀(Σ‖ŷ − s‖² / Σ‖s‖²) over a batch, in dB."""
    error = (estimate - codes).double().square().sum() / codes.double().square().sum()
    return 10.0 * math.log10(max(float(error), 1e-300))


@torch.no_grad()
def solver_curve(name: str, problem: Lasso, x: torch.Tensor, codes: torch.Tensor, iterations: int) -> list[float]:
    """NMSE (dB) of ``ista`` or ``fista`` (step 1/L, from 0) after 1..``iterations`` iterations."""
    optimizer = make_optimizer(name, problem)
    y = x.new_zeros(x.shape[0], problem.code_dim)
    state = optimizer.init(y, x)
    curve = []
    for _ in range(iterations):
        y, state = optimizer.step(y, x, state)
        curve.append(nmse_db(y, codes))
    return curve


def tune_lambdas(
    name: str, family: dict, x: torch.Tensor, codes: torch.Tensor, at: Sequence[int], lambdas: Sequence[float]
) -> list[float]:
    """For each iteration count in ``at``, the λ of ``lambdas`` with the lowest NMSE there (on tuning signals)."""
    curves = {lam: solver_curve(name, make_problem(**{**family, "l1": lam}), x, codes, max(at)) for lam in lambdas}
    return [min(lambdas, key=lambda lam: curves[lam][k - 1]) for k in at]


def lista_benchmark(
    run: str | None,
    max_iterations: int = 1000,
    tuning_signals: int = 256,
    lambdas: Sequence[float] = LAMBDAS,
    out: str = "benchmarks",
    overrides: Sequence[str] = (),
) -> str:
    """The Markdown report; trains ``configs/amortize_lasso_lista.yaml`` (with ``overrides``) when ``run`` is None."""
    one_thread()
    if run is None:
        run = _train(overrides, Path(out) / "runs")
    loaded = load_run(run, overrides=["device=cpu"])
    config, model, problem = loaded.config, loaded.learner.model, loaded.learner.problem
    if config.model.get("kind") != "lista" or not isinstance(problem, Lasso):
        raise AmorctlError(f"run {str(run)!r} is not a LISTA run on the lasso (model.kind: lista, problem.name: lasso)")
    device = torch.device("cpu")
    held_out = ReferenceSet.build(problem, config.eval.num_contexts, config.eval.seed, device, "planted")
    x, codes = held_out.contexts, held_out.solutions
    model.eval()
    with torch.no_grad():
        lista = [nmse_db(y, codes) for y in model.iterates(x, model.steps)[1:]]
    depth = model.steps
    if max_iterations < depth:
        raise AmorctlError(f"--max-iterations ({max_iterations}) must be at least the run's {depth} layers")
    generator = torch.Generator().manual_seed(config.eval.seed + TUNING_SEED_OFFSET)
    tuning = problem.sample_planted(tuning_signals, generator)
    columns, lams = {}, {}
    for name in ("ista", "fista"):
        log(f"tuning λ of {name} on {tuning_signals} signals over {list(lambdas)}")
        lams[name] = tune_lambdas(name, config.problem, *tuning, (depth, max_iterations), lambdas)
        short, long = lams[name]
        tuned = {short: f"k={depth}"} if short != long else {}
        tuned[long] = f"k={depth} and {max_iterations}" if short == long else f"k={max_iterations}"
        for lam, label in tuned.items():
            log(f"{name} λ = {lam:g} (tuned for {label}) on {x.shape[0]} held-out signals")
            columns[f"{name.upper()} λ={lam:g} (tuned for {label})"] = solver_curve(
                name, make_problem(**{**config.problem, "l1": lam}), x, codes, max_iterations)
    rows = _table_rows(lista, columns, max_iterations)
    header = ["k", f"LISTA ({config.model.get('variant')}, SS={config.model.get('support_selection')})",
              *columns]
    Path(out).mkdir(parents=True, exist_ok=True)
    csv_path = Path(out) / "lista_nmse.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[k, *("" if math.isnan(v) else f"{v:.3f}" for v in values)] for k, values in rows])
    metrics = _training_metrics(loaded.run.root)
    lines = [
        f"NMSE (dB) on {x.shape[0]} held-out signals (eval.seed = {config.eval.seed}) of `{loaded.run.root}` "
        f"(step {loaded.step}; {fmt(metrics.get('wall_seconds', math.nan))} s of training, "
        f"stop: {metrics.get('stop_reason', '?')}); ISTA/FISTA step 1/L from 0, λ tuned on {tuning_signals} other "
        f"signals for K = {depth} (ista {lams['ista'][0]:g}, fista {lams['fista'][0]:g}) and for "
        f"K = {max_iterations} (ista {lams['ista'][1]:g}, fista {lams['fista'][1]:g}) over {list(lambdas)}.",
        "",
        markdown_table(header, [[k, *values] for k, values in rows]),
        "",
        f"CSV: {csv_path}",
        f"command: {command_line()}",
        f"machine: {machine_info()}",
    ]
    return "\n".join(lines)


def _table_rows(lista: list[float], columns: dict[str, list[float]], max_iterations: int) -> list[tuple[int, list]]:
    """Every k up to LISTA's depth, then 20, 50, 100, 200, ... up to ``max_iterations``."""
    depth = len(lista)
    later = [m * 10**e for e in range(1, 7) for m in (1, 2, 5)]
    ks = sorted({*range(1, depth + 1), *(k for k in later if depth < k < max_iterations), max_iterations})
    return [(k, [lista[k - 1] if k <= depth else math.nan, *(curve[k - 1] for curve in columns.values())]) for k in ks]


def _training_metrics(root: Path) -> dict:
    path = root / "eval" / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _train(overrides: Sequence[str], runs_dir: Path) -> Path:
    """Train the shipped config into ``runs_dir``; returns the new run folder."""
    before = set(runs_dir.glob("*/*"))
    status = train_main(["--config", str(CONFIG), f"runs_dir={runs_dir}", "device=cpu", *overrides, "--no-progress"])
    if status != 0:
        raise AmorctlError(f"training {CONFIG.name} failed (exit status {status})")
    (new,) = set(runs_dir.glob("*/*")) - before
    return new
