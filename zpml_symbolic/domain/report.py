"""The domain report: one verdict per factor whose zeros are bottom, JSON round trip, summary.

Every number here is exact (:class:`~fractions.Fraction`); JSON writes
rationals as ``"p/q"`` strings, so :meth:`DomainReport.from_json` gives back
the same report. Displayed lower bounds are rounded *down* (they stay lower
bounds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction
from typing import Any, Literal

import flint

from zpml_symbolic.domain.box import Interval, format_box
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.ir.printer import int_digits

Verdict = Literal["nonzero", "vanishes", "unknown"]
WitnessKind = Literal["zero", "sign_change", "isolating_box", "identically_zero"]
Role = Literal["denominator", "validity"]
SCHEMA = "zpml.domain_report/1"


# ----------------------------------------------------------------- number text
def fraction_text(v: Fraction) -> str:
    """Exact ``"p/q"`` (or ``"p"``) text of any size."""
    num = int_digits(v.numerator)
    return num if v.denominator == 1 else f"{num}/{int_digits(v.denominator)}"


def parse_fraction(text: str) -> Fraction:
    """Inverse of :func:`fraction_text` (no int-to-str digit limit)."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"expected a rational as 'p/q' text, got {text!r}")
    num, _, den = text.partition("/")
    try:
        n = int(flint.fmpz(num.strip()))
        d = int(flint.fmpz(den.strip())) if den else 1
    except (ValueError, TypeError):
        raise InvalidArgumentError(f"not a rational 'p/q': {text!r}") from None
    if d == 0:
        raise InvalidArgumentError(f"zero denominator in {text!r}")
    return Fraction(n, d)


def format_number(v: Fraction, *, digits: int = 3, rounding: str = "nearest") -> str:
    """``v`` with ``digits`` significant digits; ``rounding="down"``/``"up"`` rounds toward -inf/+inf."""
    if v == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits
        ctx.rounding = {"down": ROUND_FLOOR, "up": ROUND_CEILING}.get(rounding, ctx.rounding)
        ctx.Emax, ctx.Emin = 10**9, -(10**9)
        d = Decimal(v.numerator) / Decimal(v.denominator)
    return (
        f"{d:.{digits - 1}e}" if abs(d) < Decimal("1e-3") or abs(d) >= Decimal("1e4") else f"{d:g}"
    )


def _point_json(p: Mapping[str, Fraction] | None) -> dict[str, str] | None:
    return None if p is None else {k: fraction_text(v) for k, v in p.items()}


def _point_from(d: Mapping[str, str] | None) -> dict[str, Fraction] | None:
    return None if d is None else {k: parse_fraction(v) for k, v in d.items()}


def _box_json(b: Mapping[str, Interval] | None) -> dict[str, list[str]] | None:
    return (
        None
        if b is None
        else {k: [fraction_text(lo), fraction_text(hi)] for k, (lo, hi) in b.items()}
    )


def _box_from(d: Mapping[str, Any] | None) -> dict[str, Interval] | None:
    return (
        None
        if d is None
        else {k: (parse_fraction(v[0]), parse_fraction(v[1])) for k, v in d.items()}
    )


def _show_point(p: Mapping[str, Fraction]) -> str:
    return ", ".join(
        f"{k}={fraction_text(v) if v.denominator < 10**6 else format_number(v, digits=8)}"
        for k, v in p.items()
    )


# ------------------------------------------------------------------- witness
@dataclass(frozen=True)
class Witness:
    """Proof that a factor vanishes somewhere in the closed box.

    ``kind``:

    - ``"zero"``: ``point`` is an exact rational point of the box where the factor is 0;
    - ``"sign_change"``: the factor is ``values[0] < 0`` at ``negative`` and ``values[1] > 0`` at
      ``positive`` (exact); the segment between them lies in the box, so a zero lies on it
      (``box`` is that segment's bounding box: a small box holding a zero);
    - ``"isolating_box"``: ``box`` holds a zero, proved as ``note`` says (e.g. an irrational
      solution of ``f = grad f = 0`` located by exact real root isolation);
    - ``"identically_zero"``: the factor is 0 everywhere (``point`` is any point of the box).

    Points give every variable of the report's box (variables the factor does not use get a
    fixed simple value inside their interval).
    """

    kind: WitnessKind
    point: dict[str, Fraction] | None = None
    negative: dict[str, Fraction] | None = None
    positive: dict[str, Fraction] | None = None
    values: tuple[Fraction, Fraction] | None = None
    box: dict[str, Interval] | None = None
    note: str = ""

    def describe(self) -> str:
        """One line for people."""
        if self.kind == "zero" and self.point is not None:
            return f"exact zero at {_show_point(self.point)}"
        if self.kind == "identically_zero":
            return "identically zero"
        if self.kind == "sign_change" and self.negative is not None and self.positive is not None:
            return (
                f"sign change between {_show_point(self.negative)} (value < 0) and "
                f"{_show_point(self.positive)} (value > 0)"
            )
        if self.box is not None:
            inside = ", ".join(
                f"{k} in [{format_number(lo, digits=8, rounding='down')}, "
                f"{format_number(hi, digits=8, rounding='up')}]"
                for k, (lo, hi) in self.box.items()
            )
            return f"zero inside {inside}" + (f" ({self.note})" if self.note else "")
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (rationals as ``"p/q"``)."""
        return {
            "kind": self.kind,
            "point": _point_json(self.point),
            "negative": _point_json(self.negative),
            "positive": _point_json(self.positive),
            "values": None if self.values is None else [fraction_text(v) for v in self.values],
            "box": _box_json(self.box),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Witness:
        """Inverse of :meth:`to_dict`."""
        values = d.get("values")
        return cls(
            kind=d["kind"],
            point=_point_from(d.get("point")),
            negative=_point_from(d.get("negative")),
            positive=_point_from(d.get("positive")),
            values=None
            if values is None
            else (parse_fraction(values[0]), parse_fraction(values[1])),
            box=_box_from(d.get("box")),
            note=d.get("note", ""),
        )


# -------------------------------------------------------------- factor verdict
@dataclass(frozen=True)
class FactorVerdict:
    """The verdict for one factor whose zeros make the expression bottom.

    ``factor`` is the canonical factor (integer coefficients, content 1, as in
    ``FlattenedFRU.denominator_factors`` / ``validity_factors``), ``factor_terms`` its exact
    terms over ``generators``. ``scale`` is its largest absolute coefficient; ``lower_bound``
    (for ``"nonzero"``) is a certified lower bound of ``|factor / scale|`` on the closed box
    (scale-free: the factor normalised so its largest coefficient is 1), and
    ``min_found`` the smallest such value seen at an exact point, so the true minimum lies in
    ``[lower_bound, min_found]``. ``canonical_lower_bound`` is the bound for the canonical
    factor itself (the gauge in which ``Q`` is built).

    ``cover``: boxes over ``variables`` whose union contains every zero of the factor in the box
    (for ``"nonzero"`` empty; for ``"unknown"`` the undecided sub-boxes); ``cover_complete`` is
    False when the cover was cut short by the budget (still a valid cover, only coarser) and
    for a vanishing factor whose cover was not computed (``cover=False``, or ``"auto"`` with
    more than two free variables: ``cover`` is then empty and says nothing).
    """

    index: int
    factor: str
    factor_terms: tuple[tuple[tuple[int, ...], Fraction], ...]
    generators: tuple[str, ...]
    role: Role
    multiplicity: int
    output: int
    variables: tuple[str, ...]
    verdict: Verdict
    scale: Fraction
    lower_bound: Fraction | None = None
    min_found: Fraction | None = None
    witness: Witness | None = None
    cover: tuple[dict[str, Interval], ...] = ()
    cover_complete: bool = True
    provenance: tuple[dict[str, Any], ...] = ()
    method: str = ""
    reason: str = ""
    boxes: int = 0
    work: int = 0
    seconds: float = 0.0

    @property
    def canonical_lower_bound(self) -> Fraction | None:
        """Certified lower bound of ``|factor|`` (canonical gauge) on the box."""
        return None if self.lower_bound is None else self.lower_bound * self.scale

    @property
    def undecided(self) -> tuple[dict[str, Interval], ...]:
        """For ``"unknown"``: the sub-boxes still undecided (where a zero may lie)."""
        return self.cover if self.verdict == "unknown" else ()

    def describe(self) -> str:
        """One line for people."""
        head = f"[{self.index}] {self.factor} ({self.role}"
        head += f", multiplicity {self.multiplicity})" if self.multiplicity > 1 else ")"
        if self.verdict == "nonzero":
            if self.lower_bound is None:
                return f"{head}: nonzero on the box"
            return (
                f"{head}: nonzero, |f|/{format_number(self.scale)} >= "
                f"{format_number(self.lower_bound, rounding='down')} on the box"
            )
        if self.verdict == "vanishes":
            assert self.witness is not None
            return f"{head}: VANISHES, {self.witness.describe()}"
        return f"{head}: unknown ({self.reason}; {len(self.cover)} sub-boxes undecided)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "index": self.index,
            "factor": self.factor,
            "factor_terms": [[list(m), fraction_text(c)] for m, c in self.factor_terms],
            "generators": list(self.generators),
            "role": self.role,
            "multiplicity": self.multiplicity,
            "output": self.output,
            "variables": list(self.variables),
            "verdict": self.verdict,
            "scale": fraction_text(self.scale),
            "lower_bound": None if self.lower_bound is None else fraction_text(self.lower_bound),
            "min_found": None if self.min_found is None else fraction_text(self.min_found),
            "witness": None if self.witness is None else self.witness.to_dict(),
            "cover": [_box_json(b) for b in self.cover],
            "cover_complete": self.cover_complete,
            "provenance": [dict(p) for p in self.provenance],
            "method": self.method,
            "reason": self.reason,
            "boxes": self.boxes,
            "work": self.work,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FactorVerdict:
        """Inverse of :meth:`to_dict`."""
        opt = lambda k: None if d.get(k) is None else parse_fraction(d[k])  # noqa: E731
        return cls(
            index=int(d["index"]),
            factor=d["factor"],
            factor_terms=tuple((tuple(m), parse_fraction(c)) for m, c in d["factor_terms"]),
            generators=tuple(d["generators"]),
            role=d["role"],
            multiplicity=int(d["multiplicity"]),
            output=int(d["output"]),
            variables=tuple(d["variables"]),
            verdict=d["verdict"],
            scale=parse_fraction(d["scale"]),
            lower_bound=opt("lower_bound"),
            min_found=opt("min_found"),
            witness=None if d.get("witness") is None else Witness.from_dict(d["witness"]),
            cover=tuple(_box_from(b) or {} for b in d.get("cover", [])),
            cover_complete=bool(d.get("cover_complete", True)),
            provenance=tuple(d.get("provenance", [])),
            method=d.get("method", ""),
            reason=d.get("reason", ""),
            boxes=int(d.get("boxes", 0)),
            work=int(d.get("work", 0)),
            seconds=float(d.get("seconds", 0.0)),
        )


# --------------------------------------------------------------------- report
@dataclass(frozen=True)
class DomainReport:
    """Where an expression can be bottom on an operating box, with proofs.

    ``factors`` holds one :class:`FactorVerdict` per irreducible factor of ``Q`` and per retained
    validity factor (per output for several expressions). ``box`` is the operating box over the
    input variables, ``parameters`` the values (or ranges) used for the parameters.
    """

    expressions: tuple[str, ...]
    box: dict[str, Interval]
    parameters: dict[str, Interval]
    factors: tuple[FactorVerdict, ...]
    resolution: Fraction
    always_bottom: bool = False
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def defined_everywhere(self) -> bool:
        """True when every factor is certified nonzero on the whole closed box."""
        return not self.always_bottom and all(f.verdict == "nonzero" for f in self.factors)

    @property
    def vanishing(self) -> tuple[FactorVerdict, ...]:
        """Factors proved to vanish somewhere in the box."""
        return tuple(f for f in self.factors if f.verdict == "vanishes")

    @property
    def unknown(self) -> tuple[FactorVerdict, ...]:
        """Factors left undecided within the budget."""
        return tuple(f for f in self.factors if f.verdict == "unknown")

    @property
    def unknown_fraction(self) -> float:
        """Fraction of factors left ``"unknown"`` (0.0 when there are none)."""
        return len(self.unknown) / len(self.factors) if self.factors else 0.0

    def min_abs_q(self, output: int = 0) -> Fraction | None:
        """Certified lower bound of ``|Q|`` (canonical gauge) on the box, if every factor of ``Q``
        is nonzero there (the product of the factors' bounds; may be loose)."""
        bound = Fraction(1)
        for f in self.factors:
            if f.output != output or f.role != "denominator":
                continue
            b = f.canonical_lower_bound
            if f.verdict != "nonzero" or b is None:
                return None
            bound *= b**f.multiplicity
        return bound

    def summary(self) -> str:
        """One line: ``"defined on the whole box (min |Q| >= ...)"`` or what vanishes / is unknown."""
        if self.always_bottom:
            return "undefined everywhere: a division by an identically zero polynomial"
        if self.defined_everywhere:
            outputs = list(range(max(len(self.expressions), 1)))
            bounds = []
            for k in outputs:
                q = self.min_abs_q(k)
                label = "|Q|" if len(outputs) == 1 else f"|Q_{k}|"
                bounds.append(
                    f"min {label} >= {format_number(q, rounding='down')}"
                    if q is not None
                    else f"{label} nonzero"
                )
            extra = (
                ", every validity factor nonzero"
                if any(f.role == "validity" for f in self.factors)
                else ""
            )
            return f"defined on the whole box ({'; '.join(bounds)}{extra})"
        parts = []
        if self.vanishing:
            items = "; ".join(
                f"{f.factor}: {f.witness.describe() if f.witness else ''}" for f in self.vanishing
            )
            parts.append(
                f"undefined somewhere on the box: {len(self.vanishing)} factor(s) vanish ({items})"
            )
        if self.unknown:
            items = "; ".join(f"{f.factor}: {f.reason}" for f in self.unknown)
            parts.append(f"not decided: {len(self.unknown)} factor(s) unknown ({items})")
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [
            f"domain report on {format_box(self.box)}"
            + (f" with {format_box(self.parameters)}" if self.parameters else "")
        ]
        lines.append(self.summary())
        lines.extend("  " + f.describe() for f in self.factors)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (exact rationals as ``"p/q"``)."""
        return {
            "schema": SCHEMA,
            "expressions": list(self.expressions),
            "box": _box_json(self.box),
            "parameters": _box_json(self.parameters),
            "resolution": fraction_text(self.resolution),
            "always_bottom": self.always_bottom,
            "defined_everywhere": self.defined_everywhere,
            "summary": self.summary(),
            "seconds": self.seconds,
            "options": dict(self.options),
            "factors": [f.to_dict() for f in self.factors],
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> DomainReport:
        """Rebuild a report from :meth:`to_json` text or :meth:`to_dict` output."""
        d = json.loads(data) if isinstance(data, str) else data
        if not isinstance(d, Mapping) or d.get("schema") != SCHEMA:
            raise InvalidArgumentError(f"not a domain report (expected schema {SCHEMA!r})")
        return cls(
            expressions=tuple(d["expressions"]),
            box=_box_from(d["box"]) or {},
            parameters=_box_from(d.get("parameters")) or {},
            factors=tuple(FactorVerdict.from_dict(f) for f in d["factors"]),
            resolution=parse_fraction(d["resolution"]),
            always_bottom=bool(d.get("always_bottom", False)),
            seconds=float(d.get("seconds", 0.0)),
            options=dict(d.get("options", {})),
        )

    def plot(self, index: int, **kwargs: Any) -> Any:
        """Plot factor ``index``'s zero-set cover (see :func:`zpml_symbolic.domain.plot.plot_cover`)."""
        from zpml_symbolic.domain.plot import plot_cover

        return plot_cover(self, index, **kwargs)


__all__ = [
    "DomainReport",
    "FactorVerdict",
    "Witness",
    "format_number",
    "fraction_text",
    "parse_fraction",
]
