"""The judgement parts of a bundle's validation report: the recommended fallback
policy, the reference smoke test rebuilt from the metadata expression, and the
deployment checklist."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError, BundleSmokeTestError, UnverifiedBundleWarning
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.report_summary import finite_or_none
from zpml_runtime.bundle.runtime import run_bundle_reference_smoke_test

#: Bottom rate above which routing to an analytic solver is recommended.
HIGH_BOTTOM_RATE = 0.05
#: Gap rate above which rejecting the gap region too is recommended.
HIGH_GAP_RATE = 0.01


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


def reference_smoke_test(
    directory: Path, info: BundleMetadata, x: np.ndarray, policy: dict[str, bool]
) -> dict[str, Any]:
    """Rebuild a reference from the metadata expression (safe parser) and compare outputs."""
    if not info.is_compiled or not (info.fru or info.expressions):
        return {
            "status": "skipped",
            "detail": "traced bundle: no expression to rebuild a reference from; run "
            "run_bundle_reference_smoke_test(dir, your_wrapped_model) yourself",
        }
    import torch

    import zpml_symbolic as zs
    from zpml_runtime.bundle.multi import expression_views
    from zpml_runtime.bundle.reflatten import own_variables, recorded_expression

    params = list(info.parameters)
    views = (
        [BundleMetadata.parse(v) for v, _ in expression_views(info.raw)]
        if info.is_multi
        else [info]
    )
    schema = views[0].output_schema or {}
    try:
        from zpml_symbolic.flatten.fru import poly_terms

        def terms(p: Any) -> list[list[Any]]:
            return [[list(m), c] for m, c in poly_terms(p)]

        frus, exact = [], {"numerator": True, "denominator": True, "validity_factors": True}
        for view in views:
            fru_meta = view.fru
            if fru_meta is None:
                raise BundleError("an output of the bundle records no expression (fru)")
            fru = zs.flatten(
                recorded_expression(fru_meta, params),
                parameters=params,
                variables=own_variables(view.raw),
                mode=fru_meta.get("mode", "scm_strict"),
            )
            exact["numerator"] &= str(fru.numerator) == fru_meta.get("numerator") and terms(
                fru.numerator_poly_ring
            ) == fru_meta.get("numerator_terms")
            exact["denominator"] &= str(fru.denominator) == fru_meta.get("denominator") and terms(
                fru.denominator_poly_ring
            ) == fru_meta.get("denominator_terms")
            exact["validity_factors"] &= [str(v) for v in fru.validity_factors] == fru_meta.get(
                "validity_factors"
            )
            frus.append(fru)
        reference = zs.strict_evaluator(
            frus[0] if len(frus) == 1 else frus,
            config=info.inference_config.config(),
            validity_taus=list(views[0].validity_taus)
            if len(views) == 1
            else [list(v.validity_taus) for v in views],
            init=dict(info.parameters) or None,
            dtype=getattr(torch, info.dtype),
            prefix=schema.get("prefix", "structural_validity_factor"),
            variables=list(info.input.variables),  # the bundle's column order
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
        "max_abs_diff": {k: finite_or_none(v) for k, v in rep.max_abs_diff.items()},
    }


def checklist(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The deployment checklist: what the report checked and what is left to the user."""
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


__all__ = [
    "HIGH_BOTTOM_RATE",
    "HIGH_GAP_RATE",
    "checklist",
    "recommend_fallback",
    "reference_smoke_test",
]
