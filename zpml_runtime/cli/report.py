"""``zpml report bundle DIR``: write the bundle's validation report files."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from zpml_runtime.cli import options
from zpml_runtime.cli.errors import CliError, UsageError

__all__ = ["add_bundle_parser", "add_parser", "run_bundle"]


def add_parser(sub: Any) -> None:
    """Register ``zpml report KIND``."""
    p = sub.add_parser("report", help="validation reports")
    add_bundle_parser(p.add_subparsers(dest="report_kind", required=True, metavar="KIND"))


def add_bundle_parser(sub: Any) -> None:
    """Register ``report bundle`` (also the parser of ``python -m zpml_runtime.report``)."""
    p = sub.add_parser("bundle", help="write VALIDATION_REPORT.{md,summary.json,summary.svg}")
    p.add_argument("dir", help="bundle directory")
    p.add_argument(
        "--inputs", metavar="FILE.npy", help="inputs [n, n_vars] (default: smoke inputs)"
    )
    options.add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    options.add_verification_flags(p)
    p.set_defaults(func=run_bundle)


def run_bundle(args: argparse.Namespace) -> int:
    """Run ``zpml report bundle``."""
    from zpml_runtime.bundle import UnverifiedBundleWarning
    from zpml_runtime.bundle.errors import NotARegularFileError, NotNpyFileError
    from zpml_runtime.bundle.report import write_bundle_report

    key = options.signing_key(args)
    try:
        with warnings.catch_warnings():  # the report says UNVERIFIED itself (printed below)
            warnings.simplefilter("ignore", UnverifiedBundleWarning)
            report = write_bundle_report(
                args.dir, inputs=args.inputs, signing_key=key, **options.policy(args)
            )
    except (NotNpyFileError, NotARegularFileError) as e:  # --inputs is not a .npy file
        raise UsageError(str(e)) from None
    s = report.summary
    print(f"validation report for {report.path} ({s['inputs']['samples']} samples)")
    if not s["validation"]["verified"]:
        print(f"  UNVERIFIED: {s['validation']['unverified']}")
    print(
        f"  bottom rate {s['rates']['bottom_rate']:.4g}, gap rate {s['rates']['gap_rate']:.4g}, "
        f"fault rate {s['rates']['fault_rate']:.4g}"
    )
    smoke = s["reference_smoke_test"]
    print(f"  reference smoke test: {smoke['status']}")
    print(f"  recommended fallback: {s['recommended_fallback']['policy']}")
    for path in report.files.values():
        print(f"  wrote {path}")
    if smoke["status"] == "failed":
        raise CliError(f"the reference smoke test failed: {smoke.get('detail', '')}")
    return 0
