"""Resource budgets for exact flattening.

Exact arithmetic can blow up (``(x+1)`` squared forty times has degree 2**40).
Every polynomial product is checked *before* it is computed against the
degree, term-count and work budgets, and the clock is checked between
operations, so a bomb is refused quickly with a :class:`BudgetExceededError`
that gives the numbers, instead of exhausting memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from zpml_symbolic.errors import BudgetExceededError, InvalidArgumentError


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one :func:`~zpml_symbolic.flatten` call.

    ``max_degree``: total degree of any intermediate numerator or denominator.
    ``max_terms``: number of terms of any intermediate polynomial.
    ``max_work``: total coefficient multiplications (sum over products of
    ``terms(a) * terms(b)``; 5e6 is a few seconds of pure-Python arithmetic). ``max_seconds``: wall-clock time.

    The defaults accept realistic models (a sum of 64 simple poles, a 64-deep
    continued fraction, a [10/10] Padé approximant with parameter
    coefficients) and refuse degree or term explosions in milliseconds.
    """

    max_degree: int = 512
    max_terms: int = 200_000
    max_work: int = 5_000_000
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_degree", "max_terms", "max_work"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"Budget.{name} must be a positive int, got {value!r}")
        if isinstance(self.max_seconds, bool) or not (
            isinstance(self.max_seconds, int | float) and self.max_seconds > 0
        ):
            raise InvalidArgumentError(f"Budget.max_seconds must be > 0, got {self.max_seconds!r}")


class BudgetMeter:
    """Tracks the spending of one flatten call against a :class:`Budget`."""

    __slots__ = ("budget", "work", "_deadline", "_start", "context")

    context: Callable[[], str] | None

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.work = 0
        self._start = time.monotonic()
        self._deadline = self._start + budget.max_seconds
        self.context = None

    def _refuse(self, name: str, limit: float, requested: float, what: str) -> BudgetExceededError:
        where = f" at {self.context()!r}" if self.context is not None else ""
        return BudgetExceededError(
            f"flattening refused{where}: {what} needs {name}={requested:g} but the budget is "
            f"{limit:g}; raise it with flatten(..., budget=Budget({name}=...)) if this is intended",
            budget=name,
            limit=limit,
            requested=requested,
        )

    def check_time(self) -> None:
        """Refuse if the time budget is spent."""
        now = time.monotonic()
        if now > self._deadline:
            raise self._refuse(
                "max_seconds", self.budget.max_seconds, now - self._start, "the work"
            )

    def check_product(self, deg_a: int, deg_b: int, terms_a: int, terms_b: int, ngens: int) -> None:
        """Check a product of polynomials of the given sizes before computing it."""
        degree = deg_a + deg_b
        if degree > self.budget.max_degree:
            raise self._refuse("max_degree", self.budget.max_degree, degree, "a product")
        cost = terms_a * terms_b
        dense = dense_term_bound(degree, ngens)
        bound = min(cost, dense)
        if bound > self.budget.max_terms:
            raise self._refuse(
                "max_terms", self.budget.max_terms, bound, "a product (upper bound on its terms)"
            )
        self.work += cost
        if self.work > self.budget.max_work:
            raise self._refuse("max_work", self.budget.max_work, self.work, "the total work so far")
        self.check_time()

    def check_power(self, degree: int, exponent: int) -> None:
        """Check ``p**exponent`` for ``p`` of total degree ``degree``."""
        total = degree * abs(exponent)
        if total > self.budget.max_degree:
            raise self._refuse("max_degree", self.budget.max_degree, total, "a power")

    def check_terms(self, terms: int) -> None:
        """Check the size of a computed polynomial."""
        if terms > self.budget.max_terms:
            raise self._refuse("max_terms", self.budget.max_terms, terms, "a polynomial")


def dense_term_bound(degree: int, ngens: int) -> int:
    """Number of monomials of total degree <= ``degree`` in ``ngens`` variables."""
    if ngens == 0:
        return 1
    return math.comb(degree + ngens, ngens)


__all__ = ["Budget", "BudgetMeter", "dense_term_bound"]
