"""The ```python blocks of docs/domain.md run, in order, and print exactly their ```text blocks.

Same rules as ``test_docs_examples.py`` (block extraction shared in ``tests/support/doc_blocks.py``); executing code
from our own doc file is intended here, nothing else is executed.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from doc_blocks import extract_blocks

DOC = Path(__file__).resolve().parents[3] / "docs" / "domain.md"


def test_domain_doc_examples_run_and_print_what_the_page_shows() -> None:
    blocks = extract_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "domain_doc"}
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{DOC.name}:{block.line}", "exec"), namespace)  # noqa: S102
        if block.expected is not None:
            got = "\n".join(line.rstrip() for line in out.getvalue().rstrip().splitlines())
            want = "\n".join(line.rstrip() for line in block.expected.rstrip().splitlines())
            assert got == want, f"{DOC.name}:{block.line}"


def test_the_page_image_exists() -> None:
    assert (DOC.parent / "img" / "domain_cover.png").stat().st_size > 1000
    assert "img/domain_cover.png" in DOC.read_text(encoding="utf-8")
