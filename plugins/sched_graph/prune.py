"""Subtree aggregate filters (``-p ALL:core,ALL:node``): which resource types are
counted per subtree, under which vertex types.

Why a module of its own: the prune spec is parsed from configuration once and then
only queried (``is_pruning_type``, ``my_types``) by the matcher's priming and the
update walk; keeping it apart keeps that small contract visible.
"""

from __future__ import annotations

from .errors import InvalidRequest

ANY = "*"


class PruneSpec:
    """Which resource types are tracked in aggregate under which vertex types."""

    def __init__(self, order) -> None:
        self.order = order
        self.by_anchor: dict[str, set[str]] = {}
        self.total: set[str] = set()

    def set_spec(self, spec: str) -> None:
        for pair in spec.split(","):
            if ":" not in pair:
                raise InvalidRequest(f"bad prune filter: {pair}")
            h, _, low = pair.partition(":")
            h = "".join(h.split())
            low = "".join(low.split())
            if not h or not low:
                raise InvalidRequest(f"bad prune filter: {pair}")
            self.set(ANY if h == "ALL" else h, low)

    def set(self, anchor: str, ptype: str) -> None:
        if anchor == ANY:
            for s in self.by_anchor.values():
                s.discard(ptype)
            self.by_anchor.setdefault(ANY, set()).add(ptype)
        elif ANY in self.by_anchor:
            if ptype not in self.by_anchor[ANY]:
                self.by_anchor.setdefault(anchor, set()).add(ptype)
        else:
            self.by_anchor.setdefault(anchor, set()).add(ptype)
        self.total.add(ptype)

    def is_pruning_type(self, t: str) -> bool:
        return t in self.total

    def my_types(self, anchor: str) -> list[str]:
        out = self.order.sort(self.by_anchor.get(anchor, ()))
        if anchor != ANY and ANY in self.by_anchor:
            out += [t for t in self.order.sort(self.by_anchor[ANY]) if t != anchor]
        return out
