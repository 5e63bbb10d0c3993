"""Import directions: ``zpml_core`` <- ``zpml_symbolic`` <- ``zpml_runtime``, and no module cycles.

Read from the source with :mod:`ast` (every ``import`` statement, including the
lazy ones inside functions), so a new back-reference fails here before it
becomes a circular import at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("zpml_core", "zpml_symbolic", "zpml_runtime")
#: a package may import only itself and the packages listed here
ALLOWED = {
    "zpml_core": set(),
    "zpml_symbolic": {"zpml_core"},
    "zpml_runtime": {"zpml_core", "zpml_symbolic"},
}
#: pipeline order inside the compiler: a stage imports only earlier stages
SYMBOLIC_STAGES = ("ir", "frontend", "flatten", "emit")
#: the only lazy back-references allowed, each with its reason
LAZY_BACK_EDGES = {
    # ``Node.__repr__`` prints through the IR printer, which itself walks nodes
    ("zpml_symbolic.ir.node", "zpml_symbolic.ir.printer"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            inside.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return inside


def _imports(path: Path, *, module_level_only: bool, runtime_only: bool = False) -> set[str]:
    """Fully qualified modules imported by ``path`` (relative imports resolved).

    ``runtime_only`` leaves out imports under ``if TYPE_CHECKING:``: they never
    execute, so they cannot take part in an import cycle (they still count for
    the layering rules).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if runtime_only:
        typing_only = _type_checking_nodes(tree)
        nodes = [n for n in nodes if id(n) not in typing_only]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when it exists
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _source_of(candidate) is not None:
                    found.add(candidate)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_is_scanned() -> None:
    names = {_module_name(p) for p in _sources()}
    assert {
        "zpml_core.strict",
        "zpml_symbolic.emit.backends.onnx.graph",
        "zpml_runtime.cli",
    } <= names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: _module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    own = _module_name(path).split(".")[0]
    bad = {
        m
        for m in _imports(path, module_level_only=False)
        if m.split(".")[0] not in ALLOWED[own] | {own}
    }
    assert not bad, (
        f"{_module_name(path)} imports {sorted(bad)}: {own} may import only {sorted(ALLOWED[own])}"
    )


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "zpml_symbolic" or len(parts) < 2 or parts[1] not in SYMBOLIC_STAGES:
        return None
    return SYMBOLIC_STAGES.index(parts[1])


@pytest.mark.parametrize(
    "path",
    [p for p in _sources() if _stage(_module_name(p)) is not None],
    ids=lambda p: _module_name(p),
)
def test_compiler_stages_import_only_earlier_stages(path: Path) -> None:
    here = _stage(_module_name(path))
    assert here is not None
    later = {
        m
        for m in _imports(path, module_level_only=False)
        if (s := _stage(m)) is not None and s > here
    }
    assert not later, f"{_module_name(path)} reaches forward into {sorted(later)}"


def test_type_only_imports_are_left_out_of_the_cycle_graph_only() -> None:
    # _closure annotates with SCMTrainer under TYPE_CHECKING and imports ``_distributed`` for real
    closure = _source_of("zpml_runtime.training._closure")
    assert closure is not None
    every = _imports(closure, module_level_only=False)
    runtime = _imports(closure, module_level_only=False, runtime_only=True)
    assert "zpml_runtime.training.trainer" in every - runtime
    assert "zpml_runtime.training._distributed" in runtime


def test_no_module_import_cycles() -> None:
    graph = nx.DiGraph()
    for path in _sources():
        name = _module_name(path)
        graph.add_node(name)
        for target in _imports(path, module_level_only=False, runtime_only=True):
            # a package __init__ re-exporting its children is not a cycle participant
            if target != name and not name.startswith(target + "."):
                if (name, target) not in LAZY_BACK_EDGES:
                    graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"
    for a, b in LAZY_BACK_EDGES:  # the exemptions must stay lazy and real
        assert b in _imports(_source_of(a), module_level_only=False)
        assert b not in _imports(_source_of(a), module_level_only=True)


def test_import_zpml_symbolic_does_not_load_torch_or_onnx() -> None:
    code = (
        "import sys, zpml_symbolic as zs\n"
        "zs.flatten(zs.parse('1/(x - 1)'))\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'zpml_runtime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_errors_share_one_base() -> None:
    import zpml_core
    import zpml_runtime.errors as rt
    import zpml_symbolic as zs

    assert zs.ZeroProofError is zpml_core.ZeroProofError
    for name in rt.__all__:
        cls = getattr(rt, name)
        assert issubclass(cls, zs.ZeroProofError), name
