"""Certified domain analysis: where can an expression be bottom on an operating box.

``domain_report(expr, box)`` decides, for every irreducible factor of ``Q`` and
every retained validity factor, whether it vanishes anywhere on the closed box:
``"nonzero"`` with an exact certified lower bound of ``|factor|``, ``"vanishes"``
with an exact witness, or ``"unknown"`` with the sub-boxes still undecided.
See docs/domain.md.
"""

from zpml_symbolic.domain.api import DEFAULT_BUDGET, domain_report
from zpml_symbolic.domain.box import format_box, normalize_box, parse_box
from zpml_symbolic.domain.report import DomainReport, FactorVerdict, Witness
from zpml_symbolic.errors import BoxError

__all__ = [
    "DEFAULT_BUDGET",
    "BoxError",
    "DomainReport",
    "FactorVerdict",
    "Witness",
    "domain_report",
    "format_box",
    "normalize_box",
    "parse_box",
]
