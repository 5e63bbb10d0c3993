"""The internal result of deciding one polynomial on one box, and the shared run settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from zpml_symbolic.domain.box import Interval
from zpml_symbolic.domain.report import Verdict, Witness
from zpml_symbolic.flatten.budget import BudgetMeter


@dataclass
class Outcome:
    """``status`` with its certificate, for the polynomial and box it was computed on.

    ``lower_bound``/``min_found`` bound ``|f|`` (the polynomial as given), witness points and
    cover boxes are over the names of the box it was decided on.
    """

    status: Verdict
    lower_bound: Fraction | None = None
    min_found: Fraction | None = None
    witness: Witness | None = None
    cover: list[dict[str, Interval]] = field(default_factory=list)
    cover_complete: bool = True
    method: str = ""
    reason: str = ""
    boxes: int = 0


@dataclass
class Run:
    """Settings and budget shared by every step of one factor's decision."""

    meter: BudgetMeter
    resolution: Fraction
    tightness: Fraction
    max_cover_boxes: int
    memo: dict[Any, Outcome] = field(default_factory=dict)

    @property
    def max_work(self) -> int:
        """The work budget."""
        return self.meter.budget.max_work

    def share(self, fraction: float) -> int:
        """A work limit leaving ``1 - fraction`` of what remains for later steps."""
        remaining = max(self.max_work - self.meter.work, 0)
        return self.meter.work + int(remaining * fraction)


__all__ = ["Outcome", "Run"]
