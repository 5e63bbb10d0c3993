"""Golden flattening metadata for handpicked expressions (``tests/symbolic/flatten/golden/*.json``).

Each file holds, for one expression given as text (through the safe parser):
the input, variables, parameters, ``P`` and ``Q`` as text, the irreducible
factors of ``Q``, the full denominator provenance (factor, kind, retained,
every occurrence with kind/source/path/node_id/divisor) and
``structural_validity_output_schema(prefix="structural_validity_factor").to_metadata()``.
Files are JSON with sorted keys and indent 2, so a change is a readable diff.

To regenerate after an intended change, run::

    ZPML_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/symbolic/flatten/test_golden.py

then READ the diff and check it by hand against docs/semantics.md before
committing (P/Q, provenance kinds, which factors are retained, sources).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import zpml_symbolic as zs

GOLDEN_DIR = Path(__file__).parent / "golden"
REGEN = os.environ.get("ZPML_REGEN_GOLDEN") == "1"

# (file stem, expression text, parameters)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("mixed_provenance", "(x**2 + 1)/(x - y) + 1/(1 + 1/x)", ()),
    ("x_over_x", "x/x", ()),
    ("reciprocal_of_reciprocal", "1/(1/x)", ()),
    ("removable_singularity", "(x**2 - 1)/(x - 1)", ()),
    ("zero_times_bottom", "0*(1/x)", ()),
    ("sum_of_poles", "1/(x-1) + 1/(x-2)", ()),
    ("common_factor", "((x+1)*(x+2))/((x+1)*(x+3))", ()),
    ("continued_fraction", "1/(1 + 1/(2 + 1/(3 + 1/x)))", ()),
    (
        "three_variables",
        "(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)",
        (),
    ),
    ("parameterised", "a*x/(1 + b*x)", ("a", "b")),
    ("division_by_zero", "x/0", ()),
    ("negative_power", "(x*y - 1)**-2", ()),
]


def metadata(text: str, parameters: tuple[str, ...]) -> dict[str, Any]:
    """The golden record of one expression (JSON-ready)."""
    fru = zs.flatten(text, parameters=parameters)
    schema = fru.structural_validity_output_schema(prefix="structural_validity_factor")
    return {
        "input": text,
        "variables": [s.name for s in fru.variables],
        "parameters": [s.name for s in fru.parameters],
        "numerator": str(fru.numerator),
        "denominator": str(fru.denominator),
        "denominator_factors": [
            {"factor": str(f), "multiplicity": m} for f, m in fru.denominator_factors
        ],
        "always_bottom": fru.always_bottom,
        "provenance": fru.provenance_metadata(),
        "structural_validity_output_schema": schema.to_metadata(),
    }


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(("stem", "text", "parameters"), CASES, ids=[c[0] for c in CASES])
def test_golden_metadata(stem: str, text: str, parameters: tuple[str, ...]) -> None:
    path = GOLDEN_DIR / f"{stem}.json"
    fresh = metadata(text, parameters)
    if REGEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(dump(fresh), encoding="utf-8")
    assert path.exists(), f"missing {path}; generate it with ZPML_REGEN_GOLDEN=1"
    stored_text = path.read_text(encoding="utf-8")
    stored = json.loads(stored_text)
    assert stored == fresh, (
        f"{path.name} differs from the fresh metadata of {text!r}; if the change is "
        "intended, regenerate with ZPML_REGEN_GOLDEN=1 and review the diff"
    )
    assert stored_text == dump(stored), f"{path.name} is not sorted-keys JSON with indent 2"


def test_no_stale_golden_files() -> None:
    on_disk = {p.stem for p in GOLDEN_DIR.glob("*.json")}
    assert on_disk == {stem for stem, _, _ in CASES}


def test_golden_records_are_consistent() -> None:
    """Cross-checks inside each record that do not depend on the stored values."""
    for stem, text, parameters in CASES:
        meta = metadata(text, parameters)
        schema = meta["structural_validity_output_schema"]
        retained = [p for p in meta["provenance"] if p["retained"]]
        assert [o["factor"] for o in schema["outputs"]] == [p["factor"] for p in retained], stem
        assert schema["variables"] == meta["variables"], stem
        assert schema["parameters"] == meta["parameters"], stem
        assert len(schema["output_names"]) == 3 * len(retained), stem
        q_factors = {f["factor"] for f in meta["denominator_factors"]}
        for p in meta["provenance"]:
            # retained exactly when the factor is not a factor of Q (scm_strict mode)
            assert p["retained"] == (p["factor"] not in q_factors), (stem, p["factor"])
            assert p["kind"] == p["occurrences"][0]["kind"], stem
        assert meta["always_bottom"] == any(p["factor"] == "0" for p in meta["provenance"])


def test_schema_metadata_is_plain_json() -> None:
    """Regression: FLINT-factored polynomials once leaked fmpz exponents into the metadata."""
    for _, text, parameters in CASES:
        fru = zs.flatten(text, parameters=parameters)
        json.dumps(fru.structural_validity_output_schema().to_metadata())
        assert all(type(d) is int for d in fru.degrees.validity_factors)
