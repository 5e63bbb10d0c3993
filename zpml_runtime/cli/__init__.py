"""The ``zpml`` command line: compile, inspect, explain, run, report, calibrate.

Every subcommand is a thin layer over the Python API (``zpml_symbolic`` and
``zpml_runtime.bundle``/``metrics``), one module each (:mod:`.compile`,
:mod:`.inspect`, :mod:`.explain`, :mod:`.run`, :mod:`.report`,
:mod:`.calibrate`); :mod:`.args` and :mod:`.options` hold the argument types
and shared options, :mod:`.userfiles` reads the files users name,
:mod:`.output` formats text. User errors (the typed errors of every package,
``OSError``) print one line starting with ``zpml: error:`` to stderr and exit
with 2 (the command line itself is wrong: options, expression, thresholds,
``--input`` values, ``zpml run`` input files) or 1 (a file, bundle or data set
is unusable, or the reference smoke test failed); an unexpected exception is
a bug: one line naming the command, exit 1, never a traceback. Heavy imports
(torch, sympy, onnx, onnxruntime) happen inside the subcommands, so ``zpml
--help`` is fast.
"""

from zpml_runtime.cli.app import build_parser, main, report_main
from zpml_runtime.cli.args import parse_exact_input, parse_threshold, threshold_float
from zpml_runtime.cli.calibrate import DEFAULT_TAUS
from zpml_runtime.cli.errors import CliError, UsageError
from zpml_runtime.cli.userfiles import read_calibration_csv

__all__ = [
    "DEFAULT_TAUS",
    "CliError",
    "UsageError",
    "build_parser",
    "main",
    "parse_exact_input",
    "parse_threshold",
    "read_calibration_csv",
    "report_main",
    "threshold_float",
]
