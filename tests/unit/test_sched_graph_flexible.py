"""Flexible traverser pieces (xor-slot expansion, or-slot selection) and jobspec checks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import corpus_path

from strato.cli.resource_query import Options, SessionError, run_session
from strato.plugins.sched_graph.flexible import (
    FlexibleTraverser,
    XorExpansionError,
    select_or_config,
    split_xor_slots,
)
from strato.plugins.sched_graph.jobspec import JobspecError, Request, parse_jobspec

CORPUS = corpus_path("fluxion")
FLEX = CORPUS / "jobspecs" / "flexible"
VALIDATION = CORPUS / "jobspecs" / "validation"
needs_corpus = pytest.mark.skipif(not FLEX.is_dir(), reason="Fluxion corpus not found")


def sig(r: Request) -> str:
    inner = ";".join(sig(c) for c in r.with_)
    return f"{r.type}{{{r.label},{r.min}}}" + (f"[{inner}]" if inner else "")


def variants_of(name: str) -> list[str]:
    js = parse_jobspec((FLEX / name).read_text())
    return ["|".join(sig(r) for r in v) for v in split_xor_slots(js.resources)]


def labels(s: str) -> set[str]:
    import re

    return {x for x in re.findall(r"slot\{([^,]*),", s) if x != "default"}


@needs_corpus
@pytest.mark.parametrize("name", [f"test00{i}.yaml" for i in range(1, 9)])
def test_split_leaves_plain_jobspecs_alone(name: str) -> None:
    js = parse_jobspec((FLEX / name).read_text())
    assert variants_of(name) == ["|".join(sig(r) for r in js.resources)]


@needs_corpus
def test_split_top_level_and_nested_xor() -> None:
    assert variants_of("test009.yaml") == [
        "slot{default,2}[core{,12};memory{,4}]",
        "slot{default,2}[core{,5};gpu{,1};memory{,4}]",
        "slot{default,2}[core{,4};gpu{,2};memory{,4}]",
    ]
    assert variants_of("test010.yaml") == [
        "cluster{,1}[rack{,1}[node{,1}[socket{,1}[slot{small,1}[core{,8};gpu{,1}]]]]]",
        "cluster{,1}[rack{,1}[node{,1}[socket{,1}[slot{big,1}[core{,10}]]]]]",
    ]
    nested = variants_of("test012.yaml")
    assert len(nested) == 9 and all("xor_slot" not in v for v in nested)
    assert [labels(v) for v in nested] == [{x} for x in
                                           ("a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3")]
    cross = variants_of("test015.yaml")
    assert sorted(":".join(sorted(labels(v))) for v in cross) == [
        "a1:s1", "a1:s2", "a2:s1", "a2:s2"]


def test_split_limits_and_edge_cases() -> None:
    empty = Request("xor_slot", 1, 1, label="e")
    (only,) = split_xor_slots([empty])
    assert [sig(r) for r in only] == ["slot{e,1}"]
    many = [Request("xor_slot", 1, 1, label=f"x{i}", with_=[Request("core", 1, 1)])
            for i in range(40)]
    wide = [Request("socket", 1, 1, with_=many), Request("node", 1, 1, with_=list(many))]
    assert len(split_xor_slots(wide, limit=2000)) == 1600
    with pytest.raises(XorExpansionError):
        split_xor_slots(wide)


def _slot(label: str, **counts: int) -> Request:
    return Request("slot", 1, 1, label=label,
                   with_=[Request(t, n, n) for t, n in counts.items()])


def test_select_or_config_maximises_slot_count() -> None:
    small, big = _slot("small", core=8, gpu=1), _slot("big", core=10)
    memo: dict = {}
    counts, n, first = select_or_config([small, big], {"core": 18, "gpu": 1}, 1, memo)
    assert (n, first) == (2, 0) and counts == {"core": 10, "gpu": 0}
    assert memo[tuple(sorted(counts.items()))][2] == 1  # then the big one
    # one shape: whole copies, capped by nslots
    assert select_or_config([big], {"core": 35}, 5, {})[1] == 3
    assert select_or_config([big], {"core": 35}, 2, {})[1] == 2
    # many tiny slots: deep chains don't hit the recursion limit
    tiny = _slot("t", core=1)
    assert select_or_config([tiny, tiny], {"core": 5000}, 1, {})[1] == 5000
    assert select_or_config([small, big], {"core": 7, "gpu": 1}, 1, {})[1:] == (0, -1)


@needs_corpus
def test_flexible_session_and_unknown_traverser() -> None:
    graph = str(CORPUS / "jgfs" / "tiny.json")
    script = f"match allocate {FLEX / 'test010.yaml'}\nquit\n"
    out = io.StringIO()
    run_session(Options(load_file=graph, load_format="jgf", traverser_policy="flexible"),
                io.StringIO(script), out=out, stdout=io.StringIO(), stderr=io.StringIO())
    assert "RESOURCES=ALLOCATED" in out.getvalue()
    assert isinstance(_trav_class(graph), type) and _trav_class(graph) is FlexibleTraverser
    with pytest.raises(SessionError, match="unknown traverser policy"):
        run_session(Options(load_file=graph, load_format="jgf", traverser_policy="bogus"),
                    io.StringIO("quit\n"), stdout=io.StringIO(), stderr=io.StringIO())


def _trav_class(graph: str) -> type:
    from strato.cli.resource_query import ResourceQuery

    rq = ResourceQuery(Options(load_file=graph, load_format="jgf",
                               traverser_policy="flexible"), io.StringIO(), io.StringIO(),
                       io.StringIO())
    return type(rq.trav)


@needs_corpus
def test_unknown_resource_type_is_a_jobspec_error() -> None:
    text = (FLEX / "test006.yaml").read_text()
    parse_jobspec(text)  # without a graph any type goes
    with pytest.raises(JobspecError, match="must be a resource type known to fluxion"):
        parse_jobspec(text, known_types={"slot", "core"})


@needs_corpus
@pytest.mark.parametrize("path", sorted(VALIDATION.glob("*/*.yaml")) if VALIDATION.is_dir()
                         else [], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validation_corpus(path: Path) -> None:
    if path.parent.name == "valid":
        parse_jobspec(path.read_text())
    else:
        with pytest.raises(JobspecError):
            parse_jobspec(path.read_text())


@pytest.mark.parametrize("body, message", [
    ("count: {min: 1, max: 2, operator: '+', operand: [1, 2]}",
     'Value of "operand" must be a scalar'),
    ("count: 1\n    exclusive: [true]", 'Value of "exclusive" must be a scalar'),
    ("count: 1\n    label: [a]", 'Value of "label" must be a scalar'),
    ("count: 1\n    unit: {a: 1}", 'Value of "unit" must be a scalar'),
    ("count: ~", "count is not a mapping"),
])
def test_resource_messages(body: str, message: str) -> None:
    text = (f"version: 1\nresources:\n  - type: core\n    {body}\n"
            "tasks:\n  - command: [app]\n    slot: s\n    count: {per_slot: 1}\n"
            "attributes:\n")
    with pytest.raises(JobspecError) as exc:
        parse_jobspec(text)
    assert str(exc.value) == message
