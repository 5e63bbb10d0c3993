"""A ``tau_infer`` ceiling proved safe on a declared operating region.

:func:`certified_tau_ceiling` answers: *how large may ``tau_infer`` be so that
no input of the region the user declares safe is ever flagged bottom?* It
combines two proofs about the program the strict evaluator (and the ONNX
graph) actually runs:

* the certified minimum of ``|Q|`` and of every ``|V_i|`` over the box, from
  :func:`zpml_symbolic.domain_report` (exact rational arithmetic; the minimum
  of ``|Q|`` is the product of its factors' minima in the canonical integer
  gauge, in which ``Q`` is built);
* a rigorous bound of the rounding error of the evaluation in the evaluation
  dtype over the whole box: the running-error bound of the certified masks
  (:mod:`zpml_symbolic.emit.analyses.certify`), ``|fl(V) - V| <= gamma_d * A``,
  with ``A`` (the program on absolute values) evaluated *exactly* at the largest
  ``|x|`` of the box, which bounds it at every point of the box.

The thresholds compare in the *emitted* gauge (``Q' = 2**-e * Q`` when the
constants were regauged, with ``tau_infer`` scaled by ``2**-e``), so the
ceiling is computed there: the largest dtype value ``t <= 2**-e * min|Q| - err``
is the largest effective threshold that cannot flag a point, and ``t * 2**e``
the ``tau_infer`` that yields it. Inputs are the dtype values inside the box:
the box is first widened outward to dtype-representable bounds, so an input in
the box cast to the dtype still lies in the analysed box. The result is a
proved lower bound of the true supremum (the bounds are certified, possibly
loose), never more.

The same proofs check what ``tau_infer`` cannot change: every validity factor's
threshold, the certified masks (``certified=True``: ``|Q|`` must exceed its
per-sample error bound), and overflow (no intermediate value, and not ``P/Q``,
can leave the dtype range, which would be a fault). If any of them can flag a
point of the box, no ``tau_infer`` makes the box bottom-free and
:class:`~zpml_runtime.errors.CalibrationError` says which and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from ..errors import CalibrationError, InvalidConfigError
from .rounding import (
    PRECISION,
    absolute_bounds,
    dtype_box,
    dtype_name,
    floor_float,
    gamma,
    scaled_ceiling,
)

__all__ = ["CertifiedTauCeiling", "FactorCeiling", "certified_tau_ceiling"]


@dataclasses.dataclass(frozen=True)
class FactorCeiling:
    """A validity factor ``V_i`` of output ``output`` on the box.

    ``min_abs``: certified lower bound of ``|V_i|`` (canonical gauge); ``error``: bound of
    the rounding error of its evaluation (canonical gauge); ``tau``: the largest validity
    threshold proved never to flag a point of the box; ``given``: the model's threshold
    (at most ``tau``, or :func:`certified_tau_ceiling` raises).
    """

    output: int
    index: int
    factor: str
    min_abs: Fraction
    error: Fraction
    tau: float
    given: float


@dataclasses.dataclass(frozen=True)
class CertifiedTauCeiling:
    """Result of :func:`certified_tau_ceiling`.

    ``tau_infer``: the largest ``tau_infer`` proved to flag no point of the box
    (every dtype input in it). ``min_abs_q[k]`` / ``q_error[k]``: per output, the
    certified lower bound of ``|Q|`` and the bound of its rounding error, both in the
    canonical gauge. ``box``: the analysed box (the declared one widened to the dtype).
    ``report``: the domain report behind the bounds.
    """

    tau_infer: float
    dtype: str
    evaluation_dtype: str
    box: dict[str, tuple[Fraction, Fraction]]
    min_abs_q: tuple[Fraction, ...]
    q_error: tuple[Fraction, ...]
    validity: tuple[FactorCeiling, ...]
    report: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (exact rationals as ``"p/q"`` text)."""
        from zpml_symbolic.domain.report import fraction_text

        return {
            "tau_infer": self.tau_infer,
            "dtype": self.dtype,
            "evaluation_dtype": self.evaluation_dtype,
            "box": {k: [fraction_text(lo), fraction_text(hi)] for k, (lo, hi) in self.box.items()},
            "min_abs_q": [fraction_text(q) for q in self.min_abs_q],
            "q_error": [fraction_text(q) for q in self.q_error],
            "validity": [
                {
                    "output": f.output,
                    "index": f.index,
                    "factor": f.factor,
                    "min_abs": fraction_text(f.min_abs),
                    "error": fraction_text(f.error),
                    "tau": f.tau,
                    "given": f.given,
                }
                for f in self.validity
            ],
            "domain": self.report.summary(),
        }


# ----------------------------------------------------------------------------- model


@dataclasses.dataclass
class _Model:
    plan: Any
    coefficients: dict[str, float]
    taus: list[list[float]]  # per output, per validity factor
    certified: bool
    compute_dtype: torch.dtype | None


def _resolve(model: Any, parameters: Mapping[str, Any] | None, validity_taus: Any) -> _Model:
    from zpml_runtime.inference.wrapper import SCMInferenceWrapper
    from zpml_symbolic.emit.backends.strict import StrictEvaluator
    from zpml_symbolic.emit.backends.torch_emit import RationalModule
    from zpml_symbolic.emit.lowering.plan import make_plan, split_expression_taus

    certified, taus = False, validity_taus
    if isinstance(model, SCMInferenceWrapper):
        taus = model.validity_taus if taus is None else taus
        model = model.model
    if isinstance(model, StrictEvaluator):
        taus = model.validity_taus if taus is None else taus
        certified = bool(model.certified)
        model = model.model
    if isinstance(model, RationalModule):
        if parameters:
            raise InvalidConfigError(
                "parameters= is for expressions; a compiled module uses its own coefficients"
            )
        plan, coefficients, compute = model.plan, model.coefficient_values(), model.compute_dtype
    else:
        plan = make_plan(_frus(model, parameters))
        coefficients, compute = dict(parameters or {}), None
        missing = [p for p in plan.parameters if p not in coefficients]
        if missing:
            raise InvalidConfigError(f"parameters= gives no value for {missing}")
    counts = [len(n.V) for n in plan.names]
    per = split_expression_taus(0.0 if taus is None else taus, counts)
    out: list[list[float]] = []
    for k, (t, c) in enumerate(zip(per, counts, strict=True)):
        values = [float(v) for v in t] if isinstance(t, Sequence) else [float(t or 0.0)] * c
        if len(values) != c:
            raise InvalidConfigError(
                f"validity_taus of output {k} has {len(values)} entries for {c} validity factors"
            )
        out.append(values)
    return _Model(plan, {p: coefficients[p] for p in plan.parameters}, out, certified, compute)


def _frus(model: Any, parameters: Mapping[str, Any] | None) -> list[Any]:
    import sympy as sp

    import zpml_symbolic as zs
    from zpml_symbolic.flatten.fru import FlattenedFRU

    def one(item: Any) -> Any:
        if isinstance(item, FlattenedFRU):
            return item
        if isinstance(item, str | sp.Basic):
            return zs.flatten(item, parameters=list(parameters or {}))
        raise InvalidConfigError(
            "certified_tau_ceiling needs a strict evaluator, a compiled module (optionally in "
            "an SCMInferenceWrapper), a FlattenedFRU or expression text; got "
            f"{type(item).__name__}"
        )

    if isinstance(model, list | tuple):
        return [one(m) for m in model]
    return [one(model)]


# ----------------------------------------------------------------------------- main


def certified_tau_ceiling(
    fru_or_model: Any,
    safe_box: Mapping[str, Any] | str,
    *,
    dtype: str | torch.dtype = "float32",
    parameters: Mapping[str, Any] | None = None,
    validity_taus: Any = None,
    budget: Any = None,
    tightness: float | Fraction = Fraction(11, 10),
) -> CertifiedTauCeiling:
    """The largest ``tau_infer`` proved to flag no point of the declared safe box.

    ``fru_or_model``: a strict evaluator (``zs.strict_evaluator``), a compiled module
    (``zs.to_torch``), either inside an ``SCMInferenceWrapper``, or expression text /
    sympy / ``FlattenedFRU`` (a list for several outputs; ``parameters=`` gives the
    coefficient values). ``safe_box``: ``{variable: (lo, hi) or value}`` or text
    ``"x=0:1,y=-2:2"`` (exact bounds) over the model's inputs. ``dtype``: the input dtype
    the model runs in (the evaluation dtype is the wider of it and the module's
    ``compute_dtype``). ``validity_taus`` defaults to the model's. ``budget`` and
    ``tightness`` go to :func:`zpml_symbolic.domain_report` (a tightness close to 1
    refines the certified minima further, at some cost).

    Raises :class:`~zpml_runtime.errors.CalibrationError` when no ``tau_infer`` makes the
    box bottom-free: a factor of ``Q`` or a validity factor vanishes in the box (the
    message carries the witness) or was not decided, the rounding error of ``Q`` or of a
    ``V_i`` can reach its certified minimum, a validity threshold or the certified masks
    can flag a point, or a value can overflow. A bad box is a
    :class:`~zpml_symbolic.domain.BoxError` naming the variable.
    """
    import zpml_symbolic as zs
    from zpml_core.arrays import effective_threshold
    from zpml_core.config import InferenceConfig
    from zpml_core.errors import ZeroProofError
    from zpml_symbolic.emit.analyses.certify import ErrorBounds, RoundingDepth
    from zpml_symbolic.emit.lowering.plan import scaled_config
    from zpml_symbolic.flatten.budget import Budget

    in_dtype = dtype_name(dtype)
    m = _resolve(fru_or_model, parameters, validity_taus)
    plan = m.plan
    ev_dtype = in_dtype
    if m.compute_dtype is not None and PRECISION[dtype_name(m.compute_dtype)] > PRECISION[in_dtype]:
        ev_dtype = dtype_name(m.compute_dtype)
    p = PRECISION[ev_dtype]
    u = Fraction(1, 2**p)
    box = dtype_box(safe_box, plan, in_dtype)
    report = zs.domain_report(
        list(plan.frus),
        box,
        parameters=dict(m.coefficients) or None,
        budget=budget if budget is not None else Budget(max_work=4_000_000, max_seconds=60.0),
        tightness=tightness,
    )
    if not report.defined_everywhere:
        raise CalibrationError(
            "the declared safe box is not safe for any tau_infer: " + report.summary()
        )
    info = np.finfo(np.dtype(ev_dtype))
    tiny, big = Fraction(float(info.tiny)), Fraction(float(info.max))
    A = absolute_bounds(plan, box, m.coefficients, tiny)
    depth = RoundingDepth(plan.program).run()
    bounds = ErrorBounds(plan) if m.certified else None
    torch_dtype = getattr(torch, ev_dtype)

    def error(i: int) -> Fraction:
        return gamma(depth[i], p) * A[i]

    for i, a in enumerate(A):  # every value stays finite: no overflow fault
        if a + error(i) >= big:
            raise CalibrationError(
                f"a value of the program (instruction {i}) can reach {float(a):.3g} on the box, "
                f"beyond the {ev_dtype} range: evaluations there may overflow (a fault)"
            )

    def certified_bound(name: str, i: int) -> Fraction:
        """The largest per-sample bound the certified masks compare ``|V|`` with on the box."""
        assert bounds is not None
        return (
            Fraction(bounds.factor(name, torch_dtype))
            * A[i]
            * (1 + gamma(2 * depth[i] + 2, p))
            * (1 + u)
        )

    q_min, q_err, ceilings = [], [], []
    for k, names in enumerate(plan.names):
        e = plan.gauge(k).pq
        iq = plan.program.outputs[names.Q]
        L = report.min_abs_q(k)
        assert L is not None  # defined everywhere
        low = L * Fraction(2) ** -e - error(iq)  # |fl(Q')| >= low on the box
        if low <= 0:
            raise CalibrationError(
                f"output {k}: the rounding error of Q in {ev_dtype} (<= {float(error(iq) * Fraction(2) ** e):.3g}) "
                f"can reach its certified minimum |Q| >= {float(L):.3g} on the box; evaluate in "
                "float64 (compute_dtype) or shrink the box"
            )
        if bounds is not None and low <= certified_bound(names.Q, iq):
            raise CalibrationError(
                f"output {k}: the certified masks (certified=True) may flag points of the box: the "
                f"error bound of Q there is not below |Q| >= {float(low):.3g}"
            )
        iP = plan.program.outputs[names.P]
        quotient = (A[iP] + error(iP)) / low * (1 + u) ** 2
        if quotient >= Fraction(float(np.finfo(np.dtype(in_dtype)).max)):
            raise CalibrationError(
                f"output {k}: P/Q can reach {float(quotient):.3g} on the box, beyond the {in_dtype} "
                "range (an overflow fault)"
            )
        q_min.append(L)
        q_err.append(error(iq) * Fraction(2) ** e)
        ceilings.append((e, low, scaled_ceiling(floor_float(low, ev_dtype), e)))
    tau = min(c[2] for c in ceilings)

    def safe(t: float) -> bool:
        try:
            cfg = InferenceConfig(tau_infer=t)
            return all(
                Fraction(scaled_config(cfg, e).thresholds_for(ev_dtype)[0]) <= low
                for e, low, _ in ceilings
            )
        except ZeroProofError:  # an unrepresentable threshold is not safe
            return False

    for _ in range(8):  # rounding of tau through float64 and back: step down until proved
        if safe(tau):
            break
        tau = float(np.nextafter(tau, 0.0))
    else:
        tau = 0.0  # exact zeros only: |fl(Q)| >= low > 0, so never bottom
    validity = _validity(
        plan,
        report,
        m,
        A,
        error,
        ev_dtype,
        certified_bound if bounds else None,
        effective_threshold,
    )
    return CertifiedTauCeiling(
        tau_infer=tau,
        dtype=in_dtype,
        evaluation_dtype=ev_dtype,
        box=box,
        min_abs_q=tuple(q_min),
        q_error=tuple(q_err),
        validity=tuple(validity),
        report=report,
    )


def _validity(
    plan: Any,
    report: Any,
    m: _Model,
    A: list[Fraction],
    error: Any,
    ev_dtype: str,
    certified_bound: Any,
    effective_threshold: Any,
) -> list[FactorCeiling]:
    """Every validity factor: its threshold must flag no point of the box."""
    out = []
    for k, names in enumerate(plan.names):
        facs = [f for f in report.factors if f.output == k and f.role == "validity"]
        gauge = plan.gauge(k)
        for i, name in enumerate(names.V):
            f = facs[i]
            e = gauge.v[i] if gauge.v else 0
            iv = plan.program.outputs[name]
            L = f.canonical_lower_bound
            assert L is not None
            low = L * Fraction(2) ** -e - error(iv)
            label = f"validity factor {i} ({f.factor}) of output {k}"
            if low <= 0:
                raise CalibrationError(
                    f"{label}: the rounding error of its evaluation in {ev_dtype} can reach its "
                    f"certified minimum |V| >= {float(L):.3g} on the box; evaluate in float64 or "
                    "shrink the box"
                )
            if certified_bound is not None and low <= certified_bound(name, iv):
                raise CalibrationError(f"{label}: the certified masks may flag points of the box")
            given = m.taus[k][i]
            t = effective_threshold(math.ldexp(given, -e), ev_dtype, "validity_taus")
            ceiling = scaled_ceiling(floor_float(low, ev_dtype), e)
            if Fraction(t) > low:
                raise CalibrationError(
                    f"{label}: its threshold validity_taus={given!r} can flag points of the box "
                    f"(certified |V| >= {float(L):.3g}, rounding error <= "
                    f"{float(error(iv) * Fraction(2) ** e):.3g}); no tau_infer avoids that: lower "
                    f"it to at most {ceiling!r}"
                )
            out.append(
                FactorCeiling(k, i, f.factor, L, error(iv) * Fraction(2) ** e, ceiling, given)
            )
    return out
