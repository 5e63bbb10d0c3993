"""The guarded, factorwise strict evaluator (torch) and its ``explain`` helper.

``strict_evaluator(fru, config=...)`` returns a module whose ``forward(x)``
computes ``P``, ``Q`` and every retained validity factor ``V_i`` in the
canonical gauge and decodes them with the runtime's ``strict_inference``
(docs/semantics.md §3). Masks come from ``Q`` *and* every validity factor, never
from the reduced ``Q`` alone, and ``Q`` itself is evaluated as the product of
its factors, so an exact zero of any factor is an exact zero of ``Q``.

Gradients: ``strict_inference`` gives zero gradients at bottom entries, and
input and parameter gradients are finite (zero) at every ``fault_mask``
sample, whether or not it is in the loss. When autograd records, the
evaluator first decodes ``x`` as given; if some sample is a fault (a
non-finite input, or finite inputs whose intermediate overflowed, where the
backward pass would compute ``0 * inf = NaN``), ``decoded`` is recomputed with
those rows of ``x`` (and every non-finite entry) replaced by 0 and the
samples forced to faults, so no infinity enters the backward pass. Masks and
factor values are always those of the real ``x``; batches without faults (in
eager mode) pay nothing extra. Under ``torch.compile``/tracing the second
pass always runs (no data-dependent branch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import nn

from zpml_core.errors import UnsupportedInputError
from zpml_symbolic.emit.analyses.underflow import (
    apply_underflow,
    narrow_decoded,
    resolve_torch_dtype,
    torch_leaf_values,
)
from zpml_symbolic.emit.backends.numpy_emit import run_program, run_values
from zpml_symbolic.emit.backends.torch_emit import RationalModule, to_torch
from zpml_symbolic.emit.lowering.gauge import emitted_config, emitted_factor_taus
from zpml_symbolic.emit.lowering.plan import split_expression_taus
from zpml_symbolic.emit.lowering.program import lower
from zpml_symbolic.emit.lowering.taps import leaf_program
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.provenance import DenominatorSource

DEFAULT_PREFIX = "structural_validity_factor"


@dataclass(frozen=True, slots=True)
class FactorCause:
    """One provenance factor that explains a bottom sample."""

    source: DenominatorSource
    value: float
    reason: str


@dataclass(frozen=True, slots=True)
class BottomExplanation:
    """Why one sample is bottom: its provenance and the divisions responsible."""

    index: tuple[int, ...]
    provenance: str
    causes: tuple[FactorCause, ...]
    note: str = ""

    def __str__(self) -> str:
        lines = [f"sample {self.index}: {self.provenance} bottom"]
        for c in self.causes:
            lines.append(
                f"  {c.reason}: factor {c.source.factor} = {c.value:.6g} "
                f"from {c.source.source!r} ({c.source.kind}) at {c.source.path}"
            )
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def refuse_meta(x: torch.Tensor, where: str) -> None:
    """Raise :class:`UnsupportedInputError` for a ``meta`` tensor: it has a shape but no
    values, and the strict masks are decided from the values."""
    if x.device.type == "meta":
        raise UnsupportedInputError(
            f"{where}: x is on the 'meta' device (a shape without values); strict evaluation "
            "decides its masks from the values: materialise x on a real device "
            "(e.g. torch.empty(shape, device='cpu') filled with data), and the module too "
            "(module.to_empty(device='cpu') then load its state_dict) if it was built on 'meta'"
        )


def _tracing() -> bool:
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def _input_dependencies(module: RationalModule, k: int | None = None) -> list[int]:
    """Input columns the outputs of expression ``k`` (default: all) depend on."""
    program = module.plan.program
    deps: list[set[int]] = []
    for ins in program.instrs:
        d: set[int] = {ins.index} if ins.op == "input" and ins.index is not None else set()
        for a in ins.args:
            d |= deps[a]
        deps.append(d)
    names = module.plan.names if k is None else module.plan.names[k : k + 1]
    used: set[int] = set()
    for n in names:
        for out in (n.P, n.Q, *n.V):
            used |= deps[program.outputs[out]]
    return sorted(used)


class StrictEvaluator(nn.Module):
    """``forward(x) -> StrictInferenceResult`` for one compiled FRU.

    ``result.as_dict()`` holds ``decoded, bottom_mask, gap_mask, fault_mask,
    semantic_bottom_mask, bottom_provenance`` and the per-factor outputs named
    by ``fru.structural_validity_output_schema(prefix=...)``. A module compiled
    from several expressions gives a tuple with one result per expression
    (``schemas[k]`` names expression ``k``'s factor outputs).
    ``x``: shape ``[*batch, n_vars]`` (see :mod:`zpml_symbolic.emit.backends.inputs`).
    """

    def __init__(
        self,
        model: RationalModule,
        *,
        config: Any,
        validity_taus: float | Sequence[float],
        prefix: str,
        certified: bool = False,
    ) -> None:
        super().__init__()
        from zpml_core.config import InferenceConfig

        self.model = model
        self.config = config if config is not None else InferenceConfig(tau_infer=0.0)
        self.validity_taus = validity_taus
        self.single = len(model.frus) == 1
        self.schemas = tuple(f.structural_validity_output_schema(prefix=prefix) for f in model.frus)
        self.schema = self.schemas[0]
        counts = [len(n.V) for n in model.plan.names]
        taus = [validity_taus] if self.single else split_expression_taus(validity_taus, counts)
        # thresholds in the emitted gauge (2**-e times the canonical one; e = 0 unless regauged)
        gauges = [model.plan.gauge(k) for k in range(len(model.frus))]
        self._taus = [emitted_factor_taus(t, g.v) for t, g in zip(taus, gauges, strict=True)]
        self._configs = [emitted_config(self.config, g.pq) for g in gauges]
        self._deps = _input_dependencies(model)
        self._deps_k = [_input_dependencies(model, k) for k in range(len(model.frus))]
        self._explain_plans: dict[int, Any] = {}
        self._leaf_programs: dict[int, Any] = {}
        if not isinstance(certified, bool):
            raise InvalidArgumentError(f"certified must be True or False, got {certified!r}")
        #: certified masks: also bottom where |Q| or |V_i| is within the rigorous forward
        #: error bound of the evaluation (see :mod:`zpml_symbolic.emit.analyses.certify`)
        self.certified = certified
        self._bounds = None
        if certified:
            from zpml_symbolic.emit.analyses.certify import ErrorBounds

            self._bounds = ErrorBounds(model.plan)

    @property
    def fru(self) -> FlattenedFRU:
        """The compiled FRU."""
        return self.model.frus[0]

    def _needs_sanitising(self, x: torch.Tensor) -> bool:
        if not torch.is_grad_enabled():
            return False
        return x.requires_grad or any(p.requires_grad for p in self.model.parameters())

    def forward(self, x: torch.Tensor) -> Any:
        """Strict result of the FRU on ``x`` (shape ``[*batch, n_vars]``); a tuple for several."""
        self.model.check_input(x, "StrictEvaluator")
        refuse_meta(x, "StrictEvaluator")
        if not self._needs_sanitising(x) or not self._deps:
            return self._decode(x, None)
        eager = not (torch.compiler.is_compiling() or torch.jit.is_tracing())
        result = self._decode(x, None)
        results = (result,) if self.single else result
        out = []
        for k, r in enumerate(results):
            f = r.fault_mask
            if eager and (f.numel() == 0 or not bool(f.view(torch.uint8).max())):
                out.append(r)  # eager fast path: no fault, nothing to replace
            else:
                out.append(self._without_fault_gradients(x, k, r))
        return out[0] if self.single else tuple(out)

    def _without_fault_gradients(self, x: torch.Tensor, k: int, r: Any) -> Any:
        """``r`` (expression ``k`` at ``x``) with ``decoded`` recomputed so that gradients
        are finite and zero at its fault samples.

        At a fault sample an input is non-finite or an intermediate overflowed, and
        the backward pass would multiply the zero output gradient by an infinite
        partial derivative (``0 * inf = NaN``), even when the sample is left out of
        the loss. The fault rows of ``x`` (and any non-finite entry) are replaced by
        0 and those samples are forced to faults, so no infinity enters the
        backward pass; the other samples are evaluated on the same values in the
        same order (bit-identical). Masks and factor values are those of ``x``.
        """
        bad = r.fault_mask.detach()
        keep = torch.isfinite(x) & ~bad[..., None]
        safe = torch.where(keep, x, torch.zeros_like(x))
        redone = self._decode(safe, [bad] * len(self._deps_k))
        return dataclasses.replace(r, decoded=(redone if self.single else redone[k]).decoded)

    def _decode(self, x: torch.Tensor, bad: list[torch.Tensor] | None) -> Any:
        """Evaluate ``P, Q, V`` on ``x`` and decode; ``bad[k]`` samples of expression k are faults."""
        from zpml_core.strict import strict_inference

        outs = self.model._forward_factors(x)
        results = []
        for k, out in enumerate((outs,) if self.single else outs):
            P, Q = out[0], out[1]
            V = out[2] if len(out) == 3 and len(out[2]) else None
            if bad is not None:
                P = P.masked_fill(bad[k], float("nan"))
            Qd, Vd = (
                (Q, V) if self._bounds is None else self._certify(self.model._widen(x), k, Q, V)
            )
            r = strict_inference(
                P, Qd, config=self._configs[k], validity_factors=Vd, validity_taus=self._taus[k]
            )
            if Vd is not V:
                r = dataclasses.replace(r, factor_values=tuple(V) if V is not None else ())
            r = self._underflow(k, x, Q, r)  # Q == 0 from nonzero factors: a fault
            results.append(narrow_decoded(r, x.dtype, check=not _tracing()))  # compute_dtype
        return results[0] if self.single else tuple(results)

    def _underflow(self, k: int, x: torch.Tensor, Q: torch.Tensor, r: Any) -> Any:
        """``r`` with the samples where ``Q`` underflowed to 0 (no factor of ``Q`` is 0)
        turned into faults (see :mod:`zpml_symbolic.emit.analyses.underflow`). Eager: only the
        samples with ``Q == 0`` among the semantic bottoms are re-examined."""
        plan = self.model.plan
        if not plan.leaves(k):
            return r
        program = self._leaf_programs.get(k)
        if program is None:
            program = self._leaf_programs[k] = leaf_program(plan.program, plan.leaves(k))
        params = [getattr(self.model.coefficients, key) for key in plan.parameter_keys]
        with torch.no_grad():
            xw = self.model._widen(x.detach())
            Qd = Q.detach()
            if _tracing():
                under = Qd == 0
                for v in torch_leaf_values(program, xw, params):
                    under = under & (v != 0)
                return apply_underflow(r, under)
            sem = r.semantic_bottom_mask
            if sem.numel() == 0 or not bool(sem.view(torch.uint8).max()):
                return r
            rows = torch.nonzero(sem & (Qd == 0), as_tuple=True)
            if rows[0].numel() == 0:
                return r
            nonzero = torch.ones(rows[0].shape, dtype=torch.bool, device=Qd.device)
            for v in torch_leaf_values(program, xw[rows], params):
                nonzero &= torch.as_tensor(v, device=Qd.device) != 0
            if not bool(nonzero.any()):
                return r
            under = torch.zeros_like(sem)
            under[tuple(i[nonzero] for i in rows)] = True
        return apply_underflow(r, under)

    def _certify(self, x: torch.Tensor, k: int, Q: torch.Tensor, V: Any) -> tuple[Any, Any]:
        """``Q`` and ``V_i`` with 0 wherever their non-zeroness is not certified."""
        from zpml_symbolic.emit.analyses.certify import uncertain

        if self._bounds is None:  # not certified: nothing to widen
            return Q, V
        names = self.model.plan.names[k]
        bounds = self._bounds.bounds(x, self.model.coefficient_values(), [names.Q, *names.V])
        Q = torch.where(uncertain(Q, bounds[names.Q]), 0.0, Q)
        if V is not None:
            V = tuple(
                torch.where(uncertain(v, bounds[n]), 0.0, v)
                for v, n in zip(V, names.V, strict=True)
            )
        return Q, V

    @torch.jit.unused
    def explain(
        self,
        x: torch.Tensor | np.ndarray,
        result: Any = None,
        *,
        limit: int | None = 100,
        expression: int = 0,
    ) -> list[BottomExplanation]:
        """For each bottom sample (up to ``limit``), the divisions of the user's tree responsible.

        Evaluates every provenance factor (retained or part of ``Q``) at the
        bottom samples: zero or non-finite factors are named with their
        source subexpression; if ``Q`` is bottom only through ``tau_infer``,
        the smallest factor of ``Q`` is named. ``expression``: which expression
        of a multi-expression evaluator (``result`` is then the tuple or its entry).
        """
        n_expr = len(self.model.frus)
        if (
            isinstance(expression, bool)
            or not isinstance(expression, int)
            or not 0 <= expression < n_expr
        ):
            raise InvalidArgumentError(
                f"expression must be an index in range({n_expr}), got {expression!r}"
            )
        xt = torch.as_tensor(x)
        self.model.check_input(xt, "StrictEvaluator.explain")
        refuse_meta(xt, "StrictEvaluator.explain")
        if result is None:
            with torch.no_grad():
                result = self(xt)
        if isinstance(result, tuple):
            result = result[expression]
        bottom = result.bottom_mask.detach().cpu().numpy()
        prov = result.bottom_provenance.detach().cpu().numpy()
        idx = np.argwhere(bottom)
        if limit is not None:
            idx = idx[:limit]
        if len(idx) == 0:
            return []
        rows = np.stack([xt.detach().cpu().numpy()[tuple(i)] for i in idx])
        xs = rows.astype(np.float64)
        plan = self._provenance_plan(expression)
        values = run_program(plan, xs, self.model.coefficient_values())
        under, eval_dtype = self._underflow_rows(rows, expression)
        sources = self.model.frus[expression].denominator_provenance
        names = {0: "finite", 1: "fault", 2: "semantic", 3: "mixed"}
        out = []
        for row, i in enumerate(idx):
            causes = []
            for k, src in enumerate(sources):
                v = float(values[f"F{k}"][row])
                if not np.isfinite(v):
                    causes.append(FactorCause(src, v, "non-finite"))
                elif v == 0.0:
                    causes.append(FactorCause(src, v, "zero"))
            note = ""
            if not causes and under[row]:
                causes = [
                    FactorCause(src, float(values[f"F{k}"][row]), "underflow")
                    for k, src in enumerate(sources)
                    if not src.retained
                ]
                note = (
                    f"Q underflowed to 0 in {eval_dtype} although none of its factors is 0: a "
                    "floating-point failure (fault), not a division by zero; evaluate with "
                    "compute_dtype=torch.float64"
                )
            elif not causes:
                in_q = [
                    (abs(float(values[f"F{k}"][row])), k)
                    for k, s in enumerate(sources)
                    if not s.retained
                ]
                if in_q:
                    _, k = min(in_q)
                    src = sources[k]
                    causes.append(
                        FactorCause(src, float(values[f"F{k}"][row]), "smallest factor of Q")
                    )
                note = "|Q| or a validity factor is below its threshold, or P/Q overflowed"
            out.append(
                BottomExplanation(
                    tuple(int(j) for j in i), names[int(prov[tuple(i)])], tuple(causes), note
                )
            )
        return out

    def _underflow_rows(self, rows: np.ndarray, expression: int) -> tuple[np.ndarray, str]:
        """Per row of ``rows`` (inputs), whether expression ``expression``'s ``Q`` underflowed
        in the evaluation dtype, and that dtype's name."""
        plan = self.model.plan
        dt = str(self.model.evaluation_dtype(torch.from_numpy(rows[:0]).dtype))
        dt = dt.removeprefix("torch.")
        taps = plan.q_taps[expression] if plan.q_taps else ()
        if not taps:
            return np.zeros(len(rows), dtype=bool), dt
        values = run_values(plan, rows, self.model.coefficient_values(), np.dtype(dt))
        batch = rows.shape[:-1]
        q = np.broadcast_to(values[plan.program.outputs[plan.names[expression].Q]], batch)
        under = q == 0
        for t in taps:
            under = under & (np.broadcast_to(values[plan.program.taps[t]], batch) != 0)
        return under, dt

    def _provenance_plan(self, expression: int = 0) -> Any:
        found = self._explain_plans.get(expression)
        if found is None:
            base = self.model.plan
            irs = self.model.frus[expression].provenance_factor_irs
            program = lower(
                [(f"F{k}", n) for k, n in enumerate(irs)],
                variables=base.variables,
                parameters=base.parameters,
            )
            found = type(base)(base.frus, base.variables, base.parameters, program, ())
            self._explain_plans[expression] = found
        return found


def strict_evaluator(
    fru_or_model: FlattenedFRU
    | RationalModule
    | sp.Expr
    | str
    | Sequence[FlattenedFRU | sp.Expr | str],
    *,
    config: Any = None,
    validity_taus: float | Sequence[Any] = 0.0,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    dtype: torch.dtype = torch.float32,
    prefix: str = DEFAULT_PREFIX,
    variables: Sequence[str | sp.Symbol] | None = None,
    certified: bool = False,
    compute_dtype: torch.dtype | None = None,
) -> StrictEvaluator:
    """A module returning the strict result of docs/semantics.md §3 for one FRU (or one per FRU).

    ``config`` is a ``zpml_core.InferenceConfig`` (re-exported as
    ``zpml_runtime.inference.InferenceConfig``) (default: ``tau_infer=0``,
    exact zeros only); ``validity_taus`` the per-factor thresholds (several
    expressions: one number for all, or one entry per expression).
    ``certified=True`` also flags as semantic bottom every finite ``Q``/``V_i``
    whose magnitude is within the rigorous forward error bound of its
    evaluation (so exact zeros that rounding turned into tiny values are never
    accepted; see docs/accuracy.md). ``variables`` fixes the input column order. Pass a :class:`RationalModule`
    to share its coefficients (and its column order). A sequence of
    expressions gives an evaluator returning a tuple of results.
    ``compute_dtype`` (``None`` or ``torch.float64``): evaluate ``P, Q, V`` and decide
    the masks in at least this dtype (thresholds converted exactly to it); ``decoded``
    is cast back to the input's dtype, and a sample where that cast overflows is a
    fault. Factor values in the result stay in the wide dtype.
    """
    compute_dtype = resolve_torch_dtype(compute_dtype)
    if isinstance(fru_or_model, RationalModule):
        if variables is not None or tuple(parameters) or init is not None:
            raise InvalidArgumentError(
                "strict_evaluator(module) uses the module's column order and coefficients; "
                "do not pass variables=, parameters= or init="
            )
        if compute_dtype is not None and compute_dtype != fru_or_model.compute_dtype:
            raise InvalidArgumentError(
                f"strict_evaluator(module, compute_dtype={compute_dtype}) differs from the "
                f"module's compute_dtype={fru_or_model.compute_dtype}; compile the module with "
                "to_torch(..., compute_dtype=...)"
            )
        model = fru_or_model
    else:
        model = to_torch(
            fru_or_model,
            parameters=parameters,
            init=init,
            dtype=dtype,
            variables=variables,
            compute_dtype=compute_dtype,
        )
    return StrictEvaluator(
        model, config=config, validity_taus=validity_taus, prefix=prefix, certified=certified
    )


__all__ = ["BottomExplanation", "FactorCause", "StrictEvaluator", "strict_evaluator"]
