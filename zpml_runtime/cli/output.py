"""Text output of the ``zpml`` command: tables, exact numbers, provenance, progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = ["fraction_text", "progress", "sources", "table", "warn"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def fraction_text(v: Fraction) -> str:
    """An exact rational as text; very long ones only approximately (with their size)."""
    try:
        approx = f"{float(v):.6g}"
    except OverflowError:
        approx = "-inf" if v < 0 else "inf"
    digits = max(len(str(abs(v.numerator))), len(str(v.denominator)))
    if digits > 40:
        return f"~{approx} (exact: a rational with {digits}-digit terms)"
    return str(v) if v.denominator == 1 else f"{v} (~{approx})"


def sources(occurrences: Sequence[dict[str, Any]]) -> str:
    """``source @ path; ...`` of a factor's occurrences."""
    return "; ".join(f"{o.get('source')} @ {o.get('path')}" for o in occurrences) or "-"


def warn(message: str) -> None:
    """One ``zpml: warning:`` line on stderr."""
    print(f"zpml: warning: {message}", file=sys.stderr)


def progress(total: int, *, enabled: bool, unit: str = "row") -> Any:
    """A tqdm progress bar on stderr (a no-op object when disabled)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        """Ignore progress."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
