"""ASCII spellings of non-ASCII expression characters (one helper for the parser and the CLI).

Operators (``−`` -> ``-``, ``×`` -> ``*``), superscript digits (``²`` -> ``**2``)
and identifier characters (``λ`` -> ``lam``, ``ω`` -> ``omega``, ``₀`` -> ``0``).
"""

from __future__ import annotations

import unicodedata

__all__ = ["ascii_spelling", "unicode_hint"]


_ASCII_OPERATORS = {
    "\u2212": "-",  # minus sign
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u00d7": "*",  # multiplication sign
    "\u00b7": "*",
    "\u22c5": "*",
    "\u2219": "*",
    "\u2217": "*",
    "\u00f7": "/",
    "\u2215": "/",
    "\u2044": "/",
    "\uff0b": "+",
}
#: Suggested names where the spelled-out one is a Python keyword.
_NAME_ALIASES = {"lamda": "lam", "lambda": "lam"}  # Unicode spells it LAMDA


def _ascii_letter(ch: str) -> str | None:
    """ASCII spelling of one non-ASCII identifier character (``ω`` -> ``omega``, ``₀`` -> ``0``)."""
    digit = unicodedata.digit(ch, None)
    if digit is not None:
        return str(digit)
    name = unicodedata.name(ch, "")
    for prefix, upper in (
        ("GREEK SMALL LETTER ", False),
        ("GREEK CAPITAL LETTER ", True),
        ("MATHEMATICAL ITALIC SMALL ", False),
        ("MATHEMATICAL ITALIC CAPITAL ", True),
    ):
        if name.startswith(prefix):
            word = name[len(prefix) :].split()[0].lower()
            word = _NAME_ALIASES.get(word, word)
            return word.capitalize() if upper else word
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return plain if plain and (plain.isalnum() or plain == "_") else None


def ascii_spelling(ch: str) -> str | None:
    """The ASCII text to write for one non-ASCII character of an expression, or None.

    Operators (``−`` -> ``-``, ``×`` -> ``*``), superscript digits (``²`` -> ``**2``)
    and identifier characters (``λ`` -> ``lam``, ``ω`` -> ``omega``, ``₀`` -> ``0``);
    the same spellings the parser's error hints use.
    """
    if ch in _ASCII_OPERATORS:
        return _ASCII_OPERATORS[ch]
    digit = unicodedata.digit(ch, None)
    if digit is not None and "SUPERSCRIPT" in unicodedata.name(ch, ""):
        return f"**{digit}"
    return _ascii_letter(ch)


def unicode_hint(text: str, i: int) -> str:
    """A hint for a non-ASCII character: the ASCII operator or identifier to write instead."""
    ch = text[i]
    if ch in _ASCII_OPERATORS:
        return f" (write the ASCII {_ASCII_OPERATORS[ch]!r} instead)"
    if unicodedata.category(ch) == "No" and unicodedata.digit(ch, None) is not None:
        name = unicodedata.name(ch, "")
        if "SUPERSCRIPT" in name:
            return f" (write a power as x**{unicodedata.digit(ch)})"
    start = i
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    end = i
    while end < len(text) and (text[end].isalnum() or text[end] == "_" or not text[end].isascii()):
        if not text[end].isascii() and _ascii_letter(text[end]) is None:
            break
        end += 1
    word = text[start:end]
    spelled = "".join(c if c.isascii() else (_ascii_letter(c) or "") for c in word)
    if spelled and (spelled[0].isalpha() or spelled[0] == "_") and spelled.isascii():
        return f" (identifiers are ASCII; write {spelled!r} for {word!r})"
    return " (only ASCII letters, digits, operators and parentheses are allowed)"
