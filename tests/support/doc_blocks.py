"""Markdown code blocks of the user docs: the ```python blocks, each with the ```text block
right after it (only blank lines between) as its expected printed output."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One ```python block: its source, 1-based first line, and expected output if given."""

    code: str
    line: int
    expected: str | None


def extract_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, each with the ```text block after it."""
    # (language, first body line 1-based, body, index of opening fence, index of closing fence)
    fences: list[tuple[str, int, str, int, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i + 1
        j = start
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        fences.append((m.group(1), start + 1, "\n".join(lines[start:j]), i, j))
        i = j + 1
    blocks = []
    for k, (lang, first, body, _open, close) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(fences):
            nlang, _nfirst, nbody, nopen, _nclose = fences[k + 1]
            between = lines[close + 1 : nopen]
            if nlang == "text" and all(not s.strip() for s in between):
                expected = nbody
        blocks.append(Block(body + "\n", first, expected))
    return blocks
