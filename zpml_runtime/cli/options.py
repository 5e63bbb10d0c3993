"""Options shared by several ``zpml`` subcommands: budgets, signing key, verification policy,
and loading a bundle the way every subcommand does."""

from __future__ import annotations

import argparse
from typing import Any, TypedDict

from zpml_runtime.cli.errors import CliError, UsageError

__all__ = [
    "BUDGET_OPTIONS",
    "Policy",
    "add_budget_options",
    "add_signing_key",
    "add_verification_flags",
    "budget",
    "load_quietly",
    "policy",
    "signing_key",
]


# ----------------------------------------------------------------- budgets

BUDGET_OPTIONS: dict[str, type] = {
    "max_degree": int,
    "max_terms": int,
    "max_work": int,
    "max_seconds": float,
    "max_coefficient_bits": int,
}


def add_budget_options(p: argparse.ArgumentParser) -> None:
    """``--max-degree N`` ... (the flattening budgets)."""
    for option, kind in BUDGET_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        p.add_argument(
            flag,
            type=kind,
            default=None,
            metavar="N",
            help=f"flattening budget {option} (raise when refused)",
        )


def budget(args: argparse.Namespace) -> Any:
    """The flattening :class:`Budget` from ``--max-*`` (defaults for the options not given)."""
    given = {k: getattr(args, k) for k in BUDGET_OPTIONS if getattr(args, k, None) is not None}
    if not given:
        return None
    from zpml_symbolic.flatten.budget import Budget

    try:
        return Budget(**given)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from e


# ----------------------------------------------------------------- shared option groups


def add_signing_key(p: argparse.ArgumentParser, what: str) -> None:
    """``--signing-key-file FILE``."""
    p.add_argument(
        "--signing-key-file",
        metavar="FILE",
        default=None,
        help=f"{what} (HMAC-SHA256). The key is the file's bytes without one trailing "
        "newline, so 'echo KEY > FILE' gives the key b'KEY'; a regular file of at most 64 KiB",
    )


def add_verification_flags(p: argparse.ArgumentParser) -> None:
    """``--allow-unverified`` / ``--require-verified`` (exclusive)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a bundle whose graph cannot be verified by reproduction (written by another "
        "zpml version, or without its exact expression); everything then says UNVERIFIED",
    )
    group.add_argument(
        "--require-verified",
        action="store_true",
        help="refuse every bundle whose graph is not verified, traced models included",
    )


class Policy(TypedDict):
    """The verification keywords of ``validate_bundle``/``load_onnx_runtime_bundle``."""

    allow_unverified: bool
    require_verified: bool


def policy(args: argparse.Namespace) -> Policy:
    """The verification keywords of ``validate_bundle``/``load_onnx_runtime_bundle``."""
    return Policy(
        allow_unverified=bool(getattr(args, "allow_unverified", False)),
        require_verified=bool(getattr(args, "require_verified", False)),
    )


def signing_key(args: argparse.Namespace) -> bytes | None:
    """The HMAC key from ``--signing-key-file`` (the file's bytes without one trailing
    newline; a regular file of at most 64 KiB), or None."""
    path = getattr(args, "signing_key_file", None)
    if path is None:
        return None
    from zpml_runtime.bundle.errors import UserFileError
    from zpml_runtime.bundle.userfiles import read_signing_key

    try:
        return read_signing_key(path, what="--signing-key-file")
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot read --signing-key-file {path}: {e.strerror or e}") from e


def load_quietly(directory: str, key: bytes | None, args: argparse.Namespace) -> Any:
    """``load_onnx_runtime_bundle``; its UNVERIFIED warning becomes a line the command prints."""
    import warnings

    from zpml_runtime.bundle import UnverifiedBundleWarning, load_onnx_runtime_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedBundleWarning)
        runtime = load_onnx_runtime_bundle(directory, signing_key=key, **policy(args))
    if not runtime.verified:
        print(f"UNVERIFIED: {runtime.unverified_reason}")
    return runtime
