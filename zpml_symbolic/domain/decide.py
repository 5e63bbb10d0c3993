"""Decide whether a polynomial vanishes on a closed box: the recursive driver.

``decide`` fixes the degenerate coordinates, factors what is left, and decides
each irreducible factor (a polynomial vanishes iff one of its factors does):

- one variable: exact real root isolation (:mod:`.univariate`), complete;
- several variables: exact Bernstein subdivision with probes (:mod:`.search`).
  What subdivision cannot settle is a zero without a sign change; those lie on a
  face of the box (decided recursively on the face, one dimension lower) or
  solve the critical system ``f = grad f = 0`` (:mod:`.critical`). When neither
  holds, every zero left is a sign change, which further subdivision finds.
"""

from __future__ import annotations

from fractions import Fraction

from zpml_symbolic.domain.box import Interval, simplest_rational
from zpml_symbolic.domain.critical import tangential_zero
from zpml_symbolic.domain.outcome import Outcome, Run
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.domain.quadratic import quadratic_extremes
from zpml_symbolic.domain.report import Witness
from zpml_symbolic.domain.search import Subdivision, refine_sign_change
from zpml_symbolic.domain.univariate import MAX_ISOLATION_DEGREE, decide_univariate, nonzero_bound

#: Share of the remaining work the first subdivision pass may use before the algebraic step.
FIRST_PASS_SHARE = 0.25
#: The first pass does not split leaves narrower than this (relative to the box): a zero without
#: a sign change keeps a few leaves undecided at every depth, so digging further is wasted.
FIRST_PASS_WIDTH = 2.0**-16


def decide(
    poly: Poly, box: dict[str, Interval], run: Run, *, need_bound: bool, need_cover: bool
) -> Outcome:
    """Decide ``poly`` (over ``box``'s names, in order) on the closed ``box``."""
    names = tuple(box)
    if poly.names != names:
        poly = poly.restrict_to(names)
    fixed = {n: lo for n, (lo, hi) in box.items() if lo == hi}
    g = poly.substitute(fixed).drop_unused()
    free = g.names
    free_box = tuple(box[n] for n in free)

    def lift_point(p: dict[str, Fraction] | None) -> dict[str, Fraction] | None:
        if p is None:
            return None
        return {n: p[n] if n in p else fixed.get(n, simplest_rational(*box[n])) for n in names}

    def lift_box(b: dict[str, Interval]) -> dict[str, Interval]:
        return {n: b[n] if n in b else box[n] for n in names}

    if g.is_constant():
        v = g.constant_value()
        if v == 0:
            point = lift_point({})
            return Outcome(
                "vanishes",
                witness=Witness(kind="identically_zero", point=point, note="zero on the whole box"),
                cover=[dict(box)] if need_cover else [],
                method="constant on the box",
            )
        return Outcome(
            "nonzero", lower_bound=abs(v), min_found=abs(v), method="constant on the box"
        )
    key = (g.key(), free_box, need_bound, need_cover)
    if key in run.memo:
        out = run.memo[key]
    else:
        out = _decide_free(g, free, free_box, run, need_bound=need_bound, need_cover=need_cover)
        run.memo[key] = out
    w = out.witness
    lifted = None
    if w is not None:
        lifted = Witness(
            kind=w.kind,
            point=lift_point(w.point),
            negative=lift_point(w.negative),
            positive=lift_point(w.positive),
            values=w.values,
            box=None if w.box is None else lift_box(w.box),
            note=w.note,
        )
    return Outcome(
        out.status,
        lower_bound=out.lower_bound,
        min_found=out.min_found,
        witness=lifted,
        cover=[lift_box(b) for b in out.cover],
        cover_complete=out.cover_complete,
        method=out.method,
        reason=out.reason,
        boxes=out.boxes,
    )


def _decide_free(
    g: Poly,
    free: tuple[str, ...],
    free_box: tuple[Interval, ...],
    run: Run,
    *,
    need_bound: bool,
    need_cover: bool,
) -> Outcome:
    """``g`` nonconstant in exactly the variables ``free``, each with a nondegenerate interval."""
    content, pairs = g.factor()
    if len(pairs) == 1 and pairs[0][1] == 1:
        out = _irreducible(pairs[0][0], free_box, run, need_bound=need_bound, need_cover=need_cover)
        return _scaled(out, content)
    sub_box = dict(zip(free, free_box, strict=True))
    outs = [
        decide(h, sub_box, run, need_bound=need_bound, need_cover=need_cover) for h, _m in pairs
    ]
    boxes = sum(o.boxes for o in outs)
    cover = [b for o in outs for b in o.cover]
    complete = all(o.cover_complete for o in outs)
    for o in outs:
        if o.status == "vanishes":
            return Outcome(
                "vanishes",
                witness=_recheck(g, o.witness),
                cover=cover,
                cover_complete=complete,
                method=f"factor {len(outs)} ways; {o.method}",
                boxes=boxes,
            )
    if any(o.status == "unknown" for o in outs):
        reasons = "; ".join(o.reason for o in outs if o.status == "unknown")
        return Outcome("unknown", cover=cover, cover_complete=False, reason=reasons, boxes=boxes)
    out = Outcome("nonzero", method=f"every one of {len(outs)} factors nonzero", boxes=boxes)
    if need_bound:
        # |g| >= |content| * prod(bound_i ** m_i); a direct bound of g is often tighter
        product: Fraction | None = abs(content)
        for o, (_h, m) in zip(outs, pairs, strict=True):
            product = (
                None if product is None or o.lower_bound is None else product * o.lower_bound**m
            )
        direct, out.min_found, extra = nonzero_bound(g, free_box, run)
        out.boxes += extra
        bounds = [b for b in (product, direct) if b is not None]
        out.lower_bound = max(bounds) if bounds else None
    return out


def _recheck(g: Poly, w: Witness | None) -> Witness | None:
    """A sub-factor's witness restated for ``g`` (a sign change of an even-multiplicity factor of
    ``g`` is a zero of ``g`` but not a sign change of ``g``: it becomes an isolating box)."""
    if w is None or w.kind != "sign_change":
        return w
    assert w.negative is not None and w.positive is not None
    vn = g(tuple(w.negative[n] for n in g.names))
    vp = g(tuple(w.positive[n] for n in g.names))
    if vn < 0 < vp:
        return Witness(
            kind="sign_change",
            negative=w.negative,
            positive=w.positive,
            values=(vn, vp),
            box=w.box,
            note=w.note,
        )
    if vp < 0 < vn:
        return Witness(
            kind="sign_change",
            negative=w.positive,
            positive=w.negative,
            values=(vp, vn),
            box=w.box,
            note=w.note,
        )
    negative, positive = w.negative, w.positive
    box = w.box or {
        n: (min(negative[n], positive[n]), max(negative[n], positive[n])) for n in g.names
    }
    return Witness(
        kind="isolating_box",
        box=box,
        note="a factor of the restricted polynomial changes sign in this box",
    )


def _scaled(out: Outcome, c: Fraction) -> Outcome:
    """The outcome for ``c * h`` from the outcome for ``h`` (a negative ``c`` swaps the signs)."""
    if out.lower_bound is not None:
        out.lower_bound *= abs(c)
    if out.min_found is not None:
        out.min_found *= abs(c)
    w = out.witness
    if w is not None and w.values is not None:
        a, b = w.values[0] * c, w.values[1] * c
        neg, pos = (w.negative, w.positive) if c > 0 else (w.positive, w.negative)
        values = (a, b) if c > 0 else (b, a)
        out.witness = Witness(
            kind=w.kind,
            point=w.point,
            negative=neg,
            positive=pos,
            values=values,
            box=w.box,
            note=w.note,
        )
    return out


def _irreducible(
    h: Poly, box: tuple[Interval, ...], run: Run, *, need_bound: bool, need_cover: bool
) -> Outcome:
    """Decide an irreducible ``h`` on a box (every axis nondegenerate, every variable used)."""
    if len(box) == 1 and h.total_degree() <= MAX_ISOLATION_DEGREE:
        return decide_univariate(h, box[0], run, need_bound=need_bound, need_cover=need_cover)
    names = h.names
    if h.total_degree() <= 2:
        out = _quadratic(h, box, run, need_cover=need_cover)
        if out is not None:
            return out
    sub = Subdivision(h, box, run.meter)
    sub.run(limit=run.share(FIRST_PASS_SHARE), resolution=FIRST_PASS_WIDTH)
    notes = []
    algebraic: Witness | None = None
    if not sub.vanishes and sub.undecided:
        algebraic, note = _algebraic(h, box, sub, run)
        notes.append(note)
        if algebraic is None:
            sub.run(limit=run.max_work)
    if algebraic is not None:
        witness = algebraic
    elif sub.vanishes:
        witness = _subdivision_witness(h, sub, run)
    elif sub.nonzero:
        out = Outcome(
            "nonzero", method=f"Bernstein subdivision ({sub.boxes} splits)", boxes=sub.boxes
        )
        if need_bound:
            sub.tighten(ratio=run.tightness, limit=run.max_work)
        out.lower_bound, out.min_found, out.boxes = sub.lower_bound(), sub.min_seen, sub.boxes
        return out
    else:
        reason = f"budget {sub.exhausted or 'max_work'} spent after {sub.boxes} splits"
        if notes and notes[-1]:
            reason += f"; {notes[-1]}"
        return Outcome(
            "unknown",
            cover=[dict(zip(names, b, strict=True)) for b in sub.undecided_boxes()],
            cover_complete=False,
            reason=reason,
            boxes=sub.boxes,
            min_found=sub.min_seen,
        )
    method = "exact critical-point solving" if algebraic is not None else "Bernstein subdivision"
    out = Outcome("vanishes", witness=witness, method=f"{method} ({sub.boxes} splits)")
    if need_cover:
        _cover(sub, run, out)
    else:
        out.boxes = sub.boxes
    return out


def _quadratic(h: Poly, box: tuple[Interval, ...], run: Run, *, need_cover: bool) -> Outcome | None:
    """Exact decision for degree <= 2 from the exact extremes over the box."""
    ext = quadratic_extremes(h, box, run.meter)
    if ext is None:
        return None
    names = h.names
    (low, argmin), (high, argmax) = ext
    method = "exact extremes of a quadratic"
    if low > 0 or high < 0:
        bound = low if low > 0 else -high
        return Outcome("nonzero", lower_bound=bound, min_found=bound, method=method)
    sub = Subdivision(h, box, run.meter)
    if low == 0 or high == 0:
        point = argmin if low == 0 else argmax
        witness = Witness(
            kind="zero", point=dict(zip(names, point, strict=True)), note="exact zero"
        )
    else:
        sub.negative, sub.positive = (argmin, low), (argmax, high)
        witness = _subdivision_witness(h, sub, run)
    out = Outcome("vanishes", witness=witness, method=method)
    if need_cover:
        _cover(sub, run, out)
    return out


def _cover(sub: Subdivision, run: Run, out: Outcome) -> None:
    """Refine ``sub`` to the resolution and store its undecided leaves as ``out``'s zero-set cover."""
    sub.run(
        limit=run.max_work,
        until_decided=False,
        resolution=float(run.resolution),
        max_leaves=run.max_cover_boxes,
    )
    out.cover = [dict(zip(sub.poly.names, b, strict=True)) for b in sub.undecided_boxes()]
    out.cover_complete = bool(
        sub.started and (not sub.undecided or sub.max_relative_width() <= float(run.resolution))
    )
    out.boxes += sub.boxes


def _subdivision_witness(h: Poly, sub: Subdivision, run: Run) -> Witness:
    names = h.names
    if sub.zero is not None:
        return Witness(
            kind="zero", point=dict(zip(names, sub.zero, strict=True)), note="exact zero"
        )
    change = sub.sign_change
    assert change is not None
    zero, change = refine_sign_change(h, change, sub.widths, run.resolution, run.meter)
    if zero is not None:
        return Witness(kind="zero", point=dict(zip(names, zero, strict=True)), note="exact zero")
    box = {
        n: (min(a, b), max(a, b))
        for n, a, b in zip(names, change.negative, change.positive, strict=True)
    }
    return Witness(
        kind="sign_change",
        negative=dict(zip(names, change.negative, strict=True)),
        positive=dict(zip(names, change.positive, strict=True)),
        values=(change.negative_value, change.positive_value),
        box=box,
        note="opposite exact signs; the segment between the points lies in the box",
    )


def _algebraic(
    h: Poly, box: tuple[Interval, ...], sub: Subdivision, run: Run
) -> tuple[Witness | None, str]:
    """Zeros without a sign change: on the faces the undecided leaves touch, or critical."""
    names = h.names
    faces = set()
    for leaf in sub.undecided_boxes():
        for i, ((lo, hi), (blo, bhi)) in enumerate(zip(leaf, box, strict=True)):
            if lo == blo:
                faces.add((i, 0))
            if hi == bhi:
                faces.add((i, 1))
    complete = True
    for i, side in sorted(faces):
        face = dict(zip(names, box, strict=True))
        v = box[i][side]
        face[names[i]] = (v, v)
        out = decide(h, face, run, need_bound=False, need_cover=False)
        if out.status == "vanishes" and out.witness is not None:
            return out.witness, f"zero on the face {names[i]}={v}"
        complete &= out.status == "nonzero"
    status, witness, note = tangential_zero(h, box, run.meter)
    if witness is not None:
        return witness, note
    if status == "none" and complete:
        return None, "no zero without a sign change (faces and critical points checked)"
    return None, note if status != "none" else "a face was left undecided"


__all__ = ["decide"]
