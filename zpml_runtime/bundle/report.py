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
The numbers are computed by :mod:`.report_summary`, the fallback policy, the
reference smoke test and the checklist by :mod:`.report_checks`, the files
rendered by :mod:`.report_render`.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.exact import (
    FactorInfo,
    MetadataFRU,
    Terms,
    eval_terms_exact,
    eval_terms_float,
    read_metadata_fru,
)
from zpml_runtime.bundle.format import REPORT_FILES
from zpml_runtime.bundle.report_checks import (
    HIGH_BOTTOM_RATE,
    HIGH_GAP_RATE,
    checklist,
    recommend_fallback,
    reference_smoke_test,
)
from zpml_runtime.bundle.report_render import render_markdown, render_svg
from zpml_runtime.bundle.report_summary import (
    REPORT_SCHEMA,
    build_bundle_summary,
    domain_summary,
)
from zpml_runtime.bundle.runtime import OnnxRuntimeBundle, load_onnx_runtime_bundle
from zpml_runtime.bundle.validate import validate_bundle

REPORT_MD, REPORT_JSON, REPORT_SVG = REPORT_FILES


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
            raise BundleError(f"cannot read inputs file {where}: {e.strerror or e}") from e
    n_vars = len(runtime.variables)
    if arr.ndim != 2 or arr.shape[1] != n_vars or arr.shape[0] < 1:
        raise BundleError(
            f"{where} has shape {arr.shape}; expected [n >= 1, {n_vars}] (columns {list(runtime.variables)})"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise BundleError(f"{where} must hold real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # values beyond the dtype become inf: a fault, counted
        return np.ascontiguousarray(arr.astype(runtime.input_dtype))


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
        x, source = runtime.smoke_inputs, runtime.info.smoke_inputs.file
    else:
        x = load_report_inputs(inputs, runtime)
        source = "array" if isinstance(inputs, np.ndarray) else str(inputs)
    summary, q = build_bundle_summary(runtime, x, input_source=source)
    summary["reference_smoke_test"] = reference_smoke_test(bundle, runtime.info, x, policy)
    summary["recommended_fallback"] = recommend_fallback(summary["rates"], summary["counts"])
    summary["checklist"] = checklist(summary)
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
    "Terms",
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
