"""The generic IK model: a multivariate rational head on the angle features, fitted from data.

No knowledge of the Jacobian goes in: the features are ``cos``/``sin`` of each
joint angle and the commanded velocity, and the head is a
:class:`~zpml_runtime.layers.MultivariateRationalLayer` with one shared
denominator. The steps:

1. **degree search**: for each ``(numerator, denominator)`` total degree in
   ``degrees`` (tried in order of coefficient count), fit the head on the
   training rows with :func:`zpml_runtime.layers.fit_rational` (a deterministic
   linearised least-squares fit that imposes ``Q = 0`` on bottom-labelled rows,
   reduces the degree the data do not need and sets negligible coefficients to
   exactly 0) and measure its median relative error on the held-out
   calibration rows with finite labels; the first candidate at or below
   ``tolerance`` is taken (else the most accurate one);
2. **snap** the denominator (:mod:`~zpml_runtime.robotics.singular_set`): when
   every coefficient of ``Q`` (scaled by the largest) is within ``snap_tolerance``
   of a small rational, ``Q`` is set to exactly that polynomial times the
   scale; if that changed any coefficient, the numerators are refitted for the
   new ``Q`` by weighted linear least squares (relative error with floor 1);
3. **report** the zero set of ``Q`` on the arm, exactly, and compare it with a
   reference (``s2``: ``det J = l1*l2*sin(theta2)``) as an evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.layers import MultivariateRationalLayer, monomial_exponents
from zpml_runtime.robotics.arm import IKArm
from zpml_runtime.robotics.dataset import IKDataset
from zpml_runtime.robotics.evaluation import prediction_errors
from zpml_runtime.robotics.models import ArmFeatures, GenericIKModel
from zpml_runtime.robotics.singular_set import (
    SingularSetReport,
    singular_set_report,
    snap_coefficients,
)

__all__ = ["DEFAULT_DEGREES", "DegreeTrial", "GenericFit", "fit_generic_head", "head_monomials"]

#: candidate ``(numerator, denominator)`` total degrees of the head's search
DEFAULT_DEGREES: tuple[tuple[int, int], ...] = (
    (1, 1),
    (2, 1),
    (2, 2),
    (3, 1),
    (3, 2),
    (4, 1),
    (4, 2),
)

#: ``fitter(x [N, d], y [N, k], numerator_degree, denominator_degree) -> MultivariateRationalLayer``
Fitter = Callable[[np.ndarray, np.ndarray, int, int], MultivariateRationalLayer]


@dataclasses.dataclass(frozen=True)
class DegreeTrial:
    """One candidate of the degree search."""

    numerator_degree: int
    denominator_degree: int
    n_coefficients: int
    calibration_median_rel_err: float
    fit_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GenericFit:
    """The fitted model, the search that chose its degrees, and its singular set."""

    model: GenericIKModel
    trials: tuple[DegreeTrial, ...]
    numerator_degree: int
    denominator_degree: int
    snapped: bool
    singular_set: SingularSetReport
    fit_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors)."""
        return {
            "numerator_degree": self.numerator_degree,
            "denominator_degree": self.denominator_degree,
            "snapped": self.snapped,
            "singular_set": self.singular_set.to_dict(),
            "fit_seconds": self.fit_seconds,
            "trials": [t.to_dict() for t in self.trials],
        }


def head_monomials(head: MultivariateRationalLayer) -> list[tuple[int, ...]]:
    """The monomials of :meth:`MultivariateRationalLayer.monomial_coefficients`, in its row order."""
    d = max(head.numerator_degree, head.denominator_degree)
    exps = monomial_exponents(head.in_features, max(d, 2))
    return [e for e in exps if sum(1 for i in e if i) <= d]


def _n_coefficients(d_in: int, k: int, num: int, den: int) -> int:
    return k * math.comb(d_in + num, num) + math.comb(d_in + den, den)


def _predict(model: GenericIKModel, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        P, Q = model(torch.as_tensor(inputs, dtype=torch.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (P / Q).numpy(), Q[:, 0].numpy()


def _median_rel(model: GenericIKModel, data: IKDataset) -> float:
    pred, _ = _predict(model, data.inputs)
    _, rel = prediction_errors(pred, data.targets)
    rel = rel[np.isfinite(data.targets).all(axis=1)]
    rel = np.where(np.isfinite(rel), rel, np.inf)
    return float(np.median(rel)) if rel.size else math.inf


def _refit_numerators(model: GenericIKModel, train: IKDataset, q_column: np.ndarray) -> None:
    """Given ``Q``'s coefficients, the numerators minimising ``|P/Q - y| / sqrt(1 + y^2)`` per row."""
    head = model.head
    with torch.no_grad():
        phi = head.monomials(model.features(torch.as_tensor(train.inputs))).numpy()
    exps = head_monomials(head)
    deg = np.array([sum(1 for i in e if i) for e in exps])
    p_cols = deg <= head.numerator_degree
    Q = phi @ q_column
    coef = np.zeros((len(exps), head.out_features + 1))
    coef[:, -1] = q_column
    for j in range(head.out_features):
        y = train.targets[:, j]
        rows = np.isfinite(y) & (Q != 0)
        w = 1.0 / (np.abs(Q[rows]) * np.sqrt(1.0 + y[rows] ** 2))
        A = phi[rows][:, p_cols] * w[:, None]
        sol, *_ = np.linalg.lstsq(A, y[rows] * Q[rows] * w, rcond=None)
        coef[p_cols, j] = sol
    head.set_monomial_coefficients(torch.as_tensor(coef))


def _fit_rational(x: np.ndarray, y: np.ndarray, num: int, den: int) -> MultivariateRationalLayer:
    from zpml_runtime.layers import fit_rational

    head = fit_rational(x, y, num, den)
    if not isinstance(head, MultivariateRationalLayer):  # x is [N, d]: always multivariate
        raise InvalidConfigError(f"fit_rational returned {type(head).__name__} for [N, d] features")
    return head


def fit_generic_head(
    train: IKDataset,
    calib: IKDataset,
    arm: IKArm,
    *,
    degrees: Sequence[tuple[int, int]] = DEFAULT_DEGREES,
    tolerance: float = 1e-8,
    snap_tolerance: float = 1e-9,
    reference: str | None = "s2",
    fitter: Fitter | None = None,
) -> GenericFit:
    """Fit, select, snap and report the generic head; see the module docstring.

    ``train`` and ``calib`` are :class:`~zpml_runtime.robotics.IKDataset` splits of
    ``arm``'s data (labels NaN on bottom rows); ``fitter`` defaults to
    :func:`zpml_runtime.layers.fit_rational`.
    """
    if not degrees:
        raise InvalidConfigError("degrees must list at least one (numerator, denominator) pair")
    for pair in degrees:
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
        ):
            raise InvalidConfigError(
                f"degrees must hold (numerator, denominator) integer pairs >= 0, got {pair!r}"
            )
    fit = _fit_rational if fitter is None else fitter
    t_start = time.perf_counter()
    features = ArmFeatures(arm.n_joints, arm.task_dim)
    x = arm.features(train.inputs)
    d_in, k = x.shape[1], train.targets.shape[1]
    order = sorted(
        dict.fromkeys(tuple(p) for p in degrees), key=lambda p: (_n_coefficients(d_in, k, *p), p)
    )
    trials: list[DegreeTrial] = []
    best: tuple[float, GenericIKModel, tuple[int, int]] | None = None
    for num, den in order:
        t0 = time.perf_counter()
        head = fit(x, train.targets, num, den)
        model = GenericIKModel(features, head).to(torch.float64)
        err = _median_rel(model, calib)
        trials.append(
            DegreeTrial(num, den, _n_coefficients(d_in, k, num, den), err, time.perf_counter() - t0)
        )
        if best is None or err < best[0]:
            best = (err, model, (num, den))
        if err <= tolerance:
            best = (err, model, (num, den))
            break
    assert best is not None
    _, model, (num, den) = best
    head = model.head
    if not getattr(head, "shared_denominator", False):
        raise InvalidConfigError(
            "the fitter must return a MultivariateRationalLayer with a shared denominator"
        )
    q = head.monomial_coefficients().detach().numpy()[:, head.out_features]
    snapped, _ = snap_coefficients(q, tolerance=snap_tolerance)
    if snapped is not None:
        q_exact = float(np.abs(q).max()) * np.array([float(f) for f in snapped])
        if not np.array_equal(q_exact, q):
            _refit_numerators(model, train, q_exact)
    report = singular_set_report(
        head_monomials(head),
        head.monomial_coefficients().detach().numpy()[:, head.out_features],
        tuple(arm.feature_names),
        arm.n_joints,
        reference=reference,
        tolerance=snap_tolerance,
    )
    return GenericFit(
        model=model.eval(),
        trials=tuple(trials),
        numerator_degree=num,
        denominator_degree=den,
        snapped=snapped is not None,
        singular_set=report,
        fit_seconds=time.perf_counter() - t_start,
    )
