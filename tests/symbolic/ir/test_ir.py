"""The IR: interning, immutability, verifier, printer, deep traversal, sympy round trip, networkx."""

from __future__ import annotations

import copy
import gc
import pickle
import random
import re
import weakref
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import networkx as nx
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sym_strategies import BOT, expressions, random_points, ref_eval, singular_points

import zpml_symbolic as zs
from zpml_symbolic.errors import IRVerificationError
from zpml_symbolic.ir import (
    Node,
    Op,
    add,
    const,
    format_dag,
    intern,
    inv,
    mul,
    param,
    parent_counts,
    postorder,
    pow_,
    to_text,
    var,
    verify,
)
from zpml_symbolic.ir.printer import ELLIPSIS

x, y, z = var("x"), var("y"), var("z")
ONE = const(1)


def neg(node: Node) -> Node:
    return mul(const(-1), node)


def squared_dag(levels: int = 40) -> Node:
    """``e = e*e`` ``levels`` times: 2**levels leaves as a tree, ``levels + 3`` DAG nodes."""
    e = add(x, ONE)
    for _ in range(levels):
        e = mul(e, e)
    return e


def nested_reciprocal(depth: int) -> Node:
    """``1/(1 + 1/(1 + ... 1/(1 + x)))`` with ``depth`` divisions."""
    e = x
    for _ in range(depth):
        e = inv(add(ONE, e))
    return e


# ------------------------------------------------------------------- interning


def test_same_structure_is_same_object() -> None:
    assert var("x") is x
    assert add(x, ONE) is add(var("x"), const(1))
    assert pow_(add(x, y), -2) is intern(Op.POW, (intern(Op.ADD, (x, y)),), -2)
    assert mul(x, inv(y)) is mul(var("x"), pow_(var("y"), -1))
    # hash/eq are identity, which is structural equality thanks to interning
    assert {add(x, y): 1}[add(var("x"), var("y"))] == 1


def test_structure_not_value_decides_identity() -> None:
    assert add(x, y) is not add(y, x)  # argument order is kept
    assert add(add(x, y), z) is not add(x, add(y, z)) is not add(x, y, z)
    assert var("x") is not param("x")  # an input is not a learnable coefficient
    assert pow_(x, -2) is not inv(pow_(x, 2))


def test_value_types_are_normalised_by_constructors() -> None:
    assert const(1) is const(Fraction(1)) is const(Fraction(4, 4))
    assert const(Fraction(1, 2)) is const(Fraction(2, 4))
    assert isinstance(const(3).value, Fraction)
    assert pow_(x, True) is pow_(x, 1)  # the exponent is coerced to int
    assert type(pow_(x, True).value) is int


def test_raw_intern_keeps_value_types_apart() -> None:
    # 1 == Fraction(1) == True, but the interning key includes the type.
    assert intern(Op.CONST, (), 1) is not const(1)
    assert intern(Op.CONST, (), 1) is intern(Op.CONST, (), 1)
    assert intern(Op.POW, (x,), True) is not pow_(x, 1)
    assert intern(Op.POW, (x,), 2.0) is not pow_(x, 2)


def test_single_argument_add_and_mul_collapse() -> None:
    assert add(x) is x and mul(x) is x


def test_shared_dag_is_small() -> None:
    e = squared_dag(40)
    assert len(postorder(e)) == 43  # x, 1, x + 1, then 40 products
    counts = parent_counts(e)
    assert counts[e] == 1 and counts[e.args[0]] == 2


def test_copy_and_pickle_return_the_interned_node() -> None:
    e = mul(add(x, const(Fraction(-3, 2))), inv(param("a")))
    assert copy.copy(e) is e
    assert copy.deepcopy(e) is e
    assert pickle.loads(pickle.dumps(e)) is e  # noqa: S301 - our own bytes


def test_interning_is_weak() -> None:
    node = var("only_used_in_test_interning_is_weak")
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None


def test_interning_is_thread_safe() -> None:
    def build(i: int) -> list[Node]:
        return [add(var(f"t{j}"), const(j), inv(var(f"t{j}"))) for j in range(50)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(build, range(16)))
    for other in results[1:]:
        assert all(a is b for a, b in zip(results[0], other, strict=True))


def test_is_division() -> None:
    assert inv(x).is_division and pow_(x, -3).is_division
    assert not pow_(x, 2).is_division and not pow_(x, 0).is_division
    assert not add(x, y).is_division and not const(-1).is_division


# ---------------------------------------------------------------- immutability


@pytest.mark.parametrize("attr", ["op", "args", "value", "something_new"])
def test_nodes_are_immutable(attr: str) -> None:
    node = add(x, ONE)
    with pytest.raises(AttributeError, match="IR nodes are immutable"):
        setattr(node, attr, None)
    assert node.op is Op.ADD and node.args == (x, ONE) and node.value is None
    assert isinstance(node.args, tuple)


def test_node_attributes_cannot_be_deleted() -> None:
    node = intern(Op.VAR, (), "victim_of_del_test")
    with pytest.raises(AttributeError, match="immutable"):
        del node.value
    assert node.value == "victim_of_del_test"


# -------------------------------------------------------------------- verifier


def _bad(op: Op, args: tuple = (), value: object = None) -> Node:
    return intern(op, args, value)  # type: ignore[arg-type]


def _not_interned() -> Node:
    node = object.__new__(Node)
    object.__setattr__(node, "op", Op.ADD)
    object.__setattr__(node, "args", (x, y))
    object.__setattr__(node, "value", None)
    return node


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: _bad(Op.ADD, (x,)), "ADD needs at least two arguments"),
        (lambda: _bad(Op.MUL, ()), "MUL needs at least two arguments"),
        (lambda: _bad(Op.ADD, (x, y), 1), "ADD needs at least two arguments and no value"),
        (lambda: _bad(Op.POW, (x, y), 2), "POW needs one argument and an int exponent"),
        pytest.param(
            lambda: _bad(Op.POW, (x,), None),
            "POW needs one argument and an int exponent",
            id="pow-no-exponent",
        ),
        (lambda: _bad(Op.POW, (x,), True), "POW needs one argument and an int exponent"),
        pytest.param(
            lambda: _bad(Op.POW, (x,), 0.5),
            "POW needs one argument and an int exponent",
            id="pow-float-exponent",
        ),
        pytest.param(
            lambda: _bad(Op.POW, (x,), Fraction(2)),
            "POW needs one argument and an int exponent",
            id="pow-fraction-exponent",
        ),
        pytest.param(
            lambda: _bad(Op.CONST, (), 1),
            "a constant needs an exact Fraction value",
            id="const-int",
        ),
        pytest.param(
            lambda: _bad(Op.CONST, (), 0.5),
            "a constant needs an exact Fraction value",
            id="const-float",
        ),
        (lambda: _bad(Op.CONST, (x,), Fraction(1)), "a constant needs an exact Fraction value"),
        (lambda: _bad(Op.VAR, (), ""), "a variable needs a non-empty name"),
        (lambda: _bad(Op.VAR, (), None), "a variable needs a non-empty name"),
        (lambda: _bad(Op.VAR, (x,), "y"), "a variable needs a non-empty name and no arguments"),
        (lambda: _bad(Op.PARAM, (), 1), "a variable needs a non-empty name"),
        (lambda: _bad(Op.PARAM, (), ""), "a variable needs a non-empty name"),
        pytest.param(
            lambda: _bad(Op.ADD, (x, "y")),
            "arguments must be IR nodes",
            id="non-node-argument",
        ),
        (_not_interned, "not interned"),
    ],
)
def test_verifier_catches_each_invariant(make, match: str) -> None:
    bad = make()
    with pytest.raises(IRVerificationError, match=match):
        verify(bad)
    # reachable from a valid root, and among several roots
    with pytest.raises(IRVerificationError, match=match):
        verify(add(x, inv(mul(y, bad))))
    with pytest.raises(IRVerificationError, match=match):
        verify([x, bad])


def test_verifier_error_is_a_value_error_naming_the_node() -> None:
    with pytest.raises(ValueError, match=r"invalid IR node ADD 'x'"):
        verify(_bad(Op.ADD, (x,)))
    with pytest.raises(zs.ZeroProofError):
        verify(_bad(Op.VAR, (), ""))


def test_verifier_accepts_any_non_empty_name() -> None:
    """sympy symbol names need not be identifiers; the verifier only requires non-empty str."""
    verify(var("x y"))


def test_verifier_accepts_valid_ir() -> None:
    verify(
        [
            x,
            param("a"),
            const(Fraction(-7, 3)),
            add(x, y, z),
            mul(param("a"), inv(add(x, neg(y)))),
            pow_(x, 0),
            squared_dag(40),
        ]
    )
    verify(zs.from_sympy(sp.Symbol("x") / (sp.Symbol("y") + 1)).root)


# --------------------------------------------------------------------- printer


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (x, "x"),
        (param("a"), "a"),
        (const(3), "3"),
        (const(-3), "-3"),
        (const(Fraction(-3, 2)), "-3/2"),
        (add(x, ONE), "x + 1"),
        (add(x, neg(y)), "x - y"),
        (add(x, const(Fraction(-1, 2))), "x - 1/2"),
        (add(x, neg(mul(y, z))), "x - y*z"),
        (add(x, neg(add(y, z))), "x - (y + z)"),
        (add(x, add(y, z)), "x + (y + z)"),
        (neg(x), "-x"),
        (neg(pow_(x, 2)), "-x**2"),
        (pow_(neg(x), 2), "(-x)**2"),
        (pow_(const(-1), 2), "(-1)**2"),
        (pow_(const(Fraction(1, 2)), 2), "(1/2)**2"),
        (pow_(add(x, ONE), 3), "(x + 1)**3"),
        (pow_(x, 0), "x**0"),
        (inv(x), "1/x"),
        (inv(add(x, ONE)), "1/(x + 1)"),
        (pow_(x, -2), "1/x**2"),
        (pow_(add(x, y), -2), "1/(x + y)**2"),
        (mul(x, inv(y)), "x/y"),
        (mul(x, inv(mul(y, z))), "x/(y*z)"),
        (mul(x, inv(y), inv(z)), "x/y/z"),
        (mul(x, inv(neg(y))), "x/(-y)"),
        (mul(x, add(y, z)), "x*(y + z)"),
        (mul(x, mul(y, z)), "x*(y*z)"),
        (mul(x, const(-1)), "x*-1"),
        (mul(x, neg(y)), "x*-y"),
        (pow_(mul(x, inv(y)), 2), "(x/y)**2"),
        (pow_(inv(x), 2), "(1/x)**2"),
        (inv(inv(x)), "1/(1/x)"),
        (mul(const(0), inv(x)), "0/x"),
        (
            add(mul(add(pow_(x, 2), ONE), inv(add(x, neg(y)))), inv(add(ONE, inv(x)))),
            "(x**2 + 1)/(x - y) + 1/(1 + 1/x)",
        ),
    ],
)
def test_to_text_battery(node: Node, text: str) -> None:
    assert to_text(node) == text
    # the text re-parses to a tree with the same strict value
    front = zs.from_sympy(zs.parse(text, parameters=["a"]))
    env = {"x": Fraction(3, 7), "y": Fraction(-2, 5), "z": Fraction(5), "a": Fraction(2)}
    assert _ir_eval(front.root, env) == _ir_eval(node, env)


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "x - y",
        "-x**2",
        "(-x)**2",
        "1/x**2",
        "x/(y*z)",
        "x/y/z",
        "1/(1 + 1/x)",
        "(x**2 + 1)/(x - y) + 1/(1 + 1/x)",
        "x*(y*z)",
        "x + (y + z)",
        "x - (y - z)",
        "x/(-y)",
        "x*-1",
        "(1/x)**2",
        "0*(1/x)",
        "a*x/(1 + b*x)",
        "(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)",
    ],
)
def test_text_reparses_to_the_same_root(text: str) -> None:
    root = zs.from_sympy(zs.parse(text, parameters=["a", "b"])).root
    printed = to_text(root)
    assert zs.from_sympy(zs.parse(printed, parameters=["a", "b"])).root is root


def test_ambiguous_texts_reparse_to_equal_values() -> None:
    # The parser flattens chains, so these print to a different (equivalent) structure.
    for node, text in [
        (add(add(x, y), z), "x + y + z"),
        (mul(mul(x, y), z), "x*y*z"),
        (mul(x, inv(y), z), "x*z/y"),
    ]:
        assert to_text(node) == text
        again = zs.from_sympy(zs.parse(text)).root
        assert again is not node
        env = {"x": Fraction(2), "y": Fraction(-3), "z": Fraction(1, 5)}
        assert _ir_eval(again, env) == _ir_eval(node, env)


@given(expressions, st.randoms(use_true_random=False))
def test_printed_text_has_the_same_strict_value(expr: sp.Expr, rnd: random.Random) -> None:
    text = to_text(zs.from_sympy(expr).root)
    again = zs.parse(text)
    rng = random.Random(rnd.random())
    for point in random_points(rng, 3) + singular_points(expr, rng):
        want, got = ref_eval(expr, point), ref_eval(again, point)
        assert (want is BOT and got is BOT) or want == got, (text, point)


def test_max_chars_cap() -> None:
    node = add(mul(add(pow_(x, 2), ONE), inv(add(x, neg(y)))), inv(add(ONE, inv(x))))
    full = to_text(node)
    assert len(full) == 32
    for k in range(1, len(full)):
        capped = to_text(node, max_chars=k)
        assert capped == full[: k - 1] + ELLIPSIS
        assert len(capped) == k
    for k in (len(full), len(full) + 1, 10**6):
        assert to_text(node, max_chars=k) == full


def test_capped_printing_of_huge_shared_dag_is_fast() -> None:
    """Bounded work, not wall clock: the number of Python function calls made while
    printing is counted (and printing aborted past the budget), so an exponential
    walk of the 2**40-leaf tree fails quickly instead of hanging or flaking."""
    import sys

    e = squared_dag(40)  # the uncapped text would have ~2**40 * 7 characters
    budget, calls = 20_000, [0]  # about 2e3 calls today

    class _OverBudget(Exception):
        pass

    def count(frame: object, event: str, arg: object) -> None:
        calls[0] += 1
        if calls[0] > budget:
            raise _OverBudget(f"printing made more than {budget} Python calls")

    old = sys.gettrace()
    sys.settrace(count)
    try:
        text = to_text(e, max_chars=200)
        shown = repr(e)
        dag = format_dag(e)
    finally:
        sys.settrace(old)
    assert calls[0] <= budget
    assert len(text) == 200 and text.endswith(ELLIPSIS)
    assert text.startswith("(x + 1)*(x + 1)*((x + 1)*(x + 1))")
    assert shown.startswith("Node<MUL>(") and len(shown) <= len("Node<MUL>()") + 80
    assert len(dag.splitlines()) == 41  # 40 bindings (x + 1 and 39 products), root


def test_format_dag_binds_shared_nodes_once() -> None:
    d = add(x, neg(y))
    e = add(pow_(d, 2), inv(d), pow_(add(d, ONE), 3), inv(add(d, ONE)))
    text = format_dag(e)
    assert text.splitlines() == [
        "%0 = x - y",
        "%1 = %0 + 1",
        "%0**2 + 1/%0 + %1**3 + 1/%1",
    ]
    assert text.count("x - y") == 1
    # leaves are never bound, unshared nodes are inlined
    assert format_dag(add(x, x)) == "x + x"
    assert format_dag(inv(add(x, ONE))) == "1/(x + 1)"


def test_format_dag_uses_bindings_inside_products() -> None:
    d = inv(add(x, neg(y)))
    text = format_dag(add(d, mul(x, d)))
    assert text.count("x - y") == 1
    assert text.splitlines()[-1] == "%0 + x*%0"


def test_format_dag_of_squared_dag() -> None:
    lines = format_dag(squared_dag(3)).splitlines()
    assert lines == ["%0 = x + 1", "%1 = %0*%0", "%2 = %1*%1", "%2*%2"]


# ------------------------------------------------------------- deep expressions


@pytest.mark.parametrize("depth", [300, 3000])
def test_deep_nesting_is_iterative(depth: int) -> None:
    e = nested_reciprocal(depth)
    order = postorder(e)
    assert len(order) == 2 * depth + 2
    assert order[0] is ONE and order[1] is x and order[-1] is e
    verify(e)
    text = to_text(e)
    assert text.startswith("1/(1 + " * 3) and text.endswith("1/(1 + x" + ")" * depth)
    counts = parent_counts(e)
    assert counts[ONE] == depth
    sym = zs.to_sympy(e)
    assert zs.from_sympy(sym).root is e
    assert zs.from_sympy(zs.parse(text)).root is e
    assert format_dag(e, max_chars=50).count("\n") == 0  # nothing shared but leaves


def test_flatten_300_levels() -> None:
    depth = 300
    fru = zs.flatten(zs.to_sympy(nested_reciprocal(depth)))
    # f0 = x, f(k+1) = 1/(1 + f(k)) = D(k)/(D(k) + N(k)); all D(k) linear.
    X = sp.Symbol("x")
    num, den = X, sp.Integer(1)
    dens = []
    for _ in range(depth):
        num, den = den, sp.expand(den + num)
        dens.append(den)
    assert sp.expand(fru.numerator - num) == 0
    assert sp.expand(fru.denominator - den) == 0
    assert set(fru.validity_factors) == set(dens[:-1])
    assert len(fru.validity_factors) == depth - 1
    verify(fru.root)


# ---------------------------------------------------------- sympy round trip

_names = st.sampled_from(["x", "y", "z"])
_ir_leaves = st.one_of(
    _names.map(var),
    st.sampled_from(["a", "b"]).map(param),
    st.fractions(min_value=-5, max_value=5, max_denominator=7).map(const),
    st.integers(-(10**30), 10**30).map(const),
)


def _ir_extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    many = st.lists(children, min_size=2, max_size=4)
    return st.one_of(
        many.map(lambda a: add(*a)),
        many.map(lambda a: mul(*a)),
        st.tuples(children, st.integers(-3, 3)).map(lambda bn: pow_(*bn)),
    )


ir_nodes = st.recursive(_ir_leaves, _ir_extend, max_leaves=12)


@given(ir_nodes)
def test_round_trip_from_ir(node: Node) -> None:
    verify(node)
    back = zs.to_sympy(node)
    assert zs.from_sympy(back).root is node


@settings(max_examples=30)
@given(expressions)
def test_to_sympy_keeps_structure(expr: sp.Expr) -> None:
    root = zs.from_sympy(expr).root
    back = zs.to_sympy(root)
    verify(root)
    # same number of distinct nodes and same strict value at a few points
    assert len(postorder(zs.from_sympy(back).root)) == len(postorder(root))
    rng = random.Random(0)
    for point in random_points(rng, 2):
        want, got = ref_eval(expr, point), ref_eval(back, point)
        assert (want is BOT and got is BOT) or want == got


def test_var_and_param_of_the_same_name_are_rejected_by_the_verifier() -> None:
    """Such a DAG has no sympy counterpart (one name, two symbols), so verify() refuses it."""
    node = add(var("x"), param("x"))
    with pytest.raises(
        IRVerificationError, match="'x' is used both as a variable and as a parameter"
    ):
        verify(node)


# -------------------------------------------------------------------- networkx

MIXED = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def test_to_networkx_of_ir() -> None:
    root = zs.from_sympy(zs.parse(MIXED)).root
    g = zs.to_networkx(root)
    order = postorder(root)
    assert g.number_of_nodes() == len(order) == 14
    assert g.number_of_edges() == sum(len(n.args) for n in order) == 16
    assert nx.is_directed_acyclic_graph(g)
    root_key = f"n{len(order) - 1}"
    assert g.in_degree(root_key) == 0
    assert g.nodes[root_key] == {"op": "add", "value": None, "label": MIXED, "kind": "ir"}
    assert g.nodes["n0"] == {"op": "var", "value": "x", "label": "x", "kind": "ir"}
    ops = [g.nodes[f"n{i}"]["op"] for i in range(len(order))]
    assert ops == [n.op.value for n in order]
    for a, b, data in g.edges(data=True):
        assert data["kind"] == "arg"
        parent = order[int(a[1:])]
        assert parent.args[data["index"]] is order[int(b[1:])]


def test_to_networkx_labels_are_capped() -> None:
    g = zs.to_networkx(squared_dag(40), max_label_chars=30)
    assert g.number_of_nodes() == 43
    assert all(len(d["label"]) <= 30 for _, d in g.nodes(data=True))
    assert nx.is_directed_acyclic_graph(g)


def test_to_networkx_of_flattened_fru_has_provenance() -> None:
    fru = zs.flatten(MIXED)
    g = zs.to_networkx(fru)
    provenance = fru.denominator_provenance
    assert g.number_of_nodes() == 14 + len(provenance) == 17
    prov_edges = [(a, b, d) for a, b, d in g.edges(data=True) if d["kind"] == "provenance"]
    assert len(prov_edges) == sum(len(s.occurrences) for s in provenance) == 4
    assert g.number_of_edges() == 16 + 4
    assert nx.is_directed_acyclic_graph(g)
    for k, src in enumerate(provenance):
        attrs = g.nodes[f"factor{k}"]
        assert attrs == {
            "factor": str(src.factor),
            "kind": "factor",
            "source_kind": src.kind,
            "retained": src.retained,
            "label": str(src.factor),
        }
        assert g.out_degree(f"factor{k}") == 0
        preds = sorted(g.predecessors(f"factor{k}"))
        assert preds == sorted(f"n{o.node_id}" for o in src.occurrences)
    by_factor = {g.nodes[f"factor{k}"]["factor"]: f"factor{k}" for k in range(3)}
    assert g.nodes[by_factor["x"]]["retained"] is True
    assert g.nodes[by_factor["x - y"]]["retained"] is False
    # provenance edges start at division nodes and carry kind and path
    for a, _b, d in prov_edges:
        assert g.nodes[a]["op"] == "pow" and int(g.nodes[a]["value"]) < 0
        assert d["source_kind"] in (
            "explicit_denominator",
            "divisor_numerator",
            "divisor_denominator",
        )
        assert re.fullmatch(r"root(\.args\[\d+\])*", d["path"])
    assert g.edges["n12", by_factor["x"], "provenance"]["source_kind"] == "divisor_denominator"
    assert g.edges["n10", by_factor["x"], "provenance"]["path"] == "root.args[1].args[0].args[1]"
    assert g.edges["n12", by_factor["x + 1"], "provenance"]["source_kind"] == "divisor_numerator"


def test_to_networkx_keeps_repeated_arguments() -> None:
    g = zs.to_networkx(mul(x, x))
    indices = sorted(d["index"] for _, _, d in g.edges(data=True))
    assert indices == [0, 1]


# ----------------------------------------------------------------- helpers


def _ir_eval(node: Node, env: dict[str, Fraction]) -> Fraction | None:
    """Strict value of an IR DAG (None is bottom), iteratively, independent of flatten."""
    values: dict[Node, Fraction | None] = {}
    for n in postorder(node):
        if n.op in (Op.VAR, Op.PARAM):
            values[n] = env[str(n.value)]
        elif n.op is Op.CONST:
            values[n] = Fraction(n.value)  # type: ignore[arg-type]
        else:
            args = [values[a] for a in n.args]
            if any(a is None for a in args):
                values[n] = None
            elif n.op is Op.ADD:
                values[n] = sum(args, Fraction(0))  # type: ignore[arg-type]
            elif n.op is Op.MUL:
                acc = Fraction(1)
                for a in args:
                    acc *= a  # type: ignore[operator]
                values[n] = acc
            else:
                base, k = args[0], int(n.value)  # type: ignore[arg-type]
                values[n] = None if (k < 0 and base == 0) else base**k  # type: ignore[operator]
    return values[node]


# ------------------------------------------------------------ huge constants


@pytest.mark.parametrize(
    "value",
    [
        Fraction(2**100_000),  # prints as 2**100000
        Fraction(-(3**20_000)),  # 9543 digits: chunks times powers of ten
        Fraction(3**9_000, 7**5_000),  # a huge fraction
        Fraction(10**4000 + 1),  # a chunk of zeros in the middle
    ],
)
def test_huge_constants_print_exactly_and_parse_back(value: Fraction) -> None:
    # str(int) raises ValueError beyond 4300 digits; to_text must not, and the
    # exact text (bundle metadata keeps to_text(root)) must parse back
    from zpml_symbolic.ir import node as irn

    root = irn.mul(irn.var("x"), irn.const(value))
    text = to_text(root)
    assert len(text) < 15_000
    fru = zs.flatten(text)
    x = sp.Symbol("x")
    assert fru.numerator == sp.Rational(value.numerator, value.denominator) * x
    short = to_text(root, max_chars=50)
    assert short == text or (len(short) == 50 and short.endswith(ELLIPSIS))


def test_int_digits_beyond_the_str_limit() -> None:
    from zpml_symbolic.ir.printer import int_digits, int_text

    n = 7**10_000
    digits = int_digits(n)
    assert len(digits) == 8451 and int_digits(-n) == "-" + digits
    assert int(digits[:6]) == n // 10 ** (8451 - 6) and int(digits[-6:]) == n % 10**6
    assert int_text(2**50_000) == "2**50000" and int_text(12345) == "12345"
    assert int_text(-(2**50_000)) == "-(2**50000)"
