"""``domain_report``: where can an expression be bottom on an operating box, proved."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal

import sympy as sp

from zpml_symbolic.domain.box import (
    BoxError,
    Interval,
    exact_number,
    normalize_box,
    simplest_rational,
)
from zpml_symbolic.domain.decide import decide
from zpml_symbolic.domain.factors import CollectedFactor, collect_factors
from zpml_symbolic.domain.outcome import Outcome, Run
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.domain.report import DomainReport, FactorVerdict, Witness
from zpml_symbolic.errors import BudgetExceededError, InputTypeError, InvalidArgumentError
from zpml_symbolic.flatten.budget import Budget, BudgetMeter
from zpml_symbolic.flatten.driver import flatten
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.text import expr_text

#: Budget for each factor unless ``budget=`` is given (a work unit is about a microsecond of
#: subdivision; the default is a few seconds).
DEFAULT_BUDGET = Budget(max_work=2_000_000, max_seconds=10.0)
#: ``cover="auto"`` computes zero-set covers for factors in at most this many free variables.
AUTO_COVER_VARIABLES = 2


def domain_report(
    expr: object,
    box: Mapping[Any, Any] | str,
    *,
    parameters: Mapping[str, Any] | None = None,
    constants: Mapping[str, object] | None = None,
    budget: Budget | None = None,
    resolution: Fraction | float = Fraction(1, 64),
    tightness: Fraction | float = 2,
    cover: bool | Literal["auto"] = "auto",
    max_cover_boxes: int = 2048,
) -> DomainReport:
    """Decide, for every factor whose zero is bottom, whether it vanishes on the closed ``box``.

    ``expr``: expression text, a sympy expression, a :class:`FlattenedFRU` (or a sequence of
    them), or a compiled/trained model that holds FRUs (``.frus``, ``.fru`` or ``.model.frus``;
    its current coefficients are the parameter values). ``box``: ``{variable: (lo, hi)}``
    (a single number fixes a variable) or text ``"x=0:1,y=-2:2"``; every input variable needs
    an entry. ``parameters``: ``{name: value or (lo, hi)}`` for the parameters (a range
    analyses every parameter value in it). ``constants``: exact values of named constants for
    text/sympy input (as in :func:`~zpml_symbolic.flatten`).

    Each factor gets ``"nonzero"`` with a certified ``lower_bound``, ``"vanishes"`` with a
    witness, or ``"unknown"`` with the undecided sub-boxes (see :class:`FactorVerdict`).
    ``budget`` limits each factor's work and time (default :data:`DEFAULT_BUDGET`); when it is
    spent the verdict is ``"unknown"``. ``resolution``: size of witness and cover boxes relative
    to the box. ``tightness``: refine nonzero bounds until the smallest value seen is within
    this factor of the bound. ``cover``: compute zero-set covers (``"auto"``: for factors in at
    most two free variables), at most ``max_cover_boxes`` boxes each.
    """
    start = time.monotonic()
    resolution_q = _positive(resolution, "resolution", upper=Fraction(1))
    tightness_q = _positive(tightness, "tightness", lower=Fraction(1))
    if cover not in (True, False, "auto"):
        raise InvalidArgumentError(f"cover must be True, False or 'auto', got {cover!r}")
    if (
        not isinstance(max_cover_boxes, int)
        or isinstance(max_cover_boxes, bool)
        or max_cover_boxes < 1
    ):
        raise InvalidArgumentError(
            f"max_cover_boxes must be a positive int, got {max_cover_boxes!r}"
        )
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidArgumentError(
            f"budget must be a zpml_symbolic.Budget, got {type(budget).__name__}"
        )
    frus, coefficients = _as_frus(expr, parameters, constants)
    box_d = normalize_box(box)
    variables = _ordered(s.name for f in frus for s in f.variables)
    param_names = _ordered(s.name for f in frus for s in f.parameters)
    params = _parameter_box(param_names, coefficients, parameters, box_d)
    unknown = [n for n in box_d if n not in variables and n not in param_names]
    if unknown:
        raise BoxError(
            f"box gives ranges for {unknown}, which the expression does not use (its variables "
            f"are {variables})",
            field=unknown[0],
        )
    missing = [n for n in variables if n not in box_d]
    if missing:
        raise BoxError(f"box gives no range for input variable(s) {missing}", field=missing[0])
    full = {n: box_d[n] for n in variables}
    full.update(params)
    verdicts = []
    cache: dict[Any, tuple[Outcome, int, float]] = {}
    for i, fac in enumerate(collect_factors(frus)):
        verdicts.append(
            _verdict(
                i,
                fac,
                full,
                cache,
                budget or DEFAULT_BUDGET,
                resolution_q,
                tightness_q,
                cover,
                max_cover_boxes,
            )
        )
    return DomainReport(
        expressions=tuple(expr_text(f.expression) for f in frus),
        box={n: full[n] for n in variables},
        parameters={n: params[n] for n in param_names},
        factors=tuple(verdicts),
        resolution=resolution_q,
        always_bottom=any(f.always_bottom for f in frus),
        seconds=time.monotonic() - start,
        options={
            "max_work": (budget or DEFAULT_BUDGET).max_work,
            "max_seconds": (budget or DEFAULT_BUDGET).max_seconds,
            "tightness": str(tightness_q),
            "cover": cover,
            "max_cover_boxes": max_cover_boxes,
        },
    )


def _verdict(
    index: int,
    fac: CollectedFactor,
    full: dict[str, Interval],
    cache: dict[Any, tuple[Outcome, int, float]],
    budget: Budget,
    resolution: Fraction,
    tightness: Fraction,
    cover: bool | str,
    max_cover_boxes: int,
) -> FactorVerdict:
    fbox = {n: full[n] for n in fac.poly.names}
    free = tuple(
        n
        for n, d in zip(fac.poly.names, fac.poly.degrees(), strict=True)
        if d > 0 and fbox[n][0] < fbox[n][1]
    )
    need_cover = cover is True or (cover == "auto" and len(free) <= AUTO_COVER_VARIABLES)
    key = (fac.poly.key(), tuple(fbox.items()), need_cover)
    if key not in cache:
        t0 = time.monotonic()
        meter = BudgetMeter(budget)
        run = Run(meter, resolution, tightness, max_cover_boxes)
        try:
            out = decide(fac.poly, fbox, run, need_bound=True, need_cover=need_cover)
        except BudgetExceededError as exc:
            out = Outcome(
                "unknown",
                cover=[dict(fbox)],
                cover_complete=False,
                reason=f"budget {exc.budget} spent",
            )
        out = _checked(out, fac.poly, fbox)
        cache[key] = (out, meter.work, time.monotonic() - t0)
    out, work, seconds = cache[key]
    scale = fac.poly.max_abs_coefficient() or Fraction(1)
    witness = _full_witness(out.witness, full, fac.poly)
    return FactorVerdict(
        index=index,
        factor=fac.text,
        factor_terms=tuple(sorted(fac.poly.terms().items(), reverse=True)),
        generators=fac.poly.names,
        role=fac.role,
        multiplicity=fac.multiplicity,
        output=fac.output,
        variables=free,
        verdict=out.status,
        scale=scale,
        lower_bound=None if out.lower_bound is None else out.lower_bound / scale,
        min_found=None if out.min_found is None else out.min_found / scale,
        witness=witness,
        cover=tuple({n: b[n] for n in free} for b in out.cover),
        cover_complete=out.cover_complete and (need_cover or out.status != "vanishes"),
        provenance=fac.provenance,
        method=out.method,
        reason=out.reason,
        boxes=out.boxes,
        work=work,
        seconds=seconds,
    )


def _checked(out: Outcome, poly: Poly, box: dict[str, Interval]) -> Outcome:
    """Re-verify a witness exactly (belt and braces): a failed check demotes to ``"unknown"``."""
    if out.status != "vanishes":
        return out
    w = out.witness

    def inside(p: Mapping[str, Fraction] | None) -> bool:
        return p is not None and all(box[n][0] <= p[n] <= box[n][1] for n in box)

    def value(p: Mapping[str, Fraction]) -> Fraction:
        return poly(tuple(p[n] for n in poly.names))

    def zero_at(p: Mapping[str, Fraction] | None) -> bool:
        return p is not None and inside(p) and value(p) == 0

    def sign_change(neg: Mapping[str, Fraction] | None, pos: Mapping[str, Fraction] | None) -> bool:
        if neg is None or pos is None:
            return False
        return inside(neg) and inside(pos) and value(neg) < 0 < value(pos)

    ok = False
    if w is not None and w.kind in ("zero", "identically_zero"):
        ok = zero_at(w.point)
    elif w is not None and w.kind == "sign_change":
        ok = sign_change(w.negative, w.positive)
    elif w is not None and w.kind == "isolating_box" and w.box is not None:
        ok = all(box[n][0] <= w.box[n][0] <= w.box[n][1] <= box[n][1] for n in box)
    if ok:
        return out
    return Outcome(
        "unknown",
        cover=out.cover or [dict(box)],
        cover_complete=False,
        reason="witness failed its exact recheck",
    )


def _full_witness(w: Witness | None, full: dict[str, Interval], poly: Poly) -> Witness | None:
    """The witness over every variable and parameter, with exact values of the canonical factor."""
    if w is None:
        return None
    fill = {n: simplest_rational(*iv) for n, iv in full.items()}

    def point(p: Mapping[str, Fraction] | None) -> dict[str, Fraction] | None:
        return None if p is None else {n: p.get(n, fill[n]) for n in full}

    values = w.values
    neg, pos = point(w.negative), point(w.positive)
    if w.kind == "sign_change" and neg is not None and pos is not None:
        values = (poly(tuple(neg[n] for n in poly.names)), poly(tuple(pos[n] for n in poly.names)))
    box = None if w.box is None else {n: w.box.get(n, (fill[n], fill[n])) for n in full}
    return Witness(
        kind=w.kind,
        point=point(w.point),
        negative=neg,
        positive=pos,
        values=values,
        box=box,
        note=w.note,
    )


# ------------------------------------------------------------------ inputs
def _as_frus(
    expr: object, parameters: Mapping[str, Any] | None, constants: Mapping[str, object] | None
) -> tuple[tuple[FlattenedFRU, ...], dict[str, Any]]:
    """The FRUs to analyse and the model's coefficient values (if any)."""
    if parameters is not None and not isinstance(parameters, Mapping):
        raise InvalidArgumentError(
            f"parameters must be a mapping {{name: value}}, got {type(parameters).__name__}"
        )
    pnames = list(parameters or {})

    def one(item: object) -> FlattenedFRU:
        if isinstance(item, FlattenedFRU):
            return item
        if isinstance(item, str | sp.Basic):
            return flatten(item, parameters=pnames, constants=constants)
        raise InputTypeError(
            f"domain_report needs expression text, a sympy expression, a FlattenedFRU or a model "
            f"holding FlattenedFRUs (.frus / .fru); got {type(item).__name__}"
        )

    if isinstance(expr, FlattenedFRU | str | sp.Basic):
        return (one(expr),), {}
    if (
        isinstance(expr, Sequence)
        and expr
        and all(isinstance(e, FlattenedFRU | str | sp.Basic) for e in expr)
    ):
        return tuple(one(e) for e in expr), {}
    frus = _model_frus(expr)
    if frus is None:
        return (one(expr),), {}
    return frus, _model_coefficients(expr)


def _model_frus(model: object) -> tuple[FlattenedFRU, ...] | None:
    for holder in (model, getattr(model, "model", None), getattr(model, "plan", None)):
        if holder is None:
            continue
        frus = getattr(holder, "frus", None)
        if (
            isinstance(frus, tuple | list)
            and frus
            and all(isinstance(f, FlattenedFRU) for f in frus)
        ):
            return tuple(frus)
    fru = getattr(model, "fru", None)
    if isinstance(fru, FlattenedFRU):
        return (fru,)
    return None


def _model_coefficients(model: object) -> dict[str, Any]:
    holders = (model, *(getattr(model, a, None) for a in ("model", "module", "rational")))
    for holder in holders:
        method = getattr(holder, "coefficient_values", None)
        if callable(method):
            return dict(method())
    coeffs = getattr(model, "coefficients", None)
    if isinstance(coeffs, Mapping):
        return dict(coeffs)
    return {}


def _parameter_box(
    names: Sequence[str],
    coefficients: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
    box: Mapping[str, Interval],
) -> dict[str, Interval]:
    given = dict(coefficients)
    given.update(parameters or {})
    extra = [n for n in (parameters or {}) if n not in names]
    if extra:
        raise InvalidArgumentError(
            f"parameters gives values for {extra}, which are not parameters of the expression ({list(names)})"
        )
    out: dict[str, Interval] = {}
    for n in names:
        if n in box:
            out[n] = box[n]
        elif n in given:
            out[n] = normalize_box(
                {n: given[n] if not isinstance(given[n], list) else tuple(given[n])}
            )[n]
        else:
            raise InvalidArgumentError(
                f"no value for parameter {n!r}: give parameters={{{n!r}: value or (lo, hi)}} or a box entry"
            )
    return out


def _ordered(names: Any) -> list[str]:
    return list(dict.fromkeys(names))


def _positive(
    value: object, what: str, *, lower: Fraction | None = None, upper: Fraction | None = None
) -> Fraction:
    v = exact_number(value, field=what)
    if v <= 0 or (lower is not None and v < lower) or (upper is not None and v > upper):
        bounds = (
            f" and >= {lower}"
            if lower is not None
            else f" and <= {upper}"
            if upper is not None
            else ""
        )
        raise InvalidArgumentError(f"{what} must be > 0{bounds}, got {value!r}")
    return v


__all__ = ["DEFAULT_BUDGET", "domain_report"]
