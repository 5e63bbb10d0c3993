"""Exact view of a compiled FRU stored in bundle metadata.

The metadata of a compiled bundle holds the exact terms of ``P``, ``Q`` and
every provenance factor (exponent vectors over ``fru.generators`` and
``"p/q"`` coefficient strings). These helpers read them with
:class:`fractions.Fraction` (never evaluated as code) and evaluate them in
float64 (``|Q|`` for reports) or exactly: :class:`SparsePoly` is the one exact
evaluator, used by ``zpml explain`` and ``zpml run`` (:func:`evaluate_point`),
the validator's exact expectation (:mod:`.expectation`) and the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.metadata import BundleMetadata

Terms = tuple[tuple[tuple[int, ...], Fraction], ...]


@dataclass(frozen=True, slots=True)
class FactorInfo:
    """One denominator provenance factor of a compiled FRU, read from metadata."""

    index: int
    factor: str
    kind: str
    retained: bool
    terms: Terms
    occurrences: tuple[dict[str, Any], ...]
    output_index: int | None  # index of its structural validity outputs (retained factors)


@dataclass(frozen=True, slots=True)
class MetadataFRU:
    """The exact polynomials of a compiled-FRU bundle, parsed from ``metadata["fru"]``."""

    expression: str
    generators: tuple[str, ...]
    numerator: str
    denominator: str
    numerator_terms: Terms
    denominator_terms: Terms
    factors: tuple[FactorInfo, ...]
    variables: tuple[str, ...]
    parameters: dict[str, float]

    def generator_values(self, columns: Sequence[Any]) -> list[Any]:
        """Values of the generators: input ``columns`` (in variable order), then parameters."""
        out = []
        for g in self.generators:
            if g in self.variables:
                out.append(columns[self.variables.index(g)])
            elif g in self.parameters:
                out.append(self.parameters[g])
            else:
                raise BundleError(
                    f"metadata fru.generators names {g!r}, which is neither an input variable "
                    f"{list(self.variables)} nor a parameter {sorted(self.parameters)}"
                )
        return out


def _parse_terms(raw: Any, n_gens: int, where: str) -> Terms:
    if not isinstance(raw, list):
        raise BundleError(f"metadata {where} must be a list of [exponents, 'p/q'] terms")
    out = []
    for k, term in enumerate(raw):
        exps = _exponents(term, n_gens)
        if exps is None:
            raise BundleError(
                f"metadata {where}[{k}] = {term!r:.80} is not [exponents ({n_gens} non-negative "
                "integers), 'p/q' coefficient]"
            )
        try:
            coefficient = Fraction(term[1])
        except (ValueError, ZeroDivisionError) as e:
            raise BundleError(
                f"metadata {where}[{k}] coefficient {term[1]!r:.40} is not an exact rational 'p/q'"
            ) from e
        out.append((exps, coefficient))
    return tuple(out)


def _exponents(term: object, n_gens: int) -> tuple[int, ...] | None:
    """The exponent vector of a ``[exponents, 'p/q']`` term (``None``: malformed)."""
    if not (isinstance(term, list) and len(term) == 2 and isinstance(term[1], str)):
        return None
    exps = term[0]
    if not isinstance(exps, list) or not all(
        isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in exps
    ):
        return None
    if len(exps) == n_gens:
        return tuple(exps)
    # A constant term may carry one zero exponent even with no generators.
    return None if any(exps) else (0,) * n_gens


def read_metadata_fru(metadata: Mapping[str, Any] | BundleMetadata) -> MetadataFRU | None:
    """Parse the exact FRU of a compiled bundle (or expression view); ``None`` for traced bundles.

    Raises :class:`BundleError` when the ``fru`` section is malformed.
    """
    fru: object
    if isinstance(metadata, BundleMetadata):
        fru = metadata.fru
        if not metadata.is_compiled or fru is None:
            return None
        schema: Mapping[str, Any] = metadata.output_schema or {}
        params: Mapping[str, Any] = metadata.parameters
        variables = metadata.input.variables
    else:  # a partial record (e.g. the fru section of an expression being compiled)
        fru = metadata.get("fru")
        if metadata.get("source") != "compiled_fru" or fru is None:
            return None
        schema = metadata.get("structural_validity_output_schema") or {}
        params = metadata.get("parameters") or {}
        variables = tuple(metadata["input"]["variables"])
    raw_gens = fru.get("generators") if isinstance(fru, Mapping) else None
    if not isinstance(fru, Mapping) or not isinstance(raw_gens, list):
        raise BundleError("metadata fru must be an object with a 'generators' list")
    gens = tuple(str(g) for g in raw_gens)
    out_index = {
        o.get("factor"): o.get("index")
        for o in schema.get("outputs", [])
        if isinstance(o, dict) and isinstance(o.get("index"), int)
    }
    factors = []
    for i, entry in enumerate(fru.get("provenance") or []):
        if not isinstance(entry, dict):
            raise BundleError(f"metadata fru.provenance[{i}] must be an object")
        retained = bool(entry.get("retained"))
        factors.append(
            FactorInfo(
                index=i,
                factor=str(entry.get("factor")),
                kind=str(entry.get("kind")),
                retained=retained,
                terms=_parse_terms(
                    entry.get("factor_terms"), len(gens), f"fru.provenance[{i}].factor_terms"
                ),
                occurrences=tuple(o for o in entry.get("occurrences") or [] if isinstance(o, dict)),
                output_index=out_index.get(entry.get("factor")) if retained else None,
            )
        )
    return MetadataFRU(
        expression=str(fru.get("expression", "")),
        generators=gens,
        numerator=str(fru.get("numerator")),
        denominator=str(fru.get("denominator")),
        numerator_terms=_parse_terms(fru.get("numerator_terms"), len(gens), "fru.numerator_terms"),
        denominator_terms=_parse_terms(
            fru.get("denominator_terms"), len(gens), "fru.denominator_terms"
        ),
        factors=tuple(factors),
        variables=tuple(variables),
        parameters={str(k): float(v) for k, v in params.items()},
    )


def _to_float(c: Fraction) -> float:
    try:
        return float(c)
    except OverflowError:
        return float("inf") if c > 0 else float("-inf")


def eval_terms_float(terms: Terms, values: Sequence[Any], n: int) -> np.ndarray:
    """Evaluate a polynomial in float64 at ``n`` points (generator ``values``: arrays or scalars)."""
    out = np.zeros(n, dtype=np.float64)
    with np.errstate(all="ignore"):
        for exps, c in terms:
            t = np.full(n, _to_float(c), dtype=np.float64)
            for v, e in zip(values, exps, strict=True):
                if e:
                    t = t * np.power(np.asarray(v, dtype=np.float64), e)
            out = out + t
    return out


# ----------------------------------------------------------------- the exact evaluator
#
# Every exact evaluation of a metadata polynomial (``zpml explain``, ``zpml run``'s
# bottom reasons, the validator's exact expectation) goes through SparsePoly.value.
# The arithmetic runs on python-flint's ``fmpq`` (C rationals, ~8x faster than
# Fraction here) when it is installed; values leave it as Fraction.

try:
    import flint as _flint

    def to_fast(q: Fraction | int) -> Any:
        """A rational in the evaluator's number type (``flint.fmpq``)."""
        q = Fraction(q)
        return _flint.fmpq(q.numerator, q.denominator)

    def to_fraction(x: Any) -> Fraction:
        """A value of the evaluator's number type as a Fraction."""
        return Fraction(int(x.p), int(x.q))

except ImportError:  # pragma: no cover - python-flint is a dependency

    def to_fast(q: Fraction | int) -> Any:
        """A rational in the evaluator's number type (Fraction without python-flint)."""
        return Fraction(q)

    def to_fraction(x: Any) -> Fraction:
        """A value of the evaluator's number type as a Fraction."""
        return Fraction(x)


def num_den(t: Any) -> tuple[int, int]:
    """Numerator and denominator of a value of the evaluator's number type."""
    return (int(t.p), int(t.q)) if hasattr(t, "p") else (t.numerator, t.denominator)


#: a polynomial as ((coefficient, ((generator index, exponent), ...)), ...), zero exponents dropped
Sparse = tuple[tuple[Fraction, tuple[tuple[int, int], ...]], ...]


def sparse_terms(terms: Terms) -> Sparse:
    """Terms as (coefficient, ((generator, exponent), ...)) with zero exponents dropped."""
    return tuple((c, tuple((i, e) for i, e in enumerate(exps) if e)) for exps, c in terms if c)


@dataclass(frozen=True, slots=True)
class SparsePoly:
    """A polynomial with its coefficients in the evaluator's number type (converted once)."""

    terms: tuple[tuple[Any, tuple[tuple[int, int], ...]], ...]

    @staticmethod
    def of(poly: Sparse) -> SparsePoly:
        """From sparse terms (:func:`sparse_terms`)."""
        return SparsePoly(tuple((to_fast(c), mono) for c, mono in poly))

    @staticmethod
    def dense(terms: Terms) -> SparsePoly:
        """From dense ``(exponents, coefficient)`` terms as the metadata records them."""
        return SparsePoly.of(sparse_terms(terms))

    def uses(self, generators: set[int]) -> bool:
        """True when a term has a positive power of one of ``generators``."""
        return any(i in generators for _, mono in self.terms for i, _ in mono)

    def value(self, gens: Sequence[Any]) -> Any:
        """The exact value at ``gens`` (values in the evaluator's number type)."""
        total = to_fast(0)
        for c, mono in self.terms:
            t = c
            for i, e in mono:
                t *= gens[i] ** e
            total += t
        return total


def eval_terms_exact(terms: Terms, values: Sequence[Fraction]) -> Fraction:
    """Evaluate a polynomial exactly at one point of rational generator ``values``."""
    return to_fraction(SparsePoly.dense(terms).value([to_fast(v) for v in values]))


@dataclass(frozen=True, slots=True)
class ExactPoint:
    """A compiled FRU's polynomials evaluated exactly at one input (``zpml explain``).

    ``nonfinite`` names the generators whose input is NaN or infinite; a polynomial
    that uses one of them has no exact value (``None``: a fault). ``factors`` holds
    each provenance factor's exact value (or ``None``).
    """

    nonfinite: tuple[str, ...]
    numerator: Fraction | None
    denominator: Fraction | None
    factors: tuple[Fraction | None, ...]

    @property
    def bottomed(self) -> tuple[int, ...]:
        """Indices of the factors that are exactly 0 or have no exact value."""
        return tuple(i for i, v in enumerate(self.factors) if v is None or v == 0)

    @property
    def fault(self) -> bool:
        """``P``, ``Q`` or a bottomed factor uses a non-finite input (docs/semantics.md §3)."""
        return (
            self.numerator is None
            or self.denominator is None
            or any(self.factors[i] is None for i in self.bottomed)
        )

    @property
    def bottom(self) -> bool:
        """The exact strict verdict: a fault, a factor exactly 0, or ``Q == 0``."""
        return bool(self.fault or self.bottomed or self.denominator == 0)

    @property
    def decoded(self) -> Fraction | None:
        """``P/Q`` where the value is defined (``None`` where bottom)."""
        if self.bottom or self.numerator is None or not self.denominator:
            return None
        return self.numerator / self.denominator


def evaluate_point(fru: MetadataFRU, point: Sequence[Fraction | float]) -> ExactPoint:
    """Evaluate ``P``, ``Q`` and every provenance factor of ``fru`` exactly at ``point``
    (input values in variable order; parameters at their exact binary value)."""
    gens = fru.generator_values(point)
    bad = {i for i, v in enumerate(gens) if not isinstance(v, Fraction) and not math.isfinite(v)}
    exact = [to_fast(Fraction(v)) if i not in bad else to_fast(0) for i, v in enumerate(gens)]

    def value(terms: Terms) -> Fraction | None:
        poly = SparsePoly.dense(terms)
        return None if poly.uses(bad) else to_fraction(poly.value(exact))

    return ExactPoint(
        tuple(fru.generators[i] for i in sorted(bad)),
        value(fru.numerator_terms),
        value(fru.denominator_terms),
        tuple(value(f.terms) for f in fru.factors),
    )


__all__ = [
    "ExactPoint",
    "FactorInfo",
    "MetadataFRU",
    "Sparse",
    "SparsePoly",
    "Terms",
    "eval_terms_exact",
    "eval_terms_float",
    "evaluate_point",
    "num_den",
    "read_metadata_fru",
    "sparse_terms",
    "to_fast",
    "to_fraction",
]
