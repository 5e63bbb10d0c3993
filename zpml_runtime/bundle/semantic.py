"""Second line of defence: run a compiled bundle's graph and compare with exact semantics.

Verification by reproduction (:mod:`.reproduce`) proves that the graph is
the compilation of the recorded expression. This check does not rely on it:
the validator generates its own unpredictable points
(:mod:`zpml_runtime.bundle.sampling`: random points of several
distributions including full-precision floats and huge and tiny magnitudes,
points on the zero set of ``Q`` and of every factor, inside and just above
each tau band, NaN and Inf rows), runs the graph on them in batches of
several sizes (1, 2, 7, all rows, across a row-tile boundary) and compares:

* with the **exact semantics**: ``P``, ``Q`` and every validity factor are
  evaluated exactly (the ``"p/q"`` coefficients are read with
  :class:`fractions.Fraction`, never evaluated as code), and the strict outputs
  of docs/semantics.md section 3 derived from the exact values and the baked
  thresholds. A point is only compared where the floating-point evaluation of
  ``Q`` and of each ``V_i`` provably decides the masks (exact evaluation, or an
  error bound that keeps the value away from 0 and the thresholds);
  ``decoded`` within a rounding-error bound of ``P/Q``;
* with the **numpy program** of the same expression (``reference``, see
  :mod:`.differential`), bit for bit on every row, where exact arithmetic cannot
  decide (e.g. float32 rows inside the tau band).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.exact import MetadataFRU, Terms, sparse_terms
from zpml_runtime.bundle.expectation import (
    _MAX,
    _Expected,
    _gen_values,
    _Polys,
    _threshold,
    expected_outputs,
)
from zpml_runtime.bundle.metadata import BundleMetadata, EffectiveThresholds, Gauge, Threshold
from zpml_runtime.bundle.sampling import (
    Point,
    ScaleSchedule,
    Target,
    band_points,
    batches,
    dedupe,
    nonfinite_points,
    random_points,
    representable,
    zero_set_points,
)

_MAX_LISTED = 6

RunGraph = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True, slots=True)
class SemanticCheckReport:
    """What the recomputation compared: rows used and skipped, and the mismatches found."""

    seed: int
    rows: int
    zero_set_rows: int
    skipped: int
    problems: tuple[str, ...]
    #: points generated inside or just above a tau band (compared exactly where decided,
    #: and with the numpy program always)
    band_rows: int = 0
    #: rows compared bit for bit with the numpy program (0: no reference)
    differential_rows: int = 0
    #: sizes of the batches the graph was run on
    batch_sizes: tuple[int, ...] = ()

    @property
    def passed(self) -> bool:
        """True when the graph agreed with the exact semantics on every decided row."""
        return not self.problems


def _scale(terms: Terms, e: int) -> Terms:
    """``2**-e`` times a polynomial (exact)."""
    if not e:
        return terms
    f = Fraction(2) ** -e
    return tuple((exps, c * f) for exps, c in terms)


def gauge_exponents(metadata: Mapping[str, Any] | None) -> tuple[int, list[int]]:
    """``(e_PQ, [e_i per validity output])`` of the emitted gauge (emitted = ``2**-e`` canonical)."""
    gauge = Gauge.of(metadata) if metadata is not None else None
    if gauge is None:
        return 0, []
    return gauge.pq, list(gauge.v or ())


def _factor_gauge(e_v: list[int], index: int | None) -> int:
    return e_v[index] if index is not None and 0 <= index < len(e_v) else 0


def coefficient_overflows(
    fru: MetadataFRU, dtype: str, metadata: Mapping[str, Any] | None = None
) -> list[str]:
    """Coefficients of ``P``, ``Q`` or a factor that are not finite in ``dtype``
    (in the emitted power-of-two gauge recorded in ``metadata``, if any).

    Such a model is a fault on every input (the graph holds an infinite constant).
    """
    out = []
    limit = _MAX[dtype]
    e_pq, e_v = gauge_exponents(metadata)
    polys = [("P", _scale(fru.numerator_terms, e_pq)), ("Q", _scale(fru.denominator_terms, e_pq))]
    polys += [
        (f"factor {f.factor}", _scale(f.terms, _factor_gauge(e_v, f.output_index)))
        for f in fru.factors
        if f.retained or not e_pq  # a regauged Q holds its factors rescaled: checked as Q
    ]
    for name, terms in polys:
        for exps, c in terms:
            if abs(c) > limit:
                digits = len(str(abs(c.numerator) // c.denominator))
                out.append(
                    f"a coefficient of {name} (a {digits}-digit number, term exponents {list(exps)}) "
                    f"is not finite in {dtype}: the graph would fault on every input; evaluate in "
                    "float64 or rescale the expression"
                )
                break
    return out


# ----------------------------------------------------------------- points


def _threshold_list(
    keys: Sequence[tuple[str, Threshold | None]],
) -> tuple[tuple[str, Fraction], ...]:
    out = []
    for label, raw in keys:
        t = _threshold(raw)
        if t is not None and 0 < t < Fraction(10) ** 300:
            out.append((label, t))
    return tuple(out)


def _targets(fru: MetadataFRU, metadata: Mapping[str, Any] | None) -> list[Target]:
    """``Q`` and every denominator factor, with the emitted polynomial and thresholds
    whose band the validator aims at (a factor enforced by ``Q``: ``Q``'s band)."""
    e_pq, e_v = gauge_exponents(metadata)
    raw = (metadata or {}).get("effective_thresholds")
    eff = EffectiveThresholds.parse(raw) if raw else None
    q_emitted = sparse_terms(_scale(fru.denominator_terms, e_pq))
    q_t = (
        _threshold_list([("t_infer", eff.t_infer), ("t_train", eff.t_train)])
        if eff is not None
        else ()
    )
    targets = [Target("Q", sparse_terms(fru.denominator_terms), q_emitted, q_t)]
    t_factors = list(eff.t_factors) if eff is not None else []
    for f in fru.factors:
        zero = sparse_terms(f.terms)
        i = f.output_index
        if f.retained and i is not None and 0 <= i < len(t_factors):
            emitted = sparse_terms(_scale(f.terms, _factor_gauge(e_v, i)))
            t = _threshold_list([(f"t_factor_{i}", t_factors[i])])
            targets.append(Target(f"factor {f.factor}", zero, emitted, t))
        else:
            targets.append(Target(f"factor {f.factor}", zero, q_emitted, q_t))
    return targets


#: random points per distribution of :func:`~zpml_runtime.bundle.sampling.wide_coordinate`
#: (``None``: a different distribution per coordinate)
RANDOM_POINTS: dict[str | None, int] = {
    "grid": 8,
    "uniform": 6,
    "magnitude": 5,
    "special": 3,
    None: 6,
}


#: zero-set points per target that the tau-band points start from
BAND_BASES = 2


def generate_points(
    fru: MetadataFRU,
    dtype: str,
    seed: int,
    *,
    metadata: Mapping[str, Any] | None = None,
    attempts: int = 12,
) -> list[Point]:
    """The validator's own rows (see :mod:`zpml_runtime.bundle.sampling`): random points of
    several distributions, zero-set points of ``Q`` and of every factor, points inside and
    just above each tau band, NaN/Inf rows."""
    rng = np.random.default_rng(seed)
    params = parameter_values(fru, dtype)
    n = len(fru.variables)
    points = random_points(rng, n, dtype, RANDOM_POINTS)
    points.append(Point((Fraction(0),) * n, "at the all-zeros point"))
    var_gen = [fru.generators.index(v) if v in fru.generators else -1 for v in fru.variables]

    def gen_values(point: Sequence[Any]) -> list[Any]:
        return _gen_values(fru, point, params)

    scales = ScaleSchedule(rng, dtype)  # shared: the targets' huge/tiny attempts cover every scale
    for target in _targets(fru, metadata):
        found = zero_set_points(var_gen, gen_values, target, dtype, rng, attempts, scales=scales)
        for k, (base, j, along) in enumerate(found):
            points.append(base)
            if k < BAND_BASES:
                points += band_points(base, j, along, target, dtype)
    points += nonfinite_points(n)
    return dedupe(points)


def parameter_values(fru: MetadataFRU, dtype: str) -> list[Fraction]:
    """Exact values of the parameters as the graph holds them (rounded to ``dtype``)."""
    variables = set(fru.variables)
    params = [g for g in fru.generators if g not in variables]
    return [Fraction(np.array(fru.parameters[g], dtype=dtype).item()) for g in params]


# ----------------------------------------------------------------- comparison


def _describe(fru: MetadataFRU, point: Point) -> str:
    coords = ", ".join(
        f"{v}={x}" if isinstance(x, Fraction) else f"{v}={x!r}"
        for v, x in zip(fru.variables, point.values, strict=True)
    )
    return f"({coords or 'no variables'}) {point.origin}"


def _compare(name: str, got: Any, want: Any, problems: list[str], where: str) -> None:
    if got != want:
        problems.append(f"{name} is {got!r}, the exact semantics give {want!r} {where}")


def _compare_row(
    outputs: dict[str, np.ndarray],
    row: int,
    exp: _Expected,
    prefix_names: Sequence[str],
    where: str,
    mismatches: list[str],
) -> None:
    """Compare row ``row`` of the graph's outputs with the exact expectation."""
    bottom = exp.fault or bool(exp.semantic)
    _compare("fault_mask", bool(outputs["fault_mask"][row]), exp.fault, mismatches, where)
    _compare("bottom_mask", bool(outputs["bottom_mask"][row]), bottom, mismatches, where)
    dec = float(outputs["decoded"][row])
    if exp.semantic is not None:
        _compare(
            "semantic_bottom_mask",
            bool(outputs["semantic_bottom_mask"][row]),
            exp.semantic,
            mismatches,
            where,
        )
        _compare("gap_mask", bool(outputs["gap_mask"][row]), exp.gap, mismatches, where)
        code = (1 if exp.fault else 0) + (2 if exp.semantic else 0)
        _compare(
            "bottom_provenance", int(outputs["bottom_provenance"][row]), code, mismatches, where
        )
    if exp.decoded is None:
        if not math.isnan(dec):
            mismatches.append(f"decoded is {dec!r}, the exact semantics give bottom (NaN) {where}")
    elif not (math.isfinite(dec) and abs(Fraction(dec) - exp.decoded) <= Fraction(exp.decoded_tol)):
        mismatches.append(
            f"decoded is {dec!r}, the exact value P/Q is {float(exp.decoded)!r} {where}"
        )
    for i, (f_fault, f_sem, f_value) in enumerate(exp.factors):
        names = prefix_names[3 * i : 3 * i + 3]
        got_v = float(outputs[names[0]][row])
        _compare(names[1], bool(outputs[names[1]][row]), f_fault, mismatches, where)
        if f_sem is not None:
            _compare(names[2], bool(outputs[names[2]][row]), f_sem, mismatches, where)
        if f_value is not None and (
            not math.isfinite(got_v) or abs(Fraction(got_v) - f_value[0]) > f_value[1]
        ):
            mismatches.append(f"{names[0]} is {got_v!r}, the exact value is {f_value[0]} {where}")


def check_semantics(
    metadata: Mapping[str, Any],
    fru: MetadataFRU,
    run: RunGraph,
    seed: int,
    *,
    reference: RunGraph | None = None,
) -> SemanticCheckReport:
    """Run the graph (``run``) on the validator's points and compare with the exact semantics.

    Every point goes through several runs (all rows, batches of 1, 2 and 7, and a
    batch across the graph's first row-tile boundary); where the dtype decides the
    outcome, each output is compared with the exact semantics, and with ``reference``
    (the numpy program of the same expression: :mod:`.differential`) every output of
    every row is compared bit for bit.
    """
    from zpml_runtime.bundle.differential import mismatched_rows

    info = BundleMetadata.parse(metadata)
    dtype = info.dtype
    problems: list[str] = coefficient_overflows(fru, dtype, metadata)
    if problems:
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    retained_info = sorted(
        (f for f in fru.factors if f.retained),
        key=lambda f: (f.output_index is None, f.output_index),
    )
    order = info.output_order
    n_groups = (len(order) - 6) // 3
    indices = [f.output_index for f in retained_info]
    if len(order) != 6 + 3 * len(retained_info) or indices != list(range(len(retained_info))):
        problems.append(
            f"the metadata lists {len(retained_info)} retained validity factors {indices} but the "
            f"graph has {n_groups} per-factor output groups; the provenance and the outputs disagree"
        )
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    # the graph evaluates P, Q and V_i in its emitted gauge: 2**-e times canonical
    e_pq, e_v = gauge_exponents(metadata)
    retained = [_scale(f.terms, _factor_gauge(e_v, f.output_index)) for f in retained_info]
    sparse = _Polys(
        sparse_terms(_scale(fru.numerator_terms, e_pq)),
        sparse_terms(_scale(fru.denominator_terms, e_pq)),
        tuple(sparse_terms(t) for t in retained),
    ).with_fast(dtype)
    thresholds = info.effective_thresholds
    if len(thresholds.t_factors) != len(retained):
        problems.append(
            f"effective_thresholds.t_factors has {len(thresholds.t_factors)} entries "
            f"for {len(retained)} validity factors"
        )
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    params = parameter_values(fru, dtype)
    points = generate_points(fru, dtype, seed, metadata=metadata)
    expected = [expected_outputs(fru, p, params, sparse, thresholds, dtype) for p in points]
    if fru.variables and not any(
        e is not None and p.origin == "at a random point"
        for p, e in zip(points, expected, strict=True)
    ):
        problems.append(
            f"none of the validator's random points can be evaluated exactly in {dtype}; the "
            "graph cannot be checked against the metadata expression (coefficients too large "
            "for the dtype?)"
        )
        return SemanticCheckReport(seed, 0, 0, len(points), tuple(problems))
    n = len(fru.variables)
    x_all = np.array([[float(v) for v in p.values] for p in points], dtype=dtype).reshape(
        len(points), n
    )
    prefix_names = order[6:]
    exact_bad: list[str] = []
    program_bad: list[str] = []
    focus = [i for i, p in enumerate(points) if p.origin.startswith("on the zero set")]
    tile_rows = info.emitter.tile_rows if info.emitter else None
    runs = batches(len(points), np.random.default_rng([seed, 1]), tile_rows, focus)
    differential_rows = 0
    for label, ids, (lo, hi) in runs:
        x = np.ascontiguousarray(x_all[ids])
        outputs = run(x)
        suffix = "" if label == "all rows" else f" (in {label})"
        for row in range(lo, hi):
            exp = expected[ids[row]]
            if exp is not None and len(exact_bad) <= 4 * _MAX_LISTED:
                where = _describe(fru, points[ids[row]]) + suffix
                _compare_row(outputs, row, exp, prefix_names, where, exact_bad)
        if reference is not None:
            want = reference(x)
            for row, name, got, ref in mismatched_rows(outputs, want)[:_MAX_LISTED]:
                where = _describe(fru, points[ids[row]]) if row >= 0 else "(output shape)"
                program_bad.append(
                    f"{name} is {got!r}, the compiled program gives {ref!r} {where}{suffix}"
                )
            differential_rows += len(x)
    mismatches = exact_bad + program_bad
    if mismatches:
        shown = "; ".join(mismatches[:_MAX_LISTED])
        more = (
            f" (and {len(mismatches) - _MAX_LISTED} more)" if len(mismatches) > _MAX_LISTED else ""
        )
        problems.append(
            "model.onnx does not compute the expression recorded in metadata.json "
            f"(validator seed {seed}): {shown}{more}"
        )
    decided = [p for p, e in zip(points, expected, strict=True) if e is not None]
    return SemanticCheckReport(
        seed,
        len(decided),
        sum(1 for p in decided if p.origin.startswith("on the zero set")),
        len(points) - len(decided),
        tuple(problems),
        band_rows=sum(1 for p in points if "tau band" in p.origin),
        differential_rows=differential_rows,
        batch_sizes=tuple(len(ids) for _, ids, _ in runs),
    )


__all__ = [
    "SemanticCheckReport",
    "check_semantics",
    "coefficient_overflows",
    "expected_outputs",
    "generate_points",
    "parameter_values",
    "representable",
]
