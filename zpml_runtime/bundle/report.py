"""The validation report of a bundle (``python -m zpml_runtime.report bundle DIR``).

:func:`write_bundle_report` validates a bundle, runs it with onnxruntime on
its stored smoke inputs (or on given inputs) and writes, into the bundle
directory (these files are not covered by the metadata hashes, so the bundle
still validates afterwards, which is re-checked):

* ``VALIDATION_REPORT.md``: the human-readable report;
* ``VALIDATION_REPORT.summary.json``: strict JSON (``null`` for undefined
  numbers, never ``NaN``), schema ``zpml.validation_report/v1`` with the keys
  ``schema``, ``generated_at``, ``bundle``, ``validation``, ``inputs``,
  ``counts``, ``rates``, ``q_abs``, ``factors``, ``reference_smoke_test``,
  ``recommended_fallback``, ``checklist`` and ``files`` (and ``domain`` when the
  bundle declares an operating box: the certified domain report the validator
  recomputed, see :func:`domain_summary`);
* ``VALIDATION_REPORT.summary.svg``: outcome counts, histogram of
  ``log10|Q|`` with the thresholds, and bottom counts per denominator factor.

``|Q|`` is re-evaluated in float64 from the exact denominator terms stored in
the metadata of a compiled FRU (coefficients read with
:class:`fractions.Fraction`, never evaluated as code), at the inputs as cast to
the bundle dtype. Traced bundles carry no exact terms: their ``|Q|`` is n/a.
The exact helpers (:func:`read_metadata_fru`) are shared with ``zpml explain``.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.bundle.exact import (  # noqa: F401 - re-exported for callers of this module
    FactorInfo,
    MetadataFRU,
    Terms,
    eval_terms_exact,
    eval_terms_float,
    read_metadata_fru,
)
from zpml_runtime.bundle.format import REPORT_FILES, BundleError, BundleSmokeTestError
from zpml_runtime.bundle.report_render import render_markdown, render_svg
from zpml_runtime.bundle.runtime import (
    OnnxRuntimeBundle,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
)
from zpml_runtime.bundle.validate import validate_bundle
from zpml_runtime.bundle.verify import UnverifiedBundleWarning

REPORT_SCHEMA = "zpml.validation_report/v1"
REPORT_MD, REPORT_JSON, REPORT_SVG = REPORT_FILES
#: Bottom rate above which routing to an analytic solver is recommended.
HIGH_BOTTOM_RATE = 0.05
#: Gap rate above which rejecting the gap region too is recommended.
HIGH_GAP_RATE = 0.01
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_FACTOR_OUTPUT = re.compile(
    r"^(?P<prefix>.+)_(?P<index>\d+)_(?P<what>value|fault_mask|semantic_bottom_mask)$"
)


def load_report_inputs(
    source: str | os.PathLike[str] | np.ndarray, runtime: OnnxRuntimeBundle
) -> np.ndarray:
    """Inputs of shape ``[n >= 1, n_vars]`` from an array or a ``.npy`` file (no pickles)."""
    if isinstance(source, np.ndarray):
        arr, where = source, "the given inputs"
    else:
        from zpml_runtime.bundle.userfiles import load_plain_npy

        where = str(source)
        try:  # a regular .npy file only; never unpickled
            arr = load_plain_npy(source, "inputs file")
        except OSError as e:
            raise BundleError(f"cannot read inputs file {where}: {e.strerror or e}") from None
    n_vars = len(runtime.variables)
    if arr.ndim != 2 or arr.shape[1] != n_vars or arr.shape[0] < 1:
        raise BundleError(
            f"{where} has shape {arr.shape}; expected [n >= 1, {n_vars}] (columns {list(runtime.variables)})"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise BundleError(f"{where} must hold real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # values beyond the dtype become inf: a fault, counted
        return np.ascontiguousarray(arr.astype(runtime.input_dtype))


# ----------------------------------------------------------------- summary


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _thresholds(metadata: dict[str, Any]) -> tuple[float, float | None]:
    cfg = metadata["inference_config"]
    return float(cfg["tau_infer"]), None if cfg.get("tau_train") is None else float(
        cfg["tau_train"]
    )


def _program_q_abs(metadata: dict[str, Any], x: np.ndarray) -> np.ndarray | None:
    """``|Q|`` in float64 as the bundle's program computes it: the metadata expression
    re-flattened and run by the numpy evaluator of the same program in the bundle dtype
    (``Q`` as a product of its factors, as the graph does; the expanded monomials can be
    off by orders of magnitude near poles). ``None`` when the expression cannot be rebuilt
    or rebuilds to a different ``Q``."""
    import zpml_symbolic as zs
    from zpml_runtime.bundle.reflatten import own_variables, recorded_expression

    fru_meta = metadata["fru"]
    params = list(metadata.get("parameters") or {})
    variables = own_variables(metadata)
    columns = [list(metadata["input"]["variables"]).index(v) for v in variables]
    try:
        fru = zs.flatten(
            recorded_expression(fru_meta, params),
            parameters=params,
            variables=variables,
            mode=fru_meta.get("mode", "scm_strict"),
        )
        if str(fru.denominator) != fru_meta.get("denominator"):
            return None
        used = {p.name for p in fru.parameters}
        init = {k: v for k, v in (metadata.get("parameters") or {}).items() if k in used}
        evaluator = zs.numpy_evaluator(fru, init=init or None)
        _, Q, _ = evaluator.evaluate(np.ascontiguousarray(x[:, columns]))
    except (zs.ZeroProofError, BundleError, ValueError, KeyError, TypeError):
        return None
    return np.abs(Q.astype(np.float64))


def _q_summary(
    fru: MetadataFRU | None, x: np.ndarray, metadata: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray | None]:
    if fru is None:
        return {
            "available": False,
            "reason": "traced bundle: the metadata has no exact denominator terms",
        }, None
    q = _program_q_abs(metadata, x)
    method = "the bundle's program (factored form, as the graph evaluates Q) at the dtype-cast inputs"
    if q is None:  # the expression cannot be rebuilt: expanded monomials (less accurate)
        x64 = x.astype(np.float64)
        cols = [x64[:, j] for j in range(x64.shape[1])]
        q = np.abs(eval_terms_float(fru.denominator_terms, fru.generator_values(cols), len(x)))
        method = "float64 re-evaluation of the exact metadata denominator terms at the dtype-cast inputs"
    finite = q[np.isfinite(q)]
    tau_infer, tau_train = _thresholds(metadata)
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


def _factor_outputs(metadata: dict[str, Any]) -> dict[int, dict[str, str]]:
    """Per-factor structural output names by index, from the output order."""
    found: dict[int, dict[str, str]] = {}
    for name in metadata.get("output_order", [])[6:]:
        m = _FACTOR_OUTPUT.match(name)
        if m:
            found.setdefault(int(m["index"]), {})[m["what"]] = name
    return found


def _factor_rows(
    fru: MetadataFRU | None, outputs: dict[str, np.ndarray], x: np.ndarray, metadata: dict[str, Any]
) -> list[dict[str, Any]]:
    names = _factor_outputs(metadata)

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
                "float64_min_abs": _finite_or_none(
                    float(np.min(np.abs(v[np.isfinite(v)]))) if np.isfinite(v).any() else None
                ),
                **masks(f.output_index),
            }
        )
    return rows


def recommend_fallback(
    rates: dict[str, float | None],
    counts: dict[str, int],
    *,
    high_bottom_rate: float = HIGH_BOTTOM_RATE,
    high_gap_rate: float = HIGH_GAP_RATE,
) -> dict[str, Any]:
    """A fallback policy (``reject_on_bottom``, ``reject_on_gap`` or
    ``route_to_analytic_solver``) from observed rates, with the reasons."""
    bottom, gap = rates["bottom_rate"] or 0.0, rates["gap_rate"] or 0.0
    reasons = []
    if bottom > high_bottom_rate:
        policy = "route_to_analytic_solver"
        reasons.append(
            f"bottom rate {bottom:.2%} > {high_bottom_rate:.0%}: rejecting would drop that share "
            "of traffic; route bottom rows to an analytic solver (if none exists, use "
            "reject_on_bottom and alert on the rate)"
        )
        if gap > high_gap_rate:
            reasons.append(
                f"gap rate {gap:.2%} > {high_gap_rate:.0%}: route gap rows too (gap_mask=)"
            )
    elif gap > high_gap_rate:
        policy = "reject_on_gap"
        reasons.append(
            f"bottom rate {bottom:.2%} <= {high_bottom_rate:.0%} but gap rate {gap:.2%} > "
            f"{high_gap_rate:.0%}: many finite predictions sit between tau_infer and tau_train; "
            "reject them too (conservative)"
        )
    else:
        policy = "reject_on_bottom"
        reasons.append(
            f"bottom rate {bottom:.2%} <= {high_bottom_rate:.0%} and gap rate {gap:.2%} <= "
            f"{high_gap_rate:.0%}: bottoms are rare; reject them and monitor the gap rate"
        )
    if counts["fault"]:
        reasons.append(
            f"{counts['fault']} fault(s) (non-finite inputs, factors or overflow): check upstream "
            "input validation; faults are bottom under every policy"
        )
    return {
        "policy": policy,
        "route_gap": policy == "route_to_analytic_solver" and gap > high_gap_rate,
        "reasons": reasons,
        "rule": {"high_bottom_rate": high_bottom_rate, "high_gap_rate": high_gap_rate},
        "applies_to": "the evaluated inputs only; stored smoke inputs deliberately hit "
        "singularities, so pass representative data (--inputs) for a deployment decision",
    }


def _reference_smoke_test(
    directory: Path, metadata: dict[str, Any], x: np.ndarray, policy: dict[str, bool]
) -> dict[str, Any]:
    """Rebuild a reference from the metadata expression (safe parser) and compare outputs."""
    if metadata.get("source") != "compiled_fru" or not (
        metadata.get("fru") or metadata.get("expressions")
    ):
        return {
            "status": "skipped",
            "detail": "traced bundle: no expression to rebuild a reference from; run "
            "run_bundle_reference_smoke_test(dir, your_wrapped_model) yourself",
        }
    import torch

    import zpml_symbolic as zs
    from zpml_runtime.bundle.multi import expression_views, is_multi
    from zpml_runtime.bundle.reflatten import own_variables, recorded_expression
    from zpml_runtime.inference import InferenceConfig

    params = list(metadata.get("parameters") or {})
    views = [v for v, _ in expression_views(metadata)] if is_multi(metadata) else [metadata]
    schema = views[0].get("structural_validity_output_schema") or {}
    try:
        from zpml_symbolic.flatten.fru import poly_terms

        def terms(p: Any) -> list[list[Any]]:
            return [[list(m), c] for m, c in poly_terms(p)]

        frus, exact = [], {"numerator": True, "denominator": True, "validity_factors": True}
        for view in views:
            fru_meta = view["fru"]
            fru = zs.flatten(
                recorded_expression(fru_meta, params),
                parameters=params,
                variables=own_variables(view),
                mode=fru_meta.get("mode", "scm_strict"),
            )
            exact["numerator"] &= str(fru.numerator) == fru_meta.get("numerator") and terms(
                fru.numerator_poly_ring
            ) == fru_meta.get("numerator_terms")
            exact["denominator"] &= str(fru.denominator) == fru_meta.get(
                "denominator"
            ) and terms(fru.denominator_poly_ring) == fru_meta.get("denominator_terms")
            exact["validity_factors"] &= [str(v) for v in fru.validity_factors] == fru_meta.get(
                "validity_factors"
            )
            frus.append(fru)
        reference = zs.strict_evaluator(
            frus[0] if len(frus) == 1 else frus,
            config=InferenceConfig.from_metadata(metadata["inference_config"]),
            validity_taus=views[0]["validity_taus"]
            if len(views) == 1
            else [v["validity_taus"] for v in views],
            init=metadata.get("parameters") or None,
            dtype=getattr(torch, metadata["input"]["dtype"]),
            prefix=schema.get("prefix", "structural_validity_factor"),
            variables=metadata["input"]["variables"],  # the bundle's column order
        )
    except (zs.ZeroProofError, BundleError, ValueError, KeyError, TypeError) as e:
        # A compiled bundle whose own expression cannot be rebuilt is not verified: fail.
        return {"status": "failed", "detail": f"cannot rebuild a reference from metadata: {e}"}
    if not all(exact.values()):
        bad = [k for k, ok in exact.items() if not ok]
        return {
            "status": "failed",
            "exact_terms_match": exact,
            "detail": f"re-flattening the metadata expression gives a different {', '.join(bad)}",
        }
    try:
        # inf - inf in its max-abs-diff would warn; the comparison itself handles inf.
        with np.errstate(invalid="ignore"):
            with warnings.catch_warnings():  # the report itself says UNVERIFIED
                warnings.simplefilter("ignore", UnverifiedBundleWarning)
                rep = run_bundle_reference_smoke_test(directory, reference, (x,), **policy)
    except BundleSmokeTestError as e:
        return {"status": "failed", "exact_terms_match": exact, "detail": str(e)}
    return {
        "status": "passed",
        "exact_terms_match": exact,
        "detail": "onnxruntime outputs equal a reference rebuilt from the metadata expression "
        "(zs.parse + flatten + strict_evaluator)",
        "samples": rep.samples,
        "mismatches": dict(rep.mismatches),
        "max_abs_diff": {k: _finite_or_none(v) for k, v in rep.max_abs_diff.items()},
    }


def _checklist(summary: dict[str, Any]) -> list[dict[str, str]]:
    b, ref = summary["bundle"], summary["reference_smoke_test"]
    outs = set(b["outputs"])
    return [
        {
            "item": "Freeze InferenceConfig from held-out calibration data.",
            "status": "manual",
            "detail": f"recorded tau_infer={b['tau_infer']!r}, tau_train={b['tau_train']!r}; "
            "confirm they come from `zpml calibrate` on held-out data",
        },
        {
            "item": "Export an ONNX bundle from the eval wrapper.",
            "status": "checked",
            "detail": f"bundle {b['bundle_id']!r} ({b['source']}, {b['dtype']})",
        },
        {
            "item": "Run validate_bundle(...).",
            "status": "checked" if summary["validation"]["verified"] else "unverified",
            "detail": "passed before the report was written and again after; "
            + (
                "the graph is verified by reproduction"
                if summary["validation"]["verified"]
                else f"UNVERIFIED: {summary['validation']['unverified']}"
            ),
        },
        {
            "item": "Run run_bundle_reference_smoke_test(...) against saved smoke inputs.",
            "status": "checked" if ref["status"] == "passed" else ref["status"],
            "detail": ref["detail"],
        },
        {
            "item": "Regenerate the validation report with python -m zpml_runtime.report bundle <bundle_dir>.",
            "status": "checked",
            "detail": f"this report ({summary['inputs']['samples']} samples from {summary['inputs']['source']})",
        },
        {
            "item": "Confirm downstream consumers use bottom_mask and gap_mask explicitly.",
            "status": "manual",
            "detail": "the bundle exports bottom_mask and gap_mask"
            if {"bottom_mask", "gap_mask"} <= outs
            else "bottom_mask/gap_mask MISSING from the outputs",
        },
        {
            "item": "Log route/fallback actions and acceptance-rate drift in production.",
            "status": "manual",
            "detail": "use StrictInferenceMonitor with baseline "
            f"acceptance_rate={summary['rates']['acceptance_rate']!r} and log route_mask",
        },
    ]


def build_bundle_summary(
    runtime: OnnxRuntimeBundle, x: np.ndarray, *, input_source: str
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Run the bundle on ``x`` and compute the report numbers (and ``|Q|`` if available)."""
    from zpml_runtime.bundle.multi import expression_views, is_multi, view_outputs

    meta = runtime.metadata
    out = runtime.run(x).as_dict()
    n = len(x)
    counts, rates = _counts_rates(out, n)
    multi = is_multi(meta)
    per_output = None
    if multi:  # a sample counts as bottom when any of its outputs is (column counts below)
        per_output = []
        for j, name in enumerate(meta["multi_output"]["output_names"]):
            column = {k: out[k][:, j] for k in ("bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask")}
            c_j, r_j = _counts_rates(column, n)
            per_output.append({"output": name, "column": j, "counts": c_j, "rates": r_j})
    if multi and meta.get("expressions") is not None:
        views = expression_views(meta)
        q_parts, factors = [], []
        for view, mapping in views:
            fru_j = read_metadata_fru(view)
            q_j, _ = _q_summary(fru_j, x, view)
            q_parts.append({"output": view["output_name"], **q_j})
            for row in _factor_rows(fru_j, view_outputs(out, view, mapping), x, view):
                factors.append({"output": view["output_name"], **row})
        q_summary: dict[str, Any] = {
            "available": False,
            "reason": "multi-output bundle: |Q| of each output is in q_abs.per_output",
            "per_output": q_parts,
        }
        q = None
        exprs = [read_metadata_fru(v) for v, _ in views]
        described = {
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
            "bundle_id": meta["bundle_id"],
            "source": meta["source"],
            "dtype": meta["input"]["dtype"],
            "variables": list(runtime.variables),
            "parameters": dict(meta.get("parameters") or {}),
            **described,
            "tau_infer": tau_infer,
            "tau_train": tau_train,
            "validity_taus": list(meta["validity_taus"]),
            "effective_thresholds": meta["effective_thresholds"],
            "outputs": list(meta["output_order"]),
            "model_sha256": meta["model_sha256"],
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
    if "input_box" in meta:
        summary["domain"] = domain_summary(meta, getattr(runtime, "domain", None))
    if per_output is not None:
        summary["bundle"]["outputs_per_sample"] = runtime.num_outputs
        summary["bundle"]["output_names"] = list(runtime.result_names)
        summary["per_output"] = per_output
    return summary, q


def domain_summary(meta: dict[str, Any], report: Any) -> dict[str, Any]:
    """The report's ``domain`` section: the declared operating box and the domain report
    the validator recomputed from the recorded expression (``report``, a
    :class:`~zpml_symbolic.domain.DomainReport`, or ``None`` when it could not be recomputed)."""
    from zpml_symbolic.domain.report import fraction_text

    box = ",".join(f"{k}={v}" for k, v in (meta.get("input_box") or {}).items())
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
        return m.any(axis=1) if m.ndim == 2 else m

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


# ----------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class BundleReport:
    """A written report: the summary (as in the JSON file) and the three file paths."""

    path: Path
    summary: dict[str, Any]
    files: dict[str, Path]


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bundle_report(
    directory: str | os.PathLike[str],
    *,
    inputs: str | os.PathLike[str] | np.ndarray | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    signing_key: bytes | None = None,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> BundleReport:
    """Validate and run the bundle, then write the three report files into it.

    ``inputs``: an array or ``.npy`` file of shape ``[n, n_vars]`` (default:
    the stored smoke inputs). ``signing_key`` also requires a matching
    ``metadata.sig``; ``allow_unverified`` / ``require_verified`` as in
    :func:`validate_bundle` (an unverified bundle's report says UNVERIFIED at
    the top). Raises :class:`BundleValidationError` for an invalid bundle and
    :class:`BundleError` for unusable inputs.
    """
    from zpml_runtime.logging import dumps_strict

    bundle = Path(directory)
    policy = {"allow_unverified": allow_unverified, "require_verified": require_verified}
    runtime = load_onnx_runtime_bundle(
        bundle, providers=providers, signing_key=signing_key, **policy
    )
    if inputs is None:
        x, source = runtime.smoke_inputs, runtime.metadata["smoke_inputs"]["file"]
    else:
        x = load_report_inputs(inputs, runtime)
        source = "array" if isinstance(inputs, np.ndarray) else str(inputs)
    summary, q = build_bundle_summary(runtime, x, input_source=source)
    summary["reference_smoke_test"] = _reference_smoke_test(bundle, runtime.metadata, x, policy)
    summary["recommended_fallback"] = recommend_fallback(summary["rates"], summary["counts"])
    summary["checklist"] = _checklist(summary)
    files = {
        "markdown": bundle / REPORT_MD,
        "json": bundle / REPORT_JSON,
        "svg": bundle / REPORT_SVG,
    }
    summary["files"] = {k: p.name for k, p in files.items()}
    svg = io.StringIO()
    render_svg(summary, q, svg)
    written = []
    try:
        for key, text in (
            ("svg", svg.getvalue()),
            ("markdown", render_markdown(summary)),
            ("json", dumps_strict(summary, indent=2, sort_keys=True) + "\n"),
        ):
            _write_text(files[key], text)
            written.append(files[key])
        validate_bundle(bundle, signing_key=signing_key, **policy)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return BundleReport(bundle, summary, files)


__all__ = [
    "HIGH_BOTTOM_RATE",
    "HIGH_GAP_RATE",
    "REPORT_SCHEMA",
    "BundleReport",
    "FactorInfo",
    "MetadataFRU",
    "build_bundle_summary",
    "domain_summary",
    "eval_terms_exact",
    "eval_terms_float",
    "load_report_inputs",
    "read_metadata_fru",
    "recommend_fallback",
    "render_markdown",
    "render_svg",
    "write_bundle_report",
]
