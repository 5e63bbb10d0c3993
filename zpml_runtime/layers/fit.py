"""``fit_rational``: a deterministic, data-driven fit of a rational layer (no gradient descent).

See :func:`fit_rational` and ``docs/layers.md`` ("How to fit a pole reliably").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import torch
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as Pm

from ..errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from ._base import check_degree
from .fitting._data import (
    as_array,
    check_domain,
    check_nonneg_float,
    check_weights,
    lift,
    target_scale,
)
from .fitting._select import DEFAULT_TOL
from .fitting.multivariate import fit_multivariate
from .fitting.univariate import fit_univariate
from .multivariate import MultivariateRationalLayer
from .rational import BASES, SCMRationalLayer

__all__ = ["FitInfo", "fit_rational"]


@dataclass(frozen=True)
class FitInfo:
    """Diagnostics of :func:`fit_rational`.

    * ``effective_degrees``: highest nonzero coefficient degree of ``P`` and ``Q``
      (below the requested degrees when the data did not need them);
    * ``error`` / ``max_error``: root-mean-square / max over the data of the
      relative error ``|P/Q - y| / max(|y|, s)`` (``s/|P/Q|`` on bottom rows),
      ``s`` the target scale;
    * ``candidates``: every type ``(n, m, error)`` fitted during degree selection;
    * ``bottom_rows``: rows with a non-finite target; ``bottom_constraint``:
      ``"exact"`` (``Q = 0`` imposed there), ``"soft"`` (fitted as equations:
      ``Q`` could not vanish on all of them) or ``"none"``;
    * ``snapped``: coefficients set exactly to zero; ``removed_poles``: spurious
      real poles divided out of ``Q`` (univariate);
    * ``domain`` (univariate) / ``feature_scale`` (multivariate, powers of two);
    * ``target_scale``: per output, the median ``|y|`` of the finite targets
      rounded to a power of two (the fit is invariant to the units of ``y``).
    """

    numerator_degree: int
    denominator_degree: int
    effective_degrees: tuple[int, int]
    error: float
    max_error: float
    candidates: tuple[tuple[int, int, float], ...]
    bottom_rows: int
    bottom_constraint: str
    snapped: int
    removed_poles: tuple[float, ...]
    domain: tuple[float, float] | None
    feature_scale: tuple[float, ...] | None
    target_scale: tuple[float, ...] = (1.0,)


Layer = SCMRationalLayer | MultivariateRationalLayer


@overload
def fit_rational(
    x: Any,
    y: Any,
    numerator_degree: int,
    denominator_degree: int,
    *,
    return_info: Literal[False] = ...,
    **kwargs: Any,
) -> Layer: ...


@overload
def fit_rational(
    x: Any,
    y: Any,
    numerator_degree: int,
    denominator_degree: int,
    *,
    return_info: Literal[True],
    **kwargs: Any,
) -> tuple[Layer, FitInfo]: ...


def fit_rational(
    x: Any,
    y: Any,
    numerator_degree: int,
    denominator_degree: int,
    *,
    domain: tuple[float, float] | None = None,
    weights: Any = None,
    basis: str = "chebyshev",
    shared_denominator: bool = True,
    tol: float = DEFAULT_TOL,
    exact_bottom: bool = True,
    reduce_degree: bool = True,
    remove_spurious: bool = True,
    dtype: torch.dtype = torch.float64,
    return_info: bool = False,
    **layer_kwargs: Any,
) -> Layer | tuple[Layer, FitInfo]:
    """Fit a rational layer to samples ``(x, y)`` by linearised least squares, deterministically.

    Inputs (tensors, arrays or sequences; computed in float64):

    * ``x`` ``[N]``: returns an :class:`SCMRationalLayer` of degrees
      ``(numerator_degree, denominator_degree)`` in the Chebyshev basis of
      ``domain`` (default ``(x.min(), x.max())``; ``basis="monomial"`` converts
      the result, at a loss of conditioning). ``y`` must be ``[N]``.
    * ``x`` ``[N, d]`` (features): returns a :class:`MultivariateRationalLayer`
      ``(d, k, numerator_degree, denominator_degree)`` with ``y`` ``[N]`` (``k = 1``)
      or ``[N, k]``; ``Q`` is one polynomial for every output
      (``shared_denominator=True``) or one per output. Degrees are total
      degrees in the features; features may satisfy algebraic relations
      (e.g. ``cos**2 + sin**2 = 1``): the fit works in an orthonormal basis of
      the monomials' values on the data, so a polynomial vanishing on all data
      is never taken for ``Q`` and redundant monomials get zero coefficients.
      Features are scaled by powers of two internally (exact).
    * ``y``: targets; ``+inf``/``-inf``/NaN are bottom rows, lifted as
      :func:`~zpml_runtime.training.targets.lift_targets` lifts them. With
      ``exact_bottom=True`` they are imposed as ``Q(x_i) = 0`` when ``Q``'s
      degree allows it, else fitted as equations (``FitInfo.bottom_constraint``).
      Noisy finite values are fine. ``weights`` ``[N]``: optional row weights.

    Method: every row gives ``P(x) y_d - Q(x) y_n = 0``; ``P`` is eliminated by
    projection and ``Q`` is the smallest right singular vector of the reduced
    matrix; Sanathanan-Koerner reweighting then minimises the relative error
    ``|P/Q - y| / max(|y|, s)`` (``s``: median ``|y|`` as a power of two).
    ``reduce_degree``: the types ``[n-k/m-k]`` are fitted too and the smallest
    one that explains the data as well (an F-test, or relative rms error below
    ``tol``, default 1e-10) is kept, so an over-specified fit has no Froissart
    doublets; ``remove_spurious``: real poles the data do not
    support are divided out of ``Q`` (univariate); coefficients below rounding
    level are set exactly to zero. The returned layer keeps the requested
    degrees (unused leading coefficients are exactly 0), has dtype ``dtype``
    (float64 default; ``.to(torch.float32)`` for deployment) and takes the
    other layer options (``gradient_policy``, ``tau_train``, ``gauge``,
    ``clamp_value``) as ``layer_kwargs``. ``return_info=True`` returns
    ``(layer, FitInfo)``. Check the result with :func:`pole_report` (univariate,
    ``data=(x, y)`` to test each pole against the data) or
    :func:`zero_set_report` (the exact factors of a multivariate ``Q``).
    """
    n = check_degree(numerator_degree, "numerator_degree", "fit_rational")
    m = check_degree(denominator_degree, "denominator_degree", "fit_rational")
    tol = check_nonneg_float(tol, "tol")
    if dtype not in (torch.float32, torch.float64):
        raise InvalidConfigError(
            f"fit_rational: dtype must be torch.float32 or torch.float64, got {dtype}"
        )
    for name, flag in (
        ("shared_denominator", shared_denominator),
        ("exact_bottom", exact_bottom),
        ("reduce_degree", reduce_degree),
        ("remove_spurious", remove_spurious),
    ):
        if not isinstance(flag, bool):
            raise InvalidConfigError(f"fit_rational: {name} must be a bool, got {flag!r}")
    xa = as_array(x, "x")
    ya = as_array(y, "y")
    if xa.ndim not in (1, 2) or xa.shape[0] == 0:
        raise ShapeMismatchError(
            f"fit_rational: x must have shape [N] or [N, d] with N >= 1, got {list(xa.shape)}"
        )
    if not np.all(np.isfinite(xa)):
        row = int(np.argwhere(~np.isfinite(xa))[0][0])
        raise InvalidConfigError(f"fit_rational: x must be finite; row {row} holds {xa[row]!r}")
    N = xa.shape[0]
    if ya.shape[:1] != (N,) or ya.ndim > 2 or (xa.ndim == 1 and ya.ndim != 1):
        want = "[N]" if xa.ndim == 1 else "[N] or [N, k]"
        raise ShapeMismatchError(
            f"fit_rational: y must have shape {want} with N = {N}, got {list(ya.shape)}"
        )
    w = check_weights(weights, N)
    scale = target_scale(ya)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        yn, yd = lift(ya / (scale if ya.ndim == 2 else scale[0]))
    if not np.any((yd != 0) & (w.reshape((N,) + (1,) * (ya.ndim - 1)) > 0)):
        raise InvalidConfigError(
            "fit_rational: y has no finite target with a positive weight; nothing to fit"
        )
    bottom_rows = int(np.count_nonzero(np.any((yd == 0).reshape(N, -1), axis=1) & (w > 0)))
    # the matrices are tall and thin: one BLAS thread is as fast, and immune to oversubscription
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), np.errstate(under="ignore"):
        return _fit(
            xa,
            yn,
            yd,
            w,
            n,
            m,
            domain,
            basis,
            shared_denominator,
            tol,
            exact_bottom,
            reduce_degree,
            remove_spurious,
            dtype,
            bottom_rows,
            return_info,
            scale,
            layer_kwargs,
        )


def _fit(
    xa: np.ndarray,
    yn: np.ndarray,
    yd: np.ndarray,
    w: np.ndarray,
    n: int,
    m: int,
    domain: Any,
    basis: str,
    shared: bool,
    tol: float,
    exact_bottom: bool,
    reduce_degree: bool,
    remove_spurious: bool,
    dtype: torch.dtype,
    bottom_rows: int,
    return_info: bool,
    scale: np.ndarray,
    layer_kwargs: dict[str, Any],
) -> Layer | tuple[Layer, FitInfo]:
    N = xa.shape[0]
    layer: Layer
    if xa.ndim == 1:
        layer, info = _univariate(
            xa,
            yn,
            yd,
            w,
            n,
            m,
            domain,
            basis,
            tol,
            exact_bottom,
            reduce_degree,
            remove_spurious,
            dtype,
            bottom_rows,
            float(scale[0]),
            layer_kwargs,
        )
    else:
        if domain is not None:
            raise InvalidConfigError(
                "fit_rational: domain applies to univariate x [N]; pass domain=None for features"
            )
        layer, info = _multivariate(
            xa,
            yn.reshape(N, -1),
            yd.reshape(N, -1),
            w,
            n,
            m,
            shared,
            tol,
            exact_bottom,
            reduce_degree,
            dtype,
            bottom_rows,
            scale,
            layer_kwargs,
        )
    return (layer, info) if return_info else layer


def _unit(b: np.ndarray) -> float:
    """Signed power of two making ``max|b|`` lie in ``(1/2, 1]`` with a positive largest entry."""
    i = int(np.argmax(np.abs(b)))
    top = abs(float(b[i]))
    if top == 0:
        return 1.0
    return float(np.sign(b[i]) * np.exp2(-np.ceil(np.log2(top))))


def _max_error(
    layer: Layer, xa: np.ndarray, yn: np.ndarray, yd: np.ndarray, w: np.ndarray, scale: np.ndarray
) -> float:
    with torch.no_grad():
        P, Q = layer(torch.as_tensor(xa, dtype=torch.float64).to(layer_dtype(layer)))[:2]
    P = P.to(torch.float64).numpy().reshape(yn.shape) / (scale if yn.ndim == 2 else scale[0])
    Q = Q.to(torch.float64).numpy().reshape(yn.shape)
    num = np.abs(P * yd - Q * yn)
    den = np.where(yd == 0, np.abs(P), np.abs(Q))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(num == 0, 0.0, num / den)
    active = np.broadcast_to(w.reshape((-1,) + (1,) * (yn.ndim - 1)), yn.shape) > 0
    return float(err[active].max()) if active.any() else 0.0


def layer_dtype(layer: Layer) -> torch.dtype:
    """Parameter dtype of a fitted layer."""
    return next(layer.parameters()).dtype


def _univariate(
    xa: np.ndarray,
    yn: np.ndarray,
    yd: np.ndarray,
    w: np.ndarray,
    n: int,
    m: int,
    domain: Any,
    basis: str,
    tol: float,
    exact_bottom: bool,
    reduce: bool,
    remove_spurious: bool,
    dtype: torch.dtype,
    bottom_rows: int,
    y_scale: float,
    layer_kwargs: dict[str, Any],
) -> tuple[SCMRationalLayer, FitInfo]:
    if basis not in BASES:
        raise InvalidConfigError(
            f"fit_rational: unknown basis {basis!r}; expected one of {', '.join(map(repr, BASES))}"
        )
    dom = check_domain(domain, xa)
    res = fit_univariate(
        xa,
        yn,
        yd,
        w,
        n,
        m,
        dom,
        tol=tol,
        exact_bottom=exact_bottom,
        reduce=reduce,
        remove_spurious=remove_spurious,
    )
    s = _unit(res.denominator)
    a, b = res.numerator * (s * y_scale), res.denominator * s
    if basis == "monomial":
        lo, hi = dom
        a = _to_monomial(a, lo, hi, n)
        b = _to_monomial(b, lo, hi, m)
    try:
        layer = SCMRationalLayer(
            n,
            m,
            basis=basis,
            domain=dom,
            numerator_init=a.tolist(),
            denominator_init=b.tolist(),
            dtype=torch.float64,
            **layer_kwargs,
        )
    except TypeError as e:
        raise UnsupportedInputError(f"fit_rational: unknown layer option: {e}") from e
    info = FitInfo(
        n,
        m,
        res.effective_degrees,
        res.error,
        _max_error(layer, xa, yn, yd, w, np.array([y_scale])),
        res.candidates,
        bottom_rows,
        _constraint(bottom_rows, res.constrained),
        res.snapped,
        res.removed_poles,
        dom,
        None,
        (y_scale,),
    )
    return layer.to(dtype), info


def _to_monomial(c: np.ndarray, lo: float, hi: float, degree: int) -> np.ndarray:
    poly = C.Chebyshev(c, domain=[lo, hi]).convert(kind=Pm.Polynomial)
    out = np.zeros(degree + 1)
    out[: poly.coef.size] = poly.coef[: degree + 1]
    return out


def _constraint(bottom_rows: int, constrained: bool) -> str:
    if bottom_rows == 0:
        return "none"
    return "exact" if constrained else "soft"


def _multivariate(
    h: np.ndarray,
    yn: np.ndarray,
    yd: np.ndarray,
    w: np.ndarray,
    n: int,
    m: int,
    shared: bool,
    tol: float,
    exact_bottom: bool,
    reduce: bool,
    dtype: torch.dtype,
    bottom_rows: int,
    y_scale: np.ndarray,
    layer_kwargs: dict[str, Any],
) -> tuple[MultivariateRationalLayer, FitInfo]:
    d, k = h.shape[1], yn.shape[1]
    res = fit_multivariate(
        h, yn, yd, w, n, m, shared=shared, tol=tol, exact_bottom=exact_bottom, reduce=reduce
    )
    coef = res.coefficients
    kq = coef.shape[1] - k
    for q in range(kq):
        s = _unit(coef[:, k + q])
        cols = list(range(k)) if kq == 1 else [q]
        coef[:, k + q] *= s
        coef[:, cols] *= s
    coef[:, :k] *= y_scale[None, :]
    try:
        layer = MultivariateRationalLayer(
            d, k, n, m, shared_denominator=shared, dtype=torch.float64, **layer_kwargs
        )
    except TypeError as e:
        raise UnsupportedInputError(f"fit_rational: unknown layer option: {e}") from e
    layer.set_monomial_coefficients(torch.as_tensor(coef))
    info = FitInfo(
        n,
        m,
        res.effective_degrees,
        res.error,
        _max_error(layer, h, yn, yd, w, y_scale),
        res.candidates,
        bottom_rows,
        _constraint(bottom_rows, res.constrained),
        res.snapped,
        (),
        None,
        tuple(float(v) for v in res.feature_scale),
        tuple(float(v) for v in y_scale),
    )
    return layer.to(dtype), info
