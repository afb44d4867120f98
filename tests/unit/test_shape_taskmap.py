"""RFC 46 shapes (``--resources-shape``) read as Flux reads them, and RFC 34 task
maps (``--taskmap``) numbered as Flux's shell numbers them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strato.jobspec.shape import parse_shape
from strato.jobspec.taskmap import decode_taskmap, order_tasks

# each line: a shape and what Flux's own shape parser made of it
SHAPES = Path(__file__).parents[1] / "data" / "flux-dry-run" / "shapes.jsonl"


@pytest.mark.parametrize("line", SHAPES.read_text().splitlines())
def test_shape_as_flux_parses_it(line):
    text, want = json.loads(line)
    assert parse_shape(text) == want


@pytest.mark.parametrize("text,where", [
    ("", "empty shape"),
    ("node=0/slot/core", "expected a count"),
    ("node=2/slot", "expected '/'"),
    ("[slot/core;slot/gpu]", "several slots need labels"),
    ("node{x/slot/core", "expected"),
    ("node=2/slot/core]", "unexpected ']'"),
])
def test_bad_shapes_say_where(text, where):
    with pytest.raises(ValueError, match=where.replace("[", r"\[")):
        parse_shape(text)


def test_taskmaps():
    assert order_tasks([2, 2], None) == [0, 0, 1, 1]
    assert order_tasks([2, 2], {"scheme": "cyclic", "value": ""}) == [0, 1, 0, 1]
    assert order_tasks([3, 1], {"scheme": "cyclic", "value": "2"}) == [0, 0, 1, 0]
    assert decode_taskmap("[[0,2,2,1]]") == [0, 0, 1, 1]
    assert decode_taskmap("[[0,2,1,2]]") == [0, 1, 0, 1]
    assert order_tasks([1, 1], {"scheme": "manual", "value": "[[1,1,1,1],[0,1,1,1]]"}) == [1, 0]
    with pytest.raises(ValueError, match="does not match"):
        order_tasks([2, 2], {"scheme": "manual", "value": "[[0,1,4,1]]"})
    with pytest.raises(ValueError, match="invalid block"):
        decode_taskmap("[[0,0,1,1]]")
