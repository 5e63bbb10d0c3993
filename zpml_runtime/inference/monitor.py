"""``StrictInferenceMonitor``: production rates, denominator minima and acceptance drift."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from zpml_core.config import check_threshold

from ..errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from ..logging import to_jsonable

__all__ = ["StrictInferenceMonitor"]

_RATE_KEYS = (
    "bottom_rate",
    "gap_rate",
    "acceptance_rate",
    "fault_rate",
    "semantic_bottom_rate",
    "mixed_rate",
    "route_rate",
    "fallback_rate",
    "numerical_hazard_rate",
)
#: log10 |Q| histogram edges (decades 1e-12 .. 1e4) unless given.
DEFAULT_Q_EDGES: tuple[float, ...] = tuple(10.0**e for e in range(-12, 5))


def _as_numpy(x: Any, name: str, *, boolean: bool) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x
        x = x.numpy()
    elif not isinstance(x, np.ndarray):
        raise UnsupportedInputError(
            f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}"
        )
    if boolean and x.dtype != np.bool_:
        raise UnsupportedInputError(f"{name} must be a boolean mask, got dtype {x.dtype}")
    if not boolean and x.dtype.name == "bfloat16":
        x = x.astype(np.float32)
    return x


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


class StrictInferenceMonitor:
    """Aggregate strict-inference masks over batches and watch acceptance drift.

    Rates are over mask *entries* (pass per-sample masks, e.g. ``bottom.any(-1)``,
    to monitor samples); ``route_rate`` is over the rows given as ``route_mask``.
    A rate whose inputs were never provided is ``None``, never a made-up 0.

    Drift: after every batch the acceptance rate of the recent window (last
    ``window_size`` batches) is compared with ``baseline["acceptance_rate"]``
    (calibration/validation rates), and the batch's acceptance rate with the
    window before it. A difference above ``acceptance_rate_drift_threshold``
    is recorded as an alert and sent to ``event_logger``. Memory is bounded:
    ``window_size`` pairs, ``max_batch_summaries`` summaries and ``max_alerts`` alerts.

    Args:
        bundle_id: identifier of the deployed bundle, stamped on every event.
        event_logger: object with ``.log(dict)`` (e.g. ``JsonlLogger``) or a callable.
        acceptance_rate_drift_threshold: absolute acceptance-rate difference that alerts.
        baseline: calibration rates, e.g. ``{"acceptance_rate": 0.98, "bottom_rate": 0.02}``.
        numerical_hazard_threshold: with ``q_abs``, counts finite ``|Q|`` below it as hazards.
        log_batches: also log one ``strict_inference_batch`` event per update.
    """

    def __init__(
        self,
        *,
        bundle_id: str,
        event_logger: Any = None,
        acceptance_rate_drift_threshold: float = 0.1,
        baseline: Mapping[str, float] | None = None,
        window_size: int = 20,
        max_batch_summaries: int = 1000,
        max_alerts: int = 100,
        numerical_hazard_threshold: float | None = None,
        q_abs_edges: Sequence[float] = DEFAULT_Q_EDGES,
        log_batches: bool = False,
    ) -> None:
        if not isinstance(bundle_id, str) or not bundle_id:
            raise InvalidConfigError(f"bundle_id must be a non-empty string, got {bundle_id!r}")
        self.threshold = check_threshold(
            acceptance_rate_drift_threshold, "acceptance_rate_drift_threshold"
        )
        for name, value in (
            ("window_size", window_size),
            ("max_batch_summaries", max_batch_summaries),
            ("max_alerts", max_alerts),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigError(f"{name} must be a positive integer, got {value!r}")
        if event_logger is not None and not (
            callable(getattr(event_logger, "log", None)) or callable(event_logger)
        ):
            raise UnsupportedInputError(
                f"event_logger must have a .log(event) method or be callable, got {type(event_logger).__name__}"
            )
        edges = [check_threshold(e, "q_abs_edges") for e in q_abs_edges]
        if (
            not edges
            or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
            or edges[0] <= 0
        ):
            raise InvalidConfigError(
                "q_abs_edges must be a non-empty, strictly increasing list of positive numbers"
            )
        self.bundle_id = bundle_id
        self.event_logger = event_logger
        self.baseline = self._check_baseline(baseline)
        self.hazard_threshold = (
            None
            if numerical_hazard_threshold is None
            else check_threshold(numerical_hazard_threshold, "numerical_hazard_threshold")
        )
        self.q_abs_edges = tuple(edges)
        self.log_batches = log_batches
        self._window_size = window_size
        self._max_summaries = max_batch_summaries
        self._max_alerts = max_alerts
        self._lock = threading.Lock()
        self.reset()

    @staticmethod
    def _check_baseline(baseline: Mapping[str, float] | None) -> dict[str, float]:
        if baseline is None:
            return {}
        out = {}
        for key, value in baseline.items():
            if key not in _RATE_KEYS:
                raise InvalidConfigError(
                    f"unknown baseline rate {key!r}; expected one of {_RATE_KEYS}"
                )
            if value is None:
                continue
            v = check_threshold(value, f"baseline[{key!r}]")
            if v > 1.0:
                raise InvalidConfigError(f"baseline[{key!r}]={v} is a rate and must lie in [0, 1]")
            out[key] = v
        return out

    def reset(self) -> None:
        """Forget all counts, windows, summaries and alerts (keeps the baseline)."""
        with self._lock:
            self._counts = dict.fromkeys(
                (
                    "entries",
                    "bottom",
                    "gap",
                    "gap_entries",
                    "fault",
                    "semantic",
                    "mixed",
                    "provenance_entries",
                    "route_rows",
                    "routed",
                    "hazard_entries",
                    "hazard",
                    "q_entries",
                    "q_nonfinite",
                    "q_zero",
                ),
                0,
            )
            self._n_batches = 0
            self._q_min: float | None = None
            self._q_min_accepted: float | None = None
            self._q_hist = np.zeros(len(self.q_abs_edges) + 1, dtype=np.int64)
            self._window: deque[tuple[int, int]] = deque(maxlen=self._window_size)
            self._summaries: deque[dict[str, Any]] = deque(maxlen=self._max_summaries)
            self._alerts: deque[dict[str, Any]] = deque(maxlen=self._max_alerts)
            self._last_drift: dict[str, Any] = {}

    # ------------------------------------------------------------------ update

    def update(
        self,
        bottom_mask: Any,
        gap_mask: Any = None,
        *,
        fault_mask: Any = None,
        semantic_bottom_mask: Any = None,
        route_mask: Any = None,
        q_abs: Any = None,
        numerical_hazard_mask: Any = None,
    ) -> dict[str, Any]:
        """Add one batch; returns its JSON-ready summary.

        ``bottom_mask`` may also be a strict-inference result, whose gap and
        provenance masks are then used. ``q_abs`` (``|Q|``, same number of entries
        as the masks, or one per row) feeds the denominator minima and histogram.
        """
        if hasattr(bottom_mask, "bottom_mask") and hasattr(bottom_mask, "gap_mask"):
            result = bottom_mask
            bottom_mask, gap_mask = (
                result.bottom_mask,
                result.gap_mask if gap_mask is None else gap_mask,
            )
            fault_mask = getattr(result, "fault_mask", None) if fault_mask is None else fault_mask
            if semantic_bottom_mask is None:
                semantic_bottom_mask = getattr(result, "semantic_bottom_mask", None)
        bottom = _as_numpy(bottom_mask, "bottom_mask", boolean=True)
        n = bottom.size
        masks = {}
        for name, m in (
            ("gap_mask", gap_mask),
            ("fault_mask", fault_mask),
            ("semantic_bottom_mask", semantic_bottom_mask),
            ("numerical_hazard_mask", numerical_hazard_mask),
        ):
            if m is not None:
                arr = _as_numpy(m, name, boolean=True)
                if arr.size != n:
                    raise ShapeMismatchError(
                        f"{name} has {arr.size} entries but bottom_mask has {n}"
                    )
                masks[name] = arr.reshape(-1)
        bottom = bottom.reshape(-1)
        route = (
            None
            if route_mask is None
            else _as_numpy(route_mask, "route_mask", boolean=True).reshape(-1)
        )
        q = None if q_abs is None else self._q_values(q_abs, bottom)
        return self._record(bottom, masks, route, q)

    @staticmethod
    def _q_values(q_abs: Any, bottom: np.ndarray) -> np.ndarray:
        q = _as_numpy(q_abs, "q_abs", boolean=False).astype(np.float64, copy=False).reshape(-1)
        if q.size != bottom.size and (q.size == 0 or bottom.size % q.size):
            raise ShapeMismatchError(
                f"q_abs has {q.size} entries; expected {bottom.size} (one per mask entry) or a divisor of it (one per row)"
            )
        with np.errstate(invalid="ignore"):
            if np.any(q < 0):
                raise InvalidConfigError(
                    "q_abs must hold absolute values |Q| (found negative entries)"
                )
        return np.repeat(q, bottom.size // q.size) if q.size != bottom.size else q

    def _record(
        self,
        bottom: np.ndarray,
        masks: dict[str, np.ndarray],
        route: np.ndarray | None,
        q: np.ndarray | None,
    ) -> dict[str, Any]:
        n = int(bottom.size)
        n_bottom = int(bottom.sum())
        batch: dict[str, Any] = {"n": n, "bottom": n_bottom, "accepted": n - n_bottom}
        if "gap_mask" in masks:
            batch["gap"] = int(masks["gap_mask"].sum())
        if "fault_mask" in masks and "semantic_bottom_mask" in masks:
            f, s = masks["fault_mask"], masks["semantic_bottom_mask"]
            batch.update(fault=int(f.sum()), semantic=int(s.sum()), mixed=int((f & s).sum()))
        if route is not None:
            batch.update(route_rows=int(route.size), routed=int(route.sum()))
        hazard = masks.get("numerical_hazard_mask")
        if hazard is None and q is not None and self.hazard_threshold is not None:
            with np.errstate(invalid="ignore"):
                # as numerical_hazard_mask: finite and (|Q| == 0 or |Q| < t); t = 0 is exact zeros
                hazard = np.isfinite(q) & ((q == 0) | (q < self.hazard_threshold))
        if hazard is not None:
            batch["hazard"] = int(hazard.sum())
        if q is not None:
            finite = np.isfinite(q)
            batch["q_abs_min"] = float(q[finite].min()) if finite.any() else None
            accepted_q = q[finite & ~bottom]
            batch["q_abs_min_accepted"] = float(accepted_q.min()) if accepted_q.size else None
        with self._lock:
            self._accumulate(batch, q)
            summary = self._summarise(batch)
        self._log_events(summary)
        return summary

    def _accumulate(self, batch: dict[str, Any], q: np.ndarray | None) -> None:
        c = self._counts
        c["entries"] += batch["n"]
        c["bottom"] += batch["bottom"]
        if "gap" in batch:
            c["gap_entries"] += batch["n"]
            c["gap"] += batch["gap"]
        if "fault" in batch:
            c["provenance_entries"] += batch["n"]
            c["fault"] += batch["fault"]
            c["semantic"] += batch["semantic"]
            c["mixed"] += batch["mixed"]
        if "routed" in batch:
            c["route_rows"] += batch["route_rows"]
            c["routed"] += batch["routed"]
        if "hazard" in batch:
            c["hazard_entries"] += batch["n"]
            c["hazard"] += batch["hazard"]
        if q is not None:
            finite = np.isfinite(q)
            c["q_entries"] += int(q.size)
            c["q_nonfinite"] += int((~finite).sum())
            c["q_zero"] += int((q == 0).sum())
            positive = q[finite & (q > 0)]
            self._q_hist += np.bincount(
                np.searchsorted(self.q_abs_edges, positive, side="right"),
                minlength=len(self._q_hist),
            )
            for key, attr in (("q_abs_min", "_q_min"), ("q_abs_min_accepted", "_q_min_accepted")):
                v, cur = batch[key], getattr(self, attr)
                if v is not None and (cur is None or v < cur):
                    setattr(self, attr, v)
        self._n_batches += 1

    def _summarise(self, batch: dict[str, Any]) -> dict[str, Any]:
        n = batch["n"]
        batch_rate = _rate(batch["accepted"], n)
        prev_n = sum(k for k, _ in self._window)
        prev_rate = _rate(sum(a for _, a in self._window), prev_n)
        self._window.append((n, batch["accepted"]))
        win_n = sum(k for k, _ in self._window)
        win_rate = _rate(sum(a for _, a in self._window), win_n)
        base = self.baseline.get("acceptance_rate")
        drift = {
            "threshold": self.threshold,
            "baseline_acceptance_rate": base,
            "window_acceptance_rate": win_rate,
            "drift_vs_baseline": None if base is None or win_rate is None else abs(win_rate - base),
            "batch_acceptance_rate": batch_rate,
            "previous_window_acceptance_rate": prev_rate,
            "drift_vs_window": None
            if prev_rate is None or batch_rate is None
            else abs(batch_rate - prev_rate),
        }
        alerts = []
        for kind in ("baseline", "window"):
            value = drift[f"drift_vs_{kind}"]
            if value is not None and value > self.threshold:
                alerts.append(
                    {
                        "event": "acceptance_rate_drift",
                        "kind": kind,
                        "drift": value,
                        "batch_index": self._n_batches - 1,
                    }
                )
        drift["alert"] = bool(alerts)
        self._last_drift = drift
        self._alerts.extend(alerts)
        summary = {
            "batch_index": self._n_batches - 1,
            **batch,
            "acceptance_rate": batch_rate,
            "drift": dict(drift),
        }
        summary["_alerts"] = alerts
        self._summaries.append({k: v for k, v in summary.items() if k != "_alerts"})
        return summary

    def _log_events(self, summary: dict[str, Any]) -> None:
        alerts = summary.pop("_alerts")
        if self.event_logger is None:
            return
        emit = (
            self.event_logger.log
            if callable(getattr(self.event_logger, "log", None))
            else self.event_logger
        )
        if self.log_batches:
            emit(
                to_jsonable(
                    {"event": "strict_inference_batch", "bundle_id": self.bundle_id, **summary}
                )
            )
        for alert in alerts:
            emit(
                to_jsonable(
                    {
                        **alert,
                        "bundle_id": self.bundle_id,
                        **{
                            k: summary["drift"][k]
                            for k in (
                                "threshold",
                                "baseline_acceptance_rate",
                                "window_acceptance_rate",
                                "batch_acceptance_rate",
                                "previous_window_acceptance_rate",
                            )
                        },
                    }
                )
            )

    # ------------------------------------------------------------------ read

    def rates(self) -> dict[str, float | None]:
        """Cumulative rates; ``None`` where the needed masks were never provided."""
        with self._lock:
            c = self._counts
            route = _rate(c["routed"], c["route_rows"])
            return {
                "bottom_rate": _rate(c["bottom"], c["entries"]),
                "gap_rate": _rate(c["gap"], c["gap_entries"]),
                "acceptance_rate": _rate(c["entries"] - c["bottom"], c["entries"]),
                "fault_rate": _rate(c["fault"], c["provenance_entries"]),
                "semantic_bottom_rate": _rate(c["semantic"], c["provenance_entries"]),
                "mixed_rate": _rate(c["mixed"], c["provenance_entries"]),
                "route_rate": route,
                "fallback_rate": route,
                "numerical_hazard_rate": _rate(c["hazard"], c["hazard_entries"]),
            }

    def drift(self) -> dict[str, Any]:
        """The drift figures after the latest batch (empty before the first update)."""
        with self._lock:
            return dict(self._last_drift)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Recent drift alerts (bounded by ``max_alerts``)."""
        with self._lock:
            return list(self._alerts)

    def export_state(
        self, *, include_histograms: bool = False, include_batch_summaries: bool = False
    ) -> dict[str, Any]:
        """JSON-ready snapshot (``json.dumps(..., allow_nan=False)`` works on it)."""
        rates = self.rates()
        with self._lock:
            c = dict(self._counts)
            state: dict[str, Any] = {
                "schema": "zpml.strict_inference_monitor/v1",
                "bundle_id": self.bundle_id,
                "n_batches": self._n_batches,
                "n_entries": c["entries"],
                "counts": c,
                "rates": rates,
                "denominator": {
                    "q_abs_min": self._q_min,
                    "q_abs_min_accepted": self._q_min_accepted,
                    "n_nonfinite": c["q_nonfinite"] if c["q_entries"] else None,
                },
                "baseline": dict(self.baseline),
                "drift": dict(self._last_drift),
                "acceptance_rate_drift_threshold": self.threshold,
                "alerts": list(self._alerts),
                "window_size": self._window_size,
            }
            if include_histograms:
                state["histograms"] = {
                    "q_abs": {
                        "edges": list(self.q_abs_edges),
                        "counts": self._q_hist.tolist(),
                        "zero": c["q_zero"],
                        "nonfinite": c["q_nonfinite"],
                        "note": "counts[i] holds edges[i-1] <= |Q| < edges[i]; counts[0] is below edges[0] (excluding zeros)",
                    },
                    "provenance": {
                        "finite": c["provenance_entries"] - c["fault"] - c["semantic"] + c["mixed"],
                        "fault": c["fault"] - c["mixed"],
                        "semantic": c["semantic"] - c["mixed"],
                        "mixed": c["mixed"],
                    }
                    if c["provenance_entries"]
                    else None,
                }
            if include_batch_summaries:
                state["batch_summaries"] = list(self._summaries)
                state["batch_summaries_dropped"] = max(0, self._n_batches - len(self._summaries))
        return to_jsonable(state)

    def __repr__(self) -> str:
        return f"StrictInferenceMonitor(bundle_id={self.bundle_id!r}, batches={self._n_batches})"
