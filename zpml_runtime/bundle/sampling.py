"""The validator's own points: unpredictable, wide, and aimed at the boundaries.

Points are never read from the bundle, and the seed comes from the operating
system (``secrets``) unless a test fixes it, so a graph cannot be made to
misbehave only where the validator does not look. Per call:

* random points whose coordinates mix four distributions: a small dyadic
  grid (whose values are most often decided exactly), full-precision random
  floats in ``[-4, 4]``, log-uniform magnitudes over the dtype's whole range
  (huge, tiny, subnormal) and special values (``0``, ``+-1``, ``+-max``,
  ``+-tiny``, the smallest subnormal);
* for ``Q`` and every denominator factor, points on its zero set: the other
  coordinates drawn as above (full-precision ones included, so the points are
  not on a grid) and one coordinate solved exactly (rational roots that the
  dtype represents);
* from each zero-set point, points inside the tau band (``0 < |Q| < t`` for
  ``t_infer`` and ``t_train``, ``0 < |V_i| < t_i``), just above it
  (``t <= |.| < 4 t``), and the smallest non-zero values next to the root when
  the threshold is 0; the magnitudes are exact (rational arithmetic in the
  emitted gauge);
* rows with NaN and Inf inputs.

:func:`batches` then cuts the rows into runs of several sizes (1, 2, 7, all
rows, and a batch that straddles a row-tile boundary of the graph's ``Scan``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

_MAX_ROOT_DEGREE = 48
_MANTISSA = {"float32": 24, "float64": 53}

Sparse = tuple[tuple[Fraction, tuple[tuple[int, int], ...]], ...]


@dataclass(frozen=True, slots=True)
class Point:
    """One row: exact coordinates in variable order (floats only for NaN/Inf) and where it is."""

    values: tuple[Fraction | float, ...]
    origin: str


def to_dtype(value: float, dtype: str) -> Fraction | None:
    """The exact value of ``value`` rounded to ``dtype`` (None if not finite there)."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.array(value, dtype=dtype)
    if not np.isfinite(f):
        return None
    return Fraction(f.item())


def representable(q: Fraction, dtype: str) -> bool:
    """Whether the rational ``q`` is exactly a finite value of ``dtype``."""
    try:
        as_float = float(q)
    except OverflowError:
        return False
    return to_dtype(as_float, dtype) == q


def grid_coordinate(rng: np.random.Generator, dtype: str) -> Fraction:
    """Halves in [-3, 3] (float32) or sixteenths in [-4, 4] (float64): exact arithmetic
    on them usually stays exact, so the exact semantics decide most outcomes."""
    if dtype == "float32":
        return Fraction(int(rng.integers(-6, 7)), 2)
    return Fraction(int(rng.integers(-64, 65)), 16)


def _special(dtype: str) -> list[Fraction]:
    info = np.finfo(dtype)
    smallest = float(np.nextafter(np.array(0, dtype), np.array(1, dtype)))
    values = [
        0.0,
        1.0,
        -1.0,
        float(info.max),
        -float(info.max),
        float(info.tiny),
        -float(info.tiny),
        smallest,
    ]
    return [Fraction(v) for v in values]


def exponent_range(dtype: str) -> tuple[int, int]:
    """Binary exponents of the dtype's finite values: smallest subnormal to the largest."""
    info = np.finfo(dtype)
    return int(info.minexp) - int(info.nmant), int(info.maxexp)


def wide_coordinate(
    rng: np.random.Generator, dtype: str, kind: str | None = None, exponent: int | None = None
) -> Fraction:
    """A coordinate from one of the four distributions (chosen at random unless ``kind``);
    ``exponent`` fixes the binary exponent of a ``"magnitude"`` coordinate."""
    kind = kind or str(rng.choice(["grid", "uniform", "uniform", "magnitude", "special"]))
    if kind == "grid":
        return grid_coordinate(rng, dtype)
    if kind == "uniform":
        out = to_dtype(float(rng.uniform(-4.0, 4.0)), dtype)
    elif kind == "magnitude":
        low, high = exponent_range(dtype)
        e = int(rng.integers(low, high)) if exponent is None else exponent
        mant = 1.0 + float(rng.random())
        out = to_dtype(float(np.ldexp(mant, e)) * (1 if rng.random() < 0.5 else -1), dtype)
    else:
        specials = _special(dtype)
        out = specials[int(rng.integers(0, len(specials)))]
    return out if out is not None else Fraction(0)


# ----------------------------------------------------------------- polynomials


def value(poly: Sparse, gens: Sequence[Fraction]) -> Fraction:
    """Exact value of a sparse polynomial at rational generator values."""
    total = Fraction(0)
    for c, mono in poly:
        t = c
        for i, e in mono:
            t *= gens[i] ** e
        total += t
    return total


def univariate(poly: Sparse, gens: Sequence[Fraction | None], j: int) -> list[Fraction]:
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


def _horner(coeffs: Sequence[Fraction], z: Fraction) -> Fraction:
    try:
        import flint
    except ImportError:  # pragma: no cover - python-flint is a dependency
        out = Fraction(0)
        for c in reversed(coeffs):
            out = out * z + c
        return out
    acc = flint.fmpq(0)
    zz = flint.fmpq(z.numerator, z.denominator)
    for c in reversed(coeffs):
        acc = acc * zz + flint.fmpq(c.numerator, c.denominator)
    return Fraction(int(acc.p), int(acc.q))


def rational_roots(coeffs: list[Fraction]) -> list[Fraction]:
    """Exact rational roots of a univariate polynomial (coefficients low to high)."""
    if len(coeffs) < 2 or len(coeffs) - 1 > _MAX_ROOT_DEGREE:
        return []
    if len(coeffs) == 2:
        return [-coeffs[0] / coeffs[1]]
    try:
        import flint
    except ImportError:  # pragma: no cover - python-flint is a dependency
        return _sympy_roots(coeffs)
    poly = flint.fmpq_poly([flint.fmpq(c.numerator, c.denominator) for c in coeffs])
    roots = []
    for factor, _ in poly.factor()[1]:
        if factor.degree() == 1:
            b, a = (Fraction(int(c.p), int(c.q)) for c in factor.coeffs())
            roots.append(-b / a)
    return roots


def _sympy_roots(coeffs: list[Fraction]) -> list[Fraction]:  # pragma: no cover
    import sympy as sp

    z = sp.Symbol("z")
    poly = sp.Poly(
        [sp.Rational(c.numerator, c.denominator) for c in reversed(coeffs)], z, domain="QQ"
    )
    roots = []
    for factor, _ in poly.factor_list()[1]:
        if factor.degree() == 1:
            a, b = factor.all_coeffs()
            r = -b / a
            roots.append(Fraction(int(r.p), int(r.q)))
    return roots


# ----------------------------------------------------------------- the points


@dataclass(frozen=True, slots=True)
class Target:
    """A polynomial whose zero set and tau band the validator aims at."""

    name: str  # "Q" or "factor x - y"
    zero_poly: Sparse  # canonical gauge (same zero set)
    emitted: Sparse  # emitted gauge: the value the graph compares with its thresholds
    thresholds: tuple[tuple[str, Fraction], ...]  # (label, t) with t > 0; () for exact zeros only


def _random_point(rng: np.random.Generator, n: int, dtype: str, kind: str | None) -> Point:
    labels = {
        "grid": "at a random point",
        "uniform": "at a random full-precision point",
        "magnitude": "at a random point of huge or tiny magnitude",
        "special": "at special values",
        None: "at a random point of mixed scales",
    }
    coords = tuple(wide_coordinate(rng, dtype, kind) for _ in range(n))
    return Point(coords, labels[kind])


class ScaleSchedule:
    """Binary-exponent ranges of the dtype (moderate to extreme, large and small) in a
    random order, handed out in turn: consecutive zero-set attempts at huge or tiny
    scale cover every range instead of clustering where a uniform draw would."""

    _EDGES = (1, 8, 32, 128)

    def __init__(self, rng: np.random.Generator, dtype: str) -> None:
        low, high = exponent_range(dtype)
        edges = [e for e in self._EDGES if e < high] + [high]
        big = list(zip(edges[:-1], edges[1:], strict=True))
        small = [(-b, -a + 1) for a, b in big]
        small[-1] = (low, small[-1][1])  # the smallest scale reaches the smallest subnormal
        self.buckets = [big[i] for i in rng.permutation(len(big))] + [
            small[i] for i in rng.permutation(len(small))
        ]
        order = rng.permutation(len(self.buckets))
        self.buckets = [self.buckets[i] for i in order]
        self.k = 0

    def next(self) -> tuple[int, int]:
        """The next ``(low, high)`` exponent range (``high`` exclusive)."""
        bucket = self.buckets[self.k % len(self.buckets)]
        self.k += 1
        return bucket


def zero_set_points(
    var_gen: Sequence[int],
    gen_values: Any,
    target: Target,
    dtype: str,
    rng: np.random.Generator,
    attempts: int,
    per_target: int = 4,
    scales: ScaleSchedule | None = None,
) -> list[tuple[Point, int, list[Fraction]]]:
    """Points on the zero set of ``target``; each with the solved coordinate and the
    univariate coefficients of the emitted polynomial along it (for the band)."""
    n = len(var_gen)
    used_gens = {i for _, mono in target.zero_poly for i, _ in mono}
    used = [j for j in range(n) if var_gen[j] in used_gens]
    out: list[tuple[Point, int, list[Fraction]]] = []
    # the other coordinates at every scale: the grid (whose roots are most often
    # representable), huge and tiny magnitudes (low and high halves of the exponent range
    # in turn), full precision, mixed
    kinds = ("grid", "magnitude", "grid", "magnitude", "uniform", "grid", None, "grid")
    scales = scales or ScaleSchedule(rng, dtype)
    for attempt in range(attempts):
        if not used or len(out) >= per_target:
            break
        kind = kinds[attempt % len(kinds)]
        if kind == "magnitude":
            lo, hi = scales.next()
            base: list[Fraction | None] = [
                wide_coordinate(rng, dtype, kind, int(rng.integers(lo, hi))) for _ in range(n)
            ]
        else:
            base = [wide_coordinate(rng, dtype, kind) for _ in range(n)]
        for j in rng.permutation(used):  # solve for any coordinate whose root the dtype holds
            point = list(base)
            point[j] = None
            gens = gen_values(point)
            roots = [
                r
                for r in rational_roots(univariate(target.zero_poly, gens, var_gen[j]))
                if representable(r, dtype)
            ]
            if roots:
                point[j] = roots[int(rng.integers(0, len(roots)))]
                where = {"grid": "a grid point", "magnitude": "huge or tiny coordinates"}.get(
                    str(kind), "full-precision coordinates"
                )
                origin = f"on the zero set of {target.name} ({where})"
                along = univariate(target.emitted, gens, var_gen[j])
                out.append((Point(tuple(point), origin), int(j), along))  # type: ignore[arg-type]
                break
    return out


def band_points(
    base: Point, j: int, along: list[Fraction], target: Target, dtype: str
) -> list[Point]:
    """From a zero-set point, move coordinate ``j`` so the emitted value lands inside each
    tau band (``0 < |T| < t``), just above it (``t <= |T| < 4 t``), or (no threshold) at
    the smallest non-zero values next to the root."""
    root = base.values[j]
    assert isinstance(root, Fraction)
    deriv = [k * c for k, c in enumerate(along)][1:]
    slope = abs(_horner(deriv, root)) if deriv else Fraction(0)
    # one point per goal: inside each band, just above it, next to the root
    goals: list[tuple[str, list[Fraction]]] = []
    for label, t in target.thresholds:
        if slope:
            goals.append(
                (
                    f"inside {label}",
                    [t * f / slope for f in (Fraction(1, 2), Fraction(9, 10), Fraction(1, 8))],
                )
            )
            goals.append((f"above {label}", [t * f / slope for f in (Fraction(2), Fraction(3, 2))]))
    ulp = _ulp(root, dtype)
    goals.append(("tiny", [ulp, 3 * ulp]))
    out: list[Point] = []
    seen: set[Fraction] = set()
    for goal, steps in goals:
        found = None
        for step in steps:
            for sign in (1, -1):
                try:
                    cand = to_dtype(float(root + sign * step), dtype)
                except OverflowError:
                    continue
                if cand is None or cand == root or cand in seen:
                    continue
                seen.add(cand)
                origin = _band_origin(goal, abs(_horner(along, cand)), target)
                if origin is not None:
                    found = (cand, origin)
                    break
            if found:
                break
        if found:
            values = list(base.values)
            values[j] = found[0]
            out.append(Point(tuple(values), found[1]))
    return dedupe(out)


def _band_origin(goal: str, v: Fraction, target: Target) -> str | None:
    """Where a candidate with ``|T| = v`` lies, if that is the ``goal``; else None."""
    if v == 0:
        return None
    for name, t in target.thresholds:
        if goal == f"inside {name}" and v < t:
            return f"inside the tau band of {target.name} (0 < |{target.name}| < {name})"
        if goal == f"above {name}" and t <= v < 4 * t:
            return (
                f"just above the tau band of {target.name} ({name} <= |{target.name}| < 4 {name})"
            )
    if goal == "tiny":
        return f"next to the zero set of {target.name} (smallest non-zero values)"
    return None


def _ulp(x: Fraction, dtype: str) -> Fraction:
    f = np.array(float(x), dtype=dtype)
    with np.errstate(over="ignore"):
        up = np.nextafter(f, np.array(np.inf, dtype=dtype))
    return Fraction(up.item()) - Fraction(f.item()) if np.isfinite(up) else Fraction(0)


def random_points(
    rng: np.random.Generator, n: int, dtype: str, counts: dict[str | None, int]
) -> list[Point]:
    """``counts[kind]`` random points per distribution (``None``: mixed per coordinate).

    The ``"magnitude"`` coordinates are stratified: their exponents are spread evenly
    over the dtype's whole range (one per stratum, shuffled), so every scale from the
    smallest subnormal to overflow is hit on every call, not just likely.
    """
    out = []
    for kind, count in counts.items():
        count = count if n else min(count, 1)
        if kind == "magnitude" and n:
            low, high = exponent_range(dtype)
            total = count * n
            exps = [int(low + (high - low) * (k + rng.random()) / total) for k in range(total)]
            order = rng.permutation(total)
            for i in range(count):
                coords = tuple(
                    wide_coordinate(rng, dtype, "magnitude", exps[order[i * n + c]])
                    for c in range(n)
                )
                out.append(Point(coords, "at a random point of huge or tiny magnitude"))
            continue
        out += [_random_point(rng, n, dtype, kind) for _ in range(count)]
    return out


def nonfinite_points(n: int) -> list[Point]:
    """An all-NaN row and a row with one +Inf."""
    if not n:
        return []
    return [
        Point((math.nan,) * n, "at an all-NaN input"),
        Point((math.inf,) + (Fraction(1),) * (n - 1), "at an Inf input"),
    ]


def dedupe(points: Sequence[Point]) -> list[Point]:
    """First occurrence of every distinct row."""
    unique: dict[tuple[Any, ...], Point] = {}
    for p in points:
        unique.setdefault(tuple(repr(v) for v in p.values), p)
    return list(unique.values())


# ----------------------------------------------------------------- batches


#: a batch straddling a tile boundary is built only for tiles up to this many rows
MAX_TILE_BOUNDARY_ROWS = 1 << 17


def batches(
    n_points: int,
    rng: np.random.Generator,
    tile_rows: int | None,
    focus: Sequence[int] = (),
) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """Runs of the graph: ``(label, row indices into the points, (lo, hi))``; the rows
    ``lo:hi`` of the run are the distinct points compared exactly (all rows of a run
    are compared with the numpy program).

    Sizes: every point in one batch (shuffled); batches of 1 (twice), 2 and 7 whose rows
    are half ``focus`` points (the zero-set rows, where a mask matters; the first batch
    of 1 is one of them) and half any; and, for a tiled graph, ``tile_rows + 1 + r``
    rows with every point placed on both sides of the first tile boundary.
    """
    if n_points == 0:
        return []
    order = rng.permutation(n_points)
    runs: list[tuple[str, np.ndarray, tuple[int, int]]] = [("all rows", order, (0, n_points))]
    focus = list(focus) or list(range(n_points))
    for k, size in enumerate((1, 1, 2, 7)):
        n_focus = 1 if k == 0 else size // 2
        ids = np.concatenate(
            [
                rng.choice(focus, size=n_focus, replace=len(focus) < n_focus),
                rng.choice(n_points, size=size - n_focus, replace=n_points < size - n_focus),
            ]
        ).astype(np.int64)
        runs.append((f"a batch of {size}", rng.permutation(ids), (0, size)))
    if tile_rows is not None and 1 <= tile_rows <= MAX_TILE_BOUNDARY_ROWS:
        total = tile_rows + 1 + int(rng.integers(0, 7))
        ids = rng.integers(0, n_points, size=total)
        start = max(tile_rows - n_points // 2, 0)
        window = order[: max(min(n_points, total - start), 0)]
        ids[start : start + len(window)] = window
        label = f"a batch of {total} rows (across the row-tile boundary at {tile_rows})"
        runs.append((label, ids, (start, start + len(window))))
    return runs


__all__ = [
    "MAX_TILE_BOUNDARY_ROWS",
    "Point",
    "ScaleSchedule",
    "Target",
    "band_points",
    "batches",
    "dedupe",
    "grid_coordinate",
    "nonfinite_points",
    "random_points",
    "rational_roots",
    "representable",
    "to_dtype",
    "univariate",
    "value",
    "wide_coordinate",
    "zero_set_points",
]
