"""``--box`` in the ``zpml`` command: the certified domain report of an expression or bundle.

For a bundle the report is computed on its recorded expression (what
validation reproduces the graph from), with the options the bundle's own
``input_box`` report uses; for an expression text it is
``zs.domain_report(expr, box)``. A bad box is a usage error naming the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zpml_runtime.cli.errors import UsageError

if TYPE_CHECKING:
    from zpml_runtime.bundle.metadata import BundleMetadata

__all__ = ["bundle_domain", "expression_domain", "print_domain", "recorded_domain"]


def print_domain(report: Any, heading: str) -> None:
    """The report's one-line summary, then one line per factor with where it comes from."""
    from zpml_symbolic.domain.box import format_box

    print(
        f"{heading} {format_box(report.box)}"
        + (f" with {format_box(report.parameters)}" if report.parameters else "")
        + ":"
    )
    print(f"  {report.summary()}")
    for f in report.factors:
        label = f" (output {f.output})" if len(report.expressions) > 1 else ""
        print(f"  {f.describe()}{label}")
        for p in f.provenance:
            print(f"      from {p.get('source')} at {p.get('path')}")


def expression_domain(text: str, box_text: str, option: str = "--box", *, hint: str = "") -> Any:
    """``zs.domain_report`` of an expression text over ``--box`` (every symbol a variable);
    ``hint`` is added to a parse error."""
    import zpml_symbolic as zs
    from zpml_runtime.cli.args import parse_box_option
    from zpml_runtime.cli.compile_steps import parse_expression
    from zpml_symbolic.domain.box import BoxError

    box = parse_box_option(box_text, option)
    try:
        expr = parse_expression(zs, text, [], {})
    except UsageError as e:
        raise UsageError(f"{e}{hint}") from e
    try:
        return zs.domain_report(zs.flatten(expr), box)
    except BoxError as e:
        raise UsageError(f"{option} ({e.field}): {e}") from e
    except zs.ZeroProofError as e:
        raise UsageError(f"{text!r}: {e}") from e


def bundle_domain(meta: BundleMetadata, box_text: str, option: str = "--box") -> Any:
    """The domain report of a validated bundle's recorded expression(s) over ``--box``
    (which must give every input variable of the bundle, and nothing else)."""
    from zpml_runtime.bundle.domain import check_input_box, compute_domain
    from zpml_runtime.bundle.errors import InputBoxError
    from zpml_runtime.bundle.reproduce import compiled_views, has_usable_fru

    if not meta.is_compiled or not has_usable_fru(meta.raw):
        raise UsageError(
            f"{option}: this bundle holds a traced model (no exact expression), so no domain can "
            "be certified for it; compile the expression with zpml compile instead"
        )
    try:
        box = check_input_box(
            box_text, list(meta.input.variables), meta.parameters, source="compiled_fru"
        )
    except InputBoxError as e:
        raise UsageError(f"{option} ({e.field}): {e}") from e
    _, frus, problems = compiled_views(meta.raw)
    if problems or any(f is None for f in frus):  # validation refuses such bundles first
        raise UsageError(
            f"{option}: the bundle's recorded expression cannot be re-read: {problems}"
        )
    return compute_domain(meta, box, list(frus))


def recorded_domain(meta: BundleMetadata) -> Any:
    """The bundle's own (validated) report over its declared ``input_box``, or None."""
    if meta.domain is None:
        return None
    from zpml_symbolic.domain import DomainReport

    return DomainReport.from_json(dict(meta.domain))
