"""``find``: print the vertices that satisfy a predicate expression (and their ancestors).

Expressions are ``key=value`` predicates joined by ``and``/``or`` (words side by side
mean ``and``) and parentheses, evaluated left to right as Fluxion does. A vertex that
is down, allocated or reserved makes its whole subtree count as such.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .traverser import Traverser

PREDICATES = ("status", "sched-now", "sched-future", "jobid-alloc", "jobid-span", "jobid-tag",
              "jobid-reserved", "agfilter", "names", "property")


class ExprError(ValueError):
    pass


def _tokens(expr: str) -> list:
    """Split into terms (str leaf or list sub-expression) and operators."""
    out: list = []
    i, n = 0, len(expr)
    while i < n:
        if expr[i] in " \t":
            i += 1
            continue
        if expr[i] == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"(": 1, ")": -1}.get(expr[j], 0)
                j += 1
            if depth:
                raise ExprError("unbalanced parenthesis")
            out.append(_tokens(expr[i + 1:j - 1]))
            i = j
            continue
        j = i
        while j < n and expr[j] not in " \t":
            j += 1
        word = expr[i:j]
        out.append(("op", word) if word in ("and", "or") else word)
        i = j
    return out


def _check_leaf(leaf: str) -> tuple[str, str]:
    if "=" not in leaf:
        raise ExprError(leaf)
    key, value = leaf.split("=", 1)
    lv = value.lower()
    ok = {
        "status": lv in ("up", "down"),
        "sched-now": lv in ("allocated", "free"),
        "sched-future": lv in ("reserved", "free"),
        "agfilter": lv in ("true", "t", "false", "f"),
        "property": bool(lv),
        "names": bool(lv),
    }.get(key)
    if key.startswith("jobid-") and key in PREDICATES:
        ok = value.isdigit()
    if not ok:
        raise ExprError(leaf)
    return key, value


def _leaves(tokens) -> list[tuple[str, str]]:
    out = []
    for t in tokens:
        if isinstance(t, list):
            out += _leaves(t)
        elif isinstance(t, str):
            out.append(_check_leaf(t))
    return out


def _eval(tokens, leaf_fn) -> bool:
    result = None
    op = "and"
    for t in tokens:
        if isinstance(t, tuple):
            op = t[1]
            continue
        val = _eval(t, leaf_fn) if isinstance(t, list) else leaf_fn(*_check_leaf(t))
        if result is None:
            result = val
        elif op == "or":
            result = result or val
        else:
            result = result and val
        op = "and"
    if result is None:
        raise ExprError("empty expression")
    return result


def run_find(trav: Traverser, writer, criteria: str) -> str:
    """Evaluate ``criteria`` over the traverser's graph; returns what ``writer`` emits
    for the matching vertices. Raises InvalidRequest for a malformed expression."""
    g = trav.g
    try:
        tokens = _tokens(criteria)
        preds = _leaves(tokens)
    except ExprError as exc:
        raise InvalidRequest(f"find: invalid criteria: {criteria}.\n") from exc
    agfilter = False
    jobid = 0
    for k, v in preds:
        if k.startswith("jobid-"):
            jobid = int(v)
        elif k == "agfilter":
            agfilter = v.lower() in ("true", "t")
    if hasattr(writer, "seq"):
        writer.seq = None
    trav.tick()
    trav.trav_level = 0
    dom = trav.dom
    now = int(time.time())

    def leaf_for(v, down, alloc, resv):
        def leaf(key: str, value: str) -> bool:
            lv = value.lower()
            if key == "status":
                return (down or v.status == "down") if lv == "down" else (
                    not down and v.status == "up")
            if key == "sched-now":
                return (alloc or bool(v.allocations)) if lv == "allocated" else (
                    not alloc and not v.allocations)
            if key == "sched-future":
                return (resv or bool(v.reservations)) if lv == "reserved" else (
                    not resv and not v.reservations)
            if key == "jobid-alloc":
                return int(value) in v.allocations
            if key == "jobid-reserved":
                return int(value) in v.reservations
            if key == "jobid-span":
                return int(value) in v.job2span
            if key == "jobid-tag":
                return int(value) in v.tags
            if key == "agfilter":
                return lv in ("true", "t")
            if key == "names":
                from strato.jobspec.hostlist import expand_hostlist

                return v.name in expand_hostlist(lv)
            if key == "property":
                return lv in v.properties
            return False
        return leaf

    def visit(v, down, alloc, resv) -> int:
        down = down or v.status == "down"
        alloc = alloc or bool(v.allocations)
        resv = resv or bool(v.reservations)
        v.colors[dom] = trav._gray()
        trav.trav_level += 1
        nchildren = 0
        for s in trav.subsystems:
            for e in v.out:
                if e.subsystem != s or trav.stop_explore(e, s):
                    continue
                if s != dom:
                    continue
                rc = visit(g.vertices[e.target], down, alloc, resv)
                if rc > 0:
                    writer.emit_edge(g, e, False)
                    nchildren += rc
        v.colors[dom] = trav._black()
        rc = 0
        if _eval(tokens, leaf_for(v, down, alloc, resv)) or nchildren:
            agdata = None
            emit = True
            if agfilter:
                sp = v.subplans.get(dom)
                if sp is None:
                    emit = False
                else:
                    agdata = {}
                    for t in sp.resource_types:
                        total = sp.total(t)
                        if jobid == 0:
                            free = sp.avail_at(now, t)
                            if free == total:
                                free = sp.avail_at(0, t)
                            used = total - free
                        elif jobid in v.job2span:
                            used = sp.span(v.job2span[jobid]).requests[t]
                        else:
                            emit = False
                            break
                        agdata[t] = f"used:{used}, total:{total}"
            if emit:
                if hasattr(writer, "agfilter"):
                    writer.agfilter = agdata
                writer.emit_vertex(g, v, trav.level(), v.size, True, False)
                rc = nchildren + 1
        trav.trav_level -= 1
        return rc

    root = g.vertices[g.roots[dom]]
    visit(root, False, False, False)
    if hasattr(writer, "agfilter"):
        writer.agfilter = None
    return writer.emit()
