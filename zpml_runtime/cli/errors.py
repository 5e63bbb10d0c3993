"""The ``zpml`` command's errors, its argument parser class and one-line error text."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from zpml_runtime.errors import ZeroProofRuntimeError

__all__ = ["ArgParser", "CliError", "UsageError", "one_line"]


class CliError(ZeroProofRuntimeError, ValueError):
    """A user error of the ``zpml`` command (exit status 1): bad file or data."""


class UsageError(CliError):
    """The command line itself is wrong, or a file it names is unusable input (exit status 2)."""


class ArgParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _is_instance(e: BaseException, module: str, name: str) -> bool:
    """``isinstance(e, module.name)`` without importing ``module``: an exception of a class
    whose module was never imported cannot be an instance of it (keeps error paths light)."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(e, cls)


def one_line(e: BaseException) -> str:
    """The error as one line of text (a bundle's problems joined; a parse error's first line)."""
    if _is_instance(e, "zpml_runtime.bundle.format", "BundleValidationError"):
        directory = getattr(e, "directory", "")
        return f"bundle {directory!r} is invalid: " + "; ".join(getattr(e, "problems", []))
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        return f"{e.strerror}: {e.filename}"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    # A parse error's further lines are the text and a caret: the first line has the column.
    cause = e.__cause__
    parse_error = _is_instance(e, "zpml_symbolic.errors", "ParseError") or (
        cause is not None and _is_instance(cause, "zpml_symbolic.errors", "ParseError")
    )
    return lines[0] if parse_error else " ".join(lines)
