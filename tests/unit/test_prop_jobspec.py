"""Property tests of jobspecs, version 1 (RFC 25) and canonical (RFC 14): any decoded
document, any text and any damage to a valid jobspec either validates or fails with a
one-line JobspecError; a jobspec that validates can be summarized and sent.

Why: jobspecs are the main input users send the instance; ingest must answer every
one with a verdict, never an exception of another kind.
"""

from __future__ import annotations

import copy
import json

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import json_values, parse_or_error

from strato.jobspec.canonical import load_jobspec, validate_canonical
from strato.jobspec.model import JobspecError, JobspecV1, summarize, validate_v1

VALID = JobspecV1.from_command(["hostname"], num_tasks=4, cores_per_task=2, gpus_per_task=1,
                               num_nodes=2, duration=60, environment={"A": "1"},
                               name="x").jobspec


def _paths(obj, prefix=()):
    """Every path to a value in a decoded document."""
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, (*prefix, i))


PATHS = [p for p in _paths(VALID) if p]


@st.composite
def damaged(draw) -> dict:
    """The valid jobspec with one to three values replaced (or keys added)."""
    js = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        node = js
        for part in path[:-1]:
            if not isinstance(node, (dict, list)):
                break
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(node, dict) and draw(st.booleans()):
                node[draw(st.text(max_size=8))] = draw(json_values)
            elif isinstance(node, (dict, list)):
                try:
                    node[path[-1]] = draw(json_values | st.integers(10**300, 10**400))
                except (IndexError, TypeError):
                    pass
    return js


def _check_valid_v1(js) -> None:
    """What a caller may do with a jobspec that validated."""
    s = summarize(js)
    assert s["ntasks"] >= 1 and s["nslots"] >= 1
    assert s["duration"] >= 0
    json.dumps(js)  # it can be sent


def _huge_duration() -> dict:
    js = copy.deepcopy(VALID)
    js["attributes"]["system"]["duration"] = 10**400  # once valid, then summarize overflowed
    return js


@given(damaged())
@example(_huge_duration())
def test_v1_damaged(js: dict) -> None:
    ok, _ = parse_or_error(validate_v1, js, error=JobspecError)
    if ok:
        _check_valid_v1(js)


@given(json_values)
def test_v1_any_document(js) -> None:
    ok, _ = parse_or_error(validate_v1, js, error=JobspecError)
    if ok:
        _check_valid_v1(js)


def _with_system(key: str, value) -> dict:
    js = copy.deepcopy(VALID)
    js["attributes"]["system"][key] = value
    return js


@given(damaged() | json_values)
@example(_with_system("environment", {"A\nB": 1}))  # names once printed raw: two lines
@example(_with_system("job", {"x\ry": 1}))
@example(_with_system("constraints", {"a\u2028b": 1}))
@example(_with_system("duration", 10**400))
def test_canonical_any_document(js) -> None:
    parse_or_error(validate_canonical, js, error=JobspecError)


json_text = st.builds(json.dumps, damaged()) | st.text(alphabet='{}[]":,0123456789 aeflnrstu',
                                                       max_size=40)


@given(json_text)
@example("[" * 100000)  # nested too deeply for the JSON decoder
@example('{"version": 1e999}')
def test_v1_from_json(text: str) -> None:
    parse_or_error(JobspecV1.from_json, text, error=JobspecError)


yaml_text = st.text(max_size=40) | st.text(alphabet="-:[]{}!&*|>'\"#%@ \n\tab01", max_size=40)


@given(yaml_text)
@example("a: 2001-13-45")  # a timestamp PyYAML cannot build: ValueError, not YAMLError
@example("[" * 5000)  # nested too deeply: RecursionError
@example("a: !!binary x")
def test_v1_from_yaml(text: str) -> None:
    parse_or_error(JobspecV1.from_yaml_stream, text, error=JobspecError)


@given(yaml_text | st.binary(max_size=40))
def test_canonical_load(text) -> None:
    ok, data = parse_or_error(load_jobspec, text, error=JobspecError)
    if ok:
        assert isinstance(data, dict)
        parse_or_error(validate_canonical, data, error=JobspecError)


@given(st.lists(st.text(max_size=5), max_size=3) | st.text(max_size=3) | st.none(),
       st.integers(-2, 5) | st.none(), st.integers(-2, 5), st.integers(-2, 5) | st.none(),
       st.integers(-2, 5) | st.none(), st.booleans(),
       st.floats() | st.text(alphabet="0123456789.smhd-", max_size=6))
def test_from_command(command, ntasks, cores, gpus, nodes, exclusive, duration) -> None:
    ok, js = parse_or_error(JobspecV1.from_command, command, ntasks, cores, gpus, nodes,
                            exclusive, duration, error=(ValueError, TypeError))
    if ok:
        validate_v1(js.jobspec)
        _check_valid_v1(js.jobspec)
