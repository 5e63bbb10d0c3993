"""Lazy package exports: one mechanism for every package ``__init__`` of the three packages.

A package lists the names it exports lazily in a table ``name -> module`` and
installs the two module hooks (:pep:`562`)::

    __getattr__, __dir__ = lazy_exports(__name__, {"to_torch": "zpml_symbolic.emit"}, globals())

The first access imports the module, takes the attribute of the same name and
caches it in the package namespace (later lookups never reach ``__getattr__``);
``dir(package)`` lists the lazy names before they are loaded. Heavy
dependencies (numpy, torch, onnx) are thereby imported only when a name that
needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of ``package`` for the lazy names in ``table``.

    ``table`` maps each exported name to the absolute name of the module that
    defines it (or a package that exports it, lazily or not); ``namespace`` is
    the package's ``globals()``, where a loaded name is cached.
    """
    names = dict(table)

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
