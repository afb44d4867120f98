"""Tests for strato.jobspec.canonical: RFC 14 validation and load_jobspec().

Why: ``strato job validate --canonical`` and every tool that reads canonical jobspecs
(any version, any resource graph, count ranges) rely on validate_canonical agreeing
with Flux on the public corpora, and on each error being one line that names the field.
The conformance corpora (STRATO_CONFORMANCE) are read in place, never copied.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import corpus_path, needs_corpora

from strato.jobspec.canonical import load_jobspec, validate_canonical
from strato.jobspec.model import JobspecError, validate_v1

CONFORMANCE = corpus_path()
JOBSPEC = CONFORMANCE / "jobspec"


def corpus(folder: Path) -> list[Path]:
    """The jobspecs of a corpus folder (YAML or JSON; an RFC's schema.json is not one)."""
    return sorted(
        p for p in folder.glob("*")
        if p.suffix in (".yaml", ".yml", ".json") and p.name != "schema.json"
    )


VALID = corpus(JOBSPEC / "valid") + corpus(CONFORMANCE / "rfc" / "spec_14")
INVALID = corpus(JOBSPEC / "invalid")
SPEC_26 = corpus(CONFORMANCE / "rfc" / "spec_26")


def read(path: Path) -> dict[str, Any]:
    return load_jobspec(path.read_bytes(), path.name)


def error_of(js: object) -> str:
    with pytest.raises(JobspecError) as info:
        validate_canonical(js)
    message = str(info.value)
    assert "\n" not in message
    return message


def corpus_error(path: Path) -> str:
    """The one-line error for a corpus file, whether its YAML or its content is bad."""
    try:
        js = read(path)
    except JobspecError as exc:
        message = str(exc)
    else:
        message = error_of(js)
    assert "\n" not in message
    return message


# -- conformance corpora ---------------------------------------------------------------

# What each file of invalid/ must be rejected for (its name says why).
INVALID_MESSAGES = {
    "attributes_bad_entry": "attributes: unknown key 'foo'",
    "attributes_not_mapping": "attributes: must be a mapping, not a number",
    "attributes_null": "attributes: must be a mapping, not null",
    "constraints_not_object": "attributes.system.constraints: must be a mapping, not a list",
    "dependencies_not_array": "attributes.system.dependencies: must be a list, not a mapping",
    "dependency_invalid": "attributes.system.dependencies[0].value: must be a string, not a number",
    "invalid_yaml1": "invalid_yaml1.yaml: invalid YAML: mapping values are not allowed here"
    " at line 1",
    "missing_attributes": "attributes: is required",
    "missing_resources": "resources: is required",
    "missing_tasks": "tasks: is required",
    "resource_count_bad_exp_min": "resources[0].count: min must be >= 2 with operator '^'",
    "resource_count_bad_mult_operand": "resources[0].count: operand must be >= 2 with operator"
    " '*'",
    "resource_count_bad_operator": "resources[0].count: operator must be one of '+', '*', '^'",
    "resource_count_is_zero": "resources[0].count: must be >= 1",
    "resource_count_min_is_zero": "resources[0].count: min must be >= 1",
    "resource_count_min_not_int": "resources[0].count: min must be an integer, not a string",
    "resource_count_missing_min": "resources[0].count: min is required",
    "resource_count_missing_operand": "resources[0].count: operand is required with operator",
    "resource_count_missing_operator": "resources[0].count: operator is required with operand",
    "resource_count_negative": "resources[0].with[0].count: must be >= 1",
    "resource_count_operand_is_zero": "resources[0].count: operand must be >= 1",
    "resource_count_operator_not_char": "resources[0].count: operator must be one of '+', '*',"
    " '^'",
    "resource_count_scalar_bad_value": "resources[0].count: 'bar' is not an integer, idset"
    " (RFC 22) or range (RFC 45)",
    "resource_exclusive_invalid": "resources[0].with[0].exclusive: must be a boolean"
    " (true or false)",
    "resource_exclusive_not_scalar": "resources[0].exclusive: must be a boolean (true or false)",
    "resource_id_not_scalar": "resources[0].id: must be a string, not a list",
    "resource_missing_count": "resources[0].with[0].count: is required",
    "resource_not_mapping": "resources[0]: must be a mapping, not a list",
    "resource_slot_not_labelled": "resources[0].label: is required for a slot",
    "resource_slot_with_notarray": "resources[0].with: must be a non-empty list of resource"
    " vertices",
    "resource_type_not_string": "resources[0].with[0].type: must be a string, not a list",
    "task_command_array_notstring": "tasks[0].command[0]: must be a string, not a number",
    "task_command_not_array": "tasks[0].command: must be a non-empty list of strings",
    "task_count_empty": "tasks[0].count: must have exactly one of per_slot, per_resource or"
    " total",
    "task_count_not_mapping": "tasks[0].count: must be a mapping, not a number",
    "task_count_per_slot_zero": "tasks[0].count.per_slot: must be an integer >= 1",
    "task_count_total_and_per_slot": "tasks[0].count: must have exactly one of per_slot,"
    " per_resource or total",
    "task_count_total_zero": "tasks[0].count.total: must be an integer >= 1",
    "task_missing_count": "tasks[0].count: is required",
    "task_not_mapping": "tasks[0]: must be a mapping, not a string",
    "tasks_not_sequence": "tasks: must be a non-empty list of tasks",
    "version_is_zero": "version: must be an integer >= 1",
    "version_not_scalar": "version: must be an integer >= 1",
}


def field_named_by(stem: str) -> str:
    """The part of the error a file name promises, for files not in INVALID_MESSAGES."""
    for prefix, field in (
        ("invalid_yaml", "invalid YAML"),
        ("missing_", stem.removeprefix("missing_")),
        ("version", "version"),
        ("resource", "resources"),
        ("task", "tasks"),
        ("attributes", "attributes"),
        ("constraint", "attributes.system.constraints"),
        ("dependenc", "attributes.system.dependencies"),
    ):
        if stem.startswith(prefix):
            return field
    return ""


@needs_corpora
def test_corpora_present() -> None:
    assert VALID and INVALID and SPEC_26, f"corpora missing under {CONFORMANCE}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_corpus_accepted(path: Path) -> None:
    js = read(path)
    before = copy.deepcopy(js)
    validate_canonical(js)
    assert js == before


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_corpus_rejected(path: Path) -> None:
    message = corpus_error(path)
    where, _, reason = message.partition(": ")
    assert where and reason
    expected = INVALID_MESSAGES.get(path.stem)
    if expected is not None:
        assert message == expected
    else:
        assert field_named_by(path.stem) in message


@pytest.mark.parametrize("path", SPEC_26, ids=lambda p: p.stem)
def test_rfc26_examples_are_valid_dependencies(path: Path) -> None:
    import yaml

    js = base()
    js["attributes"]["system"]["dependencies"] = yaml.safe_load(path.read_text())
    validate_canonical(js)


# Not valid_v1/: version 1 allows a gpu count of 0 (flux-core's gpu_count_zero.yaml),
# which RFC 14 does not.
@pytest.mark.parametrize(
    "path", corpus(CONFORMANCE / "rfc" / "spec_25"), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_v1_use_cases_are_canonical_too(path: Path) -> None:
    js = read(path)
    validate_v1(js)
    validate_canonical(js)


# -- rules one at a time -----------------------------------------------------------------


def base() -> dict[str, Any]:
    """A valid canonical jobspec (not version 1) that the tests break piece by piece."""
    return {
        "version": 999,
        "resources": [
            {
                "type": "switch",
                "count": 1,
                "with": [
                    {
                        "type": "slot",
                        "count": {"min": 2, "max": 8, "operator": "*", "operand": 2},
                        "label": "default",
                        "with": [
                            {"type": "node", "count": 1, "exclusive": True},
                            {"type": "memory", "count": 4, "unit": "GB"},
                        ],
                    }
                ],
            }
        ],
        "tasks": [{"command": ["app", "-v"], "slot": "default", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 60}},
    }


DELETE = object()


def broken(edit: str, value: Any) -> dict[str, Any]:
    """base() with the item at ``edit`` ("a/0/b") set to ``value`` (or deleted)."""
    js = base()
    *parents, last = (int(p) if p.isdigit() else p for p in edit.split("/"))
    node: Any = js
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return js


SLOT = "resources/0/with/0"
SLOT_PATH = "resources[0].with[0]"


@pytest.mark.parametrize(
    ("edit", "value", "expected"),
    [
        # top level
        ("version", DELETE, "version: is required"),
        ("resources", DELETE, "resources: is required"),
        ("tasks", DELETE, "tasks: is required"),
        ("attributes", DELETE, "attributes: is required"),
        ("extra", 1, "jobspec: unknown key 'extra'"),
        ("version", 0, "version: must be an integer >= 1"),
        ("version", -1, "version: must be an integer >= 1"),
        ("version", 4.2, "version: must be an integer >= 1"),
        ("version", 1.0, "version: must be an integer >= 1"),
        ("version", "1", "version: must be an integer >= 1"),
        ("version", True, "version: must be an integer >= 1"),
        ("version", {"foo": 1}, "version: must be an integer >= 1"),
        # resources
        ("resources", [], "resources: must be a non-empty list of resource vertices"),
        ("resources", {"type": "slot"}, "resources: must be a non-empty list of resource vertices"),
        ("resources/0", "node", "resources[0]: must be a mapping, not a string"),
        ("resources/0/type", DELETE, "resources[0].type: is required"),
        ("resources/0/type", 3, "resources[0].type: must be a string, not a number"),
        ("resources/0/type", "", "resources[0].type: must not be empty"),
        ("resources/0/count", DELETE, "resources[0].count: is required"),
        ("resources/0/count", 0, "resources[0].count: must be >= 1"),
        ("resources/0/count", -3, "resources[0].count: must be >= 1"),
        (
            "resources/0/count",
            1.5,
            "resources[0].count: must be an integer >= 1, an idset or range string, or a "
            "mapping with min, not a number",
        ),
        (
            "resources/0/count",
            True,
            "resources[0].count: must be an integer >= 1, an idset or range string, or a "
            "mapping with min, not a boolean",
        ),
        (
            "resources/0/count",
            [1, 2],
            "resources[0].count: must be an integer >= 1, an idset or range string, or a "
            "mapping with min, not a list",
        ),
        (
            "resources/0/count",
            None,
            "resources[0].count: must be an integer >= 1, an idset or range string, or a "
            "mapping with min, not null",
        ),
        ("resources/0/unit", ["GB"], "resources[0].unit: must be a string, not a list"),
        ("resources/0/label", ["a"], "resources[0].label: must be a string, not a list"),
        ("resources/0/id", 7, "resources[0].id: must be a string, not a number"),
        (
            "resources/0/exclusive",
            "yes",
            "resources[0].exclusive: must be a boolean (true or false)",
        ),
        ("resources/0/exclusive", 1, "resources[0].exclusive: must be a boolean (true or false)"),
        ("resources/0/requires", "x", "resources[0]: unknown key 'requires'"),
        (
            "resources/0/with",
            42,
            "resources[0].with: must be a non-empty list of resource vertices",
        ),
        (
            "resources/0/with",
            [],
            "resources[0].with: must be a non-empty list of resource vertices",
        ),
        (
            "resources/0/with",
            None,
            "resources[0].with: must be a non-empty list of resource vertices",
        ),
        (f"{SLOT}/label", DELETE, f"{SLOT_PATH}.label: is required for a slot"),
        (f"{SLOT}/label", "", f"{SLOT_PATH}.label: must not be empty"),
        (f"{SLOT}/label", 5, f"{SLOT_PATH}.label: must be a string, not a number"),
        (f"{SLOT}/with", DELETE, f"{SLOT_PATH}.with: is required for a slot"),
        (f"{SLOT}/with", 2, f"{SLOT_PATH}.with: must be a non-empty list of resource vertices"),
        (f"{SLOT}/with/0/count", 0, f"{SLOT_PATH}.with[0].count: must be >= 1"),
        (f"{SLOT}/with/1", ["memory"], f"{SLOT_PATH}.with[1]: must be a mapping, not a list"),
        (f"{SLOT}/with/1/type", DELETE, f"{SLOT_PATH}.with[1].type: is required"),
        # count mappings
        (f"{SLOT}/count", {}, f"{SLOT_PATH}.count: min is required"),
        (f"{SLOT}/count", {"max": 2}, f"{SLOT_PATH}.count: min is required"),
        (f"{SLOT}/count", {"min": 0}, f"{SLOT_PATH}.count: min must be >= 1"),
        (f"{SLOT}/count", {"min": "1"}, f"{SLOT_PATH}.count: min must be an integer, not a string"),
        (f"{SLOT}/count", {"min": 1.0}, f"{SLOT_PATH}.count: min must be an integer, not a number"),
        (f"{SLOT}/count", {"min": 1, "max": 0}, f"{SLOT_PATH}.count: max must be >= 1"),
        (
            f"{SLOT}/count",
            {"min": 1, "max": [2]},
            f"{SLOT_PATH}.count: max must be an integer, not a list",
        ),
        (f"{SLOT}/count", {"min": 2, "max": 1}, f"{SLOT_PATH}.count: max must be >= min"),
        (
            f"{SLOT}/count",
            {"min": 2, "max": 1, "operator": "+", "operand": 1},
            f"{SLOT_PATH}.count: max must be >= min",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "operator": "+"},
            f"{SLOT_PATH}.count: operand is required with operator",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "operand": 1},
            f"{SLOT_PATH}.count: operator is required with operand",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 4, "operator": "-", "operand": 1},
            f"{SLOT_PATH}.count: operator must be one of '+', '*', '^'",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 4, "operator": "add", "operand": 1},
            f"{SLOT_PATH}.count: operator must be one of '+', '*', '^'",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 4, "operator": ["+"], "operand": 1},
            f"{SLOT_PATH}.count: operator must be one of '+', '*', '^'",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 4, "operator": "+", "operand": 0},
            f"{SLOT_PATH}.count: operand must be >= 1",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 4, "operator": "*", "operand": 1},
            f"{SLOT_PATH}.count: operand must be >= 2 with operator '*'",
        ),
        (
            f"{SLOT}/count",
            {"min": 2, "max": 64, "operator": "^", "operand": 1},
            f"{SLOT_PATH}.count: operand must be >= 2 with operator '^'",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "max": 64, "operator": "^", "operand": 2},
            f"{SLOT_PATH}.count: min must be >= 2 with operator '^'",
        ),
        (
            f"{SLOT}/count",
            {"min": 1, "step": 2},
            f"{SLOT_PATH}.count: unknown key 'step'",
        ),
        # tasks
        ("tasks", [], "tasks: must be a non-empty list of tasks"),
        ("tasks", {"command": ["app"]}, "tasks: must be a non-empty list of tasks"),
        ("tasks/0", "app", "tasks[0]: must be a mapping, not a string"),
        ("tasks/0/command", DELETE, "tasks[0].command: is required"),
        ("tasks/0/slot", DELETE, "tasks[0].slot: is required"),
        ("tasks/0/count", DELETE, "tasks[0].count: is required"),
        ("tasks/0/command", "app", "tasks[0].command: must be a non-empty list of strings"),
        ("tasks/0/command", [], "tasks[0].command: must be a non-empty list of strings"),
        ("tasks/0/command", ["app", 1], "tasks[0].command[1]: must be a string, not a number"),
        ("tasks/0/slot", 1, "tasks[0].slot: must be a non-empty string (a slot label)"),
        ("tasks/0/slot", "", "tasks[0].slot: must be a non-empty string (a slot label)"),
        ("tasks/0/count", 1, "tasks[0].count: must be a mapping, not a number"),
        (
            "tasks/0/count",
            {},
            "tasks[0].count: must have exactly one of per_slot, per_resource or total",
        ),
        (
            "tasks/0/count",
            {"per_slot": 1, "total": 2},
            "tasks[0].count: must have exactly one of per_slot, per_resource or total",
        ),
        (
            "tasks/0/count",
            {"per_node": 1},
            "tasks[0].count: unknown key 'per_node' (use per_slot, per_resource or total)",
        ),
        ("tasks/0/count", {"per_slot": 0}, "tasks[0].count.per_slot: must be an integer >= 1"),
        ("tasks/0/count", {"total": 0}, "tasks[0].count.total: must be an integer >= 1"),
        ("tasks/0/count", {"total": "4"}, "tasks[0].count.total: must be an integer >= 1"),
        ("tasks/0/count", {"total": True}, "tasks[0].count.total: must be an integer >= 1"),
        (
            "tasks/0/count",
            {"per_resource": 1},
            "tasks[0].count.per_resource: must be a mapping with type and count, not a number",
        ),
        (
            "tasks/0/count",
            {"per_resource": {"type": "node"}},
            "tasks[0].count.per_resource.count: is required",
        ),
        (
            "tasks/0/count",
            {"per_resource": {"type": "", "count": 1}},
            "tasks[0].count.per_resource.type: must be a non-empty string",
        ),
        (
            "tasks/0/count",
            {"per_resource": {"type": "node", "count": 0}},
            "tasks[0].count.per_resource.count: must be an integer >= 1",
        ),
        ("tasks/0/distribution", 3, "tasks[0].distribution: must be a string"),
        ("tasks/0/attributes", [], "tasks[0].attributes: must be a mapping, not a list"),
        (
            "tasks/0/attributes",
            {"environment": {"X": 1}},
            "tasks[0].attributes.environment.X: must be a string or null, not a number",
        ),
        ("tasks/0/foo", 1, "tasks[0]: unknown key 'foo'"),
        # attributes
        ("attributes", None, "attributes: must be a mapping, not null"),
        ("attributes", [], "attributes: must be a mapping, not a list"),
        ("attributes/foo", 1, "attributes: unknown key 'foo'"),
        ("attributes/system", None, "attributes.system: must be a mapping, not null"),
        ("attributes/user", None, "attributes.user: must be a mapping, not null"),
        ("attributes/user", "x", "attributes.user: must be a mapping, not a string"),
        ("attributes/system/duration", -1, "attributes.system.duration: must be a number >= 0"),
        ("attributes/system/duration", "1h", "attributes.system.duration: must be a number >= 0"),
        ("attributes/system/duration", True, "attributes.system.duration: must be a number >= 0"),
        (
            "attributes/system/duration",
            math.nan,
            "attributes.system.duration: must be a number >= 0",
        ),
        ("attributes/system/duration", math.inf, "attributes.system.duration: must be finite"),
        (
            "attributes/system/preemptible-after",
            -5,
            "attributes.system.preemptible-after: must be a number >= 0",
        ),
        ("attributes/system/cwd", 1, "attributes.system.cwd: must be a string, not a number"),
        ("attributes/system/queue", ["q"], "attributes.system.queue: must be a string, not a list"),
        ("attributes/system/bank", 1, "attributes.system.bank: must be a string, not a number"),
        (
            "attributes/system/project",
            1,
            "attributes.system.project: must be a string, not a number",
        ),
        (
            "attributes/system/environment",
            ["A=1"],
            "attributes.system.environment: must be a mapping, not a list",
        ),
        (
            "attributes/system/environment",
            {"A": 1},
            "attributes.system.environment.A: must be a string or null, not a number",
        ),
        (
            "attributes/system/environment",
            {1: "x"},
            "attributes.system.environment: variable name 1 must be a string",
        ),
        ("attributes/system/job", "x", "attributes.system.job: must be a mapping, not a string"),
        (
            "attributes/system/job",
            {"name": 1},
            "attributes.system.job.name: must be a string, not a number",
        ),
        (
            "attributes/system/shell",
            "x",
            "attributes.system.shell: must be a mapping, not a string",
        ),
        (
            "attributes/system/shell",
            {"options": []},
            "attributes.system.shell.options: must be a mapping",
        ),
        ("attributes/system/files", [], "attributes.system.files: must be a mapping, not a list"),
        (
            "attributes/system/dependencies",
            {"scheme": "afterok"},
            "attributes.system.dependencies: must be a list, not a mapping",
        ),
        (
            "attributes/system/dependencies",
            [],
            "attributes.system.dependencies: must not be empty (leave it out for no dependencies)",
        ),
        (
            "attributes/system/dependencies",
            ["afterok:1"],
            "attributes.system.dependencies[0]: must be a mapping, not a string",
        ),
        (
            "attributes/system/dependencies",
            [{"value": "f1"}],
            "attributes.system.dependencies[0].scheme: is required",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "afterok"}],
            "attributes.system.dependencies[0].value: is required",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "afterok", "value": 1}],
            "attributes.system.dependencies[0].value: must be a string, not a number",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "", "value": "x"}],
            "attributes.system.dependencies[0].scheme: must not be empty",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "string", "value": "foo", "scope": "user"}],
            "attributes.system.dependencies[0].type: is required for scheme 'string'",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "fluid", "value": "f1", "type": "in", "scope": "world"}],
            "attributes.system.dependencies[0].scope: must be one of user, global",
        ),
        (
            "attributes/system/dependencies",
            [{"scheme": "string", "value": "foo", "type": "both", "scope": "user"}],
            "attributes.system.dependencies[0].type: must be one of in, out, inout",
        ),
        (
            "attributes/system/constraints",
            ["foo"],
            "attributes.system.constraints: must be a mapping, not a list",
        ),
        (
            "attributes/system/constraints",
            {"properties": "foo"},
            "attributes.system.constraints.properties: must be a list, not a string",
        ),
        (
            "attributes/system/constraints",
            {"properties": [1]},
            "attributes.system.constraints.properties[0]: must be a string, not a number",
        ),
        (
            "attributes/system/constraints",
            {"and": [{"hostlist": [None]}]},
            "attributes.system.constraints.and[0].hostlist[0]: must be a string, not null",
        ),
        (
            "attributes/system/constraints",
            {"not": ["foo"]},
            "attributes.system.constraints.not[0]: must be a mapping, not a string",
        ),
        (
            "attributes/system/constraints",
            {"ranks": [-1]},
            "attributes.system.constraints.ranks[0]: must be a string, not a number",
        ),
    ],
)
def test_rule(edit: str, value: Any, expected: str) -> None:
    assert error_of(broken(edit, value)) == expected


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        ("version", 1),
        ("version", 2),
        ("resources/0/count", 5),
        ("resources/0/id", "0-3"),
        ("resources/0/exclusive", False),
        (f"{SLOT}/count", 4),
        (f"{SLOT}/count", {"min": 1}),
        (f"{SLOT}/count", {"min": 1, "max": 1}),
        (f"{SLOT}/count", {"min": 1, "max": 30}),  # max without operator: RFC 14 allows it
        (f"{SLOT}/count", {"min": 1, "operator": "*", "operand": 2}),  # max is optional
        (f"{SLOT}/count", {"min": 2, "max": 256, "operator": "^", "operand": 2}),
        (f"{SLOT}/count", {"min": 3, "max": 30, "operator": "+", "operand": 1}),
        (f"{SLOT}/exclusive", True),
        (f"{SLOT}/with/1/with", [{"type": "slot", "label": "inner", "count": 1,
                                  "with": [{"type": "core", "count": 1}]}]),
        ("tasks/0/slot", "no-such-label"),  # flux-core's valid/basic_v1.yaml does this
        ("tasks/0/count", {"total": 5}),
        ("tasks/0/count", {"per_slot": 3}),
        ("tasks/0/count", {"per_resource": {"type": "node", "count": 1}}),
        ("tasks/0/distribution", "cyclic"),
        ("tasks/0/attributes", {"environment": {"FOO": None, "BAR": "2"}, "x": [1]}),
        ("tasks/1", {"command": ["db"], "slot": "default", "count": {"total": 1}}),
        ("attributes", {}),
        ("attributes/system", {}),
        ("attributes/system/duration", 0),
        ("attributes/system/duration", 3600.5),
        ("attributes/system/anything", None),
        ("attributes/system/a", [1, 2, 3]),
        ("attributes/user", {"anything": [1, {"x": None}]}),
        ("attributes/system/environment", {"HOME": "/home/u", "UNSET": None}),
        ("attributes/system/job", {"name": "x", "project": "y"}),
        ("attributes/system/shell", {"options": {"verbose": 1}}),
        ("attributes/system/files", {"script": {"data": "#!/bin/sh"}}),
        ("attributes/system/preemptible-after", 0),
        ("attributes/system/dependencies", [{"scheme": "afterok", "value": "f1", "extra": 1}]),
        (
            "attributes/system/dependencies",
            [{"scheme": "string", "value": "foo", "type": "inout", "scope": "user"}],
        ),
        ("attributes/system/constraints", {}),
        ("attributes/system/constraints", {"or": []}),
        ("attributes/system/constraints", {"ranks": ["0-3", 7]}),
        (
            "attributes/system/constraints",
            {"and": [{"properties": ["^slow"]}, {"not": [{"hostlist": ["n[1-2]"]}]}]},
        ),
        ("attributes/system/constraints", {"site-operator": [{"x": 1}]}),  # RFC 31 extensible
    ],
)
def test_valid_variants(edit: str, value: Any) -> None:
    validate_canonical(broken(edit, value))


@pytest.mark.parametrize(
    "count",
    [
        "1", "7", "2+", "[2+]", "2-4", "[2-4]", "1-5:2", "1-5:2:+", "2-32:2:*", "2+:2:*",
        "2+:2:^", "2-256:2:^", "1-1", "4,9,16,25", "[4,9,16,25]", "1-3,5-7", "1,3-4,9",
    ],
)
def test_count_strings_accepted(count: str) -> None:
    validate_canonical(broken(f"{SLOT}/count", count))


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        ("", "'' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("0", "'0' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("01", "'01' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("bar", "'bar' is not an integer, idset (RFC 22) or range (RFC 45)"),
        (" 2+", "' 2+' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("1:2", "'1:2' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("2+:", "'2+:' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("1-5::+", "'1-5::+' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("0+", "'0+' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("[1-3", "unbalanced brackets in range '[1-3'"),
        ("2+]", "unbalanced brackets in range '2+]'"),
        ("4-2", "max must be >= min in range '4-2'"),
        ("4-2:1:+", "max must be >= min in range '4-2:1:+'"),
        ("1-5:2:/", "operator must be one of '+', '*', '^' in range '1-5:2:/'"),
        ("1-5:2:-", "operator must be one of '+', '*', '^' in range '1-5:2:-'"),
        ("2-32:1:*", "operand must be >= 2 with operator '*' in range '2-32:1:*'"),
        ("1-64:2:^", "min must be >= 2 with operator '^' in range '1-64:2:^'"),
        ("2+:1:^", "operand must be >= 2 with operator '^' in range '2+:1:^'"),
        ("3,1", "idset '3,1': counts must be ascending and unique"),
        ("1,1", "idset '1,1': counts must be ascending and unique"),
        ("1-3,2", "idset '1-3,2': counts must be ascending and unique"),
        ("1,5-3", "idset '1,5-3': range '5-3' is descending"),
        ("1,,2", "'1,,2' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("[1,2", "'[1,2' is not an integer, idset (RFC 22) or range (RFC 45)"),
        ("0,1", "'0,1' is not an integer, idset (RFC 22) or range (RFC 45)"),
    ],
)
def test_count_strings_rejected(count: str, reason: str) -> None:
    assert error_of(broken(f"{SLOT}/count", count)) == f"{SLOT_PATH}.count: {reason}"


def test_not_a_mapping() -> None:
    assert error_of([]) == "jobspec: must be a mapping, not a list"
    assert error_of(None) == "jobspec: must be a mapping, not null"


def test_missing_keys_reported_in_order() -> None:
    assert error_of({}) == "version: is required"
    assert error_of({"version": 1}) == "resources: is required"


def test_several_resources_and_tasks_report_their_index() -> None:
    js = base()
    js["resources"].append({"type": "ssd", "count": 1})
    js["resources"].append({"type": "ssd", "count": 0})
    js["tasks"].append(copy.deepcopy(js["tasks"][0]))
    assert error_of(js) == "resources[2].count: must be >= 1"
    js["resources"].pop()
    js["tasks"].append({"command": ["x"], "slot": "default"})
    assert error_of(js) == "tasks[2].count: is required"


def test_first_problem_wins() -> None:
    js = broken("resources/0/count", 0)
    js["attributes"] = None
    assert error_of(js) == "resources[0].count: must be >= 1"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    js = base()
    vertex = js["resources"][0]
    for _ in range(200):
        child = {"type": "level", "count": 1}
        vertex["with"] = [child]
        vertex = child
    message = error_of(js)
    assert "nested more than 100 levels deep" in message


@pytest.mark.timeout(20)  # walking every path would never end: the timeout fails it
def test_aliases_are_not_walked_again() -> None:
    # 2**40 paths through 40 distinct vertices: walking every path would never end.
    lines = ["version: 1", "x0: &v0 {type: core, count: 1}"]
    for i in range(1, 41):
        lines.append(f"x{i}: &v{i} {{type: group, count: 1, with: [*v{i - 1}, *v{i - 1}]}}")
    yaml_text = "\n".join(lines)
    doc = load_jobspec(yaml_text)
    js = base()
    js["resources"] = [doc["x40"], doc["x40"]]
    validate_canonical(js)


def test_validation_does_not_modify() -> None:
    js = base()
    before = copy.deepcopy(js)
    validate_canonical(js)
    assert js == before


def test_gpu_count_zero_is_v1_only() -> None:
    js = {
        "version": 1,
        "resources": [{"type": "slot", "count": 1, "label": "task", "with": [
            {"type": "core", "count": 1}, {"type": "gpu", "count": 0}]}],
        "tasks": [{"command": ["app"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0}},
    }
    validate_v1(js)
    assert error_of(js) == "resources[0].with[1].count: must be >= 1"


def test_v1_rules_are_stricter() -> None:
    js = broken("version", 1)
    validate_canonical(js)
    with pytest.raises(JobspecError, match=r"^resources\[0\]\.type: must be node or slot$"):
        validate_v1(js)


# -- load_jobspec ----------------------------------------------------------------------


@needs_corpora
def test_load_yaml_and_json_alike() -> None:
    path = CONFORMANCE / "rfc" / "spec_14" / "use_case_1.2.yaml"
    js = load_jobspec(path.read_text(), path.name)
    import json

    assert load_jobspec(json.dumps(js)) == js
    assert load_jobspec(path.read_bytes()) == js
    assert load_jobspec(b"\xef\xbb\xbf" + path.read_bytes()) == js  # UTF-8 BOM
    assert load_jobspec(path.read_text().encode("utf-16")) == js


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo: bar: baz", "f.yaml: invalid YAML: mapping values are not allowed here at line 1"),
        (
            "a: [1,\n  2\nb: 3\n",
            "f.yaml: invalid YAML: expected ',' or ']', but got ':' at line 3",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml: invalid YAML: expected a single document in the stream, but found another"
            " document at line 2",
        ),
        ("a:\n\t- 1\n", "f.yaml: invalid YAML: found character '\\t' that cannot start any token"
         " at line 2"),
        ("a: 1\nb: \x01\n", "f.yaml: invalid YAML: unacceptable character #x0001 at line 2"),
        ('{"a": [1, 2}', "f.yaml: invalid YAML: expected ',' or ']', but got '}' at line 1"),
        ("a: *nope", "f.yaml: invalid YAML: found undefined alias 'nope' at line 1"),
        ("", "f.yaml: empty document (a jobspec is a mapping)"),
        ("# only a comment\n", "f.yaml: empty document (a jobspec is a mapping)"),
        ("- 1\n- 2\n", "f.yaml: jobspec must be a mapping, not a list"),
        ("just text", "f.yaml: jobspec must be a mapping, not a string"),
        ("42", "f.yaml: jobspec must be a mapping, not a number"),
        (b"a: 1\n\xff\n", "f.yaml: invalid YAML: not UTF-8 text (byte 5)"),
    ],
)
def test_load_errors(text: str | bytes, expected: str) -> None:
    with pytest.raises(JobspecError) as info:
        load_jobspec(text, "f.yaml")
    assert str(info.value) == expected


def test_load_scalars_yaml_cannot_build() -> None:
    with pytest.raises(JobspecError, match=r"^f: invalid YAML: Exceeds the limit"):
        load_jobspec("count: " + "9" * 5000, "f")
    with pytest.raises(JobspecError, match=r"^f: invalid YAML: month must be in 1\.\.12$"):
        load_jobspec("when: 2024-13-01", "f")


def test_huge_count_string_is_rejected_not_crashing() -> None:
    count = "1" + "0" * 5000 + "+"
    assert error_of(broken(f"{SLOT}/count", count)).startswith(f"{SLOT_PATH}.count: '1000")


def test_load_default_name() -> None:
    with pytest.raises(JobspecError, match=r"^<stdin>: invalid YAML: "):
        load_jobspec("foo: bar: baz")


def test_load_deep_nesting() -> None:
    with pytest.raises(JobspecError, match=r"^x: invalid YAML: "):
        load_jobspec("a: " + "[" * 50000, "x")


def test_import_is_light() -> None:
    code = "import sys, strato.jobspec.canonical; sys.exit('yaml' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
