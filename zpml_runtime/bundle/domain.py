"""The operating box of a bundle and its certified domain report.

A compiled bundle may declare an operating box (``input_box`` in
``metadata.json``: one exact interval per input variable, as the text
``"lo:hi"`` or ``"value"`` that :func:`zpml_symbolic.parse_box` reads). Export
then records ``domain``, the :func:`zpml_symbolic.domain_report` of the
recorded exact expression over that box (JSON of
:meth:`~zpml_symbolic.domain.DomainReport.to_dict`), and both fields are
covered by the checksum and the signature like every other field.

Validation never trusts the stored report: it recomputes it from the recorded
expression, parameters and box with the fixed analysis options below, and
refuses a bundle whose stored report differs (naming the first differing
field; the timing fields ``seconds`` and ``work`` are not compared, they
measure the machine, and neither are the details of a factor left
``"unknown"`` in both reports: where a budget-limited search stops depends on
the machine too, and an unknown verdict claims nothing). Traced bundles carry no exact expression, so nothing can
be proved for them: an operating box is refused at export and at validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_symbolic.domain import BoxError, DomainReport, domain_report, format_box, parse_box
from zpml_symbolic.domain.box import Interval, normalize_box
from zpml_symbolic.flatten.budget import Budget

from .errors import InputBoxError

#: The analysis every bundle's domain report is computed with (export and validation alike):
#: the work budget of :data:`zpml_symbolic.domain.DEFAULT_BUDGET` and a generous clock, so the
#: verdicts depend on the work done, not on the speed of the machine.
DOMAIN_BUDGET = Budget(max_work=2_000_000, max_seconds=120.0)
DOMAIN_OPTIONS: dict[str, Any] = {
    "resolution": Fraction(1, 64),
    "tightness": 2,
    "cover": "auto",
    "max_cover_boxes": 2048,
}
#: Measured, not derived: not compared between the stored and the recomputed report.
_VOLATILE_TOP = frozenset({"seconds"})
_VOLATILE_FACTOR = frozenset({"seconds", "work"})
#: What a factor is: these must agree even where its analysis is budget-limited.
_DERIVED = frozenset({"summary", "defined_everywhere"})
_IDENTITY = ("index", "factor", "factor_terms", "generators", "role", "multiplicity", "output")


def check_input_box(
    input_box: Mapping[Any, Any] | str,
    variables: tuple[str, ...] | list[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    source: str = "compiled_fru",
) -> dict[str, Interval]:
    """The operating box as exact intervals in the bundle's variable order.

    ``input_box``: ``{variable: (lo, hi) or value}`` or text ``"x=0:1,y=-2:2"``. Every input
    variable of the bundle needs an entry and no other name is accepted; raises
    :class:`InputBoxError` naming the culprit. ``source="traced_model"`` is refused: a traced
    model has no exact expression to prove anything on.
    """
    if source != "compiled_fru":
        raise InputBoxError(
            "input_box needs a compiled model (an exact expression to prove the domain on); a "
            "traced model's P, Q, V are arbitrary code, so no operating box can be certified for "
            "it: export a compiled model (zpml_symbolic), or leave input_box out",
            field="input_box",
        )
    try:
        box = normalize_box(input_box)
    except BoxError as e:
        raise InputBoxError(f"input_box: {e}", field=e.field) from e
    params = set(parameters or {})
    for name in box:
        if name not in variables:
            kind = "a parameter (learnable coefficient)" if name in params else "not a variable"
            raise InputBoxError(
                f"input_box names {name!r}, which is {kind} of the bundle; its input variables "
                f"are {list(variables)}",
                field=name,
            )
    missing = [v for v in variables if v not in box]
    if missing:
        raise InputBoxError(
            f"input_box gives no range for input variable(s) {missing}; an operating box covers "
            f"every input ({list(variables)}); fix one with name=value",
            field=missing[0],
        )
    return {v: box[v] for v in variables}


def input_box_metadata(box: Mapping[str, Interval]) -> dict[str, str]:
    """``metadata["input_box"]``: per variable the exact text ``"lo:hi"`` (or ``"value"``)."""
    return {name: format_box({name: iv}).partition("=")[2] for name, iv in box.items()}


def _typed(meta: Mapping[str, Any] | BundleMetadata) -> BundleMetadata:
    """The typed metadata (``draft``: export asks before the model's hash is known)."""
    return meta if isinstance(meta, BundleMetadata) else BundleMetadata.parse(meta, draft=True)


def read_input_box(meta: Mapping[str, Any] | BundleMetadata) -> dict[str, Interval]:
    """The recorded operating box, checked against the bundle's variables
    (raises :class:`InputBoxError` naming the bad entry)."""
    info = _typed(meta)
    raw = info.input_box
    if raw is None or not raw:
        raise InputBoxError("metadata input_box must be a non-empty object", field="input_box")
    box: dict[str, Interval] = {}
    for name, text in raw.items():
        if not isinstance(text, str):
            raise InputBoxError(
                f"metadata input_box.{name} must be the text 'lo:hi', got {text!r:.80}", field=name
            )
        try:
            box.update(parse_box(f"{name}={text}"))
        except BoxError as e:
            raise InputBoxError(f"metadata input_box.{name}: {e}", field=name) from e
    return check_input_box(box, list(info.input.variables), info.parameters, source=info.source)


def compute_domain(
    meta: Mapping[str, Any] | BundleMetadata, box: Mapping[str, Interval], frus: list[Any]
) -> DomainReport:
    """The domain report of the recorded expression(s) ``frus`` over ``box`` (fixed options)."""
    used = {s.name for f in frus for s in f.variables}
    pnames = list(dict.fromkeys(s.name for f in frus for s in f.parameters))
    values = _typed(meta).parameters
    missing = [p for p in pnames if p not in values]
    if missing:
        raise BundleError(f"metadata parameters give no value for {missing}")
    return domain_report(
        list(frus),
        {n: iv for n, iv in box.items() if n in used},
        parameters={p: values[p] for p in pnames} or None,
        budget=DOMAIN_BUDGET,
        **DOMAIN_OPTIONS,
    )


def _frus(info: BundleMetadata) -> list[Any] | None:
    from zpml_runtime.bundle.reproduce import compiled_views, has_usable_fru

    if not has_usable_fru(info.raw):
        return None
    _, frus, problems = compiled_views(info.raw)
    if problems or any(f is None for f in frus):
        return None
    return list(frus)


def export_domain(meta: dict[str, Any], box: Mapping[str, Interval]) -> dict[str, Any]:
    """``metadata["domain"]`` for a compiled bundle's metadata: the report of its recorded
    expression (re-read from the metadata, as validation will) over ``box``."""
    info = _typed(meta)
    frus = _frus(info)
    if frus is None:
        raise BundleError(
            "internal: the recorded expression cannot be re-read from the metadata, so no domain "
            "report can be computed for input_box"
        )
    return _canonical(compute_domain(info, box, frus).to_dict())


def _canonical(d: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON types, as metadata.json stores them."""
    return json.loads(json.dumps(d, allow_nan=False))


def _comparable(d: Any) -> Any:
    if not isinstance(d, dict):
        return d
    # the summary lines are derived from the factors: a difference is named at its source first
    keys = sorted((k for k in d if k not in _VOLATILE_TOP), key=lambda k: k in _DERIVED)
    out = {k: d[k] for k in keys}
    if isinstance(out.get("factors"), list):
        out["factors"] = [
            {k: v for k, v in f.items() if k not in _VOLATILE_FACTOR} if isinstance(f, dict) else f
            for f in out["factors"]
        ]
    return out


def first_difference(stored: Any, recomputed: Any, path: str = "domain") -> str | None:
    """The first path where two JSON values differ, with both values (``None``: equal)."""
    if isinstance(stored, dict) and isinstance(recomputed, dict):
        for key in list(recomputed) + [k for k in stored if k not in recomputed]:
            if key not in stored:
                return f"{path}.{key} is missing (recomputed {_short(recomputed[key])})"
            if key not in recomputed:
                return f"{path}.{key} is not a field of the report (stored {_short(stored[key])})"
            found = first_difference(stored[key], recomputed[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(recomputed, list):
        for i, (a, b) in enumerate(zip(stored, recomputed, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(stored) != len(recomputed):
            return f"{path} has {len(stored)} entries, recomputed {len(recomputed)}"
        return None
    if stored == recomputed and type(stored) is type(recomputed):
        return None
    return f"{path}: stored {_short(stored)}, recomputed {_short(recomputed)}"


def _short(v: Any) -> str:
    text = json.dumps(v, allow_nan=False) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 100 else text[:97] + "..."


def _undecided_only(stored: Any, recomputed: dict[str, Any]) -> bool:
    """True when the reports differ only in the details of factors left ``"unknown"`` in both
    (their cover, reason and split count depend on where the budget ran out, and the
    analysis charges part of its work by time), and the stored summary matches its factors.
    Such a report claims nothing that was not recomputed."""
    if not isinstance(stored, dict):
        return False
    top = {k for k in set(stored) | set(recomputed) if k not in ("factors", "summary")}
    if any(stored.get(k) != recomputed.get(k) for k in top - _VOLATILE_TOP):
        return False
    sf, rf = stored.get("factors"), recomputed.get("factors")
    if not isinstance(sf, list) or not isinstance(rf, list) or len(sf) != len(rf):
        return False
    for a, b in zip(sf, rf, strict=True):
        if not isinstance(a, dict) or _comparable({"factors": [a]}) == _comparable(
            {"factors": [b]}
        ):
            continue
        if not (a.get("verdict") == b.get("verdict") == "unknown"):
            return False
        if any(a.get(k) != b.get(k) for k in _IDENTITY):
            return False
    try:
        return stored.get("summary") == DomainReport.from_json(stored).summary()
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return False


def check_domain(
    meta: Mapping[str, Any] | BundleMetadata,
) -> tuple[DomainReport | None, list[str]]:
    """Validation: the recomputed domain report (``None`` without an operating box or when the
    expression cannot be re-read) and the problems found."""
    from zpml_runtime.bundle.reproduce import unverifiable_reason

    info = _typed(meta)
    has_box, has_domain = info.input_box is not None, info.domain is not None
    if not has_box and not has_domain:
        return None, []
    if not info.is_compiled:
        return None, [
            "metadata input_box/domain on a traced bundle: a traced model has no exact expression, "
            "so no operating box can be certified for it (the fields were added by hand)"
        ]
    if has_box != has_domain:
        have, lack = ("input_box", "domain") if has_box else ("domain", "input_box")
        return None, [f"metadata has {have} but no {lack}: they are recorded together"]
    try:
        box = read_input_box(info)
    except InputBoxError as e:
        return None, [str(e)]
    frus = _frus(info)
    if frus is None:  # the verification reports why the expression cannot be re-read
        return None, []
    try:
        report = compute_domain(info, box, frus)
    except (BundleError, BoxError) as e:
        return None, [f"the domain report cannot be recomputed on input_box: {e}"]
    recomputed = _canonical(report.to_dict())
    stored = dict(info.domain or {})
    diff = first_difference(_comparable(stored), _comparable(recomputed))
    if diff is None or unverifiable_reason(dict(info.raw)) is not None:
        # another zpml wrote it: its analysis may differ; the recomputed report is the one used
        return report, []
    if _undecided_only(stored, recomputed):
        return report, []
    return report, [
        f"metadata {diff}: the stored domain report is not the one recomputed from the recorded "
        "expression, parameters and input_box (the report or the box was edited); the recomputed "
        "report is the only one used: re-export the bundle"
    ]


__all__ = [
    "DOMAIN_BUDGET",
    "DOMAIN_OPTIONS",
    "InputBoxError",
    "check_domain",
    "check_input_box",
    "compute_domain",
    "export_domain",
    "first_difference",
    "input_box_metadata",
    "read_input_box",
]
