"""What validation proves about a bundle's graph, and the policy for what it cannot.

:func:`verify_graph` runs after the file-level checks of
:mod:`zpml_runtime.bundle.validate`:

* **compiled bundles** (``source: compiled_fru``): the graph must be the
  deterministic compilation of the recorded expression(s), variables,
  parameters, thresholds and emitter options (:mod:`.reproduce`); then the
  second line of defence (:mod:`.semantic`) runs the graph on unpredictable
  points (exact recomputation where the dtype decides the outcome, and a
  bit-exact comparison with the numpy program everywhere). A compiled bundle
  without a usable ``fru`` or written by another compiler version cannot be
  verified: refused, unless ``allow_unverified=True``;
* **traced bundles** (``source: traced_model``): the strict decoder at the end
  of the graph is rebuilt and compared; the traced model's computation of
  ``P, Q, V`` cannot be verified, so the bundle is valid but **unverified**
  (refused with ``require_verified=True``).

Every bundle's stored smoke inputs are run and the outputs checked for shape
and for the decode's invariants.

No metadata field switches a check off: what a bundle claims must verify, or
the bundle is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from zpml_runtime.bundle.errors import BundleError, BundleValidationError
from zpml_runtime.bundle.format import STRICT_OUTPUTS
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.semantic import SemanticCheckReport

from .errors import UnverifiedBundleWarning

RunGraph = Callable[[np.ndarray], dict[str, np.ndarray]]

TRACED_UNVERIFIED = (
    "traced model: the computation of P, Q and V by the traced model is not verified "
    "(only its strict decode is, by reproduction)"
)


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict on a bundle's graph.

    ``verified``: the whole graph was reproduced from the recorded expression and
    options. ``unverified``: what could not be verified (``None`` when verified).
    ``detail``: what was checked, in one sentence.
    """

    verified: bool
    unverified: str | None
    detail: str
    #: the bundle is refused unless ``allow_unverified=True`` (compiled bundles that
    #: cannot be reproduced); traced bundles are accepted unverified by default
    needs_override: bool = False


def check_policy(allow_unverified: bool, require_verified: bool) -> None:
    """Both flags together contradict each other: a typed error."""
    if allow_unverified and require_verified:
        raise BundleError(
            "allow_unverified=True and require_verified=True contradict each other; pass one"
        )


def new_seed(seed: int | None) -> int:
    """The validator's seed: ``seed``, or 128 fresh bits from the OS (``secrets``)."""
    return secrets.randbits(128) if seed is None else int(seed)


def verify_graph(
    bundle: Path,
    meta: dict[str, Any],
    model: onnx.ModelProto,
    run: RunGraph,
    smoke: np.ndarray,
    seed: int | None,
    *,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> tuple[Verification, SemanticCheckReport | None]:
    """Check the graph against what the metadata claims; raise :class:`BundleValidationError`
    listing every problem, or return the verdict and the semantic report."""
    from zpml_runtime.bundle.reproduce import kind_problems, unknown_field_problems

    check_policy(allow_unverified, require_verified)
    run = _typed_errors(run)
    problems = unknown_field_problems(model) + kind_problems(meta)
    info = BundleMetadata.parse(meta)
    if info.is_compiled:
        verdict, report = _compiled(meta, model, run, seed, problems)
        problems += smoke_problems(meta, run, smoke)
    else:
        verdict, report = _traced(meta, model, run, smoke, problems)
    if verdict.unverified is not None and not problems:
        if require_verified:
            problems.append(
                f"refused by require_verified: the bundle is not verified ({verdict.unverified})"
            )
        elif verdict.needs_override and not allow_unverified:
            problems.append(verdict.unverified)
    if problems:
        raise BundleValidationError(str(bundle), problems)
    return verdict, report


def _typed_errors(run: RunGraph) -> RunGraph:
    """onnxruntime's own exception types become :class:`BundleError`."""

    def checked(x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return run(x)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = (str(e).splitlines() or [type(e).__name__])[0][:300]
            raise BundleError(f"onnxruntime failed to run model.onnx: {first}") from e

    return checked


def _compiled(
    meta: dict[str, Any],
    model: onnx.ModelProto,
    run: RunGraph,
    seed: int | None,
    problems: list[str],
) -> tuple[Verification, SemanticCheckReport | None]:
    from zpml_runtime.bundle.reproduce import (
        compiled_problems,
        compiled_views,
        has_usable_fru,
        unverifiable_reason,
    )

    if not has_usable_fru(meta):
        why = (
            "metadata source is compiled_fru but it carries no usable exact expression "
            "(fru / expressions missing or null): the graph cannot be verified; re-export the "
            "bundle, or pass allow_unverified=True (zpml --allow-unverified) to use it unverified"
        )
        return Verification(False, why, "nothing verified: no exact expression", True), None
    try:
        views, frus, found = compiled_views(meta)
    except BundleError as e:
        problems.append(str(e))
        return Verification(False, str(e), "the expression metadata is malformed", True), None
    reason = unverifiable_reason(meta)
    if reason is None:  # another compiler may flatten to other terms: not comparable then
        problems += found
    usable = None not in frus and not found
    if reason is None and usable:
        problems += compiled_problems(meta, model, frus)
    report = _second_line(
        meta, views, frus if usable else None, run, seed, reason is None, problems
    )
    if reason is not None:
        return Verification(False, reason, "not reproduced; exact recomputation only", True), report
    return (
        Verification(
            True,
            None,
            "model.onnx is the deterministic compilation of the recorded expression and "
            "thresholds (reproduced), and agrees with exact recomputation on the validator's points",
        ),
        report,
    )


def _second_line(
    meta: dict[str, Any],
    views: list[tuple[Mapping[str, Any], dict[str, str] | None]],
    frus: list[Any] | None,
    run: RunGraph,
    seed: int | None,
    reproducible: bool,
    problems: list[str],
) -> SemanticCheckReport | None:
    """Exact recomputation (and, for a reproducible bundle, the bit-exact numpy
    differential) on the validator's own unpredictable points, per output."""
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.multi import view_outputs
    from zpml_runtime.bundle.semantic import check_semantics

    seed = new_seed(seed)
    references = _references(meta, frus) if (reproducible and frus is not None) else None
    reports = []
    for j, (view, mapping) in enumerate(views):
        try:
            fru = read_metadata_fru(view)
        except BundleError as e:
            problems.append(str(e))
            continue
        if fru is None:
            continue
        run_view = run if mapping is None else _view_runner(run, view, mapping, view_outputs)
        label = "" if mapping is None else f"output {view['column']} ({view.get('output_name')}): "
        try:
            rep = check_semantics(
                view, fru, run_view, seed, reference=None if references is None else references[j]
            )
        except BundleError as e:
            problems.append(label + str(e))
            continue
        problems += [label + p for p in rep.problems]
        reports.append(rep)
    if not reports:
        return None
    if len(reports) == 1:
        return reports[0]
    return SemanticCheckReport(
        seed,
        sum(r.rows for r in reports),
        sum(r.zero_set_rows for r in reports),
        sum(r.skipped for r in reports),
        (),
        band_rows=sum(r.band_rows for r in reports),
        differential_rows=sum(r.differential_rows for r in reports),
        batch_sizes=reports[0].batch_sizes,
    )


def _view_runner(run: RunGraph, view: Any, mapping: Any, view_outputs: Any) -> RunGraph:
    def run_view(x: np.ndarray) -> dict[str, np.ndarray]:
        return view_outputs(run(x), view, mapping)

    return run_view


def _references(meta: dict[str, Any], frus: list[Any]) -> list[RunGraph] | None:
    """Per output, the numpy program of the installed compiler (the same operations as the
    graph, so the same bits), decoding with the runtime's numpy strict kernel."""
    from zpml_runtime.bundle.differential import program_references

    try:
        return program_references(meta, frus)
    except BundleError:
        return None


def _traced(
    meta: dict[str, Any],
    model: onnx.ModelProto,
    run: RunGraph,
    smoke: np.ndarray,
    problems: list[str],
) -> tuple[Verification, None]:
    from zpml_runtime.bundle.reproduce import traced_problems, unverifiable_reason

    info = BundleMetadata.parse(meta)
    if info.fru is not None or info.expressions is not None:
        problems.append(
            "metadata source is traced_model but it carries an exact expression (fru / "
            "expressions): a compiled bundle relabelled as traced; refused"
        )
    reason = unverifiable_reason(meta)
    if reason is None:
        problems += traced_problems(meta, model)
    problems += smoke_problems(meta, run, smoke)
    if reason is not None:
        return Verification(False, reason, "not reproduced: written by another zpml", True), None
    return (
        Verification(
            False,
            TRACED_UNVERIFIED,
            "the strict decode at the end of model.onnx is the one zpml emits (reproduced); the "
            "traced computation of P, Q, V is not verified",
        ),
        None,
    )


def smoke_problems(meta: dict[str, Any], run: RunGraph, smoke: np.ndarray) -> list[str]:
    """Run the stored smoke inputs: every output has the recorded shape and dtype, and the
    masks are the decode's (bottom = fault | semantic, gap only where not bottom,
    decoded NaN exactly where bottom, provenance = fault + 2 * semantic)."""
    try:
        got = run(smoke)
    except BundleError as e:
        return [f"{e} (on the smoke inputs)"]
    problems = []
    for o in BundleMetadata.parse(meta).outputs:
        want = [len(smoke) if d == "batch" else d for d in o.shape]
        arr = got.get(o.name)
        if arr is None or list(arr.shape) != want:
            problems.append(
                f"output {o.name} has shape {None if arr is None else list(arr.shape)} on the "
                f"{len(smoke)} smoke rows; metadata says {list(o.shape)}"
            )
    if problems or not set(STRICT_OUTPUTS) <= set(got):
        return problems
    bottom, gap = got["bottom_mask"], got["gap_mask"]
    fault, sem = got["fault_mask"], got["semantic_bottom_mask"]
    decoded, prov = got["decoded"], got["bottom_provenance"]
    checks = {
        "bottom_mask == fault_mask | semantic_bottom_mask": np.array_equal(bottom, fault | sem),
        "gap_mask only where not bottom": not np.any(gap & bottom),
        "decoded is NaN exactly where bottom": np.array_equal(np.isnan(decoded), bottom),
        "bottom_provenance == fault + 2 * semantic": np.array_equal(
            prov.astype(np.int64), fault.astype(np.int64) + 2 * sem.astype(np.int64)
        ),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        problems.append(
            f"on the smoke inputs the outputs break the strict decode's invariants: {', '.join(bad)}"
        )
    return problems


__all__ = [
    "TRACED_UNVERIFIED",
    "UnverifiedBundleWarning",
    "Verification",
    "check_policy",
    "new_seed",
    "smoke_problems",
    "verify_graph",
]
