"""Fluxion's flexible traverser (``-T flexible``): or-slots and xor-slots.

RFC 14 jobspecs normally allow one ``slot`` among siblings. The flexible traverser
accepts more:

* **or-slots**: several ``slot`` siblings are alternative slot shapes. Where they
  match, the candidates for the union of their resource types are evaluated once and
  a small dynamic program (``select_or_config``) picks the sequence of shapes that
  yields the most slots from what is available; every slot found is offered upward
  as an edge group and the parent keeps as many as the jobspec asks for.
* **xor-slots**: ``xor_slot`` siblings are mutually exclusive alternatives.
  ``split_xor_slots`` expands the request into plain-slot variants (nested xor
  slots multiply out) and ``select`` tries them in order; the first that matches
  wins.

Pruning aggregates of or/xor siblings take the minimum over the alternatives (a
subtree that can hold the smallest one must not be pruned). The behaviour follows
flux-sched's ``dfu_flexible_t``; Fluxion's quirks are kept on purpose because the
golden outputs depend on them (see the comments below).
"""

from __future__ import annotations

import dataclasses

from .errors import EOVERFLOW
from .jobspec import Request, calc_count, calc_effective_max
from .matching import NONE_MATCH, PRISTINE_NONE_MATCH, RESOURCE_MATCH, SLOT_MATCH
from .scoring import Scoring
from .traverser import Traverser

SLOT, XOR_SLOT = "slot", "xor_slot"
MAX_XOR_EXPANSION = 1000  # Fluxion's SYSTEM_MAX_XOR_EXPANSION
EOVERFLOW_MSG = "Value too large for defined data type"


class XorExpansionError(ValueError):
    """Expanding the xor slots of a jobspec would give too many variants."""


def split_xor_slots(resources: list[Request],
                    limit: int = MAX_XOR_EXPANSION) -> list[list[Request]]:
    """Expand ``xor_slot`` siblings into the list of plain-slot request variants.

    Non-xor siblings are required together (cross product of their own expansions);
    each xor sibling, after expanding its children, becomes one ``slot`` option, and
    every variant gets exactly one option, appended after the required siblings.
    Raises XorExpansionError past ``limit`` variants.
    """
    base: list[list[Request]] = [[]]
    options: list[Request] = []
    for r in resources:
        child_variants = split_xor_slots(r.with_, limit)
        if r.type == XOR_SLOT:
            for cv in child_variants:
                options.append(dataclasses.replace(r, type=SLOT, with_=cv))
                if len(options) > limit:
                    raise XorExpansionError(EOVERFLOW_MSG)
            continue
        nxt: list[list[Request]] = []
        for variant in base:
            for cv in child_variants:
                nxt.append([*variant, dataclasses.replace(r, with_=cv)])
                if len(nxt) > limit:
                    raise XorExpansionError(EOVERFLOW_MSG)
        base = nxt
    if not options:
        return base
    out: list[list[Request]] = []
    for variant in base:
        for opt in options:
            out.append([*variant, opt])
            if len(out) > limit:
                raise XorExpansionError(EOVERFLOW_MSG)
    return out


# An or-slot configuration: (remaining counts after this pick, number of slots, index
# of the slot shape picked here, -1 when none fits).
Config = tuple[dict[str, int], int, int]


def _key(counts: dict[str, int]) -> tuple:
    return tuple(sorted(counts.items()))


def select_or_config(slots: list[Request], counts: dict[str, int], nslots: int,
                     memo: dict[tuple, Config]) -> Config:
    """Best sequence of or-slot shapes for ``counts`` qualified resources.

    With one shape the answer is how many whole copies fit, capped at ``nslots``.
    With several, the number of slots is maximised over every order of picks (not
    capped: Fluxion leaves ``nslots`` ill-defined for or-slots). ``memo`` maps a
    counts state to its best config; the config's first element is the key of the
    state after its pick, so a caller walks the chain from the initial state.
    """
    key = _key(counts)
    hit = memo.get(key)
    if hit is not None:
        return hit
    if len(slots) == 1:
        best = nslots if nslots < 2**31 else nslots - 2**32  # Fluxion stores it in an int
        for el in slots[0].with_:
            have = counts.get(el.type, 0)
            count = calc_count(el, have)
            if count <= 0 or have < count:
                best = 0
                break
            best = min(best, have // count)
        memo[key] = (counts, best, 0)
        return memo[key]
    # Iterative depth-first evaluation of the recursion (deep for many small slots).
    stack: list[tuple[dict[str, int], int, int]] = [(counts, 0, -1)]
    while stack:
        cur, i, best = stack[-1]
        ck = _key(cur)
        descended = False
        while i < len(slots):
            slot = slots[i]
            upd = dict(cur)
            ok = True
            for el in slot.with_:
                count = calc_count(el, cur.get(el.type, 0))
                if count <= 0:
                    ok = False
                    break
                upd[el.type] = upd.get(el.type, 0) - count
            if not ok:
                i += 1
                continue
            sub = memo.get(_key(upd))
            if sub is None:
                stack[-1] = (cur, i, best)
                stack.append((upd, 0, -1))
                descended = True
                break
            if best < sub[1]:
                best = sub[1]
                memo[ck] = (upd, best + 1, i)
            i += 1
        if descended:
            continue
        stack.pop()
        if best < 0:
            memo[ck] = ({}, 0, -1)
    return memo[key]


class FlexibleTraverser(Traverser):
    """DFU traverser accepting or-slot and xor-slot siblings (Fluxion ``flexible``)."""

    # -- jobspec priming -------------------------------------------------------------
    def min_if(self, t: str, count: int, lowest: dict[str, int]) -> None:
        if self.prune.is_pruning_type(t):
            if t not in lowest or lowest[t] > count:
                lowest[t] = count

    def prime_jobspec(self, resources: list[Request], to_parent: dict[str, int]) -> None:
        for r in resources:
            if r.exclusive is True:
                self.policy.x_types.add(r.type)
            self.accum_if(r.type, r.min, to_parent)
            r.user_data = {}
            self.prime_jobspec(r.with_, r.user_data)
            if r.type in (SLOT, XOR_SLOT):
                # alternatives: take the smallest need, and a type that some
                # alternative does not ask for can't be used to prune at all
                for t, n in r.user_data.items():
                    self.min_if(t, r.min * n, to_parent)
                for t in list(to_parent):
                    if t not in r.user_data:
                        self.min_if(t, 0, to_parent)
            else:
                for t, n in r.user_data.items():
                    self.accum_if(t, r.min * n, to_parent)

    # -- pruning -------------------------------------------------------------------
    def prune_resources(self, meta, excl, s, u, resources) -> int:
        # A slot that fails the subtree filter doesn't stop the walk (another or-slot
        # may fit), but Fluxion returns the result of the last resource checked.
        rc = 0
        for r in resources:
            if u.type != r.type and r.type != SLOT:
                continue
            if r.type != SLOT:
                rc = self.by_excl(meta, u, excl, r)
                if rc == -1:
                    break
                rc = self.by_subplan(meta, s, u, r)
                if rc == -1:
                    break
            else:
                rc = self.by_subplan(meta, s, u, r)
        return rc

    # -- matching ------------------------------------------------------------------
    def test(self, u, resources, pristine):
        matched = or_matched = False
        match_res = None
        slot_list = None
        nslots = 0
        for r in resources:
            if u.type == r.type:
                if matched or or_matched:
                    return self._sibling_error(u, resources, nslots, pristine)
                match_res = r
                for c in r.with_:
                    if c.type == SLOT:
                        slot_list = r.with_
                        nslots = calc_effective_max(c)
                matched = True
            elif r.type == SLOT:
                if matched:
                    return self._sibling_error(u, resources, nslots, pristine)
                slot_list = resources
                # as in Fluxion, the last or-slot sibling decides nslots
                nslots = calc_effective_max(r)
                or_matched = True
        if slot_list is not None:
            kind = PRISTINE_NONE_MATCH if pristine else NONE_MATCH
            nxt = resources
            for r in slot_list:
                if self.slot_match(u, r):
                    kind = SLOT_MATCH
                    pristine = False
                    nxt = slot_list
            return nxt, nslots, kind, pristine
        if match_res is not None:
            return match_res.with_, nslots, RESOURCE_MATCH, False
        return resources, nslots, (PRISTINE_NONE_MATCH if pristine else NONE_MATCH), pristine

    def _sibling_error(self, u, resources, nslots, pristine):
        self.err += f"test: siblings in jobspec request same resource type : {u.type}.\n"
        return resources, nslots, NONE_MATCH, pristine

    def dom_slot(self, meta, u, slots, nslots, pristine, dfu) -> int:
        dom = self.dom
        # Evaluate once for the union of the or-slots' types, each with the largest
        # min count asked for it (first listed wins a tie).
        union: dict[str, Request] = {}
        for slot in slots:
            for r in slot.with_:
                have = union.get(r.type)
                if have is None or have.min < r.min:
                    union[r.type] = r
        shape = [union[t] for t in self.g.types.sort(union)]
        dfu_slot = Scoring(self.g.types)
        if self.explore(meta, u, dom, shape, pristine, True, dfu_slot, nslots) != 0:
            return -1
        if self.policy.dom_finish_slot(dom, dfu_slot) != 0:
            return -1
        counts = {t: dfu_slot.qualified_count(dom, t) for t in union}
        memo: dict[tuple, Config] = {}
        config = select_or_config(slots, counts, nslots, memo)
        groups = []
        for _ in range(config[1]):
            grp = self.take_slot(dfu_slot, slots[config[2]].with_)
            if grp is None:
                return -1
            groups.append(grp)
            config = memo.get(_key(config[0]), ({}, 0, 0))
        for grp in groups:
            dfu.add(dom, SLOT, grp)
        return 0 if groups else -1

    def select(self, resources, root, meta, excl) -> int:
        try:
            variants = split_xor_slots(resources)
        except XorExpansionError as exc:
            self.err += f"select: split_xor_slots failed.\n{exc}\n"
            self._errno = EOVERFLOW
            return -1
        for variant in variants:
            if super().select(variant, root, meta, excl) == 0:
                return 0
        return -1


TRAVERSERS = {"simple": Traverser, "flexible": FlexibleTraverser}


def create_traverser(policy: str, *args, **kwargs) -> Traverser:
    """A traverser for ``-T POLICY`` (``simple`` or ``flexible``); KeyError otherwise."""
    return TRAVERSERS[policy](*args, **kwargs)
