"""Dense linear algebra of the rational fit: rank-revealing bases and smallest singular vectors."""

from __future__ import annotations

import numpy as np

__all__ = ["Basis", "null_basis", "orth_basis", "smallest_singular"]

#: singular values below this fraction of the largest are treated as zero
RANK_RTOL = 1e-12


class Basis:
    """Orthonormal basis of the column space of ``M`` (``M = U diag(s) Vt``, rank-cut).

    ``coefficients(c)`` maps coordinates ``c`` in ``U`` back to a minimum-norm
    coefficient vector ``x`` with ``M x = U c``; directions of ``M``'s numerical
    null space (e.g. monomials tied by ``cos**2 + sin**2 = 1`` on the data) get
    exactly zero weight.
    """

    __slots__ = ("U", "s", "Vt")

    def __init__(self, M: np.ndarray, rtol: float = RANK_RTOL) -> None:
        if M.shape[1] == 0 or not np.any(M):
            self.U = np.zeros((M.shape[0], 0))
            self.s = np.zeros(0)
            self.Vt = np.zeros((0, M.shape[1]))
            return
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        r = int(np.count_nonzero(s > rtol * s[0]))
        self.U, self.s, self.Vt = U[:, :r], s[:r], Vt[:r]

    @property
    def rank(self) -> int:
        """Numerical rank."""
        return int(self.s.size)

    def coefficients(self, c: np.ndarray) -> np.ndarray:
        """Coefficients ``x`` (minimum norm) with ``M x = U c``."""
        return self.Vt.T @ (c / self.s[:, None] if c.ndim == 2 else c / self.s)

    def project_out(self, R: np.ndarray) -> np.ndarray:
        """``(I - U U^T) R``: the part of ``R``'s columns outside the span."""
        return R - self.U @ (self.U.T @ R) if self.rank else R


def orth_basis(M: np.ndarray, rtol: float = RANK_RTOL) -> Basis:
    """Rank-revealing orthonormal basis of ``M``'s columns."""
    return Basis(M, rtol)


def smallest_singular(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values (descending) and right singular vectors (rows) of ``R``.

    Rows are sorted by decreasing norm and reduced by a Householder QR first
    (row-wise backward stable when a few rows carry huge weights, as rows next
    to a pole do), then the small triangular factor is decomposed.
    """
    if R.shape[0] > R.shape[1]:
        order = np.argsort(-np.einsum("ij,ij->i", R, R), kind="stable")
        R = np.asarray(np.linalg.qr(R[order], mode="r"))
    _, s, Vt = np.linalg.svd(R, full_matrices=True)
    if s.size < Vt.shape[0]:
        s = np.concatenate([s, np.zeros(Vt.shape[0] - s.size)])
    return s, Vt


def null_basis(C: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (columns) of the numerical null space of ``C``."""
    n = C.shape[1]
    if C.shape[0] == 0 or not np.any(C):
        return np.eye(n)
    _, s, Vt = np.linalg.svd(C, full_matrices=True)
    r = int(np.count_nonzero(s > rtol * s[0]))
    return Vt[r:].T
