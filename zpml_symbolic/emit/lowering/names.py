"""Storage names for user-named parameters in the back-ends.

The parser accepts any identifier as a parameter name, including Python
keywords (``lambda``), builtins (``type``), dunders (``__class__``) and
attributes of ``torch.nn.Module`` (``forward``, ``training``). Such names
cannot be attributes of a ``ParameterDict`` (generated FX code reads
``self.coefficients.<key>``) or would shadow module attributes. Every back-end
therefore stores parameter ``i`` under a *key*: the user's name when it is a
plain, safe attribute name, ``zpml_p{i}`` otherwise. User-facing APIs
(``coefficient_values``, ``to_sympy``, ONNX metadata) always use the user's
names; :func:`parameter_keys` is the one mapping.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["RESERVED_KEY_PREFIX", "is_safe_key", "parameter_keys"]

#: keys generated for unsafe names; user names starting with it are remapped too
RESERVED_KEY_PREFIX = "zpml_p"


@lru_cache(maxsize=1)
def _module_attributes() -> frozenset[str]:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a dependency of the torch back-end only
        return frozenset()
    return frozenset(dir(nn.ParameterDict())) | frozenset(dir(nn.Module()))  # instance attrs too


def is_safe_key(name: str) -> bool:
    """True when ``name`` can be used verbatim as a ``ParameterDict`` attribute in generated code."""
    return (
        name.isidentifier()
        and name.isascii()
        and not keyword.iskeyword(name)
        and not name.startswith("_")
        and not name.startswith(RESERVED_KEY_PREFIX)
        and name not in _module_attributes()
    )


def parameter_keys(names: Sequence[str]) -> tuple[str, ...]:
    """Storage key of each parameter (same order): the name itself when safe, else ``zpml_p{i}``."""
    return tuple(n if is_safe_key(n) else f"{RESERVED_KEY_PREFIX}{i}" for i, n in enumerate(names))
