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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.exact import MetadataFRU, Terms
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

_MANTISSA = {"float32": 24, "float64": 53}
_MAX = {"float32": Fraction(np.finfo(np.float32).max.item()), "float64": Fraction(float(np.finfo(np.float64).max))}
_MIN_EXP = {"float32": -149, "float64": -1074}
_MIN_NORMAL_EXP = {"float32": -125, "float64": -1021}
_HEADROOM_BITS = 4  # evaluation order (Horner, products of factors) may grow intermediates
_MAX_LISTED = 6

RunGraph = Callable[[np.ndarray], dict[str, np.ndarray]]
Sparse = tuple[tuple[Fraction, tuple[tuple[int, int], ...]], ...]


def _sparse(terms: Terms) -> Sparse:
    """Terms as (coefficient, ((generator, exponent), ...)) with zero exponents dropped."""
    return tuple(
        (c, tuple((i, e) for i, e in enumerate(exps) if e)) for exps, c in terms if c
    )


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


def gauge_exponents(metadata: dict[str, Any] | None) -> tuple[int, list[int]]:
    """``(e_PQ, [e_i per validity output])`` of the emitted gauge (emitted = ``2**-e`` canonical)."""
    from zpml_runtime.bundle.multi import single_gauge

    gauge = single_gauge(metadata) if metadata is not None else None
    if gauge is None:
        return 0, []
    return int(gauge.get("PQ", 0)), [int(e) for e in gauge.get("V", [])]


def _factor_gauge(e_v: list[int], index: int | None) -> int:
    return e_v[index] if index is not None and 0 <= index < len(e_v) else 0


def coefficient_overflows(
    fru: MetadataFRU, dtype: str, metadata: dict[str, Any] | None = None
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


def _gen_values(
    fru: MetadataFRU, point: Sequence[Any], params: Sequence[Fraction]
) -> list[Any]:
    variables = set(fru.variables)
    names = list(fru.variables) + [g for g in fru.generators if g not in variables]
    by_name = dict(zip(names, list(point) + list(params), strict=True))
    return [by_name[g] for g in fru.generators]


def _threshold_list(thresholds: dict[str, Any], keys: Sequence[tuple[str, Any]]) -> tuple[tuple[str, Fraction], ...]:
    out = []
    for label, raw in keys:
        t = _threshold(raw)
        if t is not None and 0 < t < Fraction(10) ** 300:
            out.append((label, t))
    return tuple(out)


def _targets(fru: MetadataFRU, metadata: dict[str, Any] | None) -> list[Target]:
    """``Q`` and every denominator factor, with the emitted polynomial and thresholds
    whose band the validator aims at (a factor enforced by ``Q``: ``Q``'s band)."""
    e_pq, e_v = gauge_exponents(metadata)
    eff = (metadata or {}).get("effective_thresholds") or {}
    q_emitted = _sparse(_scale(fru.denominator_terms, e_pq))
    q_t = _threshold_list(eff, [("t_infer", eff.get("t_infer")), ("t_train", eff.get("t_train"))])
    targets = [Target("Q", _sparse(fru.denominator_terms), q_emitted, q_t)]
    t_factors = list(eff.get("t_factors") or [])
    for f in fru.factors:
        zero = _sparse(f.terms)
        i = f.output_index
        if f.retained and i is not None and 0 <= i < len(t_factors):
            emitted = _sparse(_scale(f.terms, _factor_gauge(e_v, i)))
            t = _threshold_list(eff, [(f"t_factor_{i}", t_factors[i])])
            targets.append(Target(f"factor {f.factor}", zero, emitted, t))
        else:
            targets.append(Target(f"factor {f.factor}", zero, q_emitted, q_t))
    return targets


#: random points per distribution of :func:`~zpml_runtime.bundle.sampling.wide_coordinate`
#: (``None``: a different distribution per coordinate)
RANDOM_POINTS: dict[str | None, int] = {"grid": 8, "uniform": 6, "magnitude": 5, "special": 3, None: 6}


def generate_points(
    fru: MetadataFRU,
    dtype: str,
    seed: int,
    *,
    metadata: dict[str, Any] | None = None,
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
        for base, j, along in found:
            points.append(base)
            points += band_points(base, j, along, target, dtype)
    points += nonfinite_points(n)
    return dedupe(points)


def parameter_values(fru: MetadataFRU, dtype: str) -> list[Fraction]:
    """Exact values of the parameters as the graph holds them (rounded to ``dtype``)."""
    variables = set(fru.variables)
    params = [g for g in fru.generators if g not in variables]
    return [Fraction(np.array(fru.parameters[g], dtype=dtype).item()) for g in params]


# ----------------------------------------------------------------- exact expectation
#
# The exact arithmetic of this section runs on python-flint's fmpq (C rationals,
# ~8x faster than fractions.Fraction here) when it is installed; values leave it
# as Fraction.

try:
    import flint as _flint

    def _num(q: Fraction) -> Any:
        return _flint.fmpq(q.numerator, q.denominator)

    def _frac(x: Any) -> Fraction:
        return Fraction(int(x.p), int(x.q))

except ImportError:  # pragma: no cover - python-flint is a dependency

    def _num(q: Fraction) -> Any:
        return q

    def _frac(x: Any) -> Fraction:
        return x


def _nd(t: Any) -> tuple[int, int]:
    return (int(t.p), int(t.q)) if hasattr(t, "p") else (t.numerator, t.denominator)


@dataclass(frozen=True, slots=True)
class _Fast:
    """A polynomial with its coefficients in the fast rational type, and whether every
    coefficient is exactly a value of the dtype (computed once)."""

    terms: tuple[tuple[Any, tuple[tuple[int, int], ...]], ...]
    representable: bool

    @staticmethod
    def of(poly: Sparse, dtype: str) -> _Fast:
        return _Fast(
            tuple((_num(c), mono) for c, mono in poly),
            all(representable(c, dtype) for c, _ in poly),
        )


def _fast_value(poly: _Fast, gens: Sequence[Any]) -> Any:
    total = _num(Fraction(0))
    for c, mono in poly.terms:
        t = c
        for i, e in mono:
            t *= gens[i] ** e
        total += t
    return total


def _bound_bits(poly: _Fast, gens: Sequence[Any]) -> tuple[Any, int | None]:
    """(sum of |term| with |g| replaced by max(|g|, 1), lowest 2-adic valuation or None)."""
    one = _num(Fraction(1))
    total = _num(Fraction(0))
    low: int | None = 0
    big_gens = [max(abs(g), one) for g in gens]
    for c, mono in poly.terms:
        t, big = c, abs(c)
        for i, e in mono:
            t *= gens[i] ** e
            big *= big_gens[i] ** e
        total += big
        if low is not None and t:
            n, d = _nd(t)
            if d & (d - 1):
                low = None  # not dyadic: not exact in any binary format
            else:
                n = abs(n)
                low = min(low, (n & -n).bit_length() - 1 - (d.bit_length() - 1))
    return total, low


def _exactly_evaluable(poly: _Fast, gens: Sequence[Any], dtype: str) -> bool:
    """True when any sensible evaluation order of the polynomial is exact in ``dtype``."""
    if not poly.representable:
        return False
    bound, low = _bound_bits(poly, gens)
    if low is None:
        return False
    if not bound:
        return True
    if bound * 2**_HEADROOM_BITS > _num(_MAX[dtype]):
        return False
    if low < _MIN_EXP[dtype]:
        return False  # below the smallest subnormal: not exact
    n, d = _nd(bound)
    high = n.bit_length() - d.bit_length() + 1 + _HEADROOM_BITS  # >= floor(log2) + 1 + headroom
    if high - _HEADROOM_BITS - 1 < _MIN_NORMAL_EXP[dtype]:
        return False  # subnormal range: fewer mantissa bits than assumed
    return high - low <= _MANTISSA[dtype]


@dataclass(frozen=True, slots=True)
class _Expected:
    fault: bool
    semantic: bool | None  # None: not decided (NaN rows)
    gap: bool | None
    decoded: Fraction | None  # exact P/Q where accepted
    decoded_tol: float  # absolute bound on the rounding error of decoded
    # per factor: (fault, semantic, (exact value, error bound) or None)
    factors: tuple[tuple[bool, bool | None, tuple[Fraction, Fraction] | None], ...]


def _uses(poly: Sparse, gi: set[int]) -> bool:
    return any(i in gi for _, mono in poly for i, _ in mono)


@dataclass(frozen=True, slots=True)
class _Polys:
    P: Sparse
    Q: Sparse
    V: tuple[Sparse, ...]
    fast: tuple[_Fast, ...] | None = None  # P, Q, V... in the fast type (see _Polys.with_fast)

    def with_fast(self, dtype: str) -> _Polys:
        """The same polynomials with their fast forms computed for ``dtype``."""
        fast = tuple(_Fast.of(p, dtype) for p in (self.P, self.Q, *self.V))
        return _Polys(self.P, self.Q, self.V, fast)


def expected_outputs(
    fru: MetadataFRU,
    point: Point,
    params: Sequence[Fraction],
    polys: _Polys,
    thresholds: dict[str, Any],
    dtype: str,
) -> _Expected | None:
    """The strict outputs at ``point`` from exact arithmetic; ``None`` when undecidable."""
    t_infer = _threshold(thresholds.get("t_infer"))
    t_train = _threshold(thresholds.get("t_train"))
    t_factors = [_threshold(t) for t in thresholds.get("t_factors", [])]
    nonfinite = {
        fru.generators.index(v)
        for v, x in zip(fru.variables, point.values, strict=True)
        if not isinstance(x, Fraction) and v in fru.generators
    }
    retained = polys.V
    if nonfinite:
        if not any(_uses(t, nonfinite) for t in (polys.P, polys.Q, *retained)):
            return None
        factors = tuple(
            (True, None, None) if _uses(t, nonfinite) else (False, None, None) for t in retained
        )
        if any(not _uses(t, nonfinite) for t in retained):
            return None  # that factor's value is finite: its masks depend on it; not needed here
        return _Expected(True, None, None, None, 0.0, factors)
    if any(_extreme(v) for v in point.values):
        return None  # huge or tiny coordinates: left to the bit-exact program comparison
    fast = polys.fast or polys.with_fast(dtype).fast
    assert fast is not None
    f_p, f_q, f_vs = fast[0], fast[1], fast[2:]
    gens = [_num(g) for g in _gen_values(fru, point.values, params)]
    limit = _num(_MAX[dtype])
    e_q = _error_bound(f_q, gens, dtype)
    e_vs = [_error_bound(t, gens, dtype) for t in f_vs]
    p_bound, _ = _bound_bits(f_p, gens)
    if e_q is None or any(e is None for e in e_vs) or p_bound * 2**_HEADROOM_BITS > limit:
        return None
    q = _fast_value(f_q, gens)
    p = _fast_value(f_p, gens)
    vs = [_fast_value(t, gens) for t in f_vs]
    ti, tt = (None if t is None else _num(t) for t in (t_infer, t_train))
    sem_q = _below(q, e_q, [ti, tt])
    factor_sem = [
        _below(v, e, [None if t is None else _num(t)]) for v, e, t in zip(vs, e_vs, t_factors, strict=True)
    ]
    if sem_q is None or any(f is None for f in factor_sem):
        return None  # rounding could decide either way
    semantic = bool(sem_q[0]) or any(f[0] for f in factor_sem)  # type: ignore[index]
    decoded = None
    tol = 0.0
    if not semantic:
        dec = p / q
        eps = _num(Fraction(1, 2 ** (_MANTISSA[dtype] - 8)))
        tol_exact = (
            eps * (p_bound / abs(q) + abs(dec))
            + abs(dec) * 2 * e_q / abs(q)
            + _num(Fraction(float(np.finfo(dtype).tiny)))
        )
        if abs(dec) + tol_exact >= limit:
            return None  # P/Q may overflow: undecided
        decoded = _frac(dec)
        tol = float(_frac(tol_exact))
    gap = (not semantic) and t_train is not None and bool(sem_q[1])  # type: ignore[index]
    return _Expected(
        False,
        semantic,
        gap,
        decoded,
        tol,
        tuple(
            (False, bool(f[0]), (_frac(v), _frac(e)))  # type: ignore[index]
            for f, v, e in zip(factor_sem, vs, e_vs, strict=True)
        ),
    )


#: coordinates beyond 2**+-EXTREME_EXPONENT are not evaluated exactly (rounding or overflow
#: then decides almost every outcome, and exact powers of them are slow)
EXTREME_EXPONENT = 64


def _extreme(v: Fraction | float) -> bool:
    if not isinstance(v, Fraction) or not v:
        return False
    return abs(math.frexp(float(v))[1]) > EXTREME_EXPONENT or float(v) == 0.0


def _error_bound(poly: _Fast, gens: Sequence[Any], dtype: str) -> Any:
    """0 when the float evaluation is exact, else a bound on its error; None: may overflow."""
    if _exactly_evaluable(poly, gens, dtype):
        return _num(Fraction(0))
    bound, _ = _bound_bits(poly, gens)
    if bound * 2**_HEADROOM_BITS > _num(_MAX[dtype]):
        return None
    return bound * _num(Fraction(1, 2 ** (_MANTISSA[dtype] - 8)))


def _below(value: Any, err: Any, thresholds: Sequence[Any]) -> list[bool] | None:
    """For each threshold t: the graph's ``value == 0 or |value| < t``; None if rounding decides.

    A ``None`` threshold gives False.
    """
    if not err:
        return [t is not None and (value == 0 or abs(value) < t) for t in thresholds]
    if abs(value) <= 2 * err:
        return None  # a rounded value might be 0
    out = []
    for t in thresholds:
        if t is None:
            out.append(False)
        elif abs(abs(value) - t) <= err:
            return None
        else:
            out.append(abs(value) < t)
    return out


def _threshold(value: Any) -> Fraction | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Fraction(10) ** 400 if value == "inf" else Fraction(0)
    return Fraction(float(value))


# ----------------------------------------------------------------- comparison


def _describe(fru: MetadataFRU, point: Point) -> str:
    coords = ", ".join(
        f"{v}={x}" if isinstance(x, Fraction) else f"{v}={x!r}"
        for v, x in zip(fru.variables, point.values, strict=True)
    )
    return f"({coords or 'no variables'}) {point.origin}"


def _compare(
    name: str, got: Any, want: Any, problems: list[str], where: str
) -> None:
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


def _tile_rows(metadata: dict[str, Any]) -> int | None:
    opts = (metadata.get("emitter") or {}).get("options")
    rows = opts.get("tile_rows") if isinstance(opts, dict) else None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else None


def check_semantics(
    metadata: dict[str, Any],
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

    dtype = metadata["input"]["dtype"]
    problems: list[str] = coefficient_overflows(fru, dtype, metadata)
    if problems:
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    retained_info = sorted(
        (f for f in fru.factors if f.retained), key=lambda f: (f.output_index is None, f.output_index)
    )
    order = metadata["output_order"]
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
        _sparse(_scale(fru.numerator_terms, e_pq)),
        _sparse(_scale(fru.denominator_terms, e_pq)),
        tuple(_sparse(t) for t in retained),
    ).with_fast(dtype)
    thresholds = metadata["effective_thresholds"]
    if len(thresholds.get("t_factors", [])) != len(retained):
        problems.append(
            f"effective_thresholds.t_factors has {len(thresholds.get('t_factors', []))} entries "
            f"for {len(retained)} validity factors"
        )
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    params = parameter_values(fru, dtype)
    points = generate_points(fru, dtype, seed, metadata=metadata)
    expected = [expected_outputs(fru, p, params, sparse, thresholds, dtype) for p in points]
    if fru.variables and not any(
        e is not None and p.origin == "at a random point" for p, e in zip(points, expected, strict=True)
    ):
        problems.append(
            f"none of the validator's random points can be evaluated exactly in {dtype}; the "
            "graph cannot be checked against the metadata expression (coefficients too large "
            "for the dtype?)"
        )
        return SemanticCheckReport(seed, 0, 0, len(points), tuple(problems))
    n = len(fru.variables)
    x_all = np.array([[float(v) for v in p.values] for p in points], dtype=dtype).reshape(len(points), n)
    prefix_names = order[6:]
    exact_bad: list[str] = []
    program_bad: list[str] = []
    focus = [i for i, p in enumerate(points) if p.origin.startswith("on the zero set")]
    runs = batches(len(points), np.random.default_rng([seed, 1]), _tile_rows(metadata), focus)
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
        more = f" (and {len(mismatches) - _MAX_LISTED} more)" if len(mismatches) > _MAX_LISTED else ""
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
