"""Plot a factor's zero-set cover over the box (matplotlib, no pyplot state)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from zpml_symbolic.errors import InvalidArgumentError


def plot_cover(
    report: Any,
    index: int,
    *,
    ax: Any = None,
    path: str | Path | None = None,
    contour: bool = True,
    title: str | None = None,
) -> Any:
    """Draw factor ``index`` of a :class:`~zpml_symbolic.domain.DomainReport`: its cover boxes, witness and (optionally) a float contour of its zero set.

    The factor must have one or two free variables. The cover boxes are the certified part:
    the factor has no zero outside them. The contour line is a float illustration only.
    Returns the matplotlib ``Axes``; ``path`` also saves the figure (PNG/SVG by suffix).
    """
    if not 0 <= index < len(report.factors):
        raise InvalidArgumentError(f"no factor {index}; the report has {len(report.factors)}")
    fac = report.factors[index]
    if len(fac.variables) not in (1, 2):
        raise InvalidArgumentError(
            f"factor {index} ({fac.factor}) has {len(fac.variables)} free variables; "
            "the plot needs one or two (fix the others with degenerate box intervals)"
        )
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 4.5), dpi=120)
        ax = fig.add_subplot(1, 1, 1)
    names = fac.variables
    full = {**report.box, **report.parameters}
    xname = names[0]
    yname = names[1] if len(names) == 2 else None
    (x0, x1) = (float(v) for v in full[xname])
    (y0, y1) = (float(v) for v in full[yname]) if yname else (-0.5, 0.5)
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.5, ec="black", label="box"))
    for k, b in enumerate(fac.cover):
        bx0, bx1 = (float(v) for v in b[xname])
        by0, by1 = (float(v) for v in b[yname]) if yname else (y0, y1)
        ax.add_patch(
            Rectangle(
                (bx0, by0),
                max(bx1 - bx0, (x1 - x0) * 1e-3),
                max(by1 - by0, (y1 - y0) * 1e-3),
                fc="tab:red" if fac.verdict == "vanishes" else "tab:orange",
                ec="none",
                alpha=0.45,
                label=("zero-set cover" if fac.verdict == "vanishes" else "undecided")
                if k == 0
                else None,
            )
        )
    if contour and yname is not None:
        _contour(ax, fac, full, xname, yname, (x0, x1), (y0, y1))
    w = fac.witness
    if w is not None:
        pts = [p for p in (w.point, w.negative, w.positive) if p is not None]
        for p in pts:
            ax.plot(
                float(p[xname]),
                float(p[yname]) if yname else 0.0,
                "k*",
                ms=9,
                label="witness" if p is pts[0] else None,
            )
    pad_x, pad_y = 0.05 * (x1 - x0 or 1.0), 0.05 * (y1 - y0 or 1.0)
    ax.set_xlim(x0 - pad_x, x1 + pad_x)
    ax.set_ylim(y0 - pad_y, y1 + pad_y)
    ax.set_xlabel(xname)
    ax.set_ylabel(yname or "")
    ax.set_title(title or f"{fac.factor} = 0: {fac.verdict}")
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize="small", frameon=False
    )
    if path is not None:
        ax.figure.savefig(str(path), bbox_inches="tight")
    return ax


def _contour(
    ax: Any,
    fac: Any,
    full: dict[str, Any],
    xname: str,
    yname: str,
    xr: tuple[float, float],
    yr: tuple[float, float],
) -> None:
    xs = np.linspace(xr[0], xr[1], 301)
    ys = np.linspace(yr[0], yr[1], 301)
    X, Y = np.meshgrid(xs, ys)
    values = np.zeros_like(X)
    fixed = {n: float(iv[0] + iv[1]) / 2 for n, iv in full.items()}
    for monomial, c in fac.factor_terms:
        term = np.full_like(X, float(Fraction(c)))
        for name, e in zip(fac.generators, monomial, strict=True):
            if e:
                base = X if name == xname else Y if name == yname else fixed[name]
                term = term * base**e
        values += term
    if values.min() < 0 < values.max():
        ax.contour(X, Y, values, levels=[0.0], colors="tab:blue", linewidths=1.0)
        ax.plot([], [], color="tab:blue", lw=1.0, label="f = 0 (float contour, illustration)")


__all__ = ["plot_cover"]
