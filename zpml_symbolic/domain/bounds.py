"""Rigorous bounds: exact Bernstein coefficients of a polynomial over a box.

On a box, ``f = sum_J b_J B_J(t)`` where the tensor Bernstein polynomials
``B_J`` are nonnegative and sum to 1, so every value of ``f`` on the box lies
in ``[min b_J, max b_J]`` (the *range enclosure* property), and the
coefficient at a vertex multi-index equals ``f`` at that vertex. Coefficients
are exact: integers (numpy object arrays of Python ints) times one positive
rational ``scale``, so a certified lower bound of ``|f|`` is an exact
rational, with no rounding anywhere. Subdividing a box (de Casteljau at a
rational split point) gives the children's coefficients from the parent's
with integer matrices.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import lru_cache, reduce

import numpy as np

from zpml_symbolic.domain.box import Interval
from zpml_symbolic.domain.polys import Poly


def _apply(matrix: np.ndarray, tensor: np.ndarray, axis: int) -> np.ndarray:
    """Multiply ``tensor`` by ``matrix`` along ``axis`` (object dtype, exact)."""
    shape = tensor.shape
    if axis == 0:
        return (matrix @ tensor.reshape(shape[0], -1)).reshape((matrix.shape[0],) + shape[1:])
    if axis == tensor.ndim - 1:
        out = tensor.reshape(-1, shape[-1]) @ matrix.T
        return out.reshape(shape[:-1] + (matrix.shape[0],))
    moved = np.moveaxis(tensor, axis, 0)
    mshape = moved.shape
    out = matrix @ moved.reshape(mshape[0], -1)
    return np.moveaxis(out.reshape((matrix.shape[0],) + mshape[1:]), 0, axis)


@lru_cache(maxsize=64)
def _corner_indices(shape: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """``(corner, index)`` per vertex: corner bits (0 = lo, 1 = hi) and the coefficient index."""
    return tuple(
        (corner, tuple(0 if c == 0 else n - 1 for c, n in zip(corner, shape, strict=True)))
        for corner in itertools.product((0, 1), repeat=len(shape))
    )


@lru_cache(maxsize=256)
def _bernstein_matrix(degree: int, a: int, b: int, c: int) -> tuple[np.ndarray, int]:
    """Integer ``M`` and ``D`` such that the Bernstein coefficients on ``[a/c, (a+b)/c]`` of
    ``sum_i p_i x**i`` are ``(M @ p) / D``.

    ``x = (a + b*t)/c`` gives ``c**d * p(x) = sum_j t**j sum_i C(i, j) a**(i-j) b**j c**(d-i) p_i``
    (integers), and ``bern_k = sum_{j<=k} C(k, j)/C(d, j) coef_j`` becomes integer after
    multiplying by ``d!`` (``d!/C(d, j) = j! (d-j)!``); so ``D = c**d * d!``.
    """
    d = degree
    shift = np.zeros((d + 1, d + 1), dtype=object)
    for i in range(d + 1):
        for j in range(i + 1):
            shift[j, i] = math.comb(i, j) * a ** (i - j) * b**j * c ** (d - i)
    bern = np.zeros((d + 1, d + 1), dtype=object)
    for k in range(d + 1):
        for j in range(k + 1):
            bern[k, j] = math.comb(k, j) * math.factorial(j) * math.factorial(d - j)
    for m in (shift, bern):  # zeros as Python ints
        m[m == 0] = 0
    return bern @ shift, c**d * math.factorial(d)


@lru_cache(maxsize=512)
def _split_matrices(degree: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer de Casteljau matrices at ``t = p/q`` (children coefficients times ``q**degree``)."""
    d, r = degree, q - p
    left = np.zeros((d + 1, d + 1), dtype=object)
    right = np.zeros((d + 1, d + 1), dtype=object)
    for j in range(d + 1):
        for i in range(d + 1):
            left[j, i] = q ** (d - j) * math.comb(j, i) * p**i * r ** (j - i) if i <= j else 0
            right[j, i] = (
                q**j * math.comb(d - j, i - j) * p ** (i - j) * r ** (d - i) if i >= j else 0
            )
    return left, right


class Patch:
    """Exact Bernstein coefficients of one polynomial over one box.

    The true coefficients are ``coeffs * scale`` (``coeffs`` Python ints in a
    numpy object array of shape ``degree + 1`` per axis, ``scale > 0``).
    """

    __slots__ = ("box", "coeffs", "scale", "rel")

    def __init__(
        self,
        box: tuple[Interval, ...],
        coeffs: np.ndarray,
        scale: Fraction,
        rel: tuple[float, ...] | None = None,
    ) -> None:
        self.box = box
        #: side lengths relative to the root patch's box (floats: for ordering and heuristics only)
        self.rel = rel if rel is not None else (1.0,) * len(box)
        g = reduce(math.gcd, coeffs.flat, 0)
        if g > 1:
            coeffs = coeffs // g
            scale = scale * g
        self.coeffs = coeffs
        self.scale = scale

    @property
    def size(self) -> int:
        """Number of coefficients."""
        return int(self.coeffs.size)

    def sign(self) -> int:
        """+1 (-1) when every coefficient is > 0 (< 0): ``f`` has that sign on the whole box."""
        lo, hi = self.coeffs.min(), self.coeffs.max()
        if lo > 0:
            return 1
        if hi < 0:
            return -1
        return 0

    def abs_lower_bound(self) -> Fraction:
        """A certified lower bound of ``|f|`` on the box (0 unless the sign is definite)."""
        lo, hi = self.coeffs.min(), self.coeffs.max()
        if lo > 0:
            return Fraction(int(lo)) * self.scale
        if hi < 0:
            return Fraction(-int(hi)) * self.scale
        return Fraction(0)

    def enclosure(self) -> tuple[Fraction, Fraction]:
        """``[min, max]`` of the coefficients: an enclosure of the range of ``f`` on the box."""
        return Fraction(int(self.coeffs.min())) * self.scale, Fraction(
            int(self.coeffs.max())
        ) * self.scale

    def vertex_coefficients(self) -> Iterator[tuple[tuple[int, ...], int]]:
        """``(corner, integer coefficient)`` per vertex; ``f(vertex) = coefficient * scale``."""
        coeffs = self.coeffs
        for corner, idx in _corner_indices(coeffs.shape):
            yield corner, int(coeffs[idx])

    def vertex(self, corner: tuple[int, ...]) -> tuple[Fraction, ...]:
        """The vertex with the given corner bits."""
        return tuple(iv[c] for iv, c in zip(self.box, corner, strict=True))

    def vertices(self) -> Iterator[tuple[tuple[Fraction, ...], Fraction]]:
        """``(vertex, exact value of f there)`` for every vertex of the box."""
        for corner, c in self.vertex_coefficients():
            yield self.vertex(corner), Fraction(c) * self.scale

    def min_abs_vertex_value(self) -> Fraction:
        """The smallest ``|f|`` over the vertices (exact values at points of the box)."""
        return Fraction(min(abs(c) for _, c in self.vertex_coefficients())) * self.scale

    def split(self, axis: int, at: Fraction) -> tuple[Patch, Patch]:
        """The patches of ``[lo, at]`` and ``[at, hi]`` along ``axis`` (``lo < at < hi``)."""
        lo, hi = self.box[axis]
        if not lo < at < hi:
            raise ValueError("split point must lie strictly inside the interval")
        t = (at - lo) / (hi - lo)
        degree = self.coeffs.shape[axis] - 1
        left_m, right_m = _split_matrices(degree, t.numerator, t.denominator)
        scale = self.scale / Fraction(t.denominator) ** degree
        left_box = self.box[:axis] + ((lo, at),) + self.box[axis + 1 :]
        right_box = self.box[:axis] + ((at, hi),) + self.box[axis + 1 :]
        tf = float(t)
        rel_l = self.rel[:axis] + (self.rel[axis] * tf,) + self.rel[axis + 1 :]
        rel_r = self.rel[:axis] + (self.rel[axis] * (1.0 - tf),) + self.rel[axis + 1 :]
        return (
            Patch(left_box, _apply(left_m, self.coeffs, axis), scale, rel_l),
            Patch(right_box, _apply(right_m, self.coeffs, axis), scale, rel_r),
        )

    def split_cost(self, axis: int) -> int:
        """Coefficient multiplications of :meth:`split` along ``axis``."""
        return 2 * self.size * self.coeffs.shape[axis]

    def max_bits(self) -> int:
        """Bits of the largest coefficient."""
        return max(int(self.coeffs.max()).bit_length(), int(self.coeffs.min()).bit_length())


def make_patch(poly: Poly, box: Sequence[Interval]) -> Patch:
    """Bernstein coefficients of ``poly`` (over ``len(box)`` variables) on a nondegenerate box."""
    box = tuple(box)
    degrees = poly.degrees()
    if len(degrees) != len(box):
        raise ValueError("box and polynomial have different numbers of variables")
    terms = poly.terms()
    den = reduce(math.lcm, (c.denominator for c in terms.values()), 1)
    tensor = np.zeros(tuple(d + 1 for d in degrees), dtype=object)
    tensor[...] = 0
    for m, c in terms.items():
        tensor[m] = int(c * den)
    scale = Fraction(1, den)
    for axis, (d, (lo, hi)) in enumerate(zip(degrees, box, strict=True)):
        if hi <= lo:
            raise ValueError("make_patch needs lo < hi on every axis")
        lcd = math.lcm(lo.denominator, hi.denominator)
        a, b = int(lo * lcd), int((hi - lo) * lcd)
        matrix, divisor = _bernstein_matrix(d, a, b, lcd)
        tensor = _apply(matrix, tensor, axis)
        scale /= divisor
    return Patch(box, tensor, scale)


def range_enclosure(poly: Poly, box: Sequence[Interval]) -> tuple[Fraction, Fraction]:
    """An exact enclosure ``[lo, hi]`` of the values of ``poly`` on a box (degenerate axes allowed)."""
    fixed = {n: iv[0] for n, iv in zip(poly.names, box, strict=True) if iv[0] == iv[1]}
    sub = poly.substitute(fixed)
    free = [iv for n, iv in zip(poly.names, box, strict=True) if n not in fixed]
    if sub.is_constant():
        v = sub.constant_value()
        return v, v
    return make_patch(sub, free).enclosure()


__all__ = ["Patch", "make_patch", "range_enclosure"]
