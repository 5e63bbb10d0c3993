"""Recompute a compiled bundle's outputs from its exact metadata and compare with the graph.

Hashes only prove that the files were not changed *after* the metadata was
written; anyone who edits ``model.onnx`` can recompute them. This check binds
the graph to the exact expression recorded in ``metadata.json``: the validator
generates its own points (never read from the bundle):

* random regular points with small dyadic coordinates (exact in the dtype);
* for ``Q`` and every denominator factor, rational points on its zero set
  (the other variables at random small dyadic values, the factor solved for
  one variable with exact rational roots that the dtype represents);
* rows with NaN and Inf inputs (faults);

evaluates ``P``, ``Q`` and every validity factor **exactly** (the ``"p/q"``
coefficients are read with :class:`fractions.Fraction`, never evaluated as
code), derives the strict outputs of docs/semantics.md section 3 from the exact
values and the thresholds baked into the graph, runs the graph and compares
``decoded``, every mask, ``bottom_provenance`` and the per-factor outputs.

A point is only used where the floating-point evaluation of ``Q`` and of each
``V_i`` is provably exact (every term is a dyadic rational and all of them fit
in the dtype's mantissa, with headroom for the evaluation order), so a
correct graph never disagrees; ``decoded`` is compared within a rounding-error
bound of ``P``. Points whose outcome the dtype cannot decide are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.exact import MetadataFRU, Terms

_MANTISSA = {"float32": 24, "float64": 53}
_MAX = {"float32": Fraction(np.finfo(np.float32).max.item()), "float64": Fraction(float(np.finfo(np.float64).max))}
_MIN_EXP = {"float32": -149, "float64": -1074}
_MIN_NORMAL_EXP = {"float32": -125, "float64": -1021}
_HEADROOM_BITS = 4  # evaluation order (Horner, products of factors) may grow intermediates
_MAX_ROOT_DEGREE = 48
_MAX_LISTED = 6

RunGraph = Callable[[np.ndarray], dict[str, np.ndarray]]
Sparse = tuple[tuple[Fraction, tuple[tuple[int, int], ...]], ...]


def _sparse(terms: Terms) -> Sparse:
    """Terms as (coefficient, ((generator, exponent), ...)) with zero exponents dropped."""
    return tuple(
        (c, tuple((i, e) for i, e in enumerate(exps) if e)) for exps, c in terms if c
    )


def _value(poly: Sparse, gens: Sequence[Fraction]) -> Fraction:
    total = Fraction(0)
    for c, mono in poly:
        t = c
        for i, e in mono:
            t *= gens[i] ** e
        total += t
    return total


@dataclass(frozen=True, slots=True)
class SemanticCheckReport:
    """What the recomputation compared: rows used and skipped, and the mismatches found."""

    seed: int
    rows: int
    zero_set_rows: int
    skipped: int
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when the graph agreed with the exact semantics on every decided row."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class _Point:
    values: tuple[Fraction | float, ...]  # in variable order; floats only for NaN/Inf
    origin: str


def _v2(q: Fraction) -> int:
    """2-adic valuation of a non-zero dyadic rational."""
    n, d = abs(q.numerator), q.denominator
    return (n & -n).bit_length() - 1 - (d.bit_length() - 1)


def _is_dyadic(q: Fraction) -> bool:
    return q.denominator & (q.denominator - 1) == 0


def representable(q: Fraction, dtype: str) -> bool:
    """Whether the rational ``q`` is exactly a finite value of ``dtype``."""
    try:
        with np.errstate(over="ignore"):
            f = np.array(float(q), dtype=dtype)
    except OverflowError:
        return False
    return bool(np.isfinite(f)) and Fraction(f.item()) == q


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


def _small_dyadic(rng: np.random.Generator, dtype: str) -> Fraction:
    """A random coordinate: halves in [-3, 3] (float32) or sixteenths in [-4, 4] (float64)."""
    if dtype == "float32":
        return Fraction(int(rng.integers(-6, 7)), 2)
    return Fraction(int(rng.integers(-64, 65)), 16)


def _univariate(poly: Sparse, gens: Sequence[Fraction | None], j: int) -> list[Fraction]:
    """Coefficients (low to high) of the polynomial in generator ``j``, others substituted."""
    coeffs: dict[int, Fraction] = {}
    for c, mono in poly:
        t, k = c, 0
        for i, e in mono:
            if i == j:
                k = e
            else:
                g = gens[i]
                assert g is not None
                t *= g**e
        coeffs[k] = coeffs.get(k, Fraction(0)) + t
    deg = max((k for k, v in coeffs.items() if v), default=-1)
    return [coeffs.get(k, Fraction(0)) for k in range(deg + 1)]


def _rational_roots(coeffs: list[Fraction]) -> list[Fraction]:
    """Exact rational roots of a univariate polynomial (coefficients low to high)."""
    if len(coeffs) < 2 or len(coeffs) - 1 > _MAX_ROOT_DEGREE:
        return []
    if len(coeffs) == 2:
        return [-coeffs[0] / coeffs[1]]
    import sympy as sp

    z = sp.Symbol("z")
    poly = sp.Poly([sp.Rational(c.numerator, c.denominator) for c in reversed(coeffs)], z, domain="QQ")
    roots = []
    for factor, _ in poly.factor_list()[1]:
        if factor.degree() == 1:
            a, b = factor.all_coeffs()
            r = -b / a
            roots.append(Fraction(int(r.p), int(r.q)))
    return roots


def _zero_set_points(
    fru: MetadataFRU,
    polys: Sequence[tuple[str, Sparse]],
    params: Sequence[Fraction],
    dtype: str,
    rng: np.random.Generator,
    attempts: int,
) -> list[_Point]:
    n = len(fru.variables)
    var_gen = [fru.generators.index(v) if v in fru.generators else -1 for v in fru.variables]
    out: list[_Point] = []
    for name, terms in polys:
        gens_used = {i for _, mono in terms for i, _ in mono}
        used = [j for j in range(n) if var_gen[j] in gens_used]
        found = 0
        for attempt in range(attempts):
            if not used or found >= 2:
                break
            j = used[attempt % len(used)]
            point: list[Fraction | None] = [_small_dyadic(rng, dtype) for _ in range(n)]
            point[j] = None
            gens = _gen_values(fru, point, params)
            for root in _rational_roots(_univariate(terms, gens, var_gen[j])):
                if representable(root, dtype):
                    point[j] = root
                    out.append(_Point(tuple(point), f"on the zero set of {name}"))  # type: ignore[arg-type]
                    found += 1
                    break
    return out


def _gen_values(
    fru: MetadataFRU, point: Sequence[Any], params: Sequence[Fraction]
) -> list[Any]:
    variables = set(fru.variables)
    names = list(fru.variables) + [g for g in fru.generators if g not in variables]
    by_name = dict(zip(names, list(point) + list(params), strict=True))
    return [by_name[g] for g in fru.generators]


def generate_points(
    fru: MetadataFRU, dtype: str, seed: int, *, n_random: int = 12, attempts: int = 6
) -> list[_Point]:
    """The validator's own rows: random regular points, zero-set points, NaN/Inf rows."""
    rng = np.random.default_rng(seed)
    params = parameter_values(fru, dtype)
    n = len(fru.variables)
    points = [
        _Point(tuple(_small_dyadic(rng, dtype) for _ in range(n)), "at a random point")
        for _ in range(n_random if n else 1)
    ]
    points.append(_Point((Fraction(0),) * n, "at the all-zeros point"))
    polys = [("Q", _sparse(fru.denominator_terms))]
    polys += [(f"factor {f.factor}", _sparse(f.terms)) for f in fru.factors]
    points += _zero_set_points(fru, polys, params, dtype, rng, attempts)
    if n:
        points.append(_Point((math.nan,) * n, "at an all-NaN input"))
        points.append(_Point((math.inf,) + (Fraction(1),) * (n - 1), "at an Inf input"))
    unique: dict[tuple[Any, ...], _Point] = {}
    for p in points:
        key = tuple(repr(v) for v in p.values)
        unique.setdefault(key, p)
    return list(unique.values())


def parameter_values(fru: MetadataFRU, dtype: str) -> list[Fraction]:
    """Exact values of the parameters as the graph holds them (rounded to ``dtype``)."""
    variables = set(fru.variables)
    params = [g for g in fru.generators if g not in variables]
    return [Fraction(np.array(fru.parameters[g], dtype=dtype).item()) for g in params]


# ----------------------------------------------------------------- exact expectation


def _bound_bits(poly: Sparse, gens: Sequence[Fraction]) -> tuple[Fraction, int | None]:
    """(sum of |term| with |g| replaced by max(|g|, 1), lowest 2-adic valuation or None)."""
    total = Fraction(0)
    low: int | None = 0
    big_gens = [max(abs(g), Fraction(1)) for g in gens]
    for c, mono in poly:
        t, big = c, abs(c)
        for i, e in mono:
            t *= gens[i] ** e
            big *= big_gens[i] ** e
        total += big
        if low is not None and t:
            low = min(low, _v2(t)) if _is_dyadic(t) else None
    return total, low


def _exactly_evaluable(poly: Sparse, gens: Sequence[Fraction], dtype: str) -> bool:
    """True when any sensible evaluation order of the polynomial is exact in ``dtype``."""
    if any(not representable(c, dtype) for c, _ in poly):
        return False
    bound, low = _bound_bits(poly, gens)
    if low is None:
        return False
    if not bound:
        return True
    if bound * 2**_HEADROOM_BITS > _MAX[dtype]:
        return False
    if low < _MIN_EXP[dtype]:
        return False  # below the smallest subnormal: not exact
    high = math.floor(math.log2(bound)) + 1 + _HEADROOM_BITS
    if high - _HEADROOM_BITS < _MIN_NORMAL_EXP[dtype]:
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


def expected_outputs(
    fru: MetadataFRU,
    point: _Point,
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
    gens = _gen_values(fru, point.values, params)
    limit = _MAX[dtype]
    e_q = _error_bound(polys.Q, gens, dtype)
    e_vs = [_error_bound(t, gens, dtype) for t in retained]
    p_bound, _ = _bound_bits(polys.P, gens)
    if e_q is None or any(e is None for e in e_vs) or p_bound * 2**_HEADROOM_BITS > limit:
        return None
    q = _value(polys.Q, gens)
    p = _value(polys.P, gens)
    vs = [_value(t, gens) for t in retained]
    sem_q = _below(q, e_q, [t_infer, t_train])
    factor_sem = [_below(v, e, [t]) for v, e, t in zip(vs, e_vs, t_factors, strict=True)]
    if sem_q is None or any(f is None for f in factor_sem):
        return None  # rounding could decide either way
    semantic = bool(sem_q[0]) or any(f[0] for f in factor_sem)  # type: ignore[index]
    decoded = None
    tol = 0.0
    if not semantic:
        decoded = p / q
        eps = Fraction(1, 2 ** (_MANTISSA[dtype] - 8))
        tol_exact = (
            eps * (p_bound / abs(q) + abs(decoded))
            + abs(decoded) * 2 * e_q / abs(q)
            + Fraction(float(np.finfo(dtype).tiny))
        )
        if abs(decoded) + tol_exact >= limit:
            return None  # P/Q may overflow: undecided
        tol = float(tol_exact)
    gap = (not semantic) and t_train is not None and bool(sem_q[1])  # type: ignore[index]
    return _Expected(
        False,
        semantic,
        gap,
        decoded,
        tol,
        tuple(
            (False, bool(f[0]), (v, e)) for f, v, e in zip(factor_sem, vs, e_vs, strict=True)  # type: ignore[index]
        ),
    )


def _error_bound(poly: Sparse, gens: Sequence[Fraction], dtype: str) -> Fraction | None:
    """0 when the float evaluation is exact, else a bound on its error; None: may overflow."""
    if _exactly_evaluable(poly, gens, dtype):
        return Fraction(0)
    bound, _ = _bound_bits(poly, gens)
    if bound * 2**_HEADROOM_BITS > _MAX[dtype]:
        return None
    return bound * Fraction(1, 2 ** (_MANTISSA[dtype] - 8))


def _below(
    value: Fraction, err: Fraction, thresholds: Sequence[Fraction | None]
) -> list[bool] | None:
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


def _describe(fru: MetadataFRU, point: _Point) -> str:
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


def check_semantics(
    metadata: dict[str, Any], fru: MetadataFRU, run: RunGraph, seed: int
) -> SemanticCheckReport:
    """Run the graph (``run``) on the validator's points and compare with the exact semantics."""
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
    )
    thresholds = metadata["effective_thresholds"]
    if len(thresholds.get("t_factors", [])) != len(retained):
        problems.append(
            f"effective_thresholds.t_factors has {len(thresholds.get('t_factors', []))} entries "
            f"for {len(retained)} validity factors"
        )
        return SemanticCheckReport(seed, 0, 0, 0, tuple(problems))
    params = parameter_values(fru, dtype)
    points = generate_points(fru, dtype, seed)
    decided: list[tuple[_Point, _Expected]] = []
    skipped = 0
    for point in points:
        exp = expected_outputs(fru, point, params, sparse, thresholds, dtype)
        if exp is None:
            skipped += 1
        else:
            decided.append((point, exp))
    if not any(p.origin == "at a random point" for p, _ in decided) and fru.variables:
        problems.append(
            f"none of the validator's random points can be evaluated exactly in {dtype}; the "
            "graph cannot be checked against the metadata expression (coefficients too large "
            "for the dtype?)"
        )
        return SemanticCheckReport(seed, 0, 0, skipped, tuple(problems))
    n = len(fru.variables)
    x = np.array(
        [[float(v) for v in p.values] for p, _ in decided], dtype=dtype
    ).reshape(len(decided), n)
    outputs = run(x)
    prefix_names = order[6:]
    mismatches: list[str] = []
    for row, (point, exp) in enumerate(decided):
        where = _describe(fru, point)
        before = len(mismatches)
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
                mismatches.append(
                    f"{names[0]} is {got_v!r}, the exact value is {f_value[0]} {where}"
                )
        if len(mismatches) > before and len(mismatches) > 4 * _MAX_LISTED:
            break
    if mismatches:
        shown = "; ".join(mismatches[:_MAX_LISTED])
        more = f" (and {len(mismatches) - _MAX_LISTED} more)" if len(mismatches) > _MAX_LISTED else ""
        problems.append(
            "model.onnx does not compute the expression recorded in metadata.json "
            f"(validator seed {seed}): {shown}{more}"
        )
    zero_rows = sum(1 for p, _ in decided if p.origin.startswith("on the zero set"))
    return SemanticCheckReport(seed, len(decided), zero_rows, skipped, tuple(problems))


__all__ = [
    "SemanticCheckReport",
    "check_semantics",
    "coefficient_overflows",
    "expected_outputs",
    "generate_points",
    "parameter_values",
    "representable",
]
