"""Calibrating ``tau_infer`` from held-out denominators: sweep, report, recommendation."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zpml_core.config import check_threshold

from ..errors import CalibrationError, InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from ..logging import dumps_strict, to_jsonable

__all__ = [
    "TauInferSweep",
    "TauRecommendation",
    "recommend_tau_infer",
    "tau_infer_sweep_from_q_abs",
    "write_tau_infer_sweep",
]

_TINY = 5e-324  # smallest positive float64: "q < _TINY" is "q == 0" for q >= 0

_RATE_FIELDS = (
    "bottom_rate",
    "coverage",
    "false_bottom_rate",
    "true_bottom_rate",
    "unsafe_accept_rate",
)
_COUNT_FIELDS = ("n_bottom", "n_false_bottom", "n_unsafe_accept")


@dataclasses.dataclass(frozen=True)
class TauInferSweep:
    """Bottom/accept trade-off of candidate ``tau_infer`` values on held-out data.

    A sample is bottom at ``tau`` when ``|Q|`` is non-finite, zero, or below
    ``tau`` (the strict-inference rule). Per ``tau`` (tuples aligned with ``taus``):

    * ``bottom_rate`` / ``coverage``: bottom / accepted fraction of all samples;
    * ``false_bottom_rate``: bottom fraction of *in-range* samples (lost coverage);
    * ``true_bottom_rate``: bottom fraction of out-of-range samples;
    * ``unsafe_accept_rate``: accepted fraction of out-of-range samples.

    A rate over an empty class is ``None``.
    """

    taus: tuple[float, ...]
    n_total: int
    n_in_range: int
    n_out_of_range: int
    n_nonfinite: int
    n_bottom: tuple[int, ...]
    n_false_bottom: tuple[int, ...]
    n_unsafe_accept: tuple[int, ...]
    bottom_rate: tuple[float | None, ...]
    coverage: tuple[float | None, ...]
    false_bottom_rate: tuple[float | None, ...]
    true_bottom_rate: tuple[float | None, ...]
    unsafe_accept_rate: tuple[float | None, ...]

    def rows(self) -> list[dict[str, Any]]:
        """One dictionary per ``tau``."""
        return [
            {"tau_infer": tau, **{f: getattr(self, f)[i] for f in (*_COUNT_FIELDS, *_RATE_FIELDS)}}
            for i, tau in enumerate(self.taus)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (rates ``None`` where undefined)."""
        return {
            "n_total": self.n_total,
            "n_in_range": self.n_in_range,
            "n_out_of_range": self.n_out_of_range,
            "n_nonfinite": self.n_nonfinite,
            "rows": self.rows(),
        }


@dataclasses.dataclass(frozen=True)
class TauRecommendation:
    """Result of :func:`recommend_tau_infer`."""

    tau_infer: float
    max_false_bottom_rate: float
    false_bottom_rate: float
    unsafe_accept_rate: float | None
    coverage: float | None
    reason: str
    #: the certified ceiling that capped the recommendation (``None``: not capped)
    certified_ceiling: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, Sequence) and not isinstance(x, str | bytes):
        return np.asarray(x)
    raise UnsupportedInputError(
        f"{name} must be an array, tensor or sequence, got {type(x).__name__}"
    )


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def tau_infer_sweep_from_q_abs(
    *, q_abs: Any, is_in_range: Any, taus: Sequence[float]
) -> TauInferSweep:
    """Sweep candidate ``tau_infer`` values over held-out ``|Q|``.

    Args:
        q_abs: ``|Q|`` per held-out sample (any shape; flattened). NaN/Inf count as bottom.
        is_in_range: boolean per sample: ``True`` when the sample should be accepted
            (a finite, in-range target), ``False`` when it should be bottom.
        taus: candidate thresholds (finite, ``>= 0``), reported in the given order.

    Raises:
        InvalidConfigError: a bad threshold or negative ``|Q|`` values.
        ShapeMismatchError: ``q_abs`` and ``is_in_range`` differ in size.
    """
    q = _to_numpy(q_abs, "q_abs")
    if q.dtype.name == "bfloat16":
        q = q.astype(np.float32)
    if not (np.issubdtype(q.dtype, np.floating) or np.issubdtype(q.dtype, np.integer)):
        raise UnsupportedInputError(f"q_abs must be numeric, got dtype {q.dtype}")
    q = q.astype(np.float64).reshape(-1)  # exact for every supported float dtype
    r = _to_numpy(is_in_range, "is_in_range").reshape(-1)
    if r.dtype != np.bool_:
        if np.issubdtype(r.dtype, np.integer) and np.isin(r, (0, 1)).all():
            r = r.astype(bool)
        else:
            raise UnsupportedInputError(
                f"is_in_range must be boolean (or 0/1 integers), got dtype {r.dtype}"
            )
    if r.size != q.size:
        raise ShapeMismatchError(f"q_abs has {q.size} samples but is_in_range has {r.size}")
    with np.errstate(invalid="ignore"):
        if np.any(q < 0):
            raise InvalidConfigError(
                "q_abs must hold absolute denominators |Q| >= 0; pass np.abs(Q), not Q"
            )
    if isinstance(taus, str | bytes) or not isinstance(taus, Sequence) or len(taus) == 0:
        raise InvalidConfigError("taus must be a non-empty sequence of thresholds")
    tau_list = tuple(check_threshold(t, f"taus[{i}]") for i, t in enumerate(taus))

    finite = np.isfinite(q)
    classes = {}
    for label, sel in (("in", r), ("out", ~r)):
        qs = np.sort(q[sel & finite])
        classes[label] = (qs, int((sel & ~finite).sum()), int(sel.sum()))
    n_in, n_out = classes["in"][2], classes["out"][2]
    n_false, n_unsafe, n_bottom = [], [], []
    for tau in tau_list:
        t = tau if tau > 0 else _TINY
        bottoms = {
            k: int(np.searchsorted(qs, t, side="left")) + n_nonfinite
            for k, (qs, n_nonfinite, _) in classes.items()
        }
        n_false.append(bottoms["in"])
        n_unsafe.append(n_out - bottoms["out"])
        n_bottom.append(bottoms["in"] + bottoms["out"])
    n = int(q.size)
    return TauInferSweep(
        taus=tau_list,
        n_total=n,
        n_in_range=n_in,
        n_out_of_range=n_out,
        n_nonfinite=int((~finite).sum()),
        n_bottom=tuple(n_bottom),
        n_false_bottom=tuple(n_false),
        n_unsafe_accept=tuple(n_unsafe),
        bottom_rate=tuple(_rate(b, n) for b in n_bottom),
        coverage=tuple(_rate(n - b, n) for b in n_bottom),
        false_bottom_rate=tuple(_rate(f, n_in) for f in n_false),
        true_bottom_rate=tuple(_rate(n_out - u, n_out) for u in n_unsafe),
        unsafe_accept_rate=tuple(_rate(u, n_out) for u in n_unsafe),
    )


def recommend_tau_infer(
    curves: TauInferSweep, *, max_false_bottom_rate: float, ceiling: Any = None
) -> TauRecommendation:
    """Largest swept ``tau_infer`` whose false-bottom rate on in-range data is ``<= max_false_bottom_rate``.

    The largest admissible threshold rejects the most near-singular samples
    (unsafe accepts never increase with ``tau``) within the stated coverage loss.

    ``ceiling`` caps the recommendation: a :class:`~zpml_runtime.metrics.CertifiedTauCeiling`
    (from :func:`~zpml_runtime.metrics.certified_tau_ceiling` on a region declared safe, so
    the recommended threshold provably flags no point of it) or a plain number. Only swept
    thresholds ``<= ceiling`` are then candidates (sweep the ceiling itself to be offered it).

    Raises:
        CalibrationError: no in-range samples, or no swept ``tau`` meets the target
            (below the ceiling, when one is given).
    """
    cap = _ceiling_value(ceiling)
    target = check_threshold(max_false_bottom_rate, "max_false_bottom_rate")
    if target > 1.0:
        raise InvalidConfigError(f"max_false_bottom_rate={target} is a rate and must lie in [0, 1]")
    if not isinstance(curves, TauInferSweep):
        raise UnsupportedInputError(f"curves must be a TauInferSweep, got {type(curves).__name__}")
    if curves.n_in_range == 0:
        raise CalibrationError(
            "no in-range samples in the sweep: the false-bottom rate is undefined; "
            "calibrate on held-out data that contains accepted (in-range) samples"
        )
    # with in-range samples every rate is defined (None only marks a rate over zero samples)
    rates = [f for f in curves.false_bottom_rate if f is not None]
    if len(rates) != len(curves.taus):
        raise CalibrationError(
            f"curves.false_bottom_rate has {len(rates)} defined rates for {len(curves.taus)} "
            f"swept thresholds although n_in_range={curves.n_in_range}: not a sweep result"
        )
    ok = [i for i, f in enumerate(rates) if f <= target]
    if not ok:
        best = min(range(len(curves.taus)), key=lambda i: rates[i])
        raise CalibrationError(
            f"no swept tau_infer keeps the false-bottom rate <= {target}: the smallest is "
            f"{rates[best]:.4g} at tau_infer={curves.taus[best]!r} "
            f"({curves.n_false_bottom[best]} of {curves.n_in_range} in-range samples are bottom); "
            "sweep smaller thresholds or check the in-range labels (zeros and NaN/Inf are always bottom)"
        )
    reason_cap = ""
    if cap is not None:
        capped = [i for i in ok if curves.taus[i] <= cap]
        if not capped:
            raise CalibrationError(
                f"no swept tau_infer that keeps the false-bottom rate <= {target} is at or below "
                f"the certified ceiling {cap!r} (the largest threshold proved to flag no point of "
                f"the safe region; the smallest admissible swept one is "
                f"{min(curves.taus[i] for i in ok)!r}): add {cap!r} to the swept thresholds"
            )
        if len(capped) < len(ok):
            reason_cap = f"; capped by the certified ceiling {cap:.6g} of the safe region"
        ok = capped
    i = max(ok, key=lambda j: (curves.taus[j], -j))
    return TauRecommendation(
        tau_infer=curves.taus[i],
        max_false_bottom_rate=target,
        false_bottom_rate=rates[i],
        unsafe_accept_rate=curves.unsafe_accept_rate[i],
        coverage=curves.coverage[i],
        reason=(
            f"largest of {len(curves.taus)} swept thresholds with false-bottom rate "
            f"{rates[i]:.4g} <= {target} on {curves.n_in_range} in-range samples{reason_cap}"
        ),
        certified_ceiling=cap,
    )


def _ceiling_value(ceiling: Any) -> float | None:
    """The cap of :func:`recommend_tau_infer`: ``None``, a number, or a certified ceiling."""
    if ceiling is None:
        return None
    value = getattr(ceiling, "tau_infer", ceiling)
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise UnsupportedInputError(
            "ceiling must be a CertifiedTauCeiling (certified_tau_ceiling(...)) or a number, got "
            f"{type(ceiling).__name__}"
        )
    return check_threshold(float(value), "ceiling")


def write_tau_infer_sweep(
    out_dir: str | os.PathLike[str],
    curves: TauInferSweep,
    *,
    provenance: Mapping[str, Any] | None = None,
    plot_format: str = "svg",
    max_false_bottom_rate: float | None = None,
) -> dict[str, Path]:
    """Write ``tau_infer_sweep.json`` (strict JSON), ``.md`` (table) and a plot.

    Args:
        out_dir: directory (created if missing).
        curves: output of :func:`tau_infer_sweep_from_q_abs`.
        provenance: JSON-ready description of the data (split, model, commit, ...).
        plot_format: ``"svg"`` (default) or ``"png"``.
        max_false_bottom_rate: if given, the recommendation of :func:`recommend_tau_infer`
            (or the reason it failed) is included.

    Returns:
        ``{"json": path, "markdown": path, "plot": path}``.
    """
    if not isinstance(curves, TauInferSweep):
        raise UnsupportedInputError(f"curves must be a TauInferSweep, got {type(curves).__name__}")
    if plot_format not in ("svg", "png"):
        raise InvalidConfigError(f"plot_format must be 'svg' or 'png', got {plot_format!r}")
    if provenance is not None and not isinstance(provenance, Mapping):
        raise UnsupportedInputError(
            f"provenance must be a mapping, got {type(provenance).__name__}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recommendation: dict[str, Any] | None = None
    if max_false_bottom_rate is not None:
        try:
            recommendation = recommend_tau_infer(
                curves, max_false_bottom_rate=max_false_bottom_rate
            ).to_dict()
        except CalibrationError as exc:
            recommendation = {"max_false_bottom_rate": max_false_bottom_rate, "error": str(exc)}
    payload = {
        "schema": "zpml.tau_infer_sweep/v1",
        "provenance": to_jsonable(dict(provenance or {})),
        **curves.to_dict(),
        "recommendation": recommendation,
    }
    paths = {
        "json": out / "tau_infer_sweep.json",
        "markdown": out / "tau_infer_sweep.md",
        "plot": out / f"tau_infer_sweep.{plot_format}",
    }
    paths["json"].write_text(dumps_strict(payload, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(
        _markdown(curves, payload["provenance"], recommendation), encoding="utf-8"
    )
    _plot(curves, paths["plot"], plot_format)
    return paths


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _markdown(
    curves: TauInferSweep, provenance: dict[str, Any], recommendation: dict[str, Any] | None
) -> str:
    lines = [
        "# tau_infer sweep",
        "",
        f"Samples: {curves.n_total} ({curves.n_in_range} in range, {curves.n_out_of_range} out of range, "
        f"{curves.n_nonfinite} non-finite |Q|, always bottom).",
        "",
    ]
    if provenance:
        lines += ["Provenance: " + ", ".join(f"`{k}`={v!r}" for k, v in provenance.items()), ""]
    lines += [
        "| tau_infer | bottom rate | coverage | false-bottom rate (in range) | unsafe-accept rate (out of range) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in curves.rows():
        lines.append(
            f"| {row['tau_infer']:.3g} | {_fmt(row['bottom_rate'])} | {_fmt(row['coverage'])} | "
            f"{_fmt(row['false_bottom_rate'])} | {_fmt(row['unsafe_accept_rate'])} |"
        )
    lines += ["", "n/a: the class is empty, the rate is undefined.", ""]
    if recommendation is not None:
        if "error" in recommendation:
            lines += [f"Recommendation: none ({recommendation['error']})", ""]
        else:
            lines += [
                f"Recommendation: tau_infer = {recommendation['tau_infer']:.6g} ({recommendation['reason']}).",
                "",
            ]
    return "\n".join(lines)


def _plot(curves: TauInferSweep, path: Path, fmt: str) -> None:
    import matplotlib
    from matplotlib.figure import Figure

    def series(values: tuple[float | None, ...]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    taus = np.array(curves.taus, dtype=float)
    order = np.argsort(taus, kind="stable")
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for name, label in (
        ("false_bottom_rate", "false-bottom rate (in range)"),
        ("unsafe_accept_rate", "unsafe-accept rate (out of range)"),
        ("bottom_rate", "bottom rate (all)"),
    ):
        ax.plot(taus[order], series(getattr(curves, name))[order], marker="o", label=label)
    positive = taus[taus > 0]
    if positive.size and (taus == 0).any():
        ax.set_xscale("symlog", linthresh=float(positive.min()))
    elif positive.size == taus.size:
        ax.set_xscale("log")
    ax.set_xlabel("tau_infer")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("tau_infer trade-off")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    with matplotlib.rc_context({"svg.hashsalt": "zpml-tau-sweep"}):
        metadata = {"Date": None} if fmt == "svg" else {}
        fig.savefig(path, format=fmt, metadata=metadata)
