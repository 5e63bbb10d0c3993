"""Shared hypothesis strategies and an exact reference oracle for strict-inference tests.

The oracle decides every mask with exact rational arithmetic (``fractions``),
independently of torch and numpy: it is the executable form of docs/semantics.md
section 3.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
from hypothesis import strategies as st

DTYPES = ("float16", "bfloat16", "float32", "float64")

# (precision incl. implicit bit, minimum normal exponent, largest finite value)
FORMATS: dict[str, tuple[int, int, float]] = {
    "float16": (11, -14, 65504.0),
    "bfloat16": (8, -126, math.ldexp(2.0 - math.ldexp(1.0, -7), 127)),
    "float32": (24, -126, math.ldexp(2.0 - math.ldexp(1.0, -23), 127)),
    "float64": (53, -1022, 1.7976931348623157e308),
}
TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def smallest_subnormal(dtype: str) -> float:
    precision, emin, _ = FORMATS[dtype]
    return math.ldexp(1.0, emin - precision + 1)


def round_to(x: Fraction, dtype: str) -> float:
    """Correctly rounded (nearest, ties to even) value of exact ``x`` in ``dtype`` (may be +/-inf)."""
    precision, emin, largest = FORMATS[dtype]
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1  # now 2**e <= a < 2**(e+1)
    q = max(e, emin) - precision + 1  # exponent of the quantum
    scaled = a / (Fraction(2) ** q)
    n = math.floor(scaled)
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    value = Fraction(n) * Fraction(2) ** q
    if value > Fraction(largest):
        return sign * math.inf
    return sign * float(value)


def specials(dtype: str) -> list[float]:
    precision, emin, largest = FORMATS[dtype]
    tiny = smallest_subnormal(dtype)
    normal = math.ldexp(1.0, emin)
    base = [0.0, -0.0, math.nan, math.inf, -math.inf, tiny, -tiny, 2 * tiny, normal, -normal]
    base += [largest, -largest, 1.0, -1.0, 0.5, 3.0, 1e-6, -1e-6, 1e-4, 2e-4, 1e-3, 1e3]
    return [round_to(Fraction(v), dtype) if math.isfinite(v) and v != 0 else v for v in base]


def values(dtype: str) -> st.SearchStrategy[float]:
    """Floats exactly representable in ``dtype``: specials plus arbitrary values."""
    widths: dict[str, Literal[16, 32, 64]] = {
        "float16": 16,
        "bfloat16": 32,
        "float32": 32,
        "float64": 64,
    }
    width = widths[dtype]
    anything = st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    if dtype == "bfloat16":
        anything = anything.map(
            lambda v: round_to(Fraction(v), "bfloat16") if math.isfinite(v) and v != 0 else v
        )
    return st.one_of(st.sampled_from(specials(dtype)), anything)


def value_lists(dtype: str, size: int) -> st.SearchStrategy[list[float]]:
    return st.lists(values(dtype), min_size=size, max_size=size)


def thresholds(dtype: str) -> st.SearchStrategy[float]:
    """Thresholds valid for ``dtype``: 0, the smallest subnormal, typical and huge values."""
    tiny = smallest_subnormal(dtype)
    return st.sampled_from([0.0, tiny, 3 * tiny, 1e-6, 1.5e-4, 1e-3, 0.75, 1.0, 2.0, 1e5])


@st.composite
def tau_pairs(draw: Any, dtype: str) -> tuple[float, float | None]:
    tau = draw(thresholds(dtype))
    train = draw(st.one_of(st.none(), thresholds(dtype).filter(lambda t: t >= tau)))
    return tau, train


def to_numpy(values_: list[float], dtype: str) -> np.ndarray | None:
    """Numpy array of ``values_`` in ``dtype`` (``None`` if bfloat16 numpy is unavailable)."""
    if dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - ml_dtypes ships with onnx
            return None
        return np.asarray(values_, dtype=np.float64).astype(ml_dtypes.bfloat16)
    return np.asarray(values_, dtype=np.float64).astype(dtype)


def to_torch(values_: list[float], dtype: str) -> torch.Tensor:
    return torch.tensor(values_, dtype=torch.float64).to(TORCH_DTYPES[dtype])


def as_floats(x: Any) -> list[float]:
    """Exact Python floats of a tensor/array (any supported dtype)."""
    if isinstance(x, torch.Tensor):
        return x.detach().double().reshape(-1).tolist()
    return np.asarray(x).astype(np.float64).reshape(-1).tolist()


def as_bools(x: Any) -> list[bool]:
    if isinstance(x, torch.Tensor):
        return x.reshape(-1).tolist()
    return np.asarray(x).reshape(-1).tolist()


def _finite(v: float) -> bool:
    return math.isfinite(v)


def oracle(
    P: list[float],
    Q: list[float],
    dtype: str,
    tau: float,
    tau_train: float | None,
    factors: tuple[list[float], ...] = (),
    factor_taus: tuple[float, ...] = (),
) -> dict[str, list[Any]]:
    """Exact docs/semantics.md section 3 masks for elementwise ``P``, ``Q`` and factors."""
    out: dict[str, list[Any]] = {k: [] for k in ("fault", "semantic", "bottom", "gap", "decoded")}
    for i, (p, q) in enumerate(zip(P, Q, strict=True)):
        fault = not (_finite(p) and _finite(q))
        semantic = _finite(q) and (q == 0 or abs(q) < tau)
        quotient = None
        if not fault and q != 0:
            quotient = round_to(Fraction(p) / Fraction(q), dtype)
            fault = not math.isfinite(quotient)
        for v_list, t in zip(factors, factor_taus, strict=True):
            v = v_list[i]
            fault = fault or not _finite(v)
            semantic = semantic or (_finite(v) and (v == 0 or abs(v) < t))
        bottom = fault or semantic
        gap = not bottom and tau_train is not None and _finite(q) and tau <= abs(q) < tau_train
        out["fault"].append(fault)
        out["semantic"].append(semantic)
        out["bottom"].append(bottom)
        out["gap"].append(bool(gap))
        out["decoded"].append(math.nan if bottom else quotient)
    return out


def same_floats(a: list[float], b: list[float]) -> bool:
    """Equal values, NaN matching NaN (sign of zero ignored)."""
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))
