"""The numbers of a bundle's validation report: outcome counts and rates, ``|Q|``,
per-factor rows and the domain section (:func:`build_bundle_summary`).

``|Q|`` is the bundle's own program run by the numpy evaluator (factored form,
as the graph evaluates it), or, when the recorded expression cannot be rebuilt,
the exact metadata denominator terms evaluated in float64 (:mod:`.exact`).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.exact import MetadataFRU, eval_terms_float, read_metadata_fru
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.runtime import OnnxRuntimeBundle

REPORT_SCHEMA = "zpml.validation_report/v1"
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_FACTOR_OUTPUT = re.compile(
    r"^(?P<prefix>.+)_(?P<index>\d+)_(?P<what>value|fault_mask|semantic_bottom_mask)$"
)


def _typed(metadata: Mapping[str, Any] | BundleMetadata) -> BundleMetadata:
    return metadata if isinstance(metadata, BundleMetadata) else BundleMetadata.parse(metadata)


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a float, ``None`` when it is ``None`` or not finite (strict JSON)."""
    return None if v is None or not np.isfinite(v) else float(v)


def _thresholds(info: BundleMetadata) -> tuple[float, float | None]:
    cfg = info.inference_config
    return cfg.tau_infer, cfg.tau_train


def _program_q_abs(
    info: BundleMetadata, fru_exact: MetadataFRU, x: np.ndarray
) -> np.ndarray | None:
    """``|Q|`` in float64 as the bundle's program computes it: the metadata expression
    re-flattened and run by the numpy evaluator of the same program in the bundle dtype
    (``Q`` as a product of its factors, as the graph does; the expanded monomials can be
    off by orders of magnitude near poles). ``None`` when the expression cannot be rebuilt
    or rebuilds to a different ``Q``."""
    import zpml_symbolic as zs
    from zpml_runtime.bundle.reflatten import own_variables, recorded_expression

    fru_meta = info.fru or {}
    params = list(info.parameters)
    variables = own_variables(info.raw)
    columns = [list(info.input.variables).index(v) for v in variables]
    try:
        fru = zs.flatten(
            recorded_expression(fru_meta, params),
            parameters=params,
            variables=variables,
            mode=fru_meta.get("mode", "scm_strict"),
        )
        if str(fru.denominator) != fru_exact.denominator:
            return None
        used = {p.name for p in fru.parameters}
        init = {k: v for k, v in info.parameters.items() if k in used}
        evaluator = zs.numpy_evaluator(fru, init=init or None)
        _, Q, _ = evaluator.evaluate(np.ascontiguousarray(x[:, columns]))
    except (zs.ZeroProofError, BundleError, ValueError, KeyError, TypeError):
        return None
    return np.abs(Q.astype(np.float64))


def _q_summary(
    fru: MetadataFRU | None, x: np.ndarray, info: BundleMetadata
) -> tuple[dict[str, Any], np.ndarray | None]:
    """The report's ``q_abs`` section and the ``|Q|`` values (``None`` for traced bundles)."""
    if fru is None:
        return {
            "available": False,
            "reason": "traced bundle: the metadata has no exact denominator terms",
        }, None
    q = _program_q_abs(info, fru, x)
    method = (
        "the bundle's program (factored form, as the graph evaluates Q) at the dtype-cast inputs"
    )
    if q is None:  # the expression cannot be rebuilt: expanded monomials (less accurate)
        x64 = x.astype(np.float64)
        cols = [x64[:, j] for j in range(x64.shape[1])]
        q = np.abs(eval_terms_float(fru.denominator_terms, fru.generator_values(cols), len(x)))
        method = (
            "float64 re-evaluation of the exact metadata denominator terms at the dtype-cast inputs"
        )
    finite = q[np.isfinite(q)]
    tau_infer, tau_train = _thresholds(info)
    below = int(((finite == 0) | (finite < tau_infer)).sum())
    gap = 0 if tau_train is None else int(((finite >= tau_infer) & (finite < tau_train)).sum())
    out: dict[str, Any] = {
        "available": True,
        "method": method,
        "samples": len(q),
        "finite": int(finite.size),
        "nonfinite": int(q.size - finite.size),
        "zero": int((finite == 0).sum()),
        "below_tau_infer": below,
        "in_gap": gap,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "quantiles": {
            k: (float(np.quantile(finite, p)) if finite.size else None)
            for k, p in QUANTILES.items()
        },
    }
    return out, q


def _factor_outputs(info: BundleMetadata) -> dict[int, dict[str, str]]:
    """Per-factor structural output names by index, from the output order."""
    found: dict[int, dict[str, str]] = {}
    for name in info.factor_outputs:
        m = _FACTOR_OUTPUT.match(name)
        if m:
            found.setdefault(int(m["index"]), {})[m["what"]] = name
    return found


def _factor_rows(
    fru: MetadataFRU | None, outputs: dict[str, np.ndarray], x: np.ndarray, info: BundleMetadata
) -> list[dict[str, Any]]:
    names = _factor_outputs(info)

    def masks(i: int | None) -> dict[str, Any]:
        got = names.get(i, {}) if i is not None else {}
        fault, sem = got.get("fault_mask"), got.get("semantic_bottom_mask")
        if fault not in outputs or sem not in outputs:
            return {"output_index": None, "fault": None, "semantic_bottom": None, "bottom": None}
        f, s = outputs[fault].astype(bool), outputs[sem].astype(bool)
        return {
            "output_index": i,
            "fault": int(f.sum()),
            "semantic_bottom": int(s.sum()),
            "bottom": int((f | s).sum()),
        }

    if fru is None:
        return [
            {
                "factor": None,
                "kind": "structural_validity_factor",
                "retained": True,
                "enforced_by": "validity output",
                "sources": [],
                "float64_zero": None,
                "float64_nonfinite": None,
                "float64_min_abs": None,
                **masks(i),
            }
            for i in sorted(names)
        ]
    x64 = x.astype(np.float64)
    gens = fru.generator_values([x64[:, j] for j in range(x64.shape[1])])
    rows = []
    for f in fru.factors:
        v = eval_terms_float(f.terms, gens, len(x))
        rows.append(
            {
                "factor": f.factor,
                "kind": f.kind,
                "retained": f.retained,
                "enforced_by": "validity output" if f.retained else "Q",
                "sources": [
                    {"source": o.get("source"), "path": o.get("path"), "kind": o.get("kind")}
                    for o in f.occurrences
                ],
                "float64_zero": int((v == 0).sum()),
                "float64_nonfinite": int((~np.isfinite(v)).sum()),
                "float64_min_abs": finite_or_none(
                    float(np.min(np.abs(v[np.isfinite(v)]))) if np.isfinite(v).any() else None
                ),
                **masks(f.output_index),
            }
        )
    return rows


def build_bundle_summary(
    runtime: OnnxRuntimeBundle, x: np.ndarray, *, input_source: str
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Run the bundle on ``x`` and compute the report numbers (and ``|Q|`` if available)."""
    from zpml_runtime.bundle.multi import expression_views, view_outputs

    meta = runtime.info
    out = runtime.run(x).as_dict()
    n = len(x)
    counts, rates = _counts_rates(out, n)
    per_output = None
    if meta.multi_output is not None:  # a sample counts as bottom when any of its outputs is
        per_output = []
        for j, name in enumerate(meta.multi_output.output_names):
            column = {
                k: out[k][:, j]
                for k in ("bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask")
            }
            c_j, r_j = _counts_rates(column, n)
            per_output.append({"output": name, "column": j, "counts": c_j, "rates": r_j})
    if meta.is_multi and meta.expressions is not None:
        views = [(BundleMetadata.parse(v), m) for v, m in expression_views(meta.raw)]
        q_parts, factors = [], []
        for view, mapping in views:
            fru_j = read_metadata_fru(view)
            q_j, _ = _q_summary(fru_j, x, view)
            q_parts.append({"output": view.output_name, **q_j})
            for row in _factor_rows(fru_j, view_outputs(out, view.raw, mapping), x, view):
                factors.append({"output": view.output_name, **row})
        q_summary: dict[str, Any] = {
            "available": False,
            "reason": "multi-output bundle: |Q| of each output is in q_abs.per_output",
            "per_output": q_parts,
        }
        q = None
        exprs = [read_metadata_fru(v) for v, _ in views]
        described: dict[str, str | None] = {
            "expression": "; ".join(f.expression for f in exprs if f),
            "numerator": "; ".join(f.numerator for f in exprs if f),
            "denominator": "; ".join(f.denominator for f in exprs if f),
        }
    else:
        fru = read_metadata_fru(meta)
        q_summary, q = _q_summary(fru, x, meta)
        factors = _factor_rows(fru, out, x, meta)
        described = {
            "expression": fru.expression if fru else None,
            "numerator": fru.numerator if fru else None,
            "denominator": fru.denominator if fru else None,
        }
    tau_infer, tau_train = _thresholds(meta)
    summary: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "bundle": {
            "bundle_id": meta.bundle_id,
            "source": meta.source,
            "dtype": meta.dtype,
            "variables": list(runtime.variables),
            "parameters": dict(meta.parameters),
            **described,
            "tau_infer": tau_infer,
            "tau_train": tau_train,
            "validity_taus": list(meta.validity_taus),
            "effective_thresholds": meta.effective_thresholds.as_dict(),
            "outputs": list(meta.output_order),
            "model_sha256": meta.model_sha256,
        },
        "validation": {
            "validate_bundle": "passed",
            "after_report": "passed",
            "verified": runtime.verified,
            "unverified": runtime.unverified_reason,
            "verification": runtime.verification,
        },
        "inputs": {"source": input_source, "samples": n, "dtype": str(x.dtype)},
        "counts": counts,
        "rates": rates,
        "q_abs": q_summary,
        "factors": factors,
    }
    if meta.input_box is not None:
        summary["domain"] = domain_summary(meta, getattr(runtime, "domain", None))
    if per_output is not None:
        summary["bundle"]["outputs_per_sample"] = runtime.num_outputs
        summary["bundle"]["output_names"] = list(runtime.result_names)
        summary["per_output"] = per_output
    return summary, q


def domain_summary(meta: Mapping[str, Any] | BundleMetadata, report: Any) -> dict[str, Any]:
    """The report's ``domain`` section: the declared operating box and the domain report
    the validator recomputed from the recorded expression (``report``, a
    :class:`~zpml_symbolic.domain.DomainReport`, or ``None`` when it could not be recomputed)."""
    from zpml_symbolic.domain.report import fraction_text

    box = ",".join(f"{k}={v}" for k, v in (_typed(meta).input_box or {}).items())
    if report is None:
        return {
            "input_box": box,
            "recomputed": False,
            "defined_everywhere": None,
            "summary": "not checked: the recorded expression could not be re-read (unverified "
            "bundle), so the domain report was not recomputed",
            "min_abs_q": None,
            "factors": [],
        }
    outputs = range(max(len(report.expressions), 1))
    min_q = [report.min_abs_q(k) for k in outputs]
    return {
        "input_box": box,
        "recomputed": True,
        "defined_everywhere": report.defined_everywhere,
        "summary": report.summary(),
        "min_abs_q": [None if q is None else fraction_text(q) for q in min_q],
        "factors": [
            {
                "index": f.index,
                "factor": f.factor,
                "role": f.role,
                "multiplicity": f.multiplicity,
                "output": f.output,
                "verdict": f.verdict,
                "lower_bound": None if f.lower_bound is None else fraction_text(f.lower_bound),
                "scale": fraction_text(f.scale),
                "witness": None if f.witness is None else f.witness.describe(),
                "reason": f.reason or None,
                "describe": f.describe(),
            }
            for f in report.factors
        ],
    }


def _counts_rates(out: dict[str, np.ndarray], n: int) -> tuple[dict[str, int], dict[str, Any]]:
    """Outcome counts and rates per sample (a ``[n, k]`` mask: any of the ``k`` outputs)."""

    def per_sample(name: str) -> np.ndarray:
        m = np.asarray(out[name]).astype(bool)
        return np.asarray(m.any(axis=1)) if m.ndim == 2 else m

    bottom, gap = per_sample("bottom_mask"), per_sample("gap_mask")
    fault, sem = per_sample("fault_mask"), per_sample("semantic_bottom_mask")
    gap = gap & ~bottom
    counts = {
        "samples": n,
        "bottom": int(bottom.sum()),
        "gap": int(gap.sum()),
        "fault": int(fault.sum()),
        "semantic_bottom": int(sem.sum()),
        "mixed": int((fault & sem).sum()),
        "accepted": int((~bottom).sum()),
        "accepted_outside_gap": int((~bottom & ~gap).sum()),
    }
    rates = {
        "bottom_rate": _rate(counts["bottom"], n),
        "gap_rate": _rate(counts["gap"], n),
        "fault_rate": _rate(counts["fault"], n),
        "semantic_bottom_rate": _rate(counts["semantic_bottom"], n),
        "mixed_rate": _rate(counts["mixed"], n),
        "acceptance_rate": _rate(counts["accepted"], n),
    }
    return counts, rates


__all__ = [
    "QUANTILES",
    "REPORT_SCHEMA",
    "build_bundle_summary",
    "domain_summary",
    "finite_or_none",
]
