"""``python -m zpml_runtime.report bundle DIR [--inputs FILE.npy]``: the bundle validation report.

Same as ``zpml report bundle DIR``; the Python API is
:func:`zpml_runtime.bundle.report.write_bundle_report`.
"""

from __future__ import annotations

import sys

from zpml_runtime.bundle.report import BundleReport, write_bundle_report
from zpml_runtime.cli import report_main as main

__all__ = ["BundleReport", "main", "write_bundle_report"]

if __name__ == "__main__":
    sys.exit(main())
