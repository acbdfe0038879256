"""The problem protocol: a family of parametric optimization problems (Definition 1).

A family fixes the objective f(y; x), the domain Y ⊆ R^n (its ``solution_dim``), the context
space X ⊆ R^m (its ``context_dim``) and the context distribution p(x). Everything is batched:
contexts are ``(B, context_dim)`` tensors, solutions ``(B, solution_dim)`` tensors, and the
objective returns one value per problem, ``(B,)``.

A new family needs nothing but a subclass that implements :meth:`Problem.sample_contexts` and
:meth:`Problem.objective` (and, where it can, :meth:`Problem.solve`); see README.md. A family whose
context is a data set also sets :attr:`Problem.data_set_layout` (a :class:`DataSetLayout`), so that
permutation-invariant models (``model.kind: set``) can read the samples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Lt

ProblemSeed = Annotated[int, Ge(0), Lt(2**63)]
"""A family's own seed (of data drawn once, e.g. a dictionary): non-negative, below 2⁶³ as torch's generators need."""


@dataclass(frozen=True)
class DataSetLayout:
    """Where a flat context ``(B, context_dim)`` keeps a data set of ``num_samples`` samples.

    The context is read as blocks, one after another: one block per per-sample field, each holding
    that field for sample 1, then sample 2, ... (``num_samples × width`` columns, sample-major), and
    then ``global_dim`` columns that belong to the whole set (e.g. a regularisation weight that
    varies with the context). A sample is the concatenation of its fields, ``sample_width`` numbers.

    Examples: ``logistic_regression`` stores the rows of Φ ∈ R^{m×d} and then the m labels, so its
    layout is ``DataSetLayout(num_samples=m, fields=(d, 1))``; a family storing the pairs
    (a_1, b_1, a_2, b_2, ...) interleaved has one field, ``DataSetLayout(m, fields=(d + 1,))``.

    Args:
        num_samples: the set's size N.
        fields: the widths of the per-sample fields, in the order of their blocks.
        global_dim: trailing columns that are not per-sample (0 when there are none).
    """

    num_samples: int
    fields: tuple[int, ...]
    global_dim: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or not self.fields or min(self.fields) < 1 or self.global_dim < 0:
            raise ValueError(f"DataSetLayout needs num_samples >= 1 and positive field widths, got {self}")

    @property
    def sample_width(self) -> int:
        """Numbers per sample: the sum of the field widths."""
        return sum(self.fields)

    @property
    def context_dim(self) -> int:
        """The size of the flat context this layout describes."""
        return self.num_samples * self.sample_width + self.global_dim

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``(B, num_samples, sample_width)`` and the global part ``(B, global_dim)`` of contexts ``x``."""
        if x.shape[-1] != self.context_dim:
            raise ValueError(f"contexts of width {x.shape[-1]} do not match the layout's context_dim "
                             f"{self.context_dim}")
        blocks, start = [], 0
        for width in self.fields:
            stop = start + self.num_samples * width
            blocks.append(x[:, start:stop].reshape(-1, self.num_samples, width))
            start = stop
        return torch.cat(blocks, dim=-1), x[:, start:]


class Problem(ABC):
    """A family of problems argmin_y f(y; x) over contexts x ~ p(x).

    Attributes:
        context_dim: size m of a context vector x.
        solution_dim: size n of a solution vector y.
        bounds: ``(low, high)`` of a box domain Y, or ``None`` when Y = R^n. Models use it to
            pick a differentiable projection (Definition 4) onto Y.
        solver_tolerance: the tolerance the reference solver :meth:`solve` is run to, in the
            family's own measure (stated in each family's docstring).
        data_set_layout: for a family whose context is a data set, where the samples sit in it
            (:class:`DataSetLayout`); ``None`` (the default) when the context is not a data set.
            Permutation-invariant models (``model.kind: set``) need it.
    """

    context_dim: int
    solution_dim: int
    bounds: tuple[float, float] | None = None
    solver_tolerance: float | None = None
    data_set_layout: DataSetLayout | None = None

    @abstractmethod
    def sample_contexts(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Draw ``batch_size`` contexts x ~ p(x) as a ``(batch_size, context_dim)`` tensor.

        All randomness comes from ``generator``, so a seeded generator gives the same contexts.
        The generator's device decides where the draws happen; the result is on ``device``.
        """

    @abstractmethod
    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """f(y; x) for a batch: ``y`` is ``(B, solution_dim)``, ``x`` is ``(B, context_dim)``.

        Returns a ``(B,)`` tensor, differentiable in ``y`` (and in ``x`` where it makes sense).
        """

    def sample_planted(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts x ~ p(x) and the solutions planted in them, ``(B, context_dim)`` and ``(B, solution_dim)``.

        For a family whose sampler builds each context from a known answer (the sparse code behind a
        lasso signal), this returns that answer next to the context, drawing exactly what
        :meth:`sample_contexts` draws. A planted solution is a *target*: the regression loss (eq. 2.9)
        and the held-out reference use it instead of :meth:`solve` under ``loss.target: planted``;
        models never see it. It need not minimise f (the lasso's λ biases y* away from the code).
        Families that plant nothing raise ``NotImplementedError`` (see :func:`has_planted_solutions`).
        """
        raise NotImplementedError(f"{type(self).__name__} plants no solutions in its contexts")

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        """The reference solution y*(x) for a batch of contexts, ``(B, solution_dim)``.

        Exact where the family has a closed form, an iterative solver run to
        ``solver_tolerance`` otherwise. Families without a solver raise ``NotImplementedError``;
        the objective loss (eq. 2.10) still trains on them, the regression loss (eq. 2.9) does not.
        """
        raise NotImplementedError(f"{type(self).__name__} has no reference solver")

    @classmethod
    def memory_bytes(cls, **kwargs) -> dict[str, int]:
        """Bytes that building the family with ``kwargs`` allocates, by the constructor argument that drives them.

        Checked against the free memory before the family is built (so an impossible size is one sentence,
        not a crash); families that allocate next to nothing keep the default, ``{}``.
        """
        return {}

    def gradient(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """∇_y f(y; x) for a batch, ``(B, solution_dim)``, computed with torch.func."""
        grad_sum = torch.func.grad(lambda yy: self.objective(yy, x).sum())
        return grad_sum(y)


def has_planted_solutions(problem: Problem) -> bool:
    """Whether ``problem`` overrides :meth:`Problem.sample_planted` (its contexts come with planted solutions)."""
    return type(problem).sample_planted is not Problem.sample_planted


class ProblemArgumentError(ValueError):
    """An impossible constructor argument of a family, e.g. a non-positive dimension.

    ``argument`` names the constructor argument (config key ``problem.<argument>``) and
    ``expected`` says in a few words what it must be.
    """

    def __init__(self, argument: str, expected: str, value: object):
        self.argument, self.expected, self.value = argument, expected, value
        super().__init__(f"{argument} must be {expected}, got {value!r}")


def require(condition: bool, argument: str, expected: str, value: object) -> None:
    """Raise :class:`ProblemArgumentError` unless ``condition`` holds (constructor checks)."""
    if not condition:
        raise ProblemArgumentError(argument, expected, value)
