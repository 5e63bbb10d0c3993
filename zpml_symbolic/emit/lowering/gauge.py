"""Power-of-two regauging of emitted outputs whose constants leave the float range.

The canonical gauge (Q integer-primitive, positive leading coefficient) can
put huge or tiny constants into ``P`` and ``Q`` that the formula as written
never had: ``x/(1e-40*x + 1)`` becomes ``P = 1e40*x``, ``Q = x + 1e40``, which
overflows float32 on every row. When an expression's constants have a binary
exponent beyond :data:`SAFE_EXPONENT`, the emitters evaluate instead

    ``P' = 2**-e * P``,  ``Q' = 2**-e * Q``  (one ``e`` for both: ``P'/Q' == P/Q``)

and each validity factor ``V_i' = 2**-e_i * V_i``, where the power of two is
*pushed into the constants* bottom-up (:func:`normalize`): every sum is
rescaled to its largest term, every constant to a mantissa in ``[1/2, 1)``,
so the emitted coefficients are O(1) and no product of huge constants is ever
formed. Multiplying by a power of two is exact (it changes no rounding except
at over/underflow), and the thresholds are folded the same way
(``|Q| < tau  <=>  |Q'| < tau * 2**-e``), so the masks keep their meaning in
the declared canonical gauge. ``e`` is recorded in ``Plan.gauges`` (and ONNX
metadata ``zpml.gauge_exponents``); it is 0, and nothing changes, for every
expression whose constants are within range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from zpml_core.errors import InvalidConfigError
from zpml_core.resolution import ResolvedThresholds, resolve_thresholds
from zpml_symbolic.errors import EmitError
from zpml_symbolic.flatten.numeric_ir import n_add, n_mul, n_pow
from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import postorder

__all__ = [
    "SAFE_EXPONENT",
    "OutputGauge",
    "binary_exponent",
    "constants_of",
    "emitted_config",
    "emitted_factor_taus",
    "emitted_thresholds",
    "gauged_thresholds",
    "needs_regauge",
    "normalize",
    "regauge",
    "scale_by",
]

#: constants with ``2**-60 <= |c| < 2**60`` leave the canonical gauge alone
SAFE_EXPONENT = 60


@dataclass(frozen=True, slots=True)
class OutputGauge:
    """Emitted = ``2**-e`` times canonical: ``pq`` for ``P`` and ``Q``, ``v[i]`` for ``V_i``."""

    pq: int = 0
    v: tuple[int, ...] = ()

    def to_metadata(self) -> dict[str, object]:
        """JSON form for model metadata."""
        return {"PQ": self.pq, "V": list(self.v)}


def binary_exponent(c: Fraction) -> int:
    """``e`` with ``2**(e-1) <= |c| < 2**e`` (``c != 0``)."""
    a, b = abs(c.numerator), c.denominator
    e = a.bit_length() - b.bit_length()
    # 2**(e-1) <= a/b < 2**(e+1): one comparison decides
    if (a << -e if e < 0 else a) >= (b << e if e > 0 else b):
        e += 1
    return e


def constants_of(root: Node) -> list[Fraction]:
    """The nonzero constants of ``root``."""
    return [
        n.value  # type: ignore[misc]
        for n in postorder(root)
        if n.op is Op.CONST and n.value != 0
    ]


def needs_regauge(roots: list[Node]) -> bool:
    """True when some constant of ``roots`` has a binary exponent beyond :data:`SAFE_EXPONENT`."""
    return any(abs(binary_exponent(c)) > SAFE_EXPONENT for r in roots for c in constants_of(r))


def _pow2(k: int) -> Fraction:
    return Fraction(2) ** k


def normalize(root: Node) -> tuple[Node, int]:
    """``(node, e)`` with ``root == 2**e * node`` exactly and ``node``'s constants O(1)."""
    memo: dict[Node, tuple[Node, int]] = {}
    for n in postorder(root):
        if n in memo:
            continue
        if n.op is Op.CONST:
            c = n.value
            assert isinstance(c, Fraction)
            e = binary_exponent(c) if c != 0 else 0
            memo[n] = (ir.const(c * _pow2(-e)), e)
        elif n.op in (Op.VAR, Op.PARAM):
            memo[n] = (n, 0)
        elif n.op is Op.POW:
            b, e = memo[n.args[0]]
            assert isinstance(n.value, int)
            memo[n] = (n_pow(b, n.value), e * n.value)
        elif n.op is Op.MUL:
            parts = [memo[a] for a in n.args]
            memo[n] = (n_mul(*(p for p, _ in parts)), sum(e for _, e in parts))
        else:  # ADD: rescale every term to the largest one
            parts = [memo[a] for a in n.args]
            top = max(e for _, e in parts)
            memo[n] = (n_add(*(scale_by(p, e - top) for p, e in parts)), top)
    return memo[root]


def scale_by(node: Node, k: int) -> Node:
    """``2**k * node``, pushed into constants (sums distribute, products take it once)."""
    if k == 0:
        return node
    if node.op is Op.CONST:
        assert isinstance(node.value, Fraction)
        return ir.const(node.value * _pow2(k))
    if node.op is Op.ADD:
        return n_add(*(scale_by(a, k) for a in node.args))
    if node.op is Op.MUL:  # folds into the product's constant coefficient
        return n_mul(ir.const(_pow2(k)), *node.args)
    return n_mul(ir.const(_pow2(k)), node)


def regauge(P: Node, Q: Node, V: list[Node]) -> tuple[Node, Node, list[Node], OutputGauge]:
    """The emitted ``P', Q', V'`` and their gauge (identity when the constants are in range)."""
    e_pq = 0
    if needs_regauge([P, Q]):
        Pn, eP = normalize(P)
        Qn, e_pq = normalize(Q)
        P, Q = scale_by(Pn, eP - e_pq), Qn
    out_v, ev = [], []
    for f in V:
        e = 0
        if needs_regauge([f]):
            f, e = normalize(f)
        out_v.append(f)
        ev.append(e)
    return P, Q, out_v, OutputGauge(e_pq, tuple(ev))


# --------------------------------------------------------------------------- thresholds


def gauged_thresholds(
    config: Any,
    validity_taus: Any,
    n_factors: int,
    gauge: OutputGauge,
    *,
    counted: str | None = None,
) -> ResolvedThresholds:
    """The validated thresholds of one expression (canonical gauge) with its emitted
    ``gauge`` (:func:`~zpml_core.resolution.resolve_thresholds`); ``config`` is an
    ``InferenceConfig`` or ``None`` (``tau_infer=0``)."""
    return resolve_thresholds(
        config, validity_taus, n_factors, gauge=gauge.pq, factor_gauges=gauge.v, counted=counted
    )


def emitted_thresholds(resolved: ResolvedThresholds) -> ResolvedThresholds:
    """``resolved.emitted()``: the thresholds the emitted values are compared with.

    Raises :class:`EmitError` when the scaled thresholds leave float64's range.
    """
    try:
        return resolved.emitted()
    except InvalidConfigError as exc:
        raise EmitError(
            f"the expression's constants were regauged by 2**-{resolved.gauge} to stay in the "
            f"float range, and the thresholds tau_infer={resolved.tau_infer!r}, "
            f"tau_train={resolved.tau_train!r} scaled the same way are not representable "
            f"({exc}); use tau_infer=0 or rescale the formula's constants"
        ) from exc


def emitted_config(config: Any, e: int) -> Any:
    """``config`` (an ``InferenceConfig``) with ``tau_infer``/``tau_train`` times ``2**-e``
    (the emitted gauge of ``Q``); ``config`` itself when ``e == 0``."""
    if e == 0:
        return config
    em = emitted_thresholds(resolve_thresholds(config, gauge=e))
    return dataclasses.replace(config, tau_infer=em.tau_infer, tau_train=em.tau_train)


def emitted_factor_taus(validity_taus: Any, exponents: Sequence[int]) -> Any:
    """Per-factor thresholds times ``2**-e_i``: ``validity_taus`` unchanged when every
    ``e_i`` is 0 (the decode validates it), else the validated, scaled tuple."""
    if not any(exponents):
        return validity_taus
    resolved = resolve_thresholds(
        None, validity_taus, len(exponents), factor_gauges=tuple(exponents)
    )
    return emitted_thresholds(resolved).factor_taus
