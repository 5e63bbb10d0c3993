"""Resource budgets for exact flattening.

Exact arithmetic can blow up (``(x+1)`` squared forty times has degree 2**40;
``2**9999999999999`` has ten trillion bits). Every polynomial product and
every power is checked *before* it is computed against the degree, term,
coefficient-size and work budgets, and the clock is checked between and
inside long operations, so a bomb is refused quickly with a
:class:`BudgetExceededError` that gives the numbers, names the subexpression
and says how to raise the budget, instead of exhausting memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from zpml_symbolic.errors import BudgetExceededError, InvalidArgumentError

#: ``zpml`` command-line flag that raises each budget (the CLI maps them to :class:`Budget`).
CLI_FLAGS: dict[str, str] = {
    "max_degree": "--max-degree",
    "max_terms": "--max-terms",
    "max_work": "--max-work",
    "max_seconds": "--max-seconds",
    "max_coefficient_bits": "--max-coefficient-bits",
}

#: Coefficient size (bits of both operands together) at which one coefficient
#: product costs about twice a small one (flint's rationals normalise with a gcd).
WORK_BITS = 2048
#: Growth exponent of the cost of one coefficient product with its size.
WORK_BITS_EXPONENT = 1.35
#: How often (in loop iterations) long pure-Python loops look at the clock.
CLOCK_STRIDE = 4096
#: Generators per extra work unit of one term of a polynomial product: sympy adds the
#: exponent tuples of the two monomials element by element in Python (about 50 ns
#: per generator) and hashes the result, so a product in 1200 generators costs about
#: 75 times one in a few.
WIDTH_GENS = 16


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one :func:`~zpml_symbolic.flatten` call.

    ``max_degree``: total degree of any intermediate numerator or denominator.
    ``max_terms``: number of terms of any intermediate polynomial.
    ``max_work``: total work, in coefficient multiplications of small numbers
    (a product of polynomials costs ``terms(a) * terms(b)``, more for big
    coefficients and for monomials in many generators; factoring, Horner forms
    and the front end are charged per term or node; 5e6 is a few seconds of
    pure-Python arithmetic).
    ``max_seconds``: wall-clock time.
    ``max_coefficient_bits``: bits of any exact coefficient (numerator or
    denominator), checked before constant powers such as ``2**100000`` are
    computed.

    The defaults accept realistic models (a sum of 64 simple poles, a 64-deep
    continued fraction, a [10/10] Padé approximant with parameter
    coefficients, ``x*2**100000``) and refuse degree, term or coefficient
    explosions in milliseconds.
    """

    max_degree: int = 512
    max_terms: int = 200_000
    max_work: int = 5_000_000
    max_seconds: float = 60.0
    max_coefficient_bits: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_degree", "max_terms", "max_work", "max_coefficient_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"Budget.{name} must be a positive int, got {value!r}")
        if isinstance(self.max_seconds, bool) or not (
            isinstance(self.max_seconds, int | float) and self.max_seconds > 0
        ):
            raise InvalidArgumentError(f"Budget.max_seconds must be > 0, got {self.max_seconds!r}")


def work_weight(bits: int) -> int:
    """Cost of one coefficient product whose operands have ``bits`` bits together."""
    if bits <= WORK_BITS // 2:
        return 1
    return 1 + math.ceil((bits / WORK_BITS) ** WORK_BITS_EXPONENT)


def width_weight(ngens: int) -> int:
    """Cost of one term product of monomials in ``ngens`` generators, in small-product units."""
    return 1 + max(0, ngens) // WIDTH_GENS


def power_bits(base_bits: float, exponent: int) -> int:
    """Bits of ``c**exponent`` for ``|c|`` with ``log2(|c|) == base_bits`` (numerator or denominator)."""
    return int(base_bits * abs(exponent)) + 1


def log2_abs(value: int) -> float:
    """``log2(|value|)`` for any int (0 for 0 and +-1)."""
    value = abs(int(value))
    return math.log2(value) if value > 1 else 0.0


class BudgetMeter:
    """Tracks the spending of one flatten call against a :class:`Budget`."""

    __slots__ = ("budget", "work", "_deadline", "_start", "context", "_ticks")

    context: Callable[[], str] | None

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.work = 0
        self._start = time.monotonic()
        self._deadline = self._start + budget.max_seconds
        self.context = None
        self._ticks = 0

    def _refuse(self, name: str, limit: float, requested: float, what: str) -> BudgetExceededError:
        where = f" at {self.context()!r}" if self.context is not None else ""
        return BudgetExceededError(
            f"flattening refused{where}: {what} needs {name}={_number(requested)} but the budget "
            f"is {_number(limit)}; raise it with flatten(..., budget=Budget({name}=...)) or the CLI flag "
            f"{CLI_FLAGS[name]} if this is intended",
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

    def tick(self) -> None:
        """Count one step of a long loop; look at the clock every :data:`CLOCK_STRIDE` steps."""
        self._ticks += 1
        if self._ticks >= CLOCK_STRIDE:
            self._ticks = 0
            self.check_time()

    def charge(self, cost: int, what: str) -> None:
        """Add ``cost`` to the work done; refuse when the total exceeds ``max_work``."""
        self.work += cost
        if self.work > self.budget.max_work:
            raise self._refuse("max_work", self.budget.max_work, self.work, what)
        self.check_time()

    def check_bits(self, bits: int, what: str) -> None:
        """Refuse a coefficient of ``bits`` bits beyond ``max_coefficient_bits``."""
        if bits > self.budget.max_coefficient_bits:
            raise self._refuse("max_coefficient_bits", self.budget.max_coefficient_bits, bits, what)

    def check_product(
        self,
        deg_a: int,
        deg_b: int,
        terms_a: int,
        terms_b: int,
        ngens: int,
        bits_a: int = 0,
        bits_b: int = 0,
    ) -> None:
        """Check a product of polynomials of the given sizes before computing it.

        ``bits_a`` and ``bits_b`` are the largest coefficient sizes of the operands.
        """
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
        bits = bits_a + bits_b
        if bits:
            self.check_bits(
                bits + max(0, min(terms_a, terms_b) - 1).bit_length(),
                "a product (upper bound on its coefficients)",
            )
        self.charge(cost * work_weight(bits) * width_weight(ngens), "the total work so far")

    def check_degree(self, degree: int, what: str) -> None:
        """Refuse an intermediate numerator or denominator of total degree ``degree``
        beyond ``max_degree`` (``what`` names it)."""
        if degree > self.budget.max_degree:
            raise self._refuse("max_degree", self.budget.max_degree, degree, what)

    def check_power(self, degree: int, exponent: int) -> None:
        """Check ``p**exponent`` for ``p`` of total degree ``degree``."""
        total = degree * abs(exponent)
        if total > self.budget.max_degree:
            raise self._refuse("max_degree", self.budget.max_degree, total, "a power")

    def check_constant_power(self, num: int, den: int, exponent: int) -> None:
        """Check ``(num/den)**exponent`` before computing it (``max_coefficient_bits``)."""
        bits = power_bits(max(log2_abs(num), log2_abs(den)), exponent)
        if bits > 1:
            self.check_bits(bits, "a constant power")
            self.charge(work_weight(bits), "the total work so far")

    def check_terms(self, terms: int) -> None:
        """Check the size of a computed polynomial."""
        if terms > self.budget.max_terms:
            raise self._refuse("max_terms", self.budget.max_terms, terms, "a polynomial")


def _number(value: float) -> str:
    """An int in full (up to 16 digits), anything else in ``%g`` form."""
    if isinstance(value, int) and abs(value) < 10**16:
        return str(value)
    return f"{value:g}"


def dense_term_bound(degree: int, ngens: int) -> int:
    """Number of monomials of total degree <= ``degree`` in ``ngens`` variables."""
    if ngens == 0:
        return 1
    return math.comb(degree + ngens, ngens)


__all__ = [
    "CLI_FLAGS",
    "Budget",
    "BudgetMeter",
    "dense_term_bound",
    "log2_abs",
    "power_bits",
    "width_weight",
    "work_weight",
]
