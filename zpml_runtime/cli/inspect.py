"""``zpml inspect DIR``: validate a bundle and print its metadata and provenance."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from zpml_runtime.cli import options
from zpml_runtime.cli.output import sources, table

if TYPE_CHECKING:
    from zpml_runtime.bundle.metadata import BundleMetadata

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register ``zpml inspect``."""
    p = sub.add_parser("inspect", help="validate a bundle and print its metadata and provenance")
    p.add_argument("dir", help="bundle directory")
    p.add_argument(
        "--box",
        metavar="x=0:1,y=-2:2",
        help="also print the certified domain report of the bundle's expression on this box "
        "(exact bounds, every input variable)",
    )
    options.add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    options.add_verification_flags(p)
    p.set_defaults(func=run)


def _rows(vb: Any, m: BundleMetadata, args: argparse.Namespace) -> list[tuple[str, str]]:
    cfg, eff = m.inference_config, m.effective_thresholds
    rows = [
        ("bundle", f"{vb.path} (valid{'' if vb.verified else ', UNVERIFIED'})"),
        (
            "verified",
            f"yes: {vb.verification}" if vb.verified else f"UNVERIFIED: {vb.unverified_reason}",
        ),
        ("bundle_id", m.bundle_id),
        ("source", m.source),
        ("dtype", m.dtype),
        ("input", f"{m.input.name} {list(m.input.shape)}, batch axis 0"),
        ("variables", ", ".join(m.input.variables) or "(none)"),
        ("parameters", ", ".join(f"{k}={v!r}" for k, v in m.parameters.items()) or "(none)"),
        (
            "thresholds",
            f"tau_infer={cfg.tau_infer!r} tau_train={cfg.tau_train!r} "
            f"validity_taus={list(m.validity_taus)!r}",
        ),
        (
            "effective",
            f"t_infer={eff.t_infer!r} t_train={eff.t_train!r} "
            f"t_factors={list(eff.t_factors)!r} ({eff.dtype})",
        ),
        ("outputs", ", ".join(m.output_order)),
        ("smoke", f"{vb.smoke_inputs.shape} {vb.smoke_inputs.dtype} ({m.smoke_inputs.file})"),
        ("model", f"{m.model_file} sha256 {m.model_sha256} ({m.model_size} bytes)"),
    ]
    if args.signing_key_file is not None:
        rows.append(("signature", "metadata.sig matches the key (HMAC-SHA256)"))
    return rows


def expression_views(
    m: BundleMetadata,
) -> tuple[list[tuple[str | None, Any]], list[tuple[str, str]]]:
    """``(label, exact FRU)`` per expression of a bundle, and the rows that describe them."""
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.metadata import BundleMetadata
    from zpml_runtime.bundle.multi import expression_views as views_of

    rows: list[tuple[str, str]] = []
    views: list[tuple[str | None, Any]] = []
    traced = ("P/Q", "n/a (traced model: no exact terms in the metadata)")
    if m.multi_output is not None:
        mo = m.multi_output
        names = ", ".join(mo.output_names)
        rows.append(("outputs/sample", f"{mo.k}: {names} (columns of [batch, {mo.k}])"))
        if m.expressions is not None:
            typed = [BundleMetadata.parse(v) for v, _ in views_of(m.raw)]
            views = [(v.output_name, read_metadata_fru(v)) for v in typed]
        else:
            rows.append(traced)
    else:
        fru = read_metadata_fru(m)
        if fru is not None:
            views = [(None, fru)]
        else:
            rows.append(traced)
    return views, rows


def print_provenance(views: list[tuple[str | None, Any]]) -> None:
    """The provenance table of each expression."""
    for label, fru in views:
        print()
        if label is not None:
            print(f"output {label}:")
        if not fru.factors:
            print("provenance: no division in the expression")
            continue
        print("provenance (denominator factors):")
        rows = [
            (
                str(f.index),
                f.factor,
                f.kind,
                f"validity output {f.output_index}" if f.retained else "Q",
                sources(f.occurrences),
            )
            for f in fru.factors
        ]
        print(table(("#", "factor", "kind", "enforced by", "sources"), rows))


def run(args: argparse.Namespace) -> int:
    """Run ``zpml inspect``."""
    import zpml_runtime.bundle as bundle  # looked up at call time (tests replace it)
    from zpml_runtime.bundle.metadata import BundleMetadata
    from zpml_runtime.cli.args import parse_box_option
    from zpml_runtime.cli.domain import bundle_domain

    if args.box is not None:
        parse_box_option(args.box)  # a typo fails before validation
    vb = bundle.validate_bundle(
        args.dir, signing_key=options.signing_key(args), **options.policy(args)
    )
    info = vb.info or BundleMetadata.parse(vb.metadata)
    requested = None if args.box is None else bundle_domain(info, args.box)
    rows = _rows(vb, info, args)
    views, extra = expression_views(info)
    rows += extra
    for label, fru in views:
        tag = f" [{label}]" if label is not None else ""
        rows += [
            (f"expression{tag}", fru.expression),
            (f"P{tag}", fru.numerator),
            (f"Q{tag}", fru.denominator),
        ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    print_provenance(views)
    _print_domains(getattr(vb, "domain", None), requested)
    return 0


def _print_domains(declared: Any, requested: Any) -> None:
    """The bundle's declared operating box (validated) and the ``--box`` report."""
    from zpml_runtime.cli.domain import print_domain

    if declared is not None:
        print()
        print_domain(declared, "declared operating box")
    if requested is not None:
        print()
        print_domain(requested, "box")
