"""Direct amortization: fit ŷθ(x) by gradient descent on a loss over fresh contexts x ~ p(x).

Each step draws a new batch of contexts (the seed blog's "keep sampling new a's on the fly"),
predicts ŷθ(x) and descends the objective loss (eq. 2.10), the regression loss (eq. 2.9, which
calls the problem's reference solver on the batch) or their weighted mix. Registered as
``agent: direct``; its config names a problem family (``problem.name``) and a model (``model.kind``).

A semi-amortized model (``model.kind: unrolled_gd``) exposes its iterates ŷ⁰..ŷᴷ: the loss is then
the iterate-weighted L_Σ of eq. 2.12 (``loss.iterate_weights``). ``gradient.estimator`` picks how θ's
gradient of the loss is computed (:mod:`amorctl.gradients`): through the unroll (bptt, first order,
truncated, implicit) or from perturbations of any model (es); the learner only calls its ``gradient``.
A model may refuse training settings it cannot use with a
``check_training(iterate_weights=..., estimator=...)`` method (``warm_start`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import torch
from annotated_types import Ge, Gt, Le
from pydantic import Field, model_validator
from torch import nn

from amorctl.agents.base import Learner, optimizer_state_of, parameters_of, register_agent
from amorctl.eval.direct import ReferenceSet, evaluate_model, gap_metrics
from amorctl.gradients import ESTIMATORS, BatchLoss, UnrollEstimator, make_estimator
from amorctl.losses import (
    IterateSchedule,
    iterate_weights,
    mixed_loss,
    objective_loss,
    regression_loss,
)
from amorctl.models import MODELS, build_model, is_semi_amortized, model_iterates
from amorctl.problems import Problem, has_planted_solutions, make_problem
from amorctl.registry import Registry
from amorctl.run.errors import ConfigError
from amorctl.schema import (
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    RunConfig,
    Schedule,
    ScheduleConfig,
    Section,
    Seed,
    check_memory,
    constructor_schema,
    parameter_bytes,
    validate_problem_section,
    validate_section,
)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


# ----------------------------------------------------------------------------------------- config
class LossConfig(Section):
    """Which amortization loss trains the model."""

    kind: Literal["objective", "regression", "mixed"] = "objective"
    """``objective`` (eq. 2.10, needs only f), ``regression`` (eq. 2.9, needs y*), or ``mixed``."""
    regression_weight: Annotated[FiniteFloat, Ge(0.0), Le(1.0)] = 0.5
    """For ``mixed``: w in (1 − w)·objective + w·regression."""
    iterate_weights: IterateSchedule = "last"
    """Eq. 2.12 over a semi-amortized model's iterates ŷ⁰..ŷᴷ: ``last`` (only ŷᴷ), ``uniform``, ``linear``
    (wᵢ ∝ i + 1) or ``geometric`` (wᵢ ∝ ``geometric_ratio``^(K − i)); normalised to sum to 1."""
    geometric_ratio: Annotated[FiniteFloat, Gt(0.0), Le(1.0)] = 0.5
    """For ``geometric``: the ratio between the weights of consecutive iterates."""
    target: Literal["solver", "planted"] = "solver"
    """What y* is, for the regression loss and the held-out reference: ``solver`` (the family's reference
    solver) or ``planted`` (the solutions the family's sampler planted in its contexts, e.g. the sparse codes
    behind lasso signals; ``Problem.sample_planted``). Targets are only ever compared with predictions,
    models never see them."""


class DirectTrainConfig(ScheduleConfig):
    steps: PositiveInt = 8000
    batch_size: PositiveInt = 1024
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """``cosine`` anneals the learning rate to 0 over ``steps`` (recomputed when a resume changes ``steps``)."""
    grad_clip: PositiveFloat | None = None
    log_every: PositiveInt = 100
    eval_every: PositiveInt = 1000
    checkpoint_every: PositiveInt = 2000


class DirectEvalConfig(Section):
    num_contexts: PositiveInt = 256
    """Held-out contexts, drawn once from ``eval.seed`` (never from the training stream)."""
    seed: Seed = 12345
    timing_repeats: PositiveInt = 3
    """Timed blocks (at least) behind every seconds-per-solution figure: the final metrics' model and solver
    times and ``speedup``, and the amortization report's points (:mod:`amorctl.eval.timing`)."""
    steps: PositiveInt | None = None
    """Semi-amortized models only: the number of iterations run at evaluation and inference (default
    ``model.steps``, the K of training); steps past K reuse the last learned step size."""


class DirectConfig(RunConfig):
    """A direct amortization run: train ŷθ on a differentiable problem family."""

    RESUMABLE: ClassVar[tuple[str, ...]] = (
        *RunConfig.RESUMABLE, "train.steps", "train.lr", "train.weight_decay", "train.grad_clip",
        "train.batch_size", "eval.",
    )

    agent: Literal["direct"] = "direct"
    name: str = "default"
    problem: dict[str, Any] = Field(default_factory=lambda: {"name": "pendulum_mpc"})
    """The family's ``name`` (default ``pendulum_mpc``) and its constructor's keyword arguments."""
    model: dict[str, Any] = Field(default_factory=lambda: {"kind": "mlp"})
    """The model's ``kind`` (default ``mlp``) and its builder's keyword arguments."""
    gradient: dict[str, Any] = Field(default_factory=lambda: {"estimator": "bptt"})
    """How θ's gradient is computed: ``estimator`` (``bptt``, ``first_order``, ``truncated``, ``implicit``, ``es``)
    and its keys (``horizon`` for ``truncated``; ``lam``, ``tolerance``, ``cg_steps``, ``cg_damping`` for
    ``implicit``; ``sigma``, ``num_perturbations``, ``perturb``, ``sigma_final``, ``sigma_decay`` for ``es``)."""
    loss: LossConfig = Field(default_factory=LossConfig)
    train: DirectTrainConfig = Field(default_factory=DirectTrainConfig)
    eval: DirectEvalConfig = Field(default_factory=DirectEvalConfig)

    @model_validator(mode="after")
    def _check_problem_and_model(self) -> DirectConfig:
        self.problem = validate_problem_section(self.problem, default="pendulum_mpc")
        self.model = validate_registry_section(self.model, "model", "kind", "mlp", MODELS, skip=("problem",))
        problem = make_problem(**self.problem)
        name = self.problem["name"]
        if self.loss.target == "planted" and not has_planted_solutions(problem):
            raise ConfigError(f"loss.target='planted' needs a family whose sampler plants the solutions "
                              f"(Problem.sample_planted, e.g. lasso); problem {name!r} plants none")
        if self.loss.kind != "objective" and self.loss.target == "solver" and type(problem).solve is Problem.solve:
            raise ConfigError(f"loss.kind={self.loss.kind!r} needs y*, but problem {name!r} has no reference solver")
        self.gradient = validate_registry_section(self.gradient, "gradient", "estimator", "bptt", ESTIMATORS)
        built: list[nn.Module] = []  # the model, built on the meta device (nothing allocated) for the checks

        def build() -> nn.Module:
            built.append(build_model(self.model, problem))
            return built[-1]

        try:
            weights = parameter_bytes(build)
        except ValueError as error:
            raise ConfigError(f"config key 'model': {error}") from None
        self._check_semi_amortized(built[-1])
        widths = problem.context_dim + problem.solution_dim
        iterates = built[-1].steps + 1 if is_semi_amortized(built[-1]) else 1  # an unroll keeps every iterate's graph
        check_memory({
            "the model (model.hidden_sizes, for the problem's dimensions)": 4 * weights,  # with gradients, Adam
            "the training batch (train.batch_size)": 4 * 4 * self.train.batch_size * widths * iterates,
            "the held-out set (eval.num_contexts)": 4 * 4 * self.eval.num_contexts * widths,
        }, self.device)
        return self

    def _check_semi_amortized(self, model: nn.Module) -> None:
        """Refuse iterate weights, estimators and evaluation steps that the model cannot use."""
        kind = self.model["kind"]
        estimator = make_estimator(**self.gradient)
        if not is_semi_amortized(model):
            if self.loss.iterate_weights != "last":
                raise ConfigError(f"loss.iterate_weights={self.loss.iterate_weights!r} needs a semi-amortized model "
                                  f"with iterates (e.g. model.kind: unrolled_gd); {kind!r} has one prediction, so "
                                  "only 'last' applies")
            if estimator.needs_unroll:
                anywhere = " or ".join(repr(name) for name, cls in ESTIMATORS.items() if not cls.needs_unroll)
                raise ConfigError(f"gradient.estimator={self.gradient['estimator']!r} needs a semi-amortized model "
                                  f"(e.g. model.kind: unrolled_gd); {kind!r} unrolls nothing, so only {anywhere} apply")
            if self.eval.steps is not None:
                raise ConfigError(f"eval.steps needs a semi-amortized model (e.g. model.kind: unrolled_gd); "
                                  f"{kind!r} runs no iterations")
        check_training = getattr(model, "check_training", None)  # a model's own refusals (e.g. warm_start)
        try:
            estimator.check(model)
            if callable(check_training):
                check_training(iterate_weights=self.loss.iterate_weights, estimator=self.gradient["estimator"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
        limit = getattr(model, "max_inference_steps", None)
        if self.eval.steps is not None and limit is not None and self.eval.steps > limit:
            raise ConfigError(f"eval.steps={self.eval.steps} is more than model.kind={kind!r} can run: its "
                              f"{limit} layers (model.steps) are untied, none can be repeated; use at most {limit}")

    def schedule(self) -> Schedule:
        t = self.train
        return Schedule(t.steps, t.log_every, t.eval_every, t.checkpoint_every, t.keep_checkpoints, t.max_wall_seconds)


def validate_registry_section(
    section: Any, key: str, name_key: str, default: str, registry: Registry[Any], skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check config section ``key``: ``section[name_key]`` (``default`` when absent) names an entry of
    ``registry``, and the other keys are that entry's keyword arguments (``skip`` excepted), with types
    coerced. Returns the section with ``name_key`` first."""
    if not isinstance(section, dict):
        raise ConfigError(f"config key {key!r} must be a section (a mapping with a {name_key!r}), got {section!r}")
    section = {name_key: default, **section}
    try:
        entry = registry.lookup(section[name_key])
    except KeyError as error:
        raise ConfigError(str(error)) from None
    keys = {name: value for name, value in section.items() if name != name_key}
    checked = validate_section(constructor_schema(entry, skip=skip), keys, key).model_dump()
    return {name_key: section[name_key], **checked}


# ---------------------------------------------------------------------------------------- learner
class DirectAmortization(Learner):
    """The learner: a model, its optimizer and learning-rate schedule, and the context stream.

    Args:
        problem: the family whose contexts and objective are trained on.
        model: ŷθ, already on ``device``.
        loss: ``objective`` (eq. 2.10), ``regression`` (eq. 2.9) or ``mixed``.
        regression_weight: w of the mixed loss (1 − w)·objective + w·regression.
        iterate_weights, geometric_ratio: the schedule of eq. 2.12 over a semi-amortized model's iterates.
        target: y* of the regression loss: ``solver`` (``problem.solve`` on each batch) or ``planted``
            (the solutions ``problem.sample_planted`` draws with the batch).
        estimator: computes θ's gradient of each batch's loss (plain backpropagation, ``bptt``, by default).
        optimizer, lr, weight_decay: the parameter optimizer.
        lr_schedule: ``constant`` or ``cosine`` (annealed to 0 over ``total_steps``).
        total_steps: length of the run, for the schedule.
        batch_size: fresh contexts per step.
        grad_clip: maximum gradient norm, or ``None``.
        seed: seeds the context stream.
        device: where contexts are drawn and the model runs.
        reference: held-out contexts with reference solutions, for :meth:`evaluate` and :meth:`final_metrics`.
        timing_repeats: timed blocks (at least) of model and solver for the speedup in :meth:`final_metrics`.
    """

    def __init__(
        self,
        problem: Problem,
        model: nn.Module,
        *,
        loss: Literal["objective", "regression", "mixed"],
        regression_weight: float,
        optimizer: str,
        lr: float,
        weight_decay: float,
        lr_schedule: Literal["constant", "cosine"],
        total_steps: int,
        batch_size: int,
        grad_clip: float | None,
        seed: int,
        device: torch.device | str,
        reference: ReferenceSet | None = None,
        timing_repeats: int = 3,
        iterate_weights: IterateSchedule = "last",
        geometric_ratio: float = 0.5,
        target: Literal["solver", "planted"] = "solver",
        estimator: UnrollEstimator | None = None,
    ):
        self.problem, self.model = problem, model
        self.loss_kind, self.regression_weight = loss, regression_weight
        self.iterate_schedule, self.geometric_ratio, self.target = iterate_weights, geometric_ratio, target
        self.batch_size, self.grad_clip = batch_size, grad_clip
        self.base_lr, self.weight_decay = lr, weight_decay
        self.device = torch.device(device)
        self.reference, self.timing_repeats = reference, timing_repeats
        self.estimator, self.total_steps = estimator or UnrollEstimator(), total_steps
        self.optimizer = OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
        if lr_schedule == "cosine":
            schedule = lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))  # noqa: E731
        else:
            schedule = lambda step: 1.0  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.progress = 0
        self.last_loss = torch.zeros((), device=self.device)

    @property
    def step(self) -> int:
        """Optimizer steps taken (the learner's progress)."""
        return self.progress

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def loss(self, x: torch.Tensor, y_star: torch.Tensor | None = None) -> torch.Tensor:
        """The configured loss of the model on contexts ``x``: over its iterates by eq. 2.12 (one for an MLP).

        ``y_star``: the regression target of ``x`` (planted solutions); ``None`` solves for it when needed.
        """
        return self.batch_loss(x, y_star)()

    def batch_loss(self, x: torch.Tensor, y_star: torch.Tensor | None = None) -> BatchLoss:
        """The configured loss on contexts ``x`` as the estimator differentiates it (y*, if needed and not given,
        solved once)."""
        if self.loss_kind == "objective":
            context_loss = lambda y_hat: objective_loss(self.problem, y_hat, x, "none")  # noqa: E731
        else:
            if y_star is None:
                with torch.no_grad():
                    y_star = self.problem.solve(x)
            if self.loss_kind == "regression":
                context_loss = lambda y_hat: regression_loss(y_hat, y_star, "none")  # noqa: E731
            else:
                context_loss = lambda y_hat: mixed_loss(  # noqa: E731
                    self.problem, y_hat, x, y_star, self.regression_weight, "none")
        return BatchLoss(lambda: model_iterates(self.model, x), context_loss,
                         lambda count: iterate_weights(self.iterate_schedule, count, self.geometric_ratio))

    def train_step(self) -> torch.Tensor:
        """One gradient step on a fresh batch of contexts; returns the detached loss."""
        if self.target == "planted":
            x, y_star = self.problem.sample_planted(self.batch_size, self.generator, self.device)
        else:
            x, y_star = self.problem.sample_contexts(self.batch_size, self.generator, self.device), None
        self.optimizer.zero_grad(set_to_none=True)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        loss = self.estimator.gradient(self.batch_loss(x, y_star), trainable, self.progress / self.total_steps)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.progress += 1
        self.last_loss = loss
        return self.last_loss

    # ------------------------------------------------------------------------- the Learner protocol
    def advance(self, units: int) -> dict[str, torch.Tensor]:
        """``units`` gradient steps, stopping after the first non-finite loss (one host sync per step)."""
        for _ in range(units):
            if not bool(torch.isfinite(self.train_step())):
                break
        return {"loss/train": self.last_loss, "train/lr": torch.tensor(self.lr), **self.estimator.diagnostics()}

    def evaluate(self) -> dict[str, float]:
        """Held-out f(ŷ), and against the reference: objective gap, solution distance, relative gap."""
        self.model.eval()
        with torch.no_grad():
            metrics = gap_metrics(self.problem, self.model(self._reference().contexts), self._reference())
        self.model.train()
        names = {"objective_mean": "objective", "objective_gap_mean": "objective_gap",
                 "solution_distance_mean": "solution_distance", "relative_gap_mean": "relative_gap",
                 "nmse_db": "nmse_db"}
        return {names[key]: value for key, value in metrics.items() if key in names}

    def final_metrics(self) -> dict[str, Any]:
        """Gap metrics and seconds per solution of model and solver (their ratio is ``speedup``).

        A semi-amortized model adds the iterations these metrics used (``model_steps``) and the K it was
        trained with (``model_train_steps``).
        """
        metrics = evaluate_model(self.problem, self.model, self._reference(), self.timing_repeats)
        if is_semi_amortized(self.model):
            metrics.update(model_steps=self.model.inference_steps, model_train_steps=self.model.steps)
        return metrics

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        return {"loss/train": self.last_loss, **parameters_of(self.model), **optimizer_state_of(self.optimizer)}

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model ŷθ in evaluation mode: contexts (B, m) → solutions (B, n)."""
        return self.model.eval()

    def _reference(self) -> ReferenceSet:
        if self.reference is None:
            raise RuntimeError("this learner was built without a held-out reference set (inference only)")
        return self.reference

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: parameters, optimizer, schedule, random streams."""
        state = {
            "step": self.progress,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "context_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the learning rate and weight decay stay the constructor's.

        The schedule continues from the restored step with this learner's length and base rate, so a
        resume that changes ``train.steps`` or ``train.lr`` takes effect in the restored optimizer.
        """
        self.progress = state["step"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.base_lrs = [self.base_lr for _ in self.optimizer.param_groups]
        for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
            group["lr"] = self.base_lr * factor(self.scheduler.last_epoch)
            group["initial_lr"] = self.base_lr
            group["weight_decay"] = self.weight_decay
        self.generator.set_state(state["context_generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def build_direct(config: DirectConfig, device: torch.device, inference: bool = False) -> DirectAmortization:
    """The learner of a validated :class:`DirectConfig` on ``device`` (with its held-out set unless ``inference``)."""
    problem = make_problem(**config.problem)
    model = build_model(config.model, problem).to(device)
    estimator = make_estimator(**config.gradient)
    if is_semi_amortized(model):
        model.estimator = estimator
        model.inference_steps = config.eval.steps or model.steps
    reference = None if inference else ReferenceSet.build(
        problem, config.eval.num_contexts, config.eval.seed, device, config.loss.target
    )
    if reference is not None and config.loss.kind != "objective" and not reference.solved:
        raise ConfigError(
            f"loss.kind={config.loss.kind!r} needs y*, but problem {config.problem['name']!r} has no reference solver"
        )
    return DirectAmortization(
        problem,
        model,
        loss=config.loss.kind,
        regression_weight=config.loss.regression_weight,
        optimizer=config.train.optimizer,
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        lr_schedule=config.train.lr_schedule,
        total_steps=config.train.steps,
        batch_size=config.train.batch_size,
        grad_clip=config.train.grad_clip,
        seed=config.seed,
        device=device,
        reference=reference,
        timing_repeats=config.eval.timing_repeats,
        iterate_weights=config.loss.iterate_weights,
        geometric_ratio=config.loss.geometric_ratio,
        target=config.loss.target,
        estimator=estimator,
    )


register_agent("direct", DirectConfig, build_direct)
