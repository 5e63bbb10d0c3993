"""The guarded, factorwise strict evaluator (torch) and its ``explain`` helper.

``strict_evaluator(fru, config=...)`` returns a module whose ``forward(x)``
computes ``P``, ``Q`` and every retained validity factor ``V_i`` in the
canonical gauge and decodes them with the runtime's ``strict_inference``
(docs/semantics.md §3). Masks come from ``Q`` *and* every validity factor, never
from the reduced ``Q`` alone, and ``Q`` itself is evaluated as the product of
its factors, so an exact zero of any factor is an exact zero of ``Q``.

Gradients: ``strict_inference`` gives zero gradients at bottom entries. When
autograd records, inputs that are NaN/Inf are replaced by 0 before
evaluation and the samples whose outputs depend on them are marked as faults
(a division-free program maps a non-finite input it depends on to a
non-finite output, so the masks are unchanged) — this keeps parameter
gradients finite. In eager mode the evaluator first decodes without
replacing anything and only when some sample is a fault (the only case in
which a used input can be non-finite) evaluates again with the inputs
replaced, so batches without faults pay no input scan. Samples where finite inputs overflow an intermediate can
still produce non-finite parameter gradients; they are ``fault_mask``
samples: leave them out of the loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import nn

from zpml_symbolic.emit.numpy_emit import run_program
from zpml_symbolic.emit.plan import make_plan
from zpml_symbolic.emit.program import lower
from zpml_symbolic.emit.torch_emit import RationalModule, to_torch
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


def _input_dependencies(module: RationalModule) -> list[int]:
    """Input columns any output of the program depends on."""
    program = module.plan.program
    deps: list[set[int]] = []
    for ins in program.instrs:
        d: set[int] = {ins.index} if ins.op == "input" and ins.index is not None else set()
        for a in ins.args:
            d |= deps[a]
        deps.append(d)
    used: set[int] = set()
    for i in program.outputs.values():
        used |= deps[i]
    return sorted(used)


class StrictEvaluator(nn.Module):
    """``forward(x) -> StrictInferenceResult`` for one compiled FRU.

    ``result.as_dict()`` holds ``decoded, bottom_mask, gap_mask, fault_mask,
    semantic_bottom_mask, bottom_provenance`` and the per-factor outputs named
    by ``fru.structural_validity_output_schema(prefix=...)``.
    """

    def __init__(
        self,
        model: RationalModule,
        *,
        config: Any,
        validity_taus: float | Sequence[float],
        prefix: str,
    ) -> None:
        super().__init__()
        if len(model.frus) != 1:
            raise InvalidArgumentError("strict_evaluator compiles exactly one expression")
        from zpml_core.config import InferenceConfig

        self.model = model
        self.config = config if config is not None else InferenceConfig(tau_infer=0.0)
        self.validity_taus = validity_taus
        self.schema = model.frus[0].structural_validity_output_schema(prefix=prefix)
        self._deps = _input_dependencies(model)
        self._explain_plan = None

    @property
    def fru(self) -> FlattenedFRU:
        """The compiled FRU."""
        return self.model.frus[0]

    def _needs_sanitising(self, x: torch.Tensor) -> bool:
        if not torch.is_grad_enabled():
            return False
        return x.requires_grad or any(p.requires_grad for p in self.model.parameters())

    def forward(self, x: torch.Tensor) -> Any:
        """Strict result of the FRU on ``x`` (shape ``[..., n_vars]``)."""
        if not self._needs_sanitising(x) or not self._deps:
            return self._decode(x, None)
        if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
            # Eager fast path: a non-finite input the program depends on makes P, Q or
            # a V_i non-finite, so without any fault no input needed replacing.
            result = self._decode(x, None)
            fault = result.fault_mask
            if fault.numel() == 0 or not bool(fault.view(torch.uint8).max()):
                return result
        finite = torch.isfinite(x)
        bad = ~finite[..., self._deps].all(-1)
        return self._decode(torch.where(finite, x, torch.zeros_like(x)), bad)

    def _decode(self, x: torch.Tensor, bad: torch.Tensor | None) -> Any:
        """Evaluate ``P, Q, V`` on ``x`` and decode; ``bad`` samples are marked as faults."""
        from zpml_core.strict import strict_inference

        out = self.model.forward_factors(x)
        P, Q = out[0], out[1]
        V = out[2] if len(out) == 3 else None
        if bad is not None:
            P = P.masked_fill(bad, float("nan"))
        return strict_inference(
            P, Q, config=self.config, validity_factors=V, validity_taus=self.validity_taus
        )

    @torch.jit.unused
    def explain(
        self, x: torch.Tensor | np.ndarray, result: Any = None, *, limit: int | None = 100
    ) -> list[BottomExplanation]:
        """For each bottom sample (up to ``limit``), the divisions of the user's tree responsible.

        Evaluates every provenance factor (retained or part of ``Q``) at the
        bottom samples: zero or non-finite factors are named with their
        source subexpression; if ``Q`` is bottom only through ``tau_infer``,
        the smallest factor of ``Q`` is named.
        """
        xt = torch.as_tensor(x)
        if result is None:
            with torch.no_grad():
                result = self(xt)
        bottom = result.bottom_mask.detach().cpu().numpy()
        prov = result.bottom_provenance.detach().cpu().numpy()
        idx = np.argwhere(bottom)
        if limit is not None:
            idx = idx[:limit]
        if len(idx) == 0:
            return []
        xs = np.stack([xt.detach().cpu().numpy()[tuple(i)] for i in idx]).astype(np.float64)
        plan = self._provenance_plan()
        values = run_program(plan, xs, self.model.coefficient_values())
        sources = self.fru.denominator_provenance
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
            if not causes:
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

    def _provenance_plan(self) -> Any:
        if self._explain_plan is None:
            base = make_plan(self.model.frus)
            irs = self.fru.provenance_factor_irs
            program = lower(
                [(f"F{k}", n) for k, n in enumerate(irs)],
                variables=base.variables,
                parameters=base.parameters,
            )
            self._explain_plan = type(base)(base.frus, base.variables, base.parameters, program, ())
        return self._explain_plan


def strict_evaluator(
    fru_or_model: FlattenedFRU | RationalModule | sp.Expr | str,
    *,
    config: Any = None,
    validity_taus: float | Sequence[float] = 0.0,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    dtype: torch.dtype = torch.float32,
    prefix: str = DEFAULT_PREFIX,
) -> StrictEvaluator:
    """A module returning the strict result of docs/semantics.md §3 for one FRU.

    ``config`` is a ``zpml_core.InferenceConfig`` (re-exported as ``zpml_runtime.inference.InferenceConfig``) (default:
    ``tau_infer=0``, exact zeros only); ``validity_taus`` the per-factor
    thresholds. Pass a :class:`RationalModule` to share its coefficients.
    """
    model = (
        fru_or_model
        if isinstance(fru_or_model, RationalModule)
        else to_torch(fru_or_model, parameters=parameters, init=init, dtype=dtype)
    )
    return StrictEvaluator(model, config=config, validity_taus=validity_taus, prefix=prefix)


__all__ = ["BottomExplanation", "FactorCause", "StrictEvaluator", "strict_evaluator"]
