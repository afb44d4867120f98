"""Jobspec version 1 (RFC 25): validation, the ``JobspecV1`` builder and a summary.

Why this exists: every job submitted to strato is a version 1 jobspec, the form Flux
accepts for submission.  Ingest validates each one (thousands per second), the CLI
builds them from ``submit -n -c -g -N`` options, and the scheduler needs a few counts
from each.  So validation is a plain walk over dicts and lists (no jsonschema) that
stops at the first problem with a one-line message naming where it is, e.g.
``resources[0].with[0].count: must be an integer >= 1``.

Canonical jobspecs (RFC 14, any version) are checked by ``strato.jobspec.canonical``.
The rules here are those of RFC 25 with flux-core's reading of them where the RFC is
loose:

- the top level has exactly ``version`` (== 1), ``resources``, ``tasks``, ``attributes``;
- ``resources`` has exactly one vertex, and the graph is one of ``slot>core``,
  ``slot>(core,gpu)``, ``node>slot>core``, ``node>slot>(core,gpu)``;
- counts are integers, >= 1 for node, slot and core; a gpu count may be 0 (flux-core
  accepts ``gpu: 0``);
- a slot has a string ``label``, ``exclusive`` (node or slot) is a boolean;
- ``tasks`` has exactly one task: a non-empty list of strings as ``command``, ``slot``
  naming the slot label, ``count`` with exactly one of ``per_slot`` or ``total``, an
  integer >= 1 (``per_resource`` is not version 1);
- ``attributes`` holds only ``system`` (required) and ``user`` (a mapping);
  ``attributes.system.duration`` is required, a number >= 0 (0 means unlimited); the
  other well-known system keys are type checked when present, unknown ones are allowed,
  and ``shell.options.output.limit`` must be a size from 1 byte to 1G (``10M``);
- that the task's ``slot`` names the slot label is checked last, after ``attributes``,
  so that a jobspec that is also broken elsewhere is reported for that (flux-core's
  ``invalid_v1/duration_missing.yaml`` names an absent label *and* lacks a duration).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .fsd import parse_fsd
from .size import output_limit

TYPE_CHECKING = False  # typing.TYPE_CHECKING: the typing module costs `strato run` ~3 ms
if TYPE_CHECKING:
    from typing import IO, Any

__all__ = ["JobspecError", "JobspecV1", "summarize", "validate_v1"]


class JobspecError(ValueError):
    """A jobspec is not valid; the message is one line: ``PATH: what is wrong``."""


_TOP_KEYS = ("version", "resources", "tasks", "attributes")
_VERTEX_KEYS = {
    "node": frozenset({"type", "count", "unit", "with", "label", "exclusive"}),
    "slot": frozenset({"type", "count", "unit", "with", "label", "exclusive"}),
    "core": frozenset({"type", "count", "unit", "label"}),
    "gpu": frozenset({"type", "count", "unit", "label"}),
}
_TASK_KEYS = frozenset({"command", "slot", "count", "distribution", "attributes"})
_ATTR_KEYS = frozenset({"system", "user"})
_CONSTRAINT_OPS = frozenset({"properties", "hostlist", "ranks", "and", "or", "not"})
_CONSTRAINT_NESTED = frozenset({"and", "or", "not"})

# attributes.system keys whose type is checked when they are present
_SYSTEM_STR = ("cwd", "queue", "bank", "project")
_SYSTEM_MAP = ("environment", "shell", "job", "files", "exec", "constraints")


def _fail(path: str, reason: str) -> JobspecError:
    return JobspecError(f"{path}: {reason}")


def _is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    """Whether a number is finite as a float (an int of 400 digits is not one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _fail(path, f"unknown key {key!r}")


def _check_count(vertex: Mapping[str, Any], path: str, minimum: int) -> int:
    if "count" not in vertex:
        raise _fail(f"{path}.count", "is required")
    count = vertex["count"]
    if not _is_int(count) or count < minimum:
        raise _fail(f"{path}.count", f"must be an integer >= {minimum}")
    return count


def _check_common(vertex: object, path: str, allowed_types: tuple[str, ...]) -> Mapping:
    """Checks shared by every vertex; returns it as a mapping."""
    if not isinstance(vertex, Mapping):
        raise _fail(path, "must be a mapping")
    if "type" not in vertex:
        raise _fail(f"{path}.type", "is required")
    vtype = vertex["type"]
    if not isinstance(vtype, str) or vtype not in allowed_types:
        raise _fail(f"{path}.type", "must be " + " or ".join(allowed_types))
    _check_keys(vertex, _VERTEX_KEYS[vtype], path)
    if "unit" in vertex and not isinstance(vertex["unit"], str):
        raise _fail(f"{path}.unit", "must be a string")
    if "label" in vertex and not isinstance(vertex["label"], str):
        raise _fail(f"{path}.label", "must be a string")
    if "exclusive" in vertex and not isinstance(vertex["exclusive"], bool):
        raise _fail(f"{path}.exclusive", "must be a boolean")
    return vertex


def _check_with(vertex: Mapping[str, Any], path: str, most: int) -> list:
    if "with" not in vertex:
        raise _fail(f"{path}.with", "is required")
    children = vertex["with"]
    if not isinstance(children, list) or not 1 <= len(children) <= most:
        if most == 1:
            raise _fail(f"{path}.with", "must be a list with exactly one entry")
        raise _fail(f"{path}.with", f"must be a list of 1 to {most} entries")
    return children


def _check_slot(vertex: Mapping[str, Any], path: str) -> str:
    """Validate a slot vertex and its core/gpu children; return the slot label."""
    _check_count(vertex, path, 1)
    label = vertex.get("label")
    if label is None:
        raise _fail(f"{path}.label", "is required for a slot")
    children = _check_with(vertex, path, 2)
    seen: set[str] = set()
    for i, child in enumerate(children):
        cpath = f"{path}.with[{i}]"
        child = _check_common(child, cpath, ("core", "gpu"))
        ctype = child["type"]
        if ctype in seen:
            raise _fail(f"{cpath}.type", f"only one {ctype} vertex is allowed in a slot")
        seen.add(ctype)
        _check_count(child, cpath, 1 if ctype == "core" else 0)
    if "core" not in seen:
        raise _fail(f"{path}.with", "a slot must contain a core vertex")
    return label


def _check_resources(resources: object) -> str:
    """Validate the resources section; return the label of its slot."""
    if not isinstance(resources, list) or len(resources) != 1:
        raise _fail("resources", "must be a list with exactly one entry")
    top = _check_common(resources[0], "resources[0]", ("node", "slot"))
    if top["type"] == "slot":
        return _check_slot(top, "resources[0]")
    _check_count(top, "resources[0]", 1)
    slot = _check_common(_check_with(top, "resources[0]", 1)[0], "resources[0].with[0]", ("slot",))
    return _check_slot(slot, "resources[0].with[0]")


def _check_tasks(tasks: object) -> str:
    """Validate the tasks section; return the slot label its task names."""
    if not isinstance(tasks, list) or len(tasks) != 1:
        raise _fail("tasks", "must be a list with exactly one entry")
    task = tasks[0]
    if not isinstance(task, Mapping):
        raise _fail("tasks[0]", "must be a mapping")
    _check_keys(task, _TASK_KEYS, "tasks[0]")
    for key in ("command", "slot", "count"):
        if key not in task:
            raise _fail(f"tasks[0].{key}", "is required")
    command = task["command"]
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(arg, str) for arg in command)
    ):
        raise _fail("tasks[0].command", "must be a non-empty list of strings")
    slot = task["slot"]
    if not isinstance(slot, str):
        raise _fail("tasks[0].slot", "must be a string")
    count = task["count"]
    if not isinstance(count, Mapping) or len(count) != 1:
        raise _fail("tasks[0].count", "must be a mapping with exactly one of per_slot or total")
    ((key, value),) = count.items()
    if key not in ("per_slot", "total"):
        raise _fail("tasks[0].count", f"{key!r} is not supported; use per_slot or total")
    if not _is_int(value) or value < 1:
        raise _fail(f"tasks[0].count.{key}", "must be an integer >= 1")
    if "attributes" in task and not isinstance(task["attributes"], Mapping):
        raise _fail("tasks[0].attributes", "must be a mapping")
    if "distribution" in task and not isinstance(task["distribution"], str):
        raise _fail("tasks[0].distribution", "must be a string")
    return slot


def _check_constraint(obj: object, path: str) -> None:
    """RFC 31 structure: ``{op: [args...]}``, and/or/not nest further constraints."""
    if not isinstance(obj, Mapping):
        raise _fail(path, "must be a mapping")
    for op, args in obj.items():
        if op not in _CONSTRAINT_OPS:
            raise _fail(path, f"unknown constraint operator {op!r}")
        if not isinstance(args, list):
            raise _fail(f"{path}.{op}", "must be a list")
        if op in _CONSTRAINT_NESTED:
            for i, sub in enumerate(args):
                _check_constraint(sub, f"{path}.{op}[{i}]")
        else:
            for i, arg in enumerate(args):
                if not isinstance(arg, str):
                    raise _fail(f"{path}.{op}[{i}]", "must be a string")


def _check_system(system: object) -> None:
    path = "attributes.system"
    if not isinstance(system, Mapping):
        raise _fail(path, "must be a mapping")
    if "duration" not in system:
        raise _fail(f"{path}.duration", "is required")
    duration = system["duration"]
    if not _is_number(duration) or not duration >= 0:  # "not >=" also catches NaN
        raise _fail(f"{path}.duration", "must be a number >= 0")
    if not _is_finite(duration):
        raise _fail(f"{path}.duration", "must be finite (use 0 for unlimited)")
    for key in _SYSTEM_STR:
        if key in system and not isinstance(system[key], str):
            raise _fail(f"{path}.{key}", "must be a string")
    for key in _SYSTEM_MAP:
        if key in system and not isinstance(system[key], Mapping):
            raise _fail(f"{path}.{key}", "must be a mapping")
    if "job" in system:
        name = system["job"].get("name")
        if name is not None and not isinstance(name, str):
            raise _fail(f"{path}.job.name", "must be a string")
    if "preemptible-after" in system:
        value = system["preemptible-after"]
        if not _is_number(value) or not value >= 0:
            raise _fail(f"{path}.preemptible-after", "must be a number >= 0")
        if not _is_finite(value):
            raise _fail(f"{path}.preemptible-after", "must be finite")
    if "dependencies" in system:
        deps = system["dependencies"]
        if not isinstance(deps, list):
            raise _fail(f"{path}.dependencies", "must be a list")
        for i, dep in enumerate(deps):
            dpath = f"{path}.dependencies[{i}]"
            if not isinstance(dep, Mapping):
                raise _fail(dpath, "must be a mapping")
            for key in ("scheme", "value"):
                if not isinstance(dep.get(key), str):
                    raise _fail(f"{dpath}.{key}", "must be a string")
    if "constraints" in system:
        _check_constraint(system["constraints"], f"{path}.constraints")
    output = (system.get("shell") or {}).get("options", {})
    output = output.get("output") if isinstance(output, Mapping) else None
    if isinstance(output, Mapping) and "limit" in output:
        try:
            output_limit(output["limit"])
        except ValueError as exc:
            raise _fail(f"{path}.shell.options.output.limit", str(exc)) from None


def _check_attributes(attributes: object) -> None:
    if not isinstance(attributes, Mapping):
        raise _fail("attributes", "must be a mapping")
    _check_keys(attributes, _ATTR_KEYS, "attributes")
    if "system" not in attributes:
        raise _fail("attributes.system", "is required")
    _check_system(attributes["system"])
    if "user" in attributes and not isinstance(attributes["user"], Mapping):
        raise _fail("attributes.user", "must be a mapping")


def validate_v1(js: object) -> None:
    """Check that ``js`` (a decoded jobspec) is a valid RFC 25 version 1 jobspec.

    Returns None if it is; raises :class:`JobspecError` with a one-line message
    ``PATH: reason`` for the first problem found.
    """
    if not isinstance(js, Mapping):
        raise _fail("jobspec", "must be a mapping")
    for key in _TOP_KEYS:
        if key not in js:
            raise _fail(key, "is required")
    if len(js) != len(_TOP_KEYS):
        extra = sorted(str(k) for k in js if k not in _TOP_KEYS)
        raise _fail("jobspec", f"unknown key {extra[0]!r}")
    version = js["version"]
    if not _is_int(version) or version != 1:
        raise _fail("version", "must be 1")
    label = _check_resources(js["resources"])
    slot = _check_tasks(js["tasks"])
    _check_attributes(js["attributes"])
    # The cross-reference comes last: a jobspec with a wrong label *and* a missing
    # duration (flux-core's invalid_v1/duration_missing.yaml) reports the duration.
    if slot != label:
        raise _fail("tasks[0].slot", f"must name the slot label {label!r}")


def summarize(js: Mapping[str, Any]) -> dict[str, Any]:
    """Return the counts the scheduler needs from a *valid* version 1 jobspec.

    Keys: ``ntasks``, ``nnodes`` (None without a node vertex), ``nslots`` (in total, over
    all nodes), ``cores_per_slot``, ``gpus_per_slot``, ``exclusive`` (set on the node or
    the slot) and ``duration`` (seconds, 0.0 for unlimited).  The jobspec is not checked
    again: call :func:`validate_v1` first.
    """
    top = js["resources"][0]
    exclusive = bool(top.get("exclusive", False))
    if top["type"] == "node":
        nnodes: int | None = top["count"]
        slot = top["with"][0]
        exclusive = exclusive or bool(slot.get("exclusive", False))
        nslots = nnodes * slot["count"]
    else:
        nnodes = None
        slot = top
        nslots = slot["count"]
    cores = gpus = 0
    for child in slot["with"]:
        if child["type"] == "core":
            cores = child["count"]
        elif child["type"] == "gpu":
            gpus = child["count"]
    count = js["tasks"][0]["count"]
    ntasks = count["total"] if "total" in count else count["per_slot"] * nslots
    system = js["attributes"].get("system") or {}
    return {
        "ntasks": ntasks,
        "nnodes": nnodes,
        "nslots": nslots,
        "cores_per_slot": cores,
        "gpus_per_slot": gpus,
        "exclusive": exclusive,
        "duration": float(system.get("duration", 0.0)),
    }


def _attr_path(key: str) -> list[str]:
    """Turn a ``setattr`` key into a path from the jobspec root, as Flux does.

    ``system.x`` and ``user.x`` live under ``attributes``; ``attributes.…`` is taken as
    is; any other key is a system attribute (``duration`` -> ``attributes.system.duration``).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid attribute key {key!r}")
    if not key.startswith("attributes."):
        if not key.startswith(("system.", "user.")):
            key = "system." + key
        key = "attributes." + key
    parts = key.split(".")
    if any(not part for part in parts):
        raise ValueError(f"invalid attribute key {key!r}")
    return parts


class JobspecV1:
    """A version 1 jobspec: a plain wrapper around the decoded dict in ``.jobspec``.

    Constructing one validates the dict (:class:`JobspecError` if invalid).  Build one from
    a command line with :meth:`from_command` or read one with :meth:`from_json` /
    :meth:`from_yaml_stream`; amend it with :meth:`setattr` and send it with
    :meth:`dumps`.
    """

    __slots__ = ("jobspec",)

    def __init__(self, jobspec: dict[str, Any], validate: bool = True) -> None:
        if validate:
            validate_v1(jobspec)
        self.jobspec: dict[str, Any] = jobspec

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_command(
        cls,
        command: list[str],
        num_tasks: int = 1,
        cores_per_task: int = 1,
        gpus_per_task: int | None = None,
        num_nodes: int | None = None,
        exclusive: bool = False,
        duration: float | str = 0.0,
        cwd: str | None = None,
        environment: dict[str, str] | None = None,
        name: str | None = None,
    ) -> JobspecV1:
        """Build the jobspec ``flux submit -n NUM_TASKS -c CORES -g GPUS -N NODES`` builds.

        One slot labelled ``task`` per task, each with ``cores_per_task`` cores (and
        ``gpus_per_task`` gpus unless None or 0), one task per slot.  With ``num_nodes``
        the slots are spread over that many nodes: the node vertex has
        ``ceil(num_tasks / num_nodes)`` slots each, and when the tasks do not divide
        evenly the task count is ``total: num_tasks`` instead of ``per_slot: 1``.
        ``exclusive`` (whole nodes) needs ``num_nodes``.  ``duration`` is seconds or an
        RFC 23 string, 0 meaning unlimited.  Without ``environment`` the job gets a copy of
        this process's environment, as with Flux; pass ``{}`` for none.

        Raises ValueError for counts that are not positive integers, more nodes than
        tasks, ``exclusive`` without nodes, or a bad duration.
        """
        if isinstance(command, str) or not isinstance(command, (list, tuple)):
            raise ValueError("command must be a list of strings")
        command = list(command)
        if not command or not all(isinstance(arg, str) for arg in command):
            raise ValueError("command must be a non-empty list of strings")
        if not _is_int(num_tasks) or num_tasks < 1:
            raise ValueError("task count must be an integer >= 1")
        if not _is_int(cores_per_task) or cores_per_task < 1:
            raise ValueError("cores per task must be an integer >= 1")
        if gpus_per_task is not None and (not _is_int(gpus_per_task) or gpus_per_task < 0):
            raise ValueError("gpus per task must be an integer >= 0")
        if num_nodes is not None:
            if not _is_int(num_nodes) or num_nodes < 1:
                raise ValueError("node count must be an integer >= 1")
            if num_nodes > num_tasks:
                raise ValueError("node count must not be greater than task count")
        elif exclusive:
            raise ValueError("exclusive can only be set with a node count")

        children: list[dict[str, Any]] = [{"type": "core", "count": cores_per_task}]
        if gpus_per_task:
            children.append({"type": "gpu", "count": gpus_per_task})
        task_count: dict[str, int] = {"per_slot": 1}
        if num_nodes is not None:
            slots_per_node = -(-num_tasks // num_nodes)
            if num_tasks % num_nodes:
                task_count = {"total": num_tasks}
            slot = {"type": "slot", "count": slots_per_node, "with": children, "label": "task"}
            top: dict[str, Any] = {"type": "node", "count": num_nodes}
            if exclusive:
                top["exclusive"] = True
            top["with"] = [slot]
        else:
            top = {"type": "slot", "count": num_tasks, "with": children, "label": "task"}

        seconds = _duration_seconds(duration)
        system: dict[str, Any] = {"duration": seconds}
        system["environment"] = dict(os.environ) if environment is None else dict(environment)
        if cwd is not None:
            system["cwd"] = os.fspath(cwd)
        if name is not None:
            system["job"] = {"name": name}
        jobspec = {
            "resources": [top],
            "tasks": [{"command": command, "slot": "task", "count": task_count}],
            "attributes": {"system": system},
            "version": 1,
        }
        return cls(jobspec)

    @classmethod
    def per_resource(
        cls,
        command: list[str],
        ncores: int | None = None,
        nnodes: int | None = None,
        per_resource_type: str | None = None,
        per_resource_count: int | None = None,
        gpus_per_node: int | None = None,
        exclusive: bool = False,
        **kwargs: Any,
    ) -> JobspecV1:
        """Build the jobspec of ``flux submit --cores/--tasks-per-node/--tasks-per-core/
        --gpus-per-node``: resources counted per node or core, tasks placed by the
        shell, ``per_resource_count`` of them on each ``per_resource_type`` ("node" or
        "core") it is given (``system.shell.options.per-resource``), else one per slot.

        ``ncores`` alone asks for that many one-core slots; with ``nnodes`` one slot of
        ``ncores / nnodes`` cores on each node (which must divide evenly); ``nnodes``
        alone needs ``exclusive`` (whole nodes). Other keyword arguments are those of
        :meth:`from_command`. Raises ValueError for an impossible combination.
        """
        per = None
        if per_resource_type is not None or per_resource_count is not None:
            if per_resource_type not in ("node", "core"):
                raise ValueError(f"invalid per-resource type {per_resource_type!r}"
                                 " (node or core)")
            if not _is_int(per_resource_count) or per_resource_count < 1:
                raise ValueError("per-resource count must be an integer >= 1")
            per = {"type": per_resource_type, "count": per_resource_count}
        if ncores is not None and (not _is_int(ncores) or ncores < 1):
            raise ValueError("core count must be an integer >= 1")
        if gpus_per_node is not None:
            if not _is_int(gpus_per_node) or gpus_per_node < 0:
                raise ValueError("gpus per node must be an integer >= 0")
            if not nnodes:
                raise ValueError("gpus per node needs a node count")
        if nnodes is not None:
            if not _is_int(nnodes) or nnodes < 1:
                raise ValueError("node count must be an integer >= 1")
        elif exclusive:
            raise ValueError("exclusive can only be set with a node count")
        if nnodes and ncores:
            if ncores < nnodes:
                raise ValueError("core count must not be less than the node count")
            if ncores % nnodes:
                raise ValueError("core count must be a multiple of the node count")
            nslots, cores = 1, ncores // nnodes
        elif ncores:
            nslots, cores = ncores, 1
        elif nnodes:
            if not exclusive:
                raise ValueError("a node count needs a core count or exclusive")
            nslots, cores = 1, 1
        else:
            raise ValueError("per-resource options need a node or core count")
        js = cls.from_command(command, num_tasks=nslots * (nnodes or 1),
                              cores_per_task=cores, num_nodes=nnodes,
                              exclusive=exclusive, **kwargs)
        slot = js.resources[0]["with"][0] if nnodes else js.resources[0]
        if gpus_per_node:
            slot["with"].append({"type": "gpu", "count": gpus_per_node})
        if per is not None:
            js.setattr("system.shell.options.per-resource", per)
        return js

    @classmethod
    def from_batch_command(
        cls,
        script: str,
        args: list[str] | tuple[str, ...] = (),
        num_slots: int = 1,
        cores_per_slot: int = 1,
        gpus_per_slot: int | None = None,
        num_nodes: int | None = None,
        exclusive: bool = False,
        duration: float | str = 0.0,
        cwd: str | None = None,
        environment: dict[str, str] | None = None,
        name: str = "batch",
        broker_opts: list[str] | tuple[str, ...] = (),
    ) -> JobspecV1:
        """The jobspec ``strato batch`` submits: a child instance (``strato start
        BROKER_OPTS {{tmpdir}}/script ARGS...``) owning slots as ``-n/-c/-g/-N``
        ask, whose initial program is the script, carried in
        ``attributes.system.files.script`` and written to the job's temporary
        directory. One broker runs the whole allocation (one task in all)."""
        if not isinstance(script, str):
            raise ValueError("script must be a string")
        js = cls.from_command(["strato", "start", *broker_opts, "{{tmpdir}}/script", *args],
                              num_tasks=num_slots,
                              cores_per_task=cores_per_slot, gpus_per_task=gpus_per_slot,
                              num_nodes=num_nodes, exclusive=exclusive, duration=duration,
                              cwd=cwd, environment=environment, name=name)
        js.jobspec["tasks"][0]["count"] = {"total": 1}
        js.setattr("system.files", {"script": {"mode": 0o100700, "data": script,
                                               "encoding": "utf-8"}})
        return js

    @classmethod
    def from_nest_command(
        cls,
        command: list[str],
        num_slots: int = 1,
        cores_per_slot: int = 1,
        gpus_per_slot: int | None = None,
        num_nodes: int | None = None,
        exclusive: bool = False,
        duration: float | str = 0.0,
        cwd: str | None = None,
        environment: dict[str, str] | None = None,
        name: str | None = None,
    ) -> JobspecV1:
        """A job that is a nested strato instance: ``strato start COMMAND`` owning the
        slots. One broker runs the whole allocation (one task in all), whatever
        ``num_nodes`` is."""
        if not command or not all(isinstance(a, str) for a in command):
            raise ValueError("command must be a non-empty list of strings")
        if num_nodes is not None and _is_int(num_nodes) and num_slots < num_nodes:
            num_slots = num_nodes  # at least one slot per node, as with -N alone
        js = cls.from_command(["strato", "start", *command], num_tasks=num_slots,
                              cores_per_task=cores_per_slot, gpus_per_task=gpus_per_slot,
                              num_nodes=num_nodes, exclusive=exclusive, duration=duration,
                              cwd=cwd, environment=environment,
                              name=name or os.path.basename(command[0]))
        js.jobspec["tasks"][0]["count"] = {"total": 1}
        return js

    @classmethod
    def from_json(cls, text: str | bytes) -> JobspecV1:
        """Decode a JSON jobspec and validate it (JobspecError if it is not valid)."""
        import json  # here, not at the top: `strato run` never needs it

        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise JobspecError(f"jobspec: invalid JSON: {_one_line(exc)}") from None
        except RecursionError:
            raise JobspecError("jobspec: invalid JSON: nested too deeply") from None
        return cls(data)

    @classmethod
    def from_yaml_stream(cls, stream: str | bytes | IO[str] | IO[bytes]) -> JobspecV1:
        """Decode a YAML jobspec (text or open file) and validate it."""
        import yaml  # imported here so that importing strato.jobspec stays light

        try:
            data = yaml.safe_load(stream)
        except yaml.YAMLError as exc:
            raise JobspecError(f"jobspec: invalid YAML: {_one_line(exc)}") from None
        except RecursionError:
            raise JobspecError("jobspec: invalid YAML: nested too deeply") from None
        except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build (a
            # timestamp with month 13, an int of 4300+ digits)
            raise JobspecError(f"jobspec: invalid YAML: {_one_line(exc)}") from None
        return cls(data)

    @classmethod
    def from_yaml_file(cls, path: str | os.PathLike[str]) -> JobspecV1:
        """Read a YAML (or JSON, which is YAML) jobspec file and validate it."""
        with open(path, "rb") as stream:
            return cls.from_yaml_stream(stream)

    # -- access -----------------------------------------------------------------------

    @property
    def resources(self) -> list[dict[str, Any]]:
        return self.jobspec["resources"]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.jobspec["tasks"]

    @property
    def attributes(self) -> dict[str, Any]:
        return self.jobspec["attributes"]

    @property
    def version(self) -> int:
        return self.jobspec["version"]

    @property
    def duration(self) -> float:
        """The time limit in seconds, 0.0 meaning unlimited."""
        return float(self.jobspec["attributes"].get("system", {}).get("duration", 0.0))

    @duration.setter
    def duration(self, value: float | str) -> None:
        self.setattr("system.duration", _duration_seconds(value))

    def setattr(self, key: str, value: Any) -> None:
        """Set an attribute by dotted key, creating the mappings on the way.

        ``system.exec.test.run_duration`` sets ``attributes.system.exec.test.run_duration``;
        ``user.x`` is a user attribute; a key that starts with neither ``system.`` nor
        ``user.`` (nor ``attributes.``) is taken as a system attribute, as Flux does.
        Raises TypeError if a part of the path exists and is not a mapping.
        """
        parts = _attr_path(key)
        node: Any = self.jobspec
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise TypeError(f"cannot set {'.'.join(parts)}: {where} is not a mapping")
            node = nxt
        node[parts[-1]] = value

    def getattr(self, key: str) -> Any:
        """Return the attribute at dotted ``key`` (same keys as :meth:`setattr`).

        Raises KeyError if it is not set.
        """
        node: Any = self.jobspec
        for part in _attr_path(key):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def validate(self) -> None:
        """Validate the jobspec again, e.g. after :meth:`setattr` (JobspecError)."""
        validate_v1(self.jobspec)

    def summarize(self) -> dict[str, Any]:
        """:func:`summarize` of this jobspec."""
        return summarize(self.jobspec)

    def dumps(self, **kwargs: Any) -> str:
        """The jobspec as compact JSON (keyword arguments go to :func:`json.dumps`)."""
        import json

        kwargs.setdefault("separators", (",", ":"))
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.jobspec, **kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobspecV1):
            return NotImplemented
        return self.jobspec == other.jobspec

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"JobspecV1({self.jobspec!r})"


def _duration_seconds(value: float | str) -> float:
    """Seconds from a number or an RFC 23 string; must be finite and >= 0."""
    if isinstance(value, str):
        seconds = parse_fsd(value)
    elif _is_number(value):
        seconds = float(value)
    else:
        raise ValueError(f"invalid duration {value!r}")
    if not 0.0 <= seconds < math.inf:
        raise ValueError(f"invalid duration {value!r}: must be finite and >= 0")
    return seconds


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def job_name(jobspec: dict) -> str:
    """The job name: attributes.system.job.name, else the command's basename."""
    try:
        name = jobspec["attributes"]["system"]["job"]["name"]
        if name:
            return str(name)
    except (KeyError, TypeError):
        pass
    try:
        return os.path.basename(jobspec["tasks"][0]["command"][0])
    except (KeyError, IndexError, TypeError):
        return "?"
