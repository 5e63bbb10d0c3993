"""Branch and bound over a box: certified signs, exact probes, sign changes.

:class:`Subdivision` keeps the box split into leaves. A leaf whose Bernstein
coefficients all have one strict sign is *certified* (the polynomial has that
sign on the whole closed leaf); the others are *undecided*. Every leaf's
vertices and one probe point per split (the simplest rational in the leaf,
which finds planted or "nice" rational zeros) are evaluated exactly: an exact
zero, or two exact points of opposite signs, proves a zero in the box (the box
is convex, so the segment between the two points lies in it). Splits happen at
the simplest rational in the middle half of the widest side (relative to the
whole box), so split planes also pass through simple rationals.

Work is metered with the flattening :class:`~zpml_symbolic.flatten.budget.BudgetMeter`
(one unit per coefficient multiplication, plus one per exact probe term); the
loop stops *before* an operation it cannot afford, so no leaf is ever lost and
the undecided leaves always cover every zero not yet excluded.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from fractions import Fraction

from zpml_symbolic.domain.bounds import Patch, make_patch
from zpml_symbolic.domain.box import Interval, simplest_rational
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.errors import BudgetExceededError
from zpml_symbolic.flatten.budget import BudgetMeter

Point = tuple[Fraction, ...]

#: Work units charged per split on top of its arithmetic: one unit is about a microsecond
#: (a split of a small patch costs ~0.4 ms of Python bookkeeping).
SPLIT_OVERHEAD = 400


@dataclass
class SignChange:
    """Two exact points of the box where the polynomial has opposite strict signs."""

    negative: Point
    negative_value: Fraction
    positive: Point
    positive_value: Fraction


class Subdivision:
    """Exact branch and bound for one polynomial over one nondegenerate box."""

    def __init__(self, poly: Poly, box: tuple[Interval, ...], meter: BudgetMeter) -> None:
        self.poly = poly
        self.box = box
        self.meter = meter
        self.widths = tuple(hi - lo for lo, hi in box)
        self.undecided: list[tuple[float, int, Patch]] = []  # heap, widest first
        self.certified: list[tuple[Fraction, int, Patch]] = []  # heap, smallest bound first
        self._count = itertools.count()
        self.zero: Point | None = None
        self.negative: tuple[Point, Fraction] | None = None
        self.positive: tuple[Point, Fraction] | None = None
        self.min_seen: Fraction | None = None
        self.boxes = 0
        self.exhausted = ""
        self._seen: set[Point] = set()
        self.started = False

    # ------------------------------------------------------------------ budget
    def _afford(self, cost: int, limit: int) -> bool:
        """Spend ``cost`` work units if the work limit and the clock allow; never raises."""
        if self.meter.work + cost > min(limit, self.meter.budget.max_work):
            self.exhausted = "max_work"
            return False
        try:
            self.meter.check_time()
        except BudgetExceededError:
            self.exhausted = "max_seconds"
            return False
        self.meter.work += cost
        return True

    def start(self, limit: int) -> bool:
        """Build the root patch (False if the budget cannot pay for it)."""
        if self.started:
            return True
        degrees = self.poly.degrees()
        size = 1
        for d in degrees:
            size *= d + 1
        if not self._afford(size * (sum(degrees) + 1) + self.poly.num_terms(), limit):
            return False
        self._push(make_patch(self.poly, self.box))
        self.started = True
        return True

    # ------------------------------------------------------------------ state
    @property
    def sign_change(self) -> SignChange | None:
        """A certified sign change, if two points of opposite signs were seen."""
        if self.negative is None or self.positive is None:
            return None
        return SignChange(self.negative[0], self.negative[1], self.positive[0], self.positive[1])

    @property
    def vanishes(self) -> bool:
        """True once a zero is proved (exact zero or sign change)."""
        return self.zero is not None or (self.negative is not None and self.positive is not None)

    @property
    def nonzero(self) -> bool:
        """True once every leaf is certified (no zero in the closed box)."""
        return self.started and not self.undecided and not self.vanishes

    def lower_bound(self) -> Fraction | None:
        """Certified lower bound of ``|f|`` on the box (when :attr:`nonzero`)."""
        if not self.nonzero:
            return None
        return self.certified[0][0] if self.certified else None

    def undecided_boxes(self) -> list[tuple[Interval, ...]]:
        """The undecided leaves (they cover every zero not yet excluded); the whole box before
        the root patch could be built."""
        if not self.started:
            return [self.box]
        return [p.box for _, _, p in self.undecided]

    def max_relative_width(self) -> float:
        """Relative size of the widest undecided leaf (0 if none)."""
        return -self.undecided[0][0] if self.undecided else 0.0

    # --------------------------------------------------------------- internals
    def _see(self, point: Point, value: Fraction) -> None:
        if value == 0:
            if self.zero is None:
                self.zero = point
        elif value > 0:
            if self.positive is None:
                self.positive = (point, value)
        elif self.negative is None:
            self.negative = (point, value)
        a = abs(value)
        if self.min_seen is None or a < self.min_seen:
            self.min_seen = a

    def _rel(self, patch: Patch) -> float:
        return max(patch.rel)

    def _push(self, patch: Patch) -> None:
        if self.zero is None or self.positive is None or self.negative is None:
            for corner, c in patch.vertex_coefficients():
                if c == 0:
                    if self.zero is None:
                        self.zero = patch.vertex(corner)
                elif c > 0:
                    if self.positive is None:
                        self.positive = (patch.vertex(corner), Fraction(c) * patch.scale)
                elif self.negative is None:
                    self.negative = (patch.vertex(corner), Fraction(c) * patch.scale)
        if patch.sign() != 0:
            low = patch.min_abs_vertex_value()
            if self.min_seen is None or low < self.min_seen:
                self.min_seen = low
            heapq.heappush(self.certified, (patch.abs_lower_bound(), next(self._count), patch))
        else:
            heapq.heappush(self.undecided, (-self._rel(patch), next(self._count), patch))

    def _axis(self, patch: Patch) -> int:
        rel = patch.rel
        return max(range(len(rel)), key=lambda i: rel[i])

    def _split(self, patch: Patch, axis: int) -> tuple[Patch, Patch]:
        lo, hi = patch.box[axis]
        quarter = (hi - lo) / 4
        return patch.split(axis, simplest_rational(lo + quarter, hi - quarter))

    def _cost(self, patch: Patch, axis: int) -> int:
        bits = patch.max_bits()
        weight = 1 + bits // 4096
        arithmetic = patch.split_cost(axis) + self.poly.num_terms() * len(self.box)
        return (SPLIT_OVERHEAD + arithmetic // 2) * weight

    # ------------------------------------------------------------------- loops
    def run(
        self,
        *,
        limit: int,
        until_decided: bool = True,
        resolution: float | None = None,
        max_leaves: int | None = None,
    ) -> None:
        """Split undecided leaves (widest first) until decided, the budget, or the resolution.

        ``until_decided``: stop as soon as a zero is proved. ``resolution``: stop when every
        undecided leaf is at most this wide relative to the box. ``max_leaves``: stop when there
        are this many undecided leaves.
        """
        if not self.start(limit):
            return
        while self.undecided:
            if until_decided and self.vanishes:
                return
            if resolution is not None and self.max_relative_width() <= resolution:
                return
            if max_leaves is not None and len(self.undecided) >= max_leaves:
                return
            patch = self.undecided[0][2]
            axis = self._axis(patch)
            if not self._afford(self._cost(patch, axis), limit):
                return
            heapq.heappop(self.undecided)
            self.boxes += 1
            probe = tuple(simplest_rational(lo, hi) for lo, hi in patch.box)
            if probe not in self._seen:
                self._seen.add(probe)
                self._see(probe, self.poly(probe))
            for child in self._split(patch, axis):
                self._push(child)

    def tighten(self, *, ratio: Fraction, limit: int) -> None:
        """Refine certified leaves until ``min_seen <= ratio * lower_bound`` (or the budget)."""
        while self.nonzero and self.certified and self.min_seen is not None:
            bound, _, patch = self.certified[0]
            if self.min_seen <= ratio * bound:
                return
            axis = self._axis(patch)
            if not self._afford(self._cost(patch, axis), limit):
                return
            heapq.heappop(self.certified)
            self.boxes += 1
            for child in self._split(patch, axis):
                self._push(child)


def refine_sign_change(
    poly: Poly,
    change: SignChange,
    widths: tuple[Fraction, ...],
    resolution: Fraction,
    meter: BudgetMeter,
    max_steps: int = 200,
) -> tuple[Point | None, SignChange]:
    """Shrink a sign change along its segment until each side is within ``resolution * width``.

    Returns ``(exact_zero_or_None, sign_change)``; bisects at simple rationals of the segment.
    """
    neg, pos = change.negative, change.positive
    vneg, vpos = change.negative_value, change.positive_value
    for _ in range(max_steps):
        if all(abs(a - b) <= resolution * w for a, b, w in zip(neg, pos, widths, strict=True)):
            break
        try:
            meter.check_time()
        except BudgetExceededError:
            break
        # split at the simplest rational of the middle half of the longest coordinate
        j = max(range(len(neg)), key=lambda i: abs(pos[i] - neg[i]) / widths[i])
        lo, hi = sorted((neg[j], pos[j]))
        quarter = (hi - lo) / 4
        s = (simplest_rational(lo + quarter, hi - quarter) - neg[j]) / (pos[j] - neg[j])
        mid = tuple(a + (b - a) * s for a, b in zip(neg, pos, strict=True))
        value = poly(mid)
        meter.work += poly.num_terms() * max(len(mid), 1)
        if value == 0:
            return mid, SignChange(neg, vneg, pos, vpos)
        if value < 0:
            neg, vneg = mid, value
        else:
            pos, vpos = mid, value
    return None, SignChange(neg, vneg, pos, vpos)


__all__ = ["Point", "SignChange", "Subdivision", "refine_sign_change"]
