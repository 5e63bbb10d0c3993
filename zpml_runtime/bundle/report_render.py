"""Rendering of a bundle validation report: Markdown text and the SVG chart."""

from __future__ import annotations

import os
from typing import IO, Any

import numpy as np

from zpml_runtime.bundle.format import REPORT_FILES

REPORT_MD, REPORT_JSON, REPORT_SVG = REPORT_FILES


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The ``VALIDATION_REPORT.md`` text for a summary."""
    b, c, r, q = summary["bundle"], summary["counts"], summary["rates"], summary["q_abs"]
    v = summary["validation"]
    lines = [
        f"# Validation report: bundle `{b['bundle_id']}`",
        "",
        f"Generated {summary['generated_at']} by `python -m zpml_runtime.report bundle`.",
        "",
    ]
    if not v.get("verified"):
        lines += [f"**UNVERIFIED**: {v.get('unverified')}", ""]
    lines += [
        "## Bundle",
        "",
        f"- source: `{b['source']}`, dtype `{b['dtype']}`, variables `{', '.join(b['variables'])}`",
        f"- tau_infer = {b['tau_infer']!r}, tau_train = {b['tau_train']!r}, validity_taus = {b['validity_taus']!r}",
        f"- effective thresholds in {b['dtype']}: `{b['effective_thresholds']}`",
        f"- model sha256 `{b['model_sha256']}`",
    ]
    if b["parameters"]:
        lines.append(f"- parameters: `{b['parameters']}`")
    if b["expression"] is not None:
        lines += [
            f"- expression: `{b['expression']}`",
            f"- P = `{b['numerator']}`",
            f"- Q = `{b['denominator']}`",
        ]
    lines += [
        "",
        "## Validation",
        "",
        "`validate_bundle` passed (checksum, strict JSON + schema, file hashes and sizes, no path "
        "traversal, onnx checker, signature, baked thresholds), and again after this report was written.",
        "",
        f"Graph: {'verified' if v.get('verified') else '**UNVERIFIED**'}: {v.get('verification')}."
        + ("" if v.get("verified") else f" Not verified: {v.get('unverified')}."),
        "",
        *_domain_lines(summary.get("domain")),
        "## Outcomes",
        "",
        f"{c['samples']} samples from `{summary['inputs']['source']}` (cast to {b['dtype']}), run with onnxruntime.",
        "",
        "| outcome | count | rate |",
        "|---|---:|---:|",
        f"| bottom (`bottom_mask`) | {c['bottom']} | {_pct(r['bottom_rate'])} |",
        f"| semantic bottom | {c['semantic_bottom']} | {_pct(r['semantic_bottom_rate'])} |",
        f"| fault | {c['fault']} | {_pct(r['fault_rate'])} |",
        f"| mixed (fault and semantic) | {c['mixed']} | {_pct(r['mixed_rate'])} |",
        f"| gap (`gap_mask`) | {c['gap']} | {_pct(r['gap_rate'])} |",
        f"| accepted (not bottom) | {c['accepted']} | {_pct(r['acceptance_rate'])} |",
        "",
        "## |Q| distribution",
        "",
    ]
    if q["available"]:
        qs = q["quantiles"]
        lines += [
            f"{q['method']}.",
            "",
            f"finite {q['finite']}, non-finite {q['nonfinite']}, exact zeros {q['zero']}, "
            f"below tau_infer {q['below_tau_infer']}, in the gap {q['in_gap']}.",
            "",
            "| min | p01 | p05 | p25 | median | p75 | p95 | max |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| "
            + " | ".join(
                _fmt(v)
                for v in (
                    q["min"],
                    qs["p01"],
                    qs["p05"],
                    qs["p25"],
                    qs["p50"],
                    qs["p75"],
                    qs["p95"],
                    q["max"],
                )
            )
            + " |",
        ]
    else:
        lines.append(f"n/a ({q['reason']}).")
    lines += ["", "## Denominator factors", ""]
    if not summary["factors"]:
        lines.append("The expression has no division: nothing can be bottom except faults.")
    else:
        lines += [
            "Bottom counts of retained factors come from their mask outputs; factors enforced "
            "by Q show how often they are exactly zero in float64.",
            "",
            "| # | factor | kind | enforced by | bottom (mask) | fault | zero (float64) | sources |",
            "|---:|---|---|---|---:|---:|---:|---|",
        ]
        for i, f in enumerate(summary["factors"]):
            src = "; ".join(f"`{s['source']}` at `{s['path']}`" for s in f["sources"]) or "n/a"
            name = f["factor"] or f"validity output {f['output_index']}"
            lines.append(
                f"| {i} | `{name}` | {f['kind']} | {f.get('enforced_by', 'validity output')} | "
                f"{_fmt(f['bottom'])} | {_fmt(f['fault'])} | {_fmt(f.get('float64_zero'))} | {src} |"
            )
    ref = summary["reference_smoke_test"]
    lines += ["", "## Reference smoke test", "", f"**{ref['status']}**: {ref['detail']}"]
    rec = summary["recommended_fallback"]
    lines += ["", "## Recommended fallback", "", f"**`{rec['policy']}`**", ""]
    lines += [f"- {reason}" for reason in rec["reasons"]]
    lines += [f"- applies to {rec['applies_to']}", "", "## Deployment checklist", ""]
    for item in summary["checklist"]:
        box = "x" if item["status"] == "checked" else " "
        lines.append(f"- [{box}] {item['item']} ({item['status']}: {item['detail']})")
    lines += [
        "",
        "## Files",
        "",
        f"- `{REPORT_JSON}`: the numbers above (strict JSON)",
        f"- `{REPORT_SVG}`: outcome counts, log10|Q| histogram, per-factor bottoms",
        "",
    ]
    return "\n".join(lines)


def _domain_lines(domain: dict[str, Any] | None) -> list[str]:
    """The "Operating box" section (nothing when the bundle declares no box)."""
    if domain is None:
        return []
    lines = ["## Operating box", "", f"Declared operating box: `{domain['input_box']}`.", ""]
    if not domain["recomputed"]:
        return lines + [f"**{domain['summary']}**", ""]
    lines += [
        "Domain report recomputed by the validator from the recorded exact expression "
        "(exact rational arithmetic; the report stored in the bundle is only compared):",
        "",
        f"**{domain['summary']}**",
        "",
    ]
    lines += [f"- {f['describe']}" for f in domain["factors"]]
    return lines + [""]


def render_svg(
    summary: dict[str, Any], q_abs: np.ndarray | None, target: str | os.PathLike[str] | IO[str]
) -> None:
    """Write the summary chart to a path or text stream (matplotlib, Agg canvas, deterministic SVG)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    c, b = summary["counts"], summary["bundle"]
    fig = Figure(figsize=(14.0, 4.2))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    labels = ["accepted\n(no gap)", "gap", "semantic\nbottom", "fault", "mixed"]
    values = [c["accepted_outside_gap"], c["gap"], c["semantic_bottom"], c["fault"], c["mixed"]]
    ax1.bar(labels, values, color=["tab:green", "tab:orange", "tab:red", "tab:purple", "tab:brown"])
    ax1.set_title(f"outcomes ({c['samples']} samples)")
    ax1.set_ylabel("samples")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    if q_abs is not None:
        finite = q_abs[np.isfinite(q_abs)]
        positive = finite[finite > 0]
        if positive.size:
            ax2.hist(np.log10(positive), bins=30, color="tab:blue")
        for tau, name, color in (
            (b["tau_infer"], "tau_infer", "red"),
            (b["tau_train"], "tau_train", "orange"),
        ):
            if tau:
                ax2.axvline(np.log10(tau), color=color, linestyle="--", label=f"{name}={tau:g}")
        ax2.set_xlabel("log10 |Q| (float64 re-evaluation)")
        ax2.set_ylabel("samples")
        zeros, nonfinite = int((finite == 0).sum()), int(q_abs.size - finite.size)
        ax2.set_title(f"|Q| distribution (zeros: {zeros}, non-finite: {nonfinite})")
        if ax2.get_legend_handles_labels()[0]:
            ax2.legend(fontsize="small")
    else:
        ax2.text(0.5, 0.5, "|Q| n/a\n(traced bundle: no exact terms)", ha="center", va="center")
        ax2.set_axis_off()
    factors = summary["factors"]
    if factors:
        names = [
            (f["factor"] or f"factor {f['output_index']}")[:18]
            + ("\n(validity)" if f.get("retained") else "\n(in Q)")
            for f in factors
        ]
        counts = [
            f["bottom"] if f["bottom"] is not None else (f.get("float64_zero") or 0)
            for f in factors
        ]
        colors = ["tab:red" if f["bottom"] is not None else "tab:gray" for f in factors]
        ax3.bar(range(len(factors)), counts, color=colors)
        ax3.set_xticks(range(len(factors)), names, fontsize="small")
        ax3.set_ylabel("samples")
        ax3.set_title("bottoms per factor\n(red: validity masks; gray: float64 zeros of Q factors)")
        ax3.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax3.text(0.5, 0.5, "no denominator factors", ha="center", va="center")
        ax3.set_axis_off()
    fig.suptitle(f"bundle {b['bundle_id']}: bottom rate {_pct(summary['rates']['bottom_rate'])}")
    fig.tight_layout()
    with matplotlib.rc_context({"svg.hashsalt": "zpml-validation-report"}):
        fig.savefig(target, format="svg", metadata={"Date": None})


# ----------------------------------------------------------------- entry point


__all__ = ["render_markdown", "render_svg"]
