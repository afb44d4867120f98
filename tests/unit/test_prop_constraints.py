"""Property tests of job constraints: RFC 35 query text parses to a valid RFC 31 object
or fails with a one-line ValueError, what parses is written back by format_constraint
and parses again to the same object, and any JSON either validates (and compiles to a
predicate that runs) or fails with a one-line ValueError.

Why: --requires text and jobspec constraints come from users; the scheduler evaluates
every one that validates against every node.
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import json_values, parse_or_error

from strato.jobspec.constraints import (
    compile_constraint,
    format_constraint,
    parse_constraint,
    validate_constraint,
)

TOKENS = ["a", "b", "gpu", "-", "^", "host:", "rank:", "hosts:", "properties:", "x:", "and",
          "or", "not", "&", "&&", "|", "||", "(", ")", "'", '"', "n[1-2]", "0-3", "5", ",",
          " ", ":", "\t", "\u2028", "é"]
query_text = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join) | st.text(max_size=20)
NODES = [SimpleNamespace(rank=r, hostname=f"n{r}", properties={"a", "gpu"} if r % 2 else {"b"})
         for r in range(4)]


@given(query_text)
@example("""host:'a"b'"c'\"""")  # a value with both quotes: format once raised
@example("not " * 300 + "a")
@example("(" * 3000 + "a" + ")" * 3000)
@example("rank:0-" + "9" * 30)
@example("host:n[0-" + "9" * 5000 + "]")
def test_parse_any_text(text: str) -> None:
    ok, obj = parse_or_error(parse_constraint, text)
    if not ok:
        assert str(obj).startswith("invalid constraint ")
        return
    validate_constraint(obj)
    again = format_constraint(obj)
    assert parse_constraint(again) == obj, again
    match = compile_constraint(obj)
    for node in NODES:
        assert match(node) in (True, False)


rfc31 = st.recursive(
    st.fixed_dictionaries({}, optional={
        "properties": st.lists(st.sampled_from(["a", "^b", "gpu", "x y", "", "^"]), max_size=3),
        "hostlist": st.lists(st.sampled_from(["n[0-2]", "n1", "", "n[", "x"]), max_size=2),
        "ranks": st.lists(st.sampled_from(["0", "1-2", "", "x", "0-99999999999"]), max_size=2),
    }),
    lambda inner: st.dictionaries(st.sampled_from(["and", "or", "not"]),
                                  st.lists(inner, max_size=3), min_size=1, max_size=1),
    max_leaves=8,
)


@given(rfc31 | json_values)
@example({"hostlist": ["n[0-" + "9" * 5000 + "]"]})
@example({"ranks": [5]})
@example({"": None, "\r": None})  # the operators were listed raw: a line break
def test_validate_any_object(obj) -> None:
    ok, _ = parse_or_error(validate_constraint, obj)
    if ok:
        match = compile_constraint(obj)
        for node in NODES:
            assert match(node) in (True, False)
        written = parse_or_error(format_constraint, obj)
        if written[0] and written[1]:
            again = parse_constraint(written[1])
            assert [compile_constraint(again)(n) for n in NODES] == \
                [match(n) for n in NODES], written[1]
