"""FlattenedFRU: the result of flattening, with exact guarded evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.rings import PolyElement

from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.numeric_ir import ZERO
from zpml_symbolic.flatten.provenance import DenominatorSource, SourceOccurrence
from zpml_symbolic.flatten.records import (
    Explanation,
    FactorRecord,
    FRUDegrees,
    StructuralValidityFailure,
)
from zpml_symbolic.flatten.schema import (
    StructuralValidityOutput,
    StructuralValidityOutputSchema,
    check_prefix,
)
from zpml_symbolic.flatten.text import expr_text
from zpml_symbolic.flatten.values import BOTTOM, _Bottom, to_fraction
from zpml_symbolic.ir.node import Node
from zpml_symbolic.ir.printer import int_digits

if TYPE_CHECKING:
    from zpml_symbolic.flatten.algebra import PolyContext


class FlattenedFRU:
    """One rational expression flattened to ``P/Q`` with its validity factors.

    ``variables`` are the inputs (column order of emitted modules),
    ``parameters`` the learnable coefficients; polynomials are in
    ``variables + parameters`` with exact rational coefficients. ``P`` and
    ``Q`` are coprime; ``Q`` has integer coefficients with content 1 and a
    positive leading coefficient in lex order over ``variables +
    parameters`` (the canonical gauge). Strict value: bottom iff ``Q == 0``
    or some validity factor is zero, else ``P/Q``.
    """

    def __init__(
        self,
        *,
        expression: sp.Expr,
        root: Node,
        variables: tuple[sp.Symbol, ...],
        parameters: tuple[sp.Symbol, ...],
        mode: str,
        context: PolyContext,
        numerator_poly: PolyElement,
        numerator_ir: Node,
        denominator_ir: Node,
        denominator_factors: dict[PolyElement, int],
        records: list[FactorRecord],
        node_ids: dict[Node, int],
        denominator_poly: PolyElement | None = None,
    ) -> None:
        self.expression = expression
        self.root = root
        self.variables = variables
        self.parameters = parameters
        self.mode = mode
        self._ctx = context
        self._P = numerator_poly
        self._P_ir = numerator_ir
        self._Q_ir = denominator_ir
        self._Q_factors = tuple(
            sorted(denominator_factors.items(), key=lambda kv: _poly_key(kv[0]))
        )
        self._node_ids = node_ids
        if denominator_poly is not None:
            self.__dict__["denominator_poly_ring"] = denominator_poly
        self._sources = self._merge(records)

    # ----------------------------------------------------------------- structure
    def _merge(
        self, records: list[FactorRecord]
    ) -> tuple[tuple[DenominatorSource, PolyElement], ...]:
        grouped: dict[PolyElement, list[SourceOccurrence]] = {}
        for rec in records:
            grouped.setdefault(rec.factor, []).append(rec.occurrence)
        in_q = {f for f, _ in self._Q_factors}
        out = []
        for factor, occs in grouped.items():
            first = occs[0]
            retained = self.mode == "scm_strict" and factor not in in_q
            src = DenominatorSource(
                kind=first.kind,
                factor=partial(self._expr, factor),
                source=first.source,
                path=first.path,
                node_id=first.node_id,
                occurrences=tuple(occs),
                retained=retained,
            )
            out.append((src, factor))
        return tuple(out)

    @property
    def generators(self) -> tuple[sp.Symbol, ...]:
        """``variables + parameters``: the generators of every polynomial here."""
        return self.variables + self.parameters

    def _expr(self, p: PolyElement) -> sp.Expr:
        if not self.generators:
            return sp.Rational(p.LC) if p else sp.Integer(0)
        return p.as_expr(*self.generators)

    @cached_property
    def numerator(self) -> sp.Expr:
        """``P`` as an expanded sympy polynomial expression."""
        return self._expr(self._P)

    @cached_property
    def denominator(self) -> sp.Expr:
        """``Q`` as an expanded sympy polynomial expression (canonical gauge)."""
        return self._expr(self.denominator_poly_ring)

    @cached_property
    def denominator_poly_ring(self) -> PolyElement:
        """``Q`` as a sympy ring element (internal, for emitters)."""
        return self._ctx.product(dict(self._Q_factors))

    @property
    def numerator_poly_ring(self) -> PolyElement:
        """``P`` as a sympy ring element (internal, for emitters)."""
        return self._P

    @property
    def numerator_ir(self) -> Node:
        """Division-free IR of ``P`` in structural form (exactly ``P``; what emitters evaluate)."""
        return self._P_ir

    @property
    def denominator_ir(self) -> Node:
        """Division-free IR of ``Q`` as a structural product of its factors (exactly ``Q``)."""
        return self._Q_ir

    @property
    def denominator_factor_irs(self) -> tuple[tuple[Node, int], ...]:
        """Horner IR of each factor of ``Q`` with its multiplicity."""
        return tuple((self._ctx.factor_ir(f), m) for f, m in self._Q_factors)

    @property
    def validity_factor_irs(self) -> tuple[Node, ...]:
        """Horner IR of each retained validity factor ``V_i``."""
        return tuple(self._ctx.factor_ir(p) if p else ZERO for p in self.validity_factor_polys)

    @property
    def provenance_factor_irs(self) -> tuple[Node, ...]:
        """Horner IR of the factor of each :attr:`denominator_provenance` entry."""
        return tuple(self._ctx.factor_ir(p) if p else ZERO for _, p in self._sources)

    @property
    def denominator_factors(self) -> tuple[tuple[sp.Expr, int], ...]:
        """``Q`` as irreducible factors with multiplicities (``Q = prod(f**m)``)."""
        return tuple((self._expr(f), m) for f, m in self._Q_factors)

    @property
    def denominator_factor_polys(self) -> tuple[tuple[PolyElement, int], ...]:
        """Ring elements of :attr:`denominator_factors` (internal, for emitters)."""
        return self._Q_factors

    @property
    def denominator_provenance(self) -> tuple[DenominatorSource, ...]:
        """Every factor met at a division, merged by factor, in discovery order."""
        return tuple(s for s, _ in self._sources)

    @property
    def strict_validity_sources(self) -> tuple[DenominatorSource, ...]:
        """The provenance entries whose zeros ``Q`` does not already enforce."""
        return tuple(s for s, _ in self._sources if s.retained)

    @property
    def validity_factors(self) -> tuple[sp.Expr, ...]:
        """The factors of :attr:`strict_validity_sources` (``V_i``)."""
        return tuple(s.factor for s in self.strict_validity_sources)

    @property
    def validity_factor_polys(self) -> tuple[PolyElement, ...]:
        """Ring elements of :attr:`validity_factors` (internal, for emitters)."""
        return tuple(p for s, p in self._sources if s.retained)

    @property
    def always_bottom(self) -> bool:
        """True if some division is by an identically zero polynomial."""
        return any(not p for _, p in self._sources)

    @cached_property
    def degrees(self) -> FRUDegrees:
        """Total and per-variable degrees of ``P``, ``Q`` and each ``V_i`` in the inputs."""
        nv = len(self.variables)

        def deg(p: PolyElement, idx: Sequence[int]) -> int:
            return max((sum(m[i] for i in idx) for m in p.itermonoms()), default=0) if p else 0

        allv = range(nv)
        q = self.denominator_poly_ring
        return FRUDegrees(
            numerator=deg(self._P, allv),
            denominator=deg(q, allv),
            validity_factors=tuple(deg(p, allv) for p in self.validity_factor_polys),
            per_variable={
                s.name: (deg(self._P, [i]), deg(q, [i])) for i, s in enumerate(self.variables)
            },
        )

    # ---------------------------------------------------------------- evaluation
    def _point(
        self, values: Mapping[Any, object], unknown: str = "ignore"
    ) -> list[Fraction | float]:
        if unknown not in ("ignore", "error"):
            raise InvalidArgumentError(f"unknown must be 'ignore' or 'error', got {unknown!r}")
        by_name: dict[str, object] = {}
        for key, val in values.items():
            name = key.name if isinstance(key, sp.Symbol) else key
            if not isinstance(name, str):
                raise InvalidArgumentError(f"value keys must be Symbols or names, got {key!r}")
            by_name[name] = val
        names = [s.name for s in self.generators]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InvalidArgumentError(f"no value given for {missing} (needs {names})")
        extra = sorted(set(by_name) - set(names))
        if extra and unknown == "error":
            raise InvalidArgumentError(f"values given for unknown symbols {extra} (knows {names})")
        return [to_fraction(by_name[n], name=n) for n in names]

    def _eval(self, p: PolyElement, point: list[Fraction | float]) -> Fraction | float:
        """Exact value of ``p``; NaN if ``p`` depends on a non-finite input."""
        if any(isinstance(v, float) for v in point):
            degs = p.degrees() if self.generators else ()
            if any(isinstance(v, float) and d > 0 for v, d in zip(point, degs, strict=False)):
                return math.nan
            point = [Fraction(0) if isinstance(v, float) else v for v in point]
        if not self.generators:
            return Fraction(int(p.LC.numerator), int(p.LC.denominator)) if p else Fraction(0)
        res = p(*[QQ(v.numerator, v.denominator) for v in point])  # type: ignore[union-attr]
        return Fraction(int(res.numerator), int(res.denominator))

    def evaluate(
        self, values: Mapping[Any, object], *, unknown: str = "ignore"
    ) -> sp.Rational | _Bottom:
        """Exact guarded strict value at a point: a sympy Rational or ``BOTTOM``.

        ``values`` maps every variable and parameter (Symbol or name) to a
        number; floats are taken exactly. A non-finite input gives ``BOTTOM``
        when ``P``, ``Q`` or a validity factor depends on it (a fault).
        Keys for symbols the expression does not have are ignored, so one dict
        of all inputs serves several expressions; ``unknown="error"`` refuses
        them instead (catches a misspelt name).
        """
        point = self._point(values, unknown)
        q = self._eval(self.denominator_poly_ring, point)
        vs = [self._eval(p, point) for p in self.validity_factor_polys]
        p_value = self._eval(self._P, point)
        if _nan(q) or _nan(p_value) or any(_nan(v) for v in vs):
            return BOTTOM
        if q == 0 or any(v == 0 for v in vs):
            return BOTTOM
        value = Fraction(p_value) / Fraction(q)
        return sp.Rational(value.numerator, value.denominator)

    def explain(self, values: Mapping[Any, object], *, unknown: str = "ignore") -> Explanation:
        """Which divisions of the user's tree are bottom at this point, for people.

        Lists every provenance entry (retained or already enforced by ``Q``)
        whose factor vanishes; ``str()`` of the result is a readable report.
        ``unknown``: as for :meth:`evaluate`.
        """
        point = self._point(values, unknown)
        value = self.evaluate(values, unknown=unknown)
        causes = tuple(
            s for s, p in self._sources if self._eval(p, point) == 0 or _nan(self._eval(p, point))
        )
        q = self._eval(self.denominator_poly_ring, point)
        shown = {
            s.name: _fraction_text(v.numerator, v.denominator)
            if isinstance(v, Fraction)
            else str(v)
            for s, v in zip(self.generators, point, strict=True)
        }
        return Explanation(
            point=shown, value=value, causes=causes, denominator_zero=(q == 0 or _nan(q))
        )

    def structural_validity_failures(
        self, values: Mapping[Any, object], *, taus: float | Sequence[float] = 0.0
    ) -> tuple[StructuralValidityFailure, ...]:
        """Retained validity factors that fail at a point, split as in docs/semantics.md §3.

        A factor is a fault when its value is not finite (a non-finite input
        it depends on), and a semantic bottom when finite and ``V_i == 0`` or
        ``|V_i| < tau_i``. ``taus`` is one threshold or one per factor.
        """
        sources = self.strict_validity_sources
        tau_list = _taus(taus, len(sources))
        point = self._point(values)
        out = []
        for i, (src, poly, tau) in enumerate(
            zip(sources, self.validity_factor_polys, tau_list, strict=True)
        ):
            v = self._eval(poly, point)
            fault = _nan(v)
            semantic = not fault and (v == 0 or abs(Fraction(v)) < Fraction(tau))
            if fault or semantic:
                out.append(StructuralValidityFailure(i, src, v, fault, semantic))
        return tuple(out)

    # -------------------------------------------------------------------- schema
    def structural_validity_output_schema(
        self, *, prefix: str = "structural_validity_factor"
    ) -> StructuralValidityOutputSchema:
        """Output names ``{prefix}_{i}_value/_fault_mask/_semantic_bottom_mask`` per retained factor."""
        prefix = check_prefix(prefix)
        outs = []
        for i, (src, poly) in enumerate(
            zip(self.strict_validity_sources, self.validity_factor_polys, strict=True)
        ):
            outs.append(
                StructuralValidityOutput(
                    index=i,
                    kind=src.kind,
                    kinds=src.kinds,
                    factor=expr_text(src.factor),
                    factor_terms=poly_terms(poly, len(self.generators)),
                    source=src.source,
                    path=src.path,
                    sources=src.sources,
                    value_name=f"{prefix}_{i}_value",
                    fault_mask_name=f"{prefix}_{i}_fault_mask",
                    semantic_bottom_mask_name=f"{prefix}_{i}_semantic_bottom_mask",
                )
            )
        return StructuralValidityOutputSchema(
            prefix=prefix,
            outputs=tuple(outs),
            variables=tuple(s.name for s in self.variables),
            parameters=tuple(s.name for s in self.parameters),
        )

    def provenance_metadata(self) -> list[dict[str, Any]]:
        """JSON-ready :attr:`denominator_provenance` with exact factor terms over :attr:`generators`."""
        return [
            {
                "factor": expr_text(src.factor),
                "factor_terms": [[list(m), c] for m, c in poly_terms(poly, len(self.generators))]
                if poly
                else [],
                "kind": src.kind,
                "kinds": list(src.kinds),
                "retained": src.retained,
                "occurrences": [
                    {
                        "kind": o.kind,
                        "source": o.source,
                        "path": o.path,
                        "node_id": o.node_id,
                        "divisor": o.divisor,
                    }
                    for o in src.occurrences
                ],
            }
            for src, poly in self._sources
        ]

    def provenance_table(self) -> str:
        """A Markdown table of :attr:`denominator_provenance` for people."""
        rows = ["| # | factor | kind | retained | source | path |", "|---|---|---|---|---|---|"]
        for i, s in enumerate(self.denominator_provenance):
            for j, o in enumerate(s.occurrences):
                head = f"| {i} | `{s.factor}` | " if j == 0 else "| | | "
                rows.append(
                    f"{head}{o.kind} | {'yes' if s.retained else 'no (in Q)'} | `{o.source}` | {o.path} |"
                )
        return "\n".join(rows)

    def __repr__(self) -> str:
        def t(e: object) -> str:
            return expr_text(e, abbreviate=True)

        vs = ", ".join(t(v) for v in self.validity_factors)
        return (
            f"FlattenedFRU(P={t(self.numerator)}, Q={t(self.denominator)}, "
            f"validity_factors=[{vs}], variables={list(self.variables)})"
        )


def poly_terms(p: PolyElement, ngens: int | None = None) -> tuple[tuple[tuple[int, ...], str], ...]:
    """Exact terms ``(exponents, "p/q")`` of a ring element, in ring order.

    ``ngens`` truncates exponent vectors to the real generators (a ring for an
    expression without symbols has one placeholder generator).
    """
    return tuple(
        (tuple(int(e) for e in m)[:ngens], _fraction_text(int(c.numerator), int(c.denominator)))
        for m, c in p.terms()
    )


def _fraction_text(num: int, den: int) -> str:
    """``str(Fraction(num, den))`` without Python's int-to-str digit limit."""
    return int_digits(num) if den == 1 else f"{int_digits(num)}/{int_digits(den)}"


def _poly_key(p: PolyElement) -> tuple[object, ...]:
    return tuple((tuple(m), Fraction(int(c.numerator), int(c.denominator))) for m, c in p.terms())


def _nan(v: object) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _taus(taus: float | Sequence[float], n: int) -> list[float]:
    items = [taus] * n if isinstance(taus, int | float) else list(taus)
    if len(items) != n:
        raise InvalidArgumentError(
            f"taus has {len(items)} entries but there are {n} validity factors"
        )
    for t in items:
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise InvalidArgumentError(f"each tau must be a finite number >= 0, got {t!r}")
    return [float(t) for t in items]


__all__ = [
    "Explanation",
    "FRUDegrees",
    "FactorRecord",
    "FlattenedFRU",
    "StructuralValidityFailure",
    "poly_terms",
]
