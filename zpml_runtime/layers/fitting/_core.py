"""The linearised rational least-squares fit, Sanathanan-Koerner reweighting and its error.

Every included target entry gives one equation ``P(x) y_d - Q(x) y_n = 0`` in
the coefficients (``(y_n, y_d)`` the lifted target at unit max-norm; a bottom
row ``(+-1, 0)`` says ``Q(x) = 0``). For fixed ``Q`` the numerator is a linear
least-squares solve, so ``P`` is eliminated by projection and ``Q`` is the
smallest right singular vector of the reduced matrix, in coordinates where
``Q``'s values on the data have unit norm: a ``Q`` that vanishes on every data
point (possible when the features satisfy algebraic relations) is never a
candidate. The Sanathanan-Koerner iteration reweights each equation by
``1/|Q_prev(x)|`` (``1/|P_prev(x)|`` on bottom rows), which turns the linearised
residual into the relative error ``|P/Q - y| / max(|y|, 1)`` (and ``|Q/P|`` at
bottom rows), the error the fit reports and minimises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._linalg import Basis, null_basis, orth_basis, smallest_singular

__all__ = ["Fit", "Problem", "entry_errors", "rms_error", "sk_fit", "solve"]


@dataclass
class Problem:
    """One fit: bases on the data and lifted targets.

    ``A`` ``[N, nA]`` and ``B`` ``[N, nB]`` are the numerator and denominator
    bases evaluated on the data; ``yn``, ``yd``, ``weight`` are ``[N, k]``
    (unit-scaled targets; ``weight`` is 0 on excluded entries); ``shared``: one
    ``Q`` for every output. ``exact_bottom``: bottom rows are hard constraints
    ``Q(x_i) = 0`` when ``Q``'s space allows it.
    """

    A: np.ndarray
    B: np.ndarray
    yn: np.ndarray
    yd: np.ndarray
    weight: np.ndarray
    shared: bool = True
    exact_bottom: bool = True

    def __post_init__(self) -> None:
        self._bases: dict[tuple[str, bytes], Basis] = {}

    def basis(self, which: str, support: np.ndarray | None) -> Basis:
        """Orthonormal basis of the (unweighted) columns of ``A`` or ``B`` on a support (cached)."""
        key = (
            which,
            b"" if support is None else np.packbits(support).tobytes() + bytes([support.size % 8]),
        )
        if key not in self._bases:
            M = self.A if which == "A" else self.B
            self._bases[key] = orth_basis(M if support is None else M[:, support])
        return self._bases[key]

    @property
    def bottom(self) -> np.ndarray:
        """``[N, k]``: included entries with a bottom target."""
        return (self.yd == 0) & (self.weight > 0)

    @property
    def outputs(self) -> int:
        return int(self.yn.shape[1])

    @property
    def n_eff(self) -> int:
        """Number of included equations."""
        return int(np.count_nonzero(self.weight > 0))


@dataclass
class Fit:
    """Coefficients ``a`` ``[nA, k]`` and ``b`` ``[nB, kq]``, their error and diagnostics."""

    a: np.ndarray
    b: np.ndarray
    error: float
    singular_values: np.ndarray
    constrained: bool
    iterations: int
    weights: np.ndarray
    dof: int


def evaluate(prob: Problem, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P`` ``[N, k]`` and ``Q`` ``[N, k]`` (broadcast when shared) on the data."""
    P = prob.A @ a
    Q = prob.B @ b
    return P, np.broadcast_to(Q, P.shape)


def entry_errors(prob: Problem, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Per entry: ``|P/Q - y| / max(|y|, 1)`` (finite targets), ``|Q/P|`` (bottom); 0 if excluded."""
    num = np.abs(P * prob.yd - Q * prob.yn)
    den = np.where(prob.yd == 0, np.abs(P), np.abs(Q))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(num == 0, 0.0, num / den)
    return np.where(prob.weight > 0, err, 0.0)


def rms_error(prob: Problem, P: np.ndarray, Q: np.ndarray) -> float:
    """Weighted root-mean-square of :func:`entry_errors`."""
    e = entry_errors(prob, P, Q)
    total = float(prob.weight.sum())
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(np.sqrt(np.sum(prob.weight * e * e) / total)) if total > 0 else 0.0
    return value if np.isfinite(value) else float("inf")


def _triangle(M: np.ndarray) -> np.ndarray:
    """``R`` of a Householder QR of ``M`` with rows sorted by decreasing norm (row-wise stable)."""
    keep = np.einsum("ij,ij->i", M, M)
    order = np.argsort(-keep, kind="stable")
    order = order[keep[order] > 0]
    R = np.asarray(np.linalg.qr(M[order], mode="r")) if order.size else np.zeros((0, M.shape[1]))
    if R.shape[0] < M.shape[1]:
        R = np.vstack([R, np.zeros((M.shape[1] - R.shape[0], M.shape[1]))])
    return R


def _solve_one(
    prob: Problem,
    w: np.ndarray,
    cols: slice | np.ndarray,
    supp_a: np.ndarray | None,
    supp_b: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, int, int]:
    """Shared-``Q`` solve over the outputs ``cols``; returns ``a``, ``b``, singular values, constrained, ranks.

    Per output, the QR of ``[w y_d U_A | w y_n U_B]`` (``U_A``, ``U_B`` orthonormal
    bases of the numerator and denominator columns) gives the projected matrix
    for ``Q`` as its lower-right triangle and ``P`` by back substitution.
    """
    PA, QB = prob.basis("A", supp_a), prob.basis("B", supp_b)
    yn, yd, w = prob.yn[:, cols], prob.yd[:, cols], w[:, cols]
    ra, rb = PA.rank, QB.rank
    tops, blocks = [], []
    for j in range(yn.shape[1]):
        R = _triangle(
            np.hstack([(w[:, j] * yd[:, j])[:, None] * PA.U, (w[:, j] * yn[:, j])[:, None] * QB.U])
        )
        tops.append(R[:ra])
        blocks.append(R[ra:, ra:])
    Rq = np.vstack(blocks)
    constrained = False
    N_c = None
    rows = np.any((yd == 0) & (w > 0), axis=1)
    if prob.exact_bottom and rows.any():
        N_c = null_basis(QB.U[rows])
        if N_c.shape[1] >= 1:
            Rq = Rq @ N_c
            constrained = True
        else:
            N_c = None
    s, Vt = smallest_singular(Rq)
    c = Vt[-1]
    if N_c is not None:
        c = N_c @ c
    b = QB.coefficients(c)
    a = np.zeros((prob.A.shape[1] if supp_a is None else int(supp_a.sum()), yn.shape[1]))
    for j, top in enumerate(tops):
        if ra:
            coords = np.linalg.lstsq(top[:, :ra], top[:, ra:] @ c, rcond=1e-13)[0]
            a[:, j] = PA.coefficients(coords)
    return a, b, s, constrained, ra, rb


def solve(
    prob: Problem,
    w: np.ndarray,
    supp_a: np.ndarray | None = None,
    supp_b: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, int]:
    """One weighted linearised solve: ``a [nA, k]``, ``b [nB, kq]``, singular values, constrained, dof.

    ``supp_a``/``supp_b`` (boolean masks) restrict the coefficients to a support
    (the others are exactly 0).
    """
    k = prob.outputs
    nA, nB = prob.A.shape[1], prob.B.shape[1]
    ia = np.arange(nA) if supp_a is None else np.flatnonzero(supp_a)
    ib = np.arange(nB) if supp_b is None else np.flatnonzero(supp_b)
    groups: list[slice | np.ndarray] = (
        [slice(None)] if prob.shared else [np.array([j]) for j in range(k)]
    )
    a = np.zeros((nA, k))
    b = np.zeros((nB, len(groups)))
    svals, constrained, dof = [], True, 0
    for g, cols in enumerate(groups):
        ag, bg, s, con, ra, rb = _solve_one(prob, w, cols, supp_a, supp_b)
        a[np.ix_(ia, np.arange(k)[cols])] = ag
        b[ib, g] = bg
        svals.append(s)
        constrained = constrained and con
        dof += ag.shape[1] * ra + rb - 1
    return a, b, np.concatenate(svals), constrained and bool(prob.bottom.any()), dof


def _sk_weights(prob: Problem, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    den = np.where(prob.yd == 0, np.abs(P), np.abs(Q))
    active = prob.weight > 0
    top = float(den[active].max()) if active.any() else 1.0
    den = np.maximum(den, 1e-14 * top if top > 0 else 1.0)
    w = np.sqrt(prob.weight) / den
    scale = float(np.median(w[active])) if active.any() else 1.0
    return w / scale if scale > 0 else w


def sk_fit(
    prob: Problem,
    *,
    iterations: int = 30,
    supp_a: np.ndarray | None = None,
    supp_b: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> Fit:
    """Linearised fit, then Sanathanan-Koerner iterations; returns the iterate of least error.

    ``start``: initial weights (e.g. the final weights of a previous fit);
    default the unweighted linearised problem. Stops when the error stalls
    (no relative improvement above 1e-4 in 3 iterations) or reaches 1e-15.
    """
    w = np.sqrt(prob.weight) if start is None else start
    best: Fit | None = None
    stall = 0
    for it in range(iterations + 1):
        a, b, s, constrained, dof = solve(prob, w, supp_a, supp_b)
        P, Q = evaluate(prob, a, b)
        err = rms_error(prob, P, Q)
        if best is None or err < best.error * (1 - 1e-4):
            stall = 0
        else:
            stall += 1
        if best is None or err < best.error:
            best = Fit(a, b, err, s, constrained, it, w, dof)
        if best.error <= 1e-15 or stall >= 3:
            break
        w = _sk_weights(prob, P, Q)
    assert best is not None
    return best


def refit_fixed_q(prob: Problem, b: np.ndarray, supp_a: np.ndarray | None = None) -> np.ndarray:
    """The least-squares numerator for a fixed denominator (relative-error weights)."""
    Q = np.broadcast_to(prob.B @ b, prob.yn.shape)
    w = _sk_weights(prob, np.ones_like(Q), Q)
    PA = prob.basis("A", supp_a)
    a = np.zeros((prob.A.shape[1], prob.outputs))
    idx = np.arange(prob.A.shape[1]) if supp_a is None else np.flatnonzero(supp_a)
    for j in range(prob.outputs):
        if PA.rank:
            R = _triangle(
                np.hstack(
                    [
                        (w[:, j] * prob.yd[:, j])[:, None] * PA.U,
                        (w[:, j] * prob.yn[:, j] * Q[:, j])[:, None],
                    ]
                )
            )
            coords = np.linalg.lstsq(R[: PA.rank, : PA.rank], R[: PA.rank, PA.rank], rcond=1e-13)[0]
            a[idx, j] = PA.coefficients(coords)
    return a
