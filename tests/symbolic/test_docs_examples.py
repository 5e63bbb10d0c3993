"""The ```python blocks of docs/compiler.md, docs/frontend.md, docs/getting_started.md and
docs/symbolic_regression.md must run.

Each doc file gets one fresh namespace and its blocks run in document order
(the run happens once per file, whatever order the test cases are collected
in). A block written in doctest style (lines starting with ``>>> ``) is run
as a doctest in that namespace. When a ```python block is followed directly
(only blank lines between) by a ```text block, that text is the block's
printed output and must match exactly (trailing whitespace ignored).

Executing code from our own doc files is intended here; nothing else is
ever executed.
"""

from __future__ import annotations

import contextlib
import doctest
import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import Block, extract_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs"
FILES = ("compiler.md", "frontend.md", "getting_started.md", "symbolic_regression.md")

#: Blocks known to fail, by (file, index of the python block): reason. They are
#: marked xfail (non-strict); remove an entry once its block is fixed.
KNOWN_FAILURES: dict[tuple[str, int], str] = {}


def _normalise(out: str) -> str:
    return "\n".join(line.rstrip() for line in out.strip("\n").splitlines())


@dataclass
class Outcome:
    error: BaseException | None
    output: str


def _run_doctest(block: Block, namespace: dict[str, object], name: str) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, name, name, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    runner.run(test, out=report.write, clear_globs=False)
    if runner.failures:
        raise AssertionError(f"doctest failed:\n{report.getvalue()}")


@functools.cache
def run_file(name: str) -> tuple[tuple[Block, Outcome], ...]:
    """Run every python block of ``docs/name`` in order in one fresh namespace."""
    blocks = extract_blocks((DOCS / name).read_text())
    namespace: dict[str, object] = {"__name__": f"docs_{Path(name).stem}"}
    results = []
    for index, block in enumerate(blocks):
        buf = io.StringIO()
        error: BaseException | None = None
        label = f"docs/{name}:{block.line} (python block {index})"
        try:
            with contextlib.redirect_stdout(buf):
                if re.search(r"^\s*>>> ", block.code, re.MULTILINE):
                    _run_doctest(block, namespace, label)
                else:
                    code = compile(block.code, label, "exec")
                    exec(code, namespace)  # noqa: S102 - our own documentation, see module docstring
        except Exception as exc:  # recorded and re-raised by the test of this block
            error = exc
        results.append((block, Outcome(error, buf.getvalue())))
    return tuple(results)


def _cases() -> list[object]:
    cases = []
    for name in FILES:
        for index, block in enumerate(extract_blocks((DOCS / name).read_text())):
            marks = []
            reason = KNOWN_FAILURES.get((name, index))
            if reason is not None:
                marks.append(pytest.mark.xfail(reason=reason, strict=False))
            cases.append(pytest.param(name, index, id=f"{name}:{block.line}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "index"), _cases())
def test_doc_block_runs(name: str, index: int) -> None:
    block, outcome = run_file(name)[index]
    if outcome.error is not None:
        raise outcome.error
    if block.expected is not None:
        assert _normalise(outcome.output) == _normalise(block.expected), (
            f"docs/{name}:{block.line}: printed output differs from the ```text block after it"
        )


def test_every_doc_has_python_blocks() -> None:
    for name in FILES:
        assert extract_blocks((DOCS / name).read_text()), f"docs/{name} has no python blocks"


def test_extract_blocks_pairs_output() -> None:
    text = "x\n```python\nprint(1)\n```\n\n```text\n1\n```\n```python\npass\n```\ntail\n"
    blocks = extract_blocks(text)
    assert [b.code for b in blocks] == ["print(1)\n", "pass\n"]
    assert [b.expected for b in blocks] == ["1", None]
    assert blocks[0].line == 3
