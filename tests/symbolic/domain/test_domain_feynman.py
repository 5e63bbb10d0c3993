"""Every factor of the AI Feynman data set's rational formulas, decided over the published ranges.

``tests/symbolic/domain/data/feynman_rational.csv`` holds the rational rows of the
published table (see the README there). Over the published sampling ranges every
factor must be decided (none ``"unknown"``) and every answer is rechecked
exactly; over the widened ranges ``[-high, high]`` (which reach the poles) too.
The per-formula time is measured by ``benchmarks/bench_domain.py``.
"""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import pytest
from test_domain_properties import check_report

import zpml_symbolic as zs

DATA = Path(__file__).parent / "data" / "feynman_rational.csv"


def load_feynman() -> list[tuple[str, str, dict[str, tuple[Fraction, Fraction]]]]:
    """``(name, formula, {variable: (low, high)})`` per rational row of the published table."""
    rows = []
    with DATA.open(newline="") as fh:
        for row in csv.DictReader(fh):
            box = {}
            for i in range(1, 11):
                name = row.get(f"v{i}_name")
                if name:
                    box[name] = (Fraction(row[f"v{i}_low"]), Fraction(row[f"v{i}_high"]))
            rows.append((row["Filename"], row["Formula"], box))
    return rows


ROWS = load_feynman()


def feynman_report(formula: str, box: dict[str, tuple[Fraction, Fraction]]) -> zs.DomainReport:
    fru = zs.flatten(formula, constants={"pi": math.pi})
    used = {s.name for s in fru.variables}
    return zs.domain_report(fru, {n: iv for n, iv in box.items() if n in used})


def test_corpus_is_the_rational_part_of_the_table() -> None:
    assert len(ROWS) == 58
    assert {"I.16.6", "I.27.6", "II.11.3", "I.9.18"} <= {name for name, _, _ in ROWS}
    for _name, formula, box in ROWS:
        fru = zs.flatten(formula, constants={"pi": math.pi})
        assert {s.name for s in fru.variables} <= set(box)


@pytest.mark.parametrize(("name", "formula", "box"), ROWS, ids=[r[0] for r in ROWS])
def test_published_ranges_are_decided(name: str, formula: str, box: dict) -> None:
    report = feynman_report(formula, box)
    assert not report.unknown, [f.describe() for f in report.unknown]
    # the published sampling ranges avoid every pole: the data could be generated
    assert report.defined_everywhere, report.summary()
    check_report(report, grid=2)


@pytest.mark.parametrize(("name", "formula", "box"), ROWS, ids=[r[0] for r in ROWS])
def test_widened_ranges_reach_the_poles(name: str, formula: str, box: dict) -> None:
    wide = {n: (-hi, hi) for n, (_lo, hi) in box.items()}
    report = feynman_report(formula, wide)
    assert not report.unknown, [f.describe() for f in report.unknown]
    check_report(report, grid=2)
    for f in report.factors:  # a factor vanishing at the origin must be reported so
        origin = all(c == 0 for m, c in f.factor_terms if not any(m))
        if origin:
            assert f.verdict == "vanishes"
