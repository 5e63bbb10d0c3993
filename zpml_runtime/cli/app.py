"""The ``zpml`` argument parser and entry points: exit statuses and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zpml_core.errors import ThresholdUnderflowError, ZeroProofError
from zpml_runtime.cli import calibrate, compile, explain, inspect, report, run
from zpml_runtime.cli.errors import ArgParser, UsageError, one_line

__all__ = ["build_parser", "main", "report_main"]

#: subcommands in the order ``zpml --help`` lists them
_COMMANDS = (compile, inspect, explain, run, report, calibrate)


def build_parser(prog: str = "zpml") -> argparse.ArgumentParser:
    """The ``zpml`` argument parser."""
    from zpml_core.version import __version__

    parser = ArgParser(
        prog=prog, description="Compile, inspect, explain, run and report strict ONNX bundles."
    )
    parser.add_argument("--version", action="version", version=f"zpml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def _glue_input_values(argv: Sequence[str]) -> list[str]:
    """``--input -1,3`` -> ``--input=-1,3`` (argparse would take ``-1,3`` for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--input" and i + 1 < len(argv):
            out.append(f"--input={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse and run; every user error is one ``zpml: error:`` line and exit 2 or 1."""
    argv = _glue_input_values(sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as e:  # --help / --version
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, ThresholdUnderflowError) as e:  # a threshold from the command line
        print(f"zpml: error: {one_line(e)}", file=sys.stderr)
        return 2
    except (ZeroProofError, OSError) as e:
        print(f"zpml: error: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: one line, not a traceback
        words = [a for a in argv if not a.startswith("-")]
        command = " ".join(words[:2] if words[:1] == ["report"] else words[:1]) or "zpml"
        detail = (str(e).splitlines() or [""])[0][:300]
        print(
            f"zpml: error: {command} failed unexpectedly ({type(e).__name__}: {detail}); "
            "please report this with the command line",
            file=sys.stderr,
        )
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zpml`` console script; returns the exit status."""
    return _run(build_parser(), argv)


def report_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zpml_runtime.report bundle DIR [--inputs FILE]``."""
    parser = ArgParser(
        prog="python -m zpml_runtime.report", description="Bundle validation report."
    )
    report.add_bundle_parser(
        parser.add_subparsers(dest="report_kind", required=True, metavar="KIND")
    )
    return _run(parser, argv)
