"""Tests for strato.jobspec.model: RFC 25 validation, JobspecV1 and summarize().

Why: every submitted job goes through validate_v1, the CLI builds jobspecs with
JobspecV1.from_command, and the scheduler sizes jobs with summarize(); each must agree
with Flux.  The public corpora (STRATO_CONFORMANCE) are read in place.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import corpus_path, needs_corpora

from strato.jobspec import JobspecError, JobspecV1, summarize, validate_v1

CONFORMANCE = corpus_path()
INVALID_V1 = sorted((CONFORMANCE / "jobspec" / "invalid_v1").glob("*.yaml"))
VALID_V1 = sorted((CONFORMANCE / "rfc" / "spec_25").glob("*.yaml")) + sorted(
    (CONFORMANCE / "jobspec" / "valid_v1").glob("*.yaml")
)
# RFC 14 (canonical) jobspecs that are invalid: each breaks a rule version 1 shares.
INVALID_CANONICAL = sorted((CONFORMANCE / "jobspec" / "invalid").glob("*.yaml"))


def load(path: Path) -> Any:
    with open(path, "rb") as stream:
        return yaml.safe_load(stream)


def base() -> dict[str, Any]:
    """A small valid jobspec that the tests below break one piece at a time."""
    return {
        "version": 1,
        "resources": [
            {
                "type": "node",
                "count": 2,
                "with": [
                    {
                        "type": "slot",
                        "count": 2,
                        "label": "default",
                        "with": [{"type": "core", "count": 4}, {"type": "gpu", "count": 1}],
                    }
                ],
            }
        ],
        "tasks": [{"command": ["app", "-v"], "slot": "default", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 60}},
    }


def error_of(js: object) -> str:
    with pytest.raises(JobspecError) as info:
        validate_v1(js)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- conformance corpora ---------------------------------------------------------------


@needs_corpora
def test_corpora_present() -> None:
    assert INVALID_V1, f"no invalid_v1 corpus under {CONFORMANCE}"
    assert VALID_V1, f"no spec_25 corpus under {CONFORMANCE}"


# Words in an invalid_v1 file name, and what the error must then name.
_V1_NAME_WORDS = (
    ("duration", "attributes.system.duration"),
    ("version", "version"),
    ("_count", ".count"),
    ("with", "with"),
    ("type", ".type"),
)


@pytest.mark.parametrize("path", INVALID_V1, ids=lambda p: p.stem)
def test_invalid_v1_corpus_rejected(path: Path) -> None:
    message = error_of(load(path))
    path_part, _, reason = message.partition(": ")
    assert path_part and reason
    for word, field in _V1_NAME_WORDS:
        if word in path.stem:
            assert field in message, f"{path.name}: {message}"


@pytest.mark.parametrize("path", VALID_V1, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_v1_corpus_accepted(path: Path) -> None:
    js = load(path)
    validate_v1(js)
    assert JobspecV1(js).jobspec is js


def _parses(path: Path) -> bool:
    try:
        load(path)
    except yaml.YAMLError:
        return False
    return True


@pytest.mark.parametrize("path", [p for p in INVALID_CANONICAL if _parses(p)], ids=lambda p: p.stem)
def test_invalid_canonical_corpus_rejected(path: Path) -> None:
    error_of(load(path))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("core_count_invalid", "resources[0].with[0].with[0].count: must be an integer >= 1"),
        ("gpu_count_invalid", "resources[0].with[0].with[1].count: must be an integer >= 0"),
        ("node_vertex_missing_count", "resources[0].count: is required"),
        ("node_vertex_zero_count", "resources[0].count: must be an integer >= 1"),
        ("node_vertex_with_toomany", "resources[0].with: must be a list with exactly one entry"),
        ("res_type_unknown", "resources[0].type: must be node or slot"),
        ("slot_node", "resources[0].with[0].type: must be core or gpu"),
        ("version_wrong", "version: must be 1"),
        ("with_whatnow", "resources[0].with[0].type: must be core or gpu"),
    ],
)
@needs_corpora
def test_invalid_v1_messages(name: str, expected: str) -> None:
    assert error_of(load(CONFORMANCE / "jobspec" / "invalid_v1" / f"{name}.yaml")) == expected


@needs_corpora
def test_task_count_per_resource_message() -> None:
    message = error_of(
        load(CONFORMANCE / "jobspec" / "invalid_v1" / "task_count_per_resource.yaml")
    )
    assert message.startswith("tasks[0].count: 'per_resource' is not supported")


# -- rules one at a time -----------------------------------------------------------------


def broken(edit: str, value: Any) -> dict[str, Any]:
    """base() with the item at python-expression path ``edit`` set to ``value``."""
    js = base()
    *parents, last = compile_path(edit)
    node: Any = js
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return js


DELETE = object()


def compile_path(edit: str) -> list[Any]:
    keys: list[Any] = []
    for part in edit.split("/"):
        keys.append(int(part) if part.isdigit() else part)
    return keys


@pytest.mark.parametrize(
    ("edit", "value", "expected"),
    [
        ("version", 2, "version: must be 1"),
        ("version", "1", "version: must be 1"),
        ("version", True, "version: must be 1"),
        ("version", DELETE, "version: is required"),
        ("resources", DELETE, "resources: is required"),
        ("tasks", DELETE, "tasks: is required"),
        ("attributes", DELETE, "attributes: is required"),
        ("resources", [], "resources: must be a list with exactly one entry"),
        ("resources", {}, "resources: must be a list with exactly one entry"),
        ("resources/0", "node", "resources[0]: must be a mapping"),
        ("resources/0/type", ["node"], "resources[0].type: must be node or slot"),
        ("resources/0/type", "core", "resources[0].type: must be node or slot"),
        ("resources/0/type", DELETE, "resources[0].type: is required"),
        ("resources/0/count", 1.5, "resources[0].count: must be an integer >= 1"),
        ("resources/0/count", "2", "resources[0].count: must be an integer >= 1"),
        ("resources/0/count", True, "resources[0].count: must be an integer >= 1"),
        ("resources/0/count", {"min": 1}, "resources[0].count: must be an integer >= 1"),
        ("resources/0/exclusive", "yes", "resources[0].exclusive: must be a boolean"),
        ("resources/0/unit", 1, "resources[0].unit: must be a string"),
        ("resources/0/id", "x", "resources[0]: unknown key 'id'"),
        ("resources/0/with", DELETE, "resources[0].with: is required"),
        ("resources/0/with", 2, "resources[0].with: must be a list with exactly one entry"),
        ("resources/0/with/0/type", "node", "resources[0].with[0].type: must be slot"),
        ("resources/0/with/0/label", DELETE, "resources[0].with[0].label: is required for a slot"),
        ("resources/0/with/0/label", 3, "resources[0].with[0].label: must be a string"),
        ("resources/0/with/0/count", 0, "resources[0].with[0].count: must be an integer >= 1"),
        ("resources/0/with/0/with", DELETE, "resources[0].with[0].with: is required"),
        (
            "resources/0/with/0/with",
            None,
            "resources[0].with[0].with: must be a list of 1 to 2 entries",
        ),
        (
            "resources/0/with/0/with",
            2,
            "resources[0].with[0].with: must be a list of 1 to 2 entries",
        ),
        (
            "resources/0/with/0/with",
            [{"type": "core", "count": 1}, {"type": "gpu", "count": 1}, {"type": "x", "count": 1}],
            "resources[0].with[0].with: must be a list of 1 to 2 entries",
        ),
        (
            "resources/0/with/0/with",
            [],
            "resources[0].with[0].with: must be a list of 1 to 2 entries",
        ),
        (
            "resources/0/with/0/with/0/count",
            0,
            "resources[0].with[0].with[0].count: must be an integer >= 1",
        ),
        (
            "resources/0/with/0/with/1/count",
            -1,
            "resources[0].with[0].with[1].count: must be an integer >= 0",
        ),
        (
            "resources/0/with/0/with/1/type",
            "core",
            "resources[0].with[0].with[1].type: only one core vertex is allowed in a slot",
        ),
        (
            "resources/0/with/0/with/0/type",
            "gpu",
            "resources[0].with[0].with[1].type: only one gpu vertex is allowed in a slot",
        ),
        (
            "resources/0/with/0/with/0/type",
            "memory",
            "resources[0].with[0].with[0].type: must be core or gpu",
        ),
        ("resources/0/with/0/with/0/with", [], "resources[0].with[0].with[0]: unknown key 'with'"),
        (
            "resources/0/with/0/with/0/exclusive",
            True,
            "resources[0].with[0].with[0]: unknown key 'exclusive'",
        ),
        ("tasks", [], "tasks: must be a list with exactly one entry"),
        ("tasks", {"command": ["app"]}, "tasks: must be a list with exactly one entry"),
        ("tasks/0", "app", "tasks[0]: must be a mapping"),
        ("tasks/0/command", "app", "tasks[0].command: must be a non-empty list of strings"),
        ("tasks/0/command", [], "tasks[0].command: must be a non-empty list of strings"),
        ("tasks/0/command", ["app", 1], "tasks[0].command: must be a non-empty list of strings"),
        ("tasks/0/command", DELETE, "tasks[0].command: is required"),
        ("tasks/0/slot", "other", "tasks[0].slot: must name the slot label 'default'"),
        ("tasks/0/slot", 1, "tasks[0].slot: must be a string"),
        ("tasks/0/slot", DELETE, "tasks[0].slot: is required"),
        ("tasks/0/count", DELETE, "tasks[0].count: is required"),
        (
            "tasks/0/count",
            1,
            "tasks[0].count: must be a mapping with exactly one of per_slot or total",
        ),
        (
            "tasks/0/count",
            {},
            "tasks[0].count: must be a mapping with exactly one of per_slot or total",
        ),
        (
            "tasks/0/count",
            {"per_slot": 1, "total": 2},
            "tasks[0].count: must be a mapping with exactly one of per_slot or total",
        ),
        ("tasks/0/count", {"per_slot": 0}, "tasks[0].count.per_slot: must be an integer >= 1"),
        ("tasks/0/count", {"total": 0}, "tasks[0].count.total: must be an integer >= 1"),
        ("tasks/0/count", {"total": "4"}, "tasks[0].count.total: must be an integer >= 1"),
        ("tasks/0/foo", 1, "tasks[0]: unknown key 'foo'"),
        ("tasks/0/attributes", [], "tasks[0].attributes: must be a mapping"),
        ("attributes", None, "attributes: must be a mapping"),
        ("attributes", 1, "attributes: must be a mapping"),
        ("attributes/foo", 1, "attributes: unknown key 'foo'"),
        ("attributes/system", DELETE, "attributes.system: is required"),
        ("attributes/system", [], "attributes.system: must be a mapping"),
        ("attributes/user", [], "attributes.user: must be a mapping"),
        ("attributes/system/duration", DELETE, "attributes.system.duration: is required"),
        ("attributes/system/duration", -1, "attributes.system.duration: must be a number >= 0"),
        ("attributes/system/duration", "1h", "attributes.system.duration: must be a number >= 0"),
        (
            "attributes/system/duration",
            math.nan,
            "attributes.system.duration: must be a number >= 0",
        ),
        ("attributes/system/duration", True, "attributes.system.duration: must be a number >= 0"),
        (
            "attributes/system/duration",
            math.inf,
            "attributes.system.duration: must be finite (use 0 for unlimited)",
        ),
        ("attributes/system/cwd", 1, "attributes.system.cwd: must be a string"),
        ("attributes/system/queue", ["batch"], "attributes.system.queue: must be a string"),
        (
            "attributes/system/environment",
            ["A=1"],
            "attributes.system.environment: must be a mapping",
        ),
        ("attributes/system/shell", "x", "attributes.system.shell: must be a mapping"),
        ("attributes/system/job", {"name": 1}, "attributes.system.job.name: must be a string"),
        (
            "attributes/system/dependencies",
            {"scheme": "afterok"},
            "attributes.system.dependencies: must be a list",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "afterok", "value": 1}],
            "attributes.system.dependencies[0].value: must be a string",
        ),
        (
            "attributes/system/dependencies",
            ["afterok"],
            "attributes.system.dependencies[0]: must be a mapping",
        ),
        (
            "attributes/system/constraints",
            ["foo"],
            "attributes.system.constraints: must be a mapping",
        ),
        (
            "attributes/system/constraints",
            {"colour": ["red"]},
            "attributes.system.constraints: unknown constraint operator 'colour'",
        ),
        (
            "attributes/system/constraints",
            {"properties": "foo"},
            "attributes.system.constraints.properties: must be a list",
        ),
        (
            "attributes/system/constraints",
            {"not": [{"ranks": [0]}]},
            "attributes.system.constraints.not[0].ranks[0]: must be a string",
        ),
        (
            "attributes/system/preemptible-after",
            -5,
            "attributes.system.preemptible-after: must be a number >= 0",
        ),
        ("extra", 1, "jobspec: unknown key 'extra'"),
    ],
)
def test_rule(edit: str, value: Any, expected: str) -> None:
    assert error_of(broken(edit, value)) == expected


def test_not_a_mapping() -> None:
    assert error_of([]) == "jobspec: must be a mapping"
    assert error_of(None) == "jobspec: must be a mapping"


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        ("resources/0/exclusive", True),
        ("resources/0/with/0/exclusive", False),
        ("resources/0/with/0/with/1/count", 0),  # flux-core accepts gpu: 0
        ("resources/0/with/0/with/0/unit", "core"),
        ("tasks/0/count", {"total": 3}),
        ("tasks/0/count", {"per_slot": 2}),
        ("attributes/system/duration", 0),
        ("attributes/system/duration", 3600.5),
        ("attributes/user", {"anything": [1, {"x": None}]}),
        ("attributes/system/cwd", "/tmp"),
        ("attributes/system/environment", {"HOME": "/home/u"}),
        ("attributes/system/job", {"name": "sleepy"}),
        ("attributes/system/exec", {"test": {"run_duration": "1s"}}),
        ("attributes/system/dependencies", [{"scheme": "afterok", "value": "f1"}]),
        (
            "attributes/system/constraints",
            {"and": [{"properties": ["amd"]}, {"not": [{"hostlist": ["n[1-2]"]}]}]},
        ),
        ("attributes/system/unknown-but-allowed", {"x": 1}),
    ],
)
def test_valid_variants(edit: str, value: Any) -> None:
    validate_v1(broken(edit, value))


def test_slot_at_top_without_gpu() -> None:
    js = base()
    js["resources"] = [copy.deepcopy(js["resources"][0]["with"][0])]
    js["resources"][0]["with"] = [{"type": "core", "count": 1}]
    validate_v1(js)


def test_slot_label_checked_after_attributes() -> None:
    # As flux-core's invalid_v1/duration_missing.yaml: a wrong label and no duration.
    js = base()
    js["tasks"][0]["slot"] = "foo"
    del js["attributes"]["system"]["duration"]
    assert error_of(js) == "attributes.system.duration: is required"
    js["attributes"]["system"]["duration"] = 0
    assert error_of(js) == "tasks[0].slot: must name the slot label 'default'"


def test_gpu_only_slot_rejected() -> None:
    js = base()
    js["resources"][0]["with"][0]["with"] = [{"type": "gpu", "count": 1}]
    assert error_of(js) == "resources[0].with[0].with: a slot must contain a core vertex"


def test_validation_does_not_modify() -> None:
    js = base()
    before = copy.deepcopy(js)
    validate_v1(js)
    assert js == before


# -- summarize --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example1", (4, 4, 4, 2, 0)),
        ("use_case_1.1", (4, 4, 4, 1, 0)),
        ("use_case_2.1", (5, 4, 4, 1, 0)),
        ("use_case_2.2", (10, None, 10, 2, 0)),
        ("use_case_2.3", (10, None, 10, 2, 1)),
        ("use_case_2.4", (16, 4, 16, 1, 1)),
    ],
)
@needs_corpora
def test_summarize_use_cases(name: str, expected: tuple[Any, ...]) -> None:
    summary = summarize(load(CONFORMANCE / "rfc" / "spec_25" / f"{name}.yaml"))
    got = tuple(
        summary[k] for k in ("ntasks", "nnodes", "nslots", "cores_per_slot", "gpus_per_slot")
    )
    assert got == expected
    assert summary["exclusive"] is False
    assert summary["duration"] == 3600.0


def test_summarize_keys_and_exclusive() -> None:
    js = base()
    js["resources"][0]["exclusive"] = True
    assert summarize(js) == {
        "ntasks": 4,
        "nnodes": 2,
        "nslots": 4,
        "cores_per_slot": 4,
        "gpus_per_slot": 1,
        "exclusive": True,
        "duration": 60.0,
    }


# -- JobspecV1 ---------------------------------------------------------------------------


def test_from_command_defaults() -> None:
    js = JobspecV1.from_command(["hostname"], environment={})
    assert js.jobspec == {
        "resources": [
            {"type": "slot", "count": 1, "with": [{"type": "core", "count": 1}], "label": "task"}
        ],
        "tasks": [{"command": ["hostname"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0.0, "environment": {}}},
        "version": 1,
    }


def test_from_command_environment_defaults_to_os_environ() -> None:
    js = JobspecV1.from_command(["true"])
    assert js.getattr("system.environment") == dict(os.environ)


def test_from_command_tasks_cores_gpus() -> None:
    js = JobspecV1.from_command(
        ["app"], num_tasks=4, cores_per_task=2, gpus_per_task=1, environment={}
    )
    slot = js.resources[0]
    assert slot["type"] == "slot" and slot["count"] == 4 and slot["label"] == "task"
    assert slot["with"] == [{"type": "core", "count": 2}, {"type": "gpu", "count": 1}]
    assert summarize(js.jobspec)["ntasks"] == 4


def test_from_command_zero_gpus_omits_gpu() -> None:
    js = JobspecV1.from_command(["app"], gpus_per_task=0, environment={})
    assert js.resources[0]["with"] == [{"type": "core", "count": 1}]


def test_from_command_nodes_even() -> None:
    js = JobspecV1.from_command(["app"], num_tasks=8, num_nodes=4, exclusive=True, environment={})
    node = js.resources[0]
    assert node["type"] == "node" and node["count"] == 4 and node["exclusive"] is True
    assert node["with"][0]["count"] == 2
    assert js.tasks[0]["count"] == {"per_slot": 1}
    assert js.summarize() == {
        "ntasks": 8,
        "nnodes": 4,
        "nslots": 8,
        "cores_per_slot": 1,
        "gpus_per_slot": 0,
        "exclusive": True,
        "duration": 0.0,
    }


def test_from_command_nodes_uneven_uses_total() -> None:
    js = JobspecV1.from_command(["app"], num_tasks=5, num_nodes=4, environment={})
    assert js.resources[0]["with"][0]["count"] == 2  # ceil(5 / 4)
    assert js.tasks[0]["count"] == {"total": 5}
    assert "exclusive" not in js.resources[0]
    assert js.summarize()["ntasks"] == 5


def test_from_command_attributes() -> None:
    js = JobspecV1.from_command(
        ["app"], duration=90.0, cwd="/work", environment={"A": "1"}, name="myjob"
    )
    system = js.attributes["system"]
    assert system["duration"] == 90.0
    assert system["cwd"] == "/work"
    assert system["environment"] == {"A": "1"}
    assert system["job"] == {"name": "myjob"}
    assert JobspecV1.from_command(["app"], duration="1.5m", environment={}).duration == 90.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_tasks": 0},
        {"num_tasks": 1.5},
        {"cores_per_task": 0},
        {"gpus_per_task": -1},
        {"num_nodes": 0},
        {"num_nodes": 3, "num_tasks": 2},
        {"exclusive": True},
        {"duration": -1},
        {"duration": "1y"},
        {"duration": math.inf},
    ],
)
def test_from_command_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JobspecV1.from_command(["app"], environment={}, **kwargs)


@pytest.mark.parametrize("command", [[], "app", ["app", 1]])
def test_from_command_bad_command(command: Any) -> None:
    with pytest.raises(ValueError):
        JobspecV1.from_command(command, environment={})


def test_setattr_and_getattr() -> None:
    js = JobspecV1.from_command(["app"], environment={})
    js.setattr("system.exec.test.run_duration", "0.01s")
    js.setattr("duration", 30)
    js.setattr("user.project", "x")
    js.setattr("attributes.system.queue", "batch")
    system = js.attributes["system"]
    assert system["exec"] == {"test": {"run_duration": "0.01s"}}
    assert system["duration"] == 30
    assert system["queue"] == "batch"
    assert js.attributes["user"] == {"project": "x"}
    assert js.getattr("exec.test.run_duration") == "0.01s"
    assert js.getattr("user.project") == "x"
    with pytest.raises(KeyError):
        js.getattr("system.nothing")
    js.validate()


def test_setattr_through_non_mapping() -> None:
    js = JobspecV1.from_command(["app"], environment={})
    js.setattr("system.cwd", "/tmp")
    with pytest.raises(TypeError):
        js.setattr("system.cwd.x", 1)
    with pytest.raises(ValueError):
        js.setattr("system..x", 1)


def test_duration_property() -> None:
    js = JobspecV1.from_command(["app"], environment={})
    js.duration = "2h"
    assert js.duration == 7200.0
    with pytest.raises(ValueError):
        js.duration = -3


def test_constructor_validates() -> None:
    js = base()
    js["version"] = 2
    with pytest.raises(JobspecError, match=r"^version: must be 1$"):
        JobspecV1(js)
    assert JobspecV1(js, validate=False).version == 2


def test_dumps_and_from_json_round_trip() -> None:
    js = JobspecV1.from_command(["echo", "héllo"], num_tasks=2, environment={"X": "y"})
    text = js.dumps()
    assert "héllo" in text and "\n" not in text
    again = JobspecV1.from_json(text)
    assert again == js
    assert JobspecV1.from_json(text.encode()) == js
    assert json.loads(js.dumps(indent=2)) == js.jobspec


def test_from_json_errors() -> None:
    with pytest.raises(JobspecError, match=r"^jobspec: invalid JSON"):
        JobspecV1.from_json("{not json")
    with pytest.raises(JobspecError, match=r"^jobspec: must be a mapping$"):
        JobspecV1.from_json("[]")


@needs_corpora
def test_from_yaml_stream_and_file() -> None:
    path = CONFORMANCE / "rfc" / "spec_25" / "use_case_2.4.yaml"
    from_text = JobspecV1.from_yaml_stream(path.read_text())
    with open(path) as stream:
        from_stream = JobspecV1.from_yaml_stream(stream)
    from_file = JobspecV1.from_yaml_file(path)
    assert from_text == from_stream == from_file
    assert from_file.summarize()["ntasks"] == 16


@needs_corpora
def test_from_yaml_errors() -> None:
    with pytest.raises(JobspecError, match=r"^jobspec: invalid YAML"):
        JobspecV1.from_yaml_stream("foo: bar: baz")
    with pytest.raises(JobspecError, match=r"^version: must be 1$"):
        JobspecV1.from_yaml_file(CONFORMANCE / "jobspec" / "invalid_v1" / "version_wrong.yaml")


def test_import_is_light() -> None:
    code = "import sys, strato.jobspec; sys.exit('yaml' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_batch_and_nest_builders_and_round_trip():
    from strato.jobspec.model import JobspecV1, summarize, validate_v1

    b = JobspecV1.from_batch_command("#!/bin/sh\necho hi\n", ["x"], num_slots=4,
                                     num_nodes=2, exclusive=True, environment={})
    validate_v1(b.jobspec)
    assert b.jobspec["tasks"][0] == {"command": ["strato", "start", "{{tmpdir}}/script", "x"],
                                     "slot": "task", "count": {"total": 1}}
    assert b.jobspec["attributes"]["system"]["files"]["script"]["data"].endswith("echo hi\n")
    assert summarize(b.jobspec)["nslots"] == 4 and summarize(b.jobspec)["nnodes"] == 2
    n = JobspecV1.from_nest_command(["sleep", "1"], num_nodes=3, environment={})
    validate_v1(n.jobspec)
    assert n.jobspec["tasks"][0]["command"][:3] == ["strato", "start", "sleep"]
    assert n.jobspec["tasks"][0]["count"] == {"total": 1}  # one broker for the whole job
    assert JobspecV1.from_json(b.dumps()) == b
    import yaml

    assert JobspecV1.from_yaml_stream(yaml.safe_dump(n.jobspec)) == n
