"""Tests for strato.jobspec.constraints: RFC 35 query syntax -> RFC 31 JSON -> node matching.

Why: ``--requires`` must turn the strings Flux users type into exactly the RFC 31 objects
Flux would put in a jobspec, reject bad input with a one-line error saying where, and the
scheduler must evaluate the result quickly on every node.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from strato.jobspec.constraints import (
    compile_constraint,
    format_constraint,
    parse_constraint,
    validate_constraint,
)


def P(*names: str) -> dict:
    return {"properties": list(names)}


# ----------------------------------------------------------------------------- parsing

# RFC 35's own examples (default operator "properties" here instead of "name").
# Flux's --requires merges properties joined by "and" into one list, so "foo bar"
# is {"properties": ["foo", "bar"]} rather than RFC 35's generic {"and": [...]}.
RFC35_EXAMPLES = [
    ("foo", P("foo")),
    ("foo bar", P("foo", "bar")),
    ("a|b|c", {"or": [P("a"), P("b"), P("c")]}),
    ("a|b&c", {"or": [P("a"), P("b", "c")]}),
    ("(a|b)&c", {"and": [{"or": [P("a"), P("b")]}, P("c")]}),
    ("(a|-b)&c", {"and": [{"or": [P("a"), {"not": [P("b")]}]}, P("c")]}),
]

# The examples of flux-submit(1) --requires.
FLUX_DOC_EXAMPLES = [
    ("a b c", P("a", "b", "c")),
    ("a&b&c", P("a", "b", "c")),
    ("a,b,c", P("a", "b", "c")),
    ("a|b|c", {"or": [P("a"), P("b"), P("c")]}),
    ("a or b or c", {"or": [P("a"), P("b"), P("c")]}),
    ("(a and b) or (b and c)", {"or": [P("a", "b"), P("b", "c")]}),
    ("b|-c", {"or": [P("b"), {"not": [P("c")]}]}),
    ("b or not c", {"or": [P("b"), {"not": [P("c")]}]}),
    ("host:fluke[1-5]", {"hostlist": ["fluke[1-5]"]}),
    ("-host:fluke7", {"not": [{"hostlist": ["fluke7"]}]}),
    ("rank:0", {"ranks": ["0"]}),
]

MORE = [
    # terms and operator names
    ("amd64", P("amd64")),
    ("properties:amd64", P("amd64")),
    ("properties:a,b", P("a", "b")),
    ("hosts:node[1-3]", {"hostlist": ["node[1-3]"]}),
    ("hostlist:node[1-3],login", {"hostlist": ["node[1-3],login"]}),
    ("rank:0-3", {"ranks": ["0-3"]}),
    ("ranks:0-3,7", {"ranks": ["0-3,7"]}),
    ("rank:[0-3]", {"ranks": ["[0-3]"]}),
    # negation: "-" before a term, "not", and "-"/"^" inside a property list
    ("-gpu", {"not": [P("gpu")]}),
    ("not gpu", {"not": [P("gpu")]}),
    ("not(gpu)", {"not": [P("gpu")]}),
    ("not not gpu", {"not": [{"not": [P("gpu")]}]}),
    ("-rank:0", {"not": [{"ranks": ["0"]}]}),
    ("a,-b", P("a", "^b")),
    ("properties:-b", P("^b")),
    ("^slowgpu", P("^slowgpu")),
    ("-a,b", {"not": [P("a", "b")]}),
    ("not (a and b)", {"not": [P("a", "b")]}),
    ("not (a or b)", {"not": [{"or": [P("a"), P("b")]}]}),
    ("a -b", {"and": [P("a"), {"not": [P("b")]}]}),
    # and / or spellings, juxtaposition, whitespace
    ("a&&b", P("a", "b")),
    ("a && b", P("a", "b")),
    ("a||b", {"or": [P("a"), P("b")]}),
    ("a || b", {"or": [P("a"), P("b")]}),
    ("  a   b  ", P("a", "b")),
    ("a\tb", P("a", "b")),
    # precedence: not > and > or; and by juxtaposition binds like "and"
    ("a b | c", {"or": [P("a", "b"), P("c")]}),
    ("a | b c", {"or": [P("a"), P("b", "c")]}),
    ("a or b and c", {"or": [P("a"), P("b", "c")]}),
    ("not a b", {"and": [{"not": [P("a")]}, P("b")]}),
    ("not a or b", {"or": [{"not": [P("a")]}, P("b")]}),
    ("a&(b|c)", {"and": [P("a"), {"or": [P("b"), P("c")]}]}),
    ("(a&(b|-c))", {"and": [P("a"), {"or": [P("b"), {"not": [P("c")]}]}]}),
    # simplification: nested and/or flatten, property terms of an "and" merge
    ("((a))", P("a")),
    ("a (b c)", P("a", "b", "c")),
    ("a|(b|c)", {"or": [P("a"), P("b"), P("c")]}),
    ("a a", P("a")),
    ("a host:x b", {"and": [P("a", "b"), {"hostlist": ["x"]}]}),
    ("host:x host:y", {"and": [{"hostlist": ["x"]}, {"hostlist": ["y"]}]}),
    ("a|b a", {"or": [P("a"), P("b", "a")]}),
    # keywords only as whole words; quoting
    ("andy", P("andy")),
    ("nota", P("nota")),
    ("order", P("order")),
    ("'and'", P("and")),
    ("'a'", P("a")),
    ('"a"', P("a")),
    ("('a')", P("a")),
    ("host:'node[1-3]'", {"hostlist": ["node[1-3]"]}),
    ('rank:"0-3"', {"ranks": ["0-3"]}),
    ("properties:'x'", P("x")),
    ("'host:x'", P("host:x")),  # a quoted ':' is not an operator separator
    # the examples
    (
        "host:node[1-3] and not rank:0",
        {"and": [{"hostlist": ["node[1-3]"]}, {"not": [{"ranks": ["0"]}]}]},
    ),
    ("amd64 | gpu", {"or": [P("amd64"), P("gpu")]}),
]


@pytest.mark.parametrize(("text", "expected"), RFC35_EXAMPLES + FLUX_DOC_EXAMPLES + MORE)
def test_parse(text: str, expected: dict) -> None:
    result = parse_constraint(text)
    assert result == expected
    validate_constraint(result)
    assert json.loads(json.dumps(result)) == result


def test_quoting_keeps_reserved_characters_in_the_value() -> None:
    assert parse_constraint("host:'n1' | x") == {"or": [{"hostlist": ["n1"]}, P("x")]}
    with pytest.raises(ValueError, match="invalid character ' ' in property 'a b'"):
        parse_constraint("'a b'")  # quoted, but whitespace is not allowed in a property


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty constraint"),
        ("   ", "empty constraint"),
        ("a|", "unexpected end of input at column 3"),
        ("a and", "unexpected end of input at column 6"),
        ("not", "unexpected end of input at column 4"),
        ("(a", "unexpected end of input at column 3"),
        ("(a))", "unexpected ')' at column 4"),
        ("()", "unexpected ')' at column 2"),
        ("a b)", "unexpected ')' at column 4"),
        ("|a", "unexpected '|' at column 1"),
        ("a&&&b", "unexpected '&' at column 4"),
        ("a or or b", "unexpected 'or' at column 6"),
        ("a:' ", "unterminated quote ' at column 3"),
        ("a 'b", "unterminated quote ' at column 3"),
        ('host:"x', 'unterminated quote " at column 6'),
        ("-(a|b)", "'-' must be directly followed by a term (use 'not'"),
        ("- a", "'-' must be directly followed by a term at column 1"),
        ("--a", "unexpected '-' at column 2"),
        ("4g,host:foo", "invalid constraint operator '4g,host' at column 1"),
        (":x", "invalid constraint operator '' at column 1"),
        ("foo:bar", "unknown constraint operator 'foo' at column 1"),
        ("a or time:11:00am", "unknown constraint operator 'time' at column 6"),
        ("foo and a:", "unknown constraint operator 'a' at column 9"),
        ("host:", "missing value after 'host:' at column 6"),
        ("a rank:''", "missing value after 'rank:' at column 8"),
        ("''", "empty term at column 1"),
        ("a,,b", "empty property in 'a,,b' at column 1"),
        ("x a,", "empty property in 'a,' at column 3"),
        ("a&b!", "invalid character '!' in property 'b!' at column 3"),
        ("-^", "empty property name in '^' at column 2"),
        ("a,^^b", "invalid character '^' in property '^^b'"),
        ("host:node[1-", "invalid hostlist 'node[1-': unbalanced brackets at column 6"),
        ("a host:n[3-1]", "invalid hostlist 'n[3-1]': range '3-1' is descending at column 8"),
        ("host:,", "invalid hostlist ',': no hosts at column 6"),
        ("rank:0-", "invalid idset '0-': bad element '0-' at column 6"),
        ("rank:x", "invalid idset 'x'"),
        ("rank:3-1", "range '3-1' is descending at column 6"),
        ("rank:[]", "invalid idset '[]': no ids"),
        ("rank:0-99999999999", "too large"),
        ("host:n[0-99999999999]", "too large"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_constraint(text)
    error = str(info.value)
    assert "\n" not in error
    assert error.startswith(f"invalid constraint {text!r}: ")
    assert message in error


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="not a string"):
        parse_constraint(None)  # type: ignore[arg-type]


def test_parse_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_constraint("not " * 1000 + "a")
    assert parse_constraint("(" * 300 + "a" + ")" * 300) == P("a")


def test_import_does_not_load_lark() -> None:
    code = (
        "import sys, strato.jobspec.constraints as c\n"
        "assert 'lark' not in sys.modules, 'lark imported early'\n"
        "c.parse_constraint('a')\n"
        "assert 'lark' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parser_is_built_once() -> None:
    from strato.jobspec import constraints

    parse_constraint("a")
    first = constraints._parser
    parse_constraint("b|c")
    assert constraints._parser is first is not None


# -------------------------------------------------------------------------- validation

VALID_JSON = [
    {},
    P(),
    P("ssd"),
    P("^slowgpu"),
    {"and": []},
    {"or": []},
    {"not": []},
    {"not": [P("foo", "bar")]},
    {"or": [P("ssd"), P("huge")]},
    {"hostlist": ["host[0-1]"]},
    {"not": [{"hostlist": ["host[0-1]"]}]},
    {"and": [{"hostlist": ["host[0-1]"]}, P("ssd")]},
    {"ranks": ["0"]},
    {"ranks": ["0,2", "1"]},
    {"and": [{"or": [P("foo"), P("bar")]}, {"and": [P("xx"), P("yy")]}]},
]


@pytest.mark.parametrize("obj", VALID_JSON)
def test_validate_ok(obj: dict) -> None:
    validate_constraint(obj)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "attributes.system.constraints: constraint must be a JSON object, not list"),
        ("a", "attributes.system.constraints: constraint must be a JSON object, not str"),
        ({"foo": []}, "attributes.system.constraints: unknown constraint operator 'foo'"),
        (
            {"properties": ["a"], "ranks": ["0"]},
            "attributes.system.constraints: constraint must have exactly one operator",
        ),
        ({"and": "foo"}, "attributes.system.constraints.and: and value must be an array"),
        ({"or": "foo"}, "attributes.system.constraints.or: or value must be an array"),
        ({"not": {}}, "attributes.system.constraints.not: not value must be an array"),
        ({"properties": "foo"}, "properties: properties value must be an array"),
        (
            {"properties": ["foo", 42]},
            "attributes.system.constraints.properties[1]: properties value must be a string",
        ),
        (
            {"properties": ["foo", "bar&"]},
            "attributes.system.constraints.properties[1]: invalid character '&' in property",
        ),
        ({"properties": [""]}, "properties[0]: empty property name"),
        ({"properties": ["^"]}, "properties[0]: empty property name"),
        ({"properties": ["a b"]}, "properties[0]: invalid character ' '"),
        (
            {"hostlist": ["foo0-10]"]},
            "attributes.system.constraints.hostlist[0]: invalid hostlist 'foo0-10]'",
        ),
        ({"hostlist": [7]}, "hostlist[0]: hostlist value must be a string, not int"),
        ({"ranks": ["5,x"]}, "attributes.system.constraints.ranks[0]: invalid idset '5,x'"),
        ({"ranks": [0]}, "ranks[0]: ranks value must be a string, not int"),
        ({"ranks": ["0-99999999999"]}, "ranks[0]: idset '0-99999999999' is too large"),
        (
            {"and": [P("a"), {"or": [P("b"), {"not": [{"ranks": ["z"]}]}]}]},
            "attributes.system.constraints.and[1].or[1].not[0].ranks[0]: invalid idset 'z'",
        ),
        ({"and": [P("a"), 5]}, "constraints.and[1]: constraint must be a JSON object, not int"),
    ],
)
def test_validate_errors(obj: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_constraint(obj)
    assert "\n" not in str(info.value)
    assert message in str(info.value)


def test_validate_custom_path_and_deep_nesting() -> None:
    with pytest.raises(ValueError, match=r"^c\.not\[0\]: unknown constraint operator 'x'$"):
        validate_constraint({"not": [{"x": []}]}, path="c")
    deep: dict = P("a")
    for _ in range(1000):
        deep = {"not": [deep]}
    with pytest.raises(ValueError, match="nested too deeply"):
        validate_constraint(deep)


# -------------------------------------------------------------------------- evaluation


def node(rank: int, hostname: str, *props: str) -> SimpleNamespace:
    return SimpleNamespace(rank=rank, hostname=hostname, properties=list(props))


NODES = [
    node(0, "node0", "amd64", "login"),
    node(1, "node1", "amd64", "gpu", "ssd"),
    node(2, "node2", "amd64", "gpu", "slowgpu"),
    node(3, "node3", "arm64", "ssd"),
    node(4, "fat4", "amd64", "huge"),
]


def ranks_matching(constraint: dict | None) -> list[int]:
    match = compile_constraint(constraint)
    return [n.rank for n in NODES if match(n)]


@pytest.mark.parametrize(
    ("constraint", "ranks"),
    [
        (None, [0, 1, 2, 3, 4]),
        ({}, [0, 1, 2, 3, 4]),
        (P(), [0, 1, 2, 3, 4]),
        (P("amd64"), [0, 1, 2, 4]),
        (P("amd64", "gpu"), [1, 2]),
        (P("gpu", "^slowgpu"), [1]),
        (P("^amd64"), [3]),
        (P("^gpu", "^ssd"), [0, 4]),
        (P("nope"), []),
        (P("node3"), [3]),  # as in Flux, a node's host name is one of its properties
        (P("^node3", "ssd"), [1]),
        ({"hostlist": ["node[1-3]"]}, [1, 2, 3]),
        ({"hostlist": ["node0", "fat4"]}, [0, 4]),
        ({"hostlist": ["other[0-9]"]}, []),
        ({"ranks": ["0-2"]}, [0, 1, 2]),
        ({"ranks": ["0,2", "4"]}, [0, 2, 4]),
        ({"ranks": ["[3-9]"]}, [3, 4]),
        ({"not": [{"ranks": ["0"]}]}, [1, 2, 3, 4]),
        ({"not": [P("gpu", "ssd")]}, [0, 2, 3, 4]),  # not(and) with several properties
        ({"not": [P("gpu"), P("ssd")]}, [0, 2, 3, 4]),  # several values: not of their and
        ({"not": []}, []),
        ({"and": []}, [0, 1, 2, 3, 4]),
        ({"or": []}, [0, 1, 2, 3, 4]),
        ({"or": [P("ssd"), P("huge")]}, [1, 3, 4]),
        ({"or": [P("login"), P("huge"), {"ranks": ["3"]}]}, [0, 3, 4]),
        ({"and": [P("amd64"), {"not": [{"ranks": ["0"]}]}, {"hostlist": ["node[0-9]"]}]}, [1, 2]),
        ({"and": [{"hostlist": ["node[0-2]"]}, {"hostlist": ["node[2-3]"]}]}, [2]),
        ({"or": [P("gpu")]}, [1, 2]),
    ],
)
def test_evaluate(constraint: dict | None, ranks: list[int]) -> None:
    assert ranks_matching(constraint) == ranks


@pytest.mark.parametrize(
    ("text", "ranks"),
    [
        ("amd64", [0, 1, 2, 4]),
        ("amd64 gpu", [1, 2]),
        ("gpu -slowgpu", [1]),
        ("gpu,-slowgpu", [1]),
        ("gpu and not slowgpu", [1]),
        ("ssd | huge", [1, 3, 4]),
        ("-gpu", [0, 3, 4]),
        ("host:node[1-3] and not rank:0", [1, 2, 3]),
        ("host:node[0-3] and not rank:0-1", [2, 3]),
        ("-host:node[0-3]", [4]),
        ("(gpu | arm64) ssd", [1, 3]),
        ("gpu | arm64 ssd", [1, 2, 3]),
        ("not (gpu or login)", [3, 4]),
        ("rank:0 | rank:4", [0, 4]),
    ],
)
def test_parse_then_evaluate(text: str, ranks: list[int]) -> None:
    assert ranks_matching(parse_constraint(text)) == ranks


def test_compile_accepts_sets_of_properties() -> None:
    n = SimpleNamespace(rank=7, hostname="x7", properties=frozenset({"a", "b"}))
    assert compile_constraint(P("a", "b", "^c"))(n)
    assert not compile_constraint(P("a", "c"))(n)


@pytest.mark.parametrize(
    ("constraint", "strato", "fluxion"),
    [
        (P("node1"), [1], []),  # the host name is a property only in strato's reading
        (P("^node1", "amd64"), [0, 2, 4], [0, 1, 2, 4]),
        (P("gpu", "^ssd"), [2], [2]),
        ({"or": []}, [0, 1, 2, 3, 4], []),  # an empty "or" matches nothing in Fluxion
        ({"and": [{"or": []}, P("amd64")]}, [0, 1, 2, 4], []),
        ({"not": [{"or": []}]}, [], [0, 1, 2, 3, 4]),
        ({"and": []}, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]),
        ({"hostlist": ["node[1-2]"]}, [1, 2], [1, 2]),
    ],
)
def test_fluxion_reading(constraint: dict, strato: list[int], fluxion: list[int]) -> None:
    """sched-graph evaluates constraints against graph vertices as Fluxion does."""
    match = compile_constraint(constraint, host_is_property=False, empty_or_matches=False)
    assert [n.rank for n in NODES if match(n)] == fluxion
    assert ranks_matching(constraint) == strato


def test_compile_without_validation() -> None:
    # Fluxion's jobspec parser accepts a comma in a property; RFC 31 validation does not
    with pytest.raises(ValueError, match="invalid character ','"):
        compile_constraint(P("a,b"))
    n = SimpleNamespace(rank=0, hostname="h", properties={"a,b": ""})
    assert compile_constraint(P("a,b"), validate=False)(n)


def test_compile_rejects_invalid() -> None:
    with pytest.raises(ValueError, match=r"^constraints\.or\[0\]: unknown constraint operator"):
        compile_constraint({"or": [{"bogus": []}]})


def test_compiled_constraint_on_many_nodes() -> None:
    nodes = [
        node(i, f"node{i}", "amd64", *(["gpu"] if i % 4 == 0 else []), *(["ssd"] if i % 3 else []))
        for i in range(4096)
    ]
    match = compile_constraint(
        parse_constraint("(gpu or ssd) and not host:node[0-99] and -rank:200-299 amd64")
    )
    hits = sum(1 for n in nodes if match(n))
    expected = sum(
        1 for i in range(4096) if (i % 4 == 0 or i % 3) and not (i < 100) and not (200 <= i < 300)
    )
    assert hits == expected  # how fast: tests/bench, not a wall-clock assertion here


# -------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("text", "expected"), RFC35_EXAMPLES + FLUX_DOC_EXAMPLES + MORE)
def test_round_trip_through_text(text: str, expected: dict) -> None:
    obj = parse_constraint(text)
    again = format_constraint(obj)
    assert parse_constraint(again) == obj, again


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ({}, ""),
        (P("a", "^b"), "a,^b"),
        (P("and"), "properties:and"),
        (P("x:y"), "properties:x:y"),
        ({"hostlist": ["n[1-3]"]}, "host:n[1-3]"),
        ({"hostlist": ["a", "b"]}, "(host:a or host:b)"),
        ({"not": [{"ranks": ["0"]}]}, "-rank:0"),
        ({"not": [{"or": [P("a"), P("b")]}]}, "not (a or b)"),
        ({"and": [{"or": [P("a"), P("b")]}, P("c")]}, "(a or b) and c"),
        ({"or": [P("a", "b"), {"not": [P("c")]}]}, "a,b or -c"),
    ],
)
def test_format(obj: dict, text: str) -> None:
    assert format_constraint(obj) == text


@pytest.mark.parametrize("obj", VALID_JSON)
def test_json_round_trip_keeps_meaning(obj: dict) -> None:
    try:
        text = format_constraint(obj)
    except ValueError as exc:  # empty and/or/not/properties have no RFC 35 spelling
        assert "empty" in str(exc)
        return
    before = ranks_matching(obj)
    after = ranks_matching(parse_constraint(text)) if text else ranks_matching({})
    assert before == after, text


@pytest.mark.parametrize("obj", [{"and": []}, {"or": []}, {"not": []}, P(), {"bad": []}])
def test_format_errors(obj: dict) -> None:
    with pytest.raises(ValueError):
        format_constraint(obj)
