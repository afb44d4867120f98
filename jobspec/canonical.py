"""Canonical jobspec (RFC 14): validation of any version, and reading jobspec files.

Why this exists: version 1 (RFC 25, :func:`strato.jobspec.model.validate_v1`) is what
strato runs, but jobspecs in the wild, the RFC use cases and the graph scheduler's
inputs are canonical jobspecs: any resource graph, count ranges, several tasks, any
version >= 1.  ``strato job validate --canonical`` checks those, and tools that emit
jobspecs check their output against it.  As in ``model``, validation is a plain walk
over dicts and lists that stops at the first problem with one line ``PATH: reason``,
e.g. ``resources[0].with[0].count: min must be >= 1``.

The rules are RFC 14's text, its JSON schema where the text is silent (the schema
still ties ``max`` to ``operator``/``operand``, which the text no longer does), and
flux-core's reading where the RFC is loose:

- the top level has exactly ``version`` (an integer >= 1), ``resources``, ``tasks`` and
  ``attributes``;
- ``resources`` is a non-empty list of vertices; a vertex has a non-empty string
  ``type`` and a ``count``, and may have ``unit``, ``label``, ``id`` (strings),
  ``exclusive`` (boolean) and ``with`` (a non-empty list of vertices); nothing else.
  A ``slot`` must have a ``label`` and a ``with``.  RFC 14 asks for unique labels, but
  that is not enforced: Fluxion's own inputs give sibling slots one label
  (``flexible/test003.yaml``) and flux-core does not check it either;
- a ``count`` is an integer >= 1, an RFC 22 idset of allowed counts (``"4,9,16"``), an
  RFC 45 range string (``"2+"``, ``"2-32:2:*"``) or a mapping ``{min, max, operator,
  operand}``: ``min`` >= 1 is required, ``max`` (optional, default infinite) >= ``min``,
  ``operator`` one of ``+ * ^`` and ``operand`` >= 1 go together, ``*`` and ``^`` need
  an operand >= 2 and ``^`` a min >= 2;
- ``tasks`` is a non-empty list of tasks: ``command`` a non-empty list of strings,
  ``slot`` a string, ``count`` with exactly one of ``per_slot`` or ``total`` (integers
  >= 1) or ``per_resource`` (``{type, count}``); optional ``distribution`` (string) and
  ``attributes`` (mapping).  Whether ``slot`` names an existing label is *not* checked,
  as flux-core's corpus (``valid/basic_v1.yaml``) has a task naming an absent label;
- ``attributes`` is a mapping (not null, though the schema allows it: flux-core rejects
  it) with at most ``system`` and ``user``, each a mapping.  Known system keys are type
  checked (``duration``, ``preemptible-after``, ``cwd``, ``queue``, ``bank``,
  ``project``, ``environment``, ``job``, ``shell``, ``files``, ``dependencies`` per
  RFC 26, ``constraints`` per RFC 31); other keys are free and ``duration`` is
  optional (RFC 25 makes it required, not RFC 14).

:func:`load_jobspec` parses the text of a jobspec (YAML, hence also JSON) into a dict
with one-line errors; ``yaml`` is imported only when it is called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .model import JobspecError, _is_finite

__all__ = ["load_jobspec", "validate_canonical"]

_TOP_KEYS = ("version", "resources", "tasks", "attributes")
_VERTEX_KEYS = frozenset({"type", "count", "unit", "with", "label", "exclusive", "id"})
_RANGE_KEYS = ("min", "max", "operator", "operand")
_OPERATORS = ("+", "*", "^")
_TASK_KEYS = frozenset({"command", "slot", "count", "distribution", "attributes"})
_TASK_COUNT_KEYS = ("per_slot", "per_resource", "total")
_ATTR_KEYS = ("system", "user")
_SYSTEM_STR = ("cwd", "queue", "bank", "project")
_SYSTEM_MAP = ("shell", "files")
_SYSTEM_NUMBER = ("duration", "preemptible-after")
_CONSTRAINT_NESTED = frozenset({"and", "or", "not"})
_CONSTRAINT_STRINGS = frozenset({"properties", "hostlist", "ranks"})
_DEP_TYPES = ("in", "out", "inout")
_DEP_SCOPES = ("user", "global")
_MAX_DEPTH = 100  # resource graphs are a few levels deep; this guards the recursion

# RFC 45: min-max:operand:operator or min+:operand:operator, where ":operator" or
# ":operand:operator" may be left out, optionally in square brackets.  No leading zeros
# (and at most 18 digits, which also keeps int() away from its 4300-digit limit).
_RANGE_RE = re.compile(
    r"(?P<open>\[)?(?P<min>[1-9][0-9]{0,17})(?:(?P<plus>\+)|-(?P<max>[1-9][0-9]{0,17}))"
    r"(?::(?P<operand>[1-9][0-9]{0,17})(?::(?P<operator>[-+*^/]))?)?(?P<close>\])?"
)
# RFC 22: ascending ids or lo-hi ranges separated by commas, optionally in brackets.
# Counts are positive, so 0 is not an allowed element here.
_IDSET_ELEMENT_RE = re.compile(r"(?P<lo>[1-9][0-9]{0,17})(?:-(?P<hi>[1-9][0-9]{0,17}))?")


def _fail(path: str, reason: str) -> JobspecError:
    return JobspecError(f"{path}: {reason}")


def _child(path: str, key: object) -> str:
    """The path of ``key`` under ``path``; a key that is not printable text (a newline in
    an environment variable's name) is shown quoted, so the message stays one line."""
    if isinstance(key, str) and key and key.isprintable():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _check_keys(obj: Mapping[Any, Any], allowed: frozenset[str] | tuple[str, ...], path: str
                ) -> None:
    for key in obj:
        if key not in allowed:
            raise _fail(path, f"unknown key {key!r}")


def _require(obj: Mapping[Any, Any], keys: tuple[str, ...], path: str) -> None:
    for key in keys:
        if key not in obj:
            raise _fail(f"{path}.{key}" if path else key, "is required")


# -- counts --------------------------------------------------------------------------------


def _check_range(lo: int, hi: int | None, operator: str, operand: int, path: str,
                 where: str = "") -> None:
    """The RFC 14 rules that tie min, max, operator and operand together."""
    if hi is not None and hi < lo:
        raise _fail(path, f"max must be >= min{where}")
    if operator not in _OPERATORS:
        raise _fail(path, f"operator must be one of '+', '*', '^'{where}")
    if operator in ("*", "^") and operand < 2:
        raise _fail(path, f"operand must be >= 2 with operator {operator!r}{where}")
    if operator == "^" and lo < 2:
        raise _fail(path, f"min must be >= 2 with operator '^'{where}")


def _check_count_mapping(count: Mapping[Any, Any], path: str) -> None:
    _check_keys(count, _RANGE_KEYS, path)
    if "min" not in count:
        raise _fail(path, "min is required")
    for key in ("min", "max", "operand"):
        if key in count:
            value = count[key]
            if not _is_int(value):
                raise _fail(path, f"{key} must be an integer, not {_type_name(value)}")
            if value < 1:
                raise _fail(path, f"{key} must be >= 1")
    has_operator, has_operand = "operator" in count, "operand" in count
    if has_operator and not has_operand:
        raise _fail(path, "operand is required with operator")
    if has_operand and not has_operator:
        raise _fail(path, "operator is required with operand")
    operator = count.get("operator", "+")
    if not isinstance(operator, str) or operator not in _OPERATORS:
        raise _fail(path, "operator must be one of '+', '*', '^'")
    _check_range(count["min"], count.get("max"), operator, count.get("operand", 1), path)


def _check_count_string(count: str, path: str) -> None:
    match = _RANGE_RE.fullmatch(count)
    if match is not None:
        if bool(match["open"]) != bool(match["close"]):
            raise _fail(path, f"unbalanced brackets in range {count!r}")
        hi = int(match["max"]) if match["max"] else None
        operand = int(match["operand"]) if match["operand"] else 1
        operator = match["operator"] or "+"
        _check_range(int(match["min"]), hi, operator, operand, path, f" in range {count!r}")
        return
    body = count
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    last = 0
    for element in body.split(","):
        match = _IDSET_ELEMENT_RE.fullmatch(element)
        if match is None:
            raise _fail(path, f"{count!r} is not an integer, idset (RFC 22) or range (RFC 45)")
        lo = int(match["lo"])
        hi = int(match["hi"]) if match["hi"] else lo
        if hi < lo:
            raise _fail(path, f"idset {count!r}: range {element!r} is descending")
        if lo <= last:
            raise _fail(path, f"idset {count!r}: counts must be ascending and unique")
        last = hi


def _check_count(vertex: Mapping[Any, Any], path: str) -> None:
    path = f"{path}.count"
    if "count" not in vertex:
        raise _fail(path, "is required")
    count = vertex["count"]
    if _is_int(count):
        if count < 1:
            raise _fail(path, "must be >= 1")
    elif isinstance(count, str):
        _check_count_string(count, path)
    elif isinstance(count, Mapping):
        _check_count_mapping(count, path)
    else:
        raise _fail(
            path,
            "must be an integer >= 1, an idset or range string, or a mapping with min, "
            f"not {_type_name(count)}",
        )


# -- resources ---------------------------------------------------------------------------


class _Walk:
    """State of one walk over the resource graph: the vertices already validated.

    A vertex object that occurs again (a YAML alias) is not walked again, so that a
    small document of nested aliases cannot make validation take exponential time.
    """

    def __init__(self) -> None:
        self.done: dict[int, Mapping[Any, Any]] = {}

    def vertex(self, vertex: object, path: str, depth: int) -> None:
        """Validate ``vertex`` and everything under it."""
        if not isinstance(vertex, Mapping):
            raise _fail(path, f"must be a mapping, not {_type_name(vertex)}")
        if self.done.get(id(vertex)) is vertex:
            return
        if depth > _MAX_DEPTH:
            raise _fail(path, f"resources are nested more than {_MAX_DEPTH} levels deep")
        _check_keys(vertex, _VERTEX_KEYS, path)
        if "type" not in vertex:
            raise _fail(f"{path}.type", "is required")
        vtype = vertex["type"]
        if not isinstance(vtype, str):
            raise _fail(f"{path}.type", f"must be a string, not {_type_name(vtype)}")
        if not vtype:
            raise _fail(f"{path}.type", "must not be empty")
        _check_count(vertex, path)
        for key in ("unit", "id", "label"):
            if key in vertex and not isinstance(vertex[key], str):
                raise _fail(f"{path}.{key}", f"must be a string, not {_type_name(vertex[key])}")
        if "exclusive" in vertex and not isinstance(vertex["exclusive"], bool):
            raise _fail(f"{path}.exclusive", "must be a boolean (true or false)")
        if vtype == "slot":
            if "label" not in vertex:
                raise _fail(f"{path}.label", "is required for a slot")
            if not vertex["label"]:
                raise _fail(f"{path}.label", "must not be empty")
            if "with" not in vertex:
                raise _fail(f"{path}.with", "is required for a slot")
        if "with" in vertex:
            children = vertex["with"]
            if not isinstance(children, list) or not children:
                raise _fail(f"{path}.with", "must be a non-empty list of resource vertices")
            for i, child in enumerate(children):
                self.vertex(child, f"{path}.with[{i}]", depth + 1)
        self.done[id(vertex)] = vertex


def _check_resources(resources: object) -> None:
    if not isinstance(resources, list) or not resources:
        raise _fail("resources", "must be a non-empty list of resource vertices")
    walk = _Walk()
    for i, vertex in enumerate(resources):
        walk.vertex(vertex, f"resources[{i}]", 1)


# -- tasks ---------------------------------------------------------------------------------


def _check_environment(env: object, path: str) -> None:
    """An environment: names (strings) to values (strings, or null to unset)."""
    if not isinstance(env, Mapping):
        raise _fail(path, f"must be a mapping, not {_type_name(env)}")
    for name, value in env.items():
        if not isinstance(name, str):
            raise _fail(path, f"variable name {name!r} must be a string")
        if value is not None and not isinstance(value, str):
            raise _fail(_child(path, name), f"must be a string or null, not {_type_name(value)}")


def _check_task_count(count: object, path: str) -> None:
    if not isinstance(count, Mapping):
        raise _fail(path, f"must be a mapping, not {_type_name(count)}")
    keys = [key for key in count if key in _TASK_COUNT_KEYS]
    for key in count:
        if key not in _TASK_COUNT_KEYS:
            raise _fail(path, f"unknown key {key!r} (use per_slot, per_resource or total)")
    if len(keys) != 1:
        raise _fail(path, "must have exactly one of per_slot, per_resource or total")
    key = keys[0]
    value = count[key]
    if key == "per_resource":
        rpath = f"{path}.per_resource"
        if not isinstance(value, Mapping):
            raise _fail(rpath, f"must be a mapping with type and count, not {_type_name(value)}")
        _check_keys(value, ("type", "count"), rpath)
        _require(value, ("type", "count"), rpath)
        if not isinstance(value["type"], str) or not value["type"]:
            raise _fail(f"{rpath}.type", "must be a non-empty string")
        if not _is_int(value["count"]) or value["count"] < 1:
            raise _fail(f"{rpath}.count", "must be an integer >= 1")
    elif not _is_int(value) or value < 1:
        raise _fail(f"{path}.{key}", "must be an integer >= 1")


def _check_task(task: object, path: str) -> None:
    if not isinstance(task, Mapping):
        raise _fail(path, f"must be a mapping, not {_type_name(task)}")
    _check_keys(task, _TASK_KEYS, path)
    _require(task, ("command", "slot", "count"), path)
    command = task["command"]
    if not isinstance(command, list) or not command:
        raise _fail(f"{path}.command", "must be a non-empty list of strings")
    for i, arg in enumerate(command):
        if not isinstance(arg, str):
            raise _fail(f"{path}.command[{i}]", f"must be a string, not {_type_name(arg)}")
    slot = task["slot"]
    if not isinstance(slot, str) or not slot:
        raise _fail(f"{path}.slot", "must be a non-empty string (a slot label)")
    _check_task_count(task["count"], f"{path}.count")
    if "distribution" in task and not isinstance(task["distribution"], str):
        raise _fail(f"{path}.distribution", "must be a string")
    if "attributes" in task:
        attrs = task["attributes"]
        if not isinstance(attrs, Mapping):
            raise _fail(f"{path}.attributes", f"must be a mapping, not {_type_name(attrs)}")
        if "environment" in attrs:
            _check_environment(attrs["environment"], f"{path}.attributes.environment")


def _check_tasks(tasks: object) -> None:
    if not isinstance(tasks, list) or not tasks:
        raise _fail("tasks", "must be a non-empty list of tasks")
    for i, task in enumerate(tasks):
        _check_task(task, f"tasks[{i}]")


# -- attributes ----------------------------------------------------------------------------


def _check_constraint(obj: object, path: str, depth: int = 0) -> None:
    """RFC 31: ``{operator: [values...]}``; and/or/not take constraints as values.

    Unknown operators are left to the scheduler (RFC 31 is extensible); the known ones
    are checked: properties, hostlist and ranks take strings.
    """
    if not isinstance(obj, Mapping):
        raise _fail(path, f"must be a mapping, not {_type_name(obj)}")
    if depth > _MAX_DEPTH:
        raise _fail(path, f"constraints are nested more than {_MAX_DEPTH} levels deep")
    for op, values in obj.items():
        if not isinstance(op, str):
            raise _fail(path, f"operator {op!r} must be a string")
        if not isinstance(values, list):
            raise _fail(_child(path, op), f"must be a list, not {_type_name(values)}")
        for i, value in enumerate(values):
            if op in _CONSTRAINT_NESTED:
                _check_constraint(value, f"{path}.{op}[{i}]", depth + 1)
            elif op == "ranks" and _is_int(value) and value >= 0:
                continue  # a single rank; Fluxion takes these as well as idset strings
            elif op in _CONSTRAINT_STRINGS and not isinstance(value, str):
                raise _fail(f"{path}.{op}[{i}]", f"must be a string, not {_type_name(value)}")


def _check_dependencies(deps: object, path: str) -> None:
    """RFC 26: a non-empty list of ``{scheme, value, ...}``, all strings.

    The ``string`` and ``fluid`` schemes also require ``type`` (in, out, inout) and
    ``scope`` (user, global); other keys belong to their scheme.
    """
    if not isinstance(deps, list):
        raise _fail(path, f"must be a list, not {_type_name(deps)}")
    if not deps:
        raise _fail(path, "must not be empty (leave it out for no dependencies)")
    for i, dep in enumerate(deps):
        dpath = f"{path}[{i}]"
        if not isinstance(dep, Mapping):
            raise _fail(dpath, f"must be a mapping, not {_type_name(dep)}")
        _require(dep, ("scheme", "value"), dpath)
        for key in ("scheme", "value"):
            if not isinstance(dep[key], str):
                raise _fail(f"{dpath}.{key}", f"must be a string, not {_type_name(dep[key])}")
        if not dep["scheme"]:
            raise _fail(f"{dpath}.scheme", "must not be empty")
        if dep["scheme"] in ("string", "fluid"):
            for key, allowed in (("type", _DEP_TYPES), ("scope", _DEP_SCOPES)):
                if key not in dep:
                    raise _fail(f"{dpath}.{key}", f"is required for scheme {dep['scheme']!r}")
                if dep[key] not in allowed:
                    raise _fail(f"{dpath}.{key}", "must be one of " + ", ".join(allowed))


def _check_system(system: object) -> None:
    path = "attributes.system"
    if not isinstance(system, Mapping):
        raise _fail(path, f"must be a mapping, not {_type_name(system)}")
    for key in _SYSTEM_NUMBER:
        if key in system:
            value = system[key]
            if not _is_number(value) or not value >= 0:  # "not >=" also catches NaN
                raise _fail(f"{path}.{key}", "must be a number >= 0")
            if not _is_finite(value):
                raise _fail(f"{path}.{key}", "must be finite")
    for key in _SYSTEM_STR:
        if key in system and not isinstance(system[key], str):
            raise _fail(f"{path}.{key}", f"must be a string, not {_type_name(system[key])}")
    for key in _SYSTEM_MAP:
        if key in system and not isinstance(system[key], Mapping):
            raise _fail(f"{path}.{key}", f"must be a mapping, not {_type_name(system[key])}")
    if "options" in system.get("shell", {}) and not isinstance(
        system["shell"]["options"], Mapping
    ):
        raise _fail(f"{path}.shell.options", "must be a mapping")
    if "environment" in system:
        _check_environment(system["environment"], f"{path}.environment")
    if "job" in system:
        job = system["job"]
        if not isinstance(job, Mapping):
            raise _fail(f"{path}.job", f"must be a mapping, not {_type_name(job)}")
        for key, value in job.items():
            if not isinstance(value, str):
                raise _fail(_child(f"{path}.job", key),
                            f"must be a string, not {_type_name(value)}")
    if "dependencies" in system:
        _check_dependencies(system["dependencies"], f"{path}.dependencies")
    if "constraints" in system:
        _check_constraint(system["constraints"], f"{path}.constraints")


def _check_attributes(attributes: object) -> None:
    if not isinstance(attributes, Mapping):
        raise _fail("attributes", f"must be a mapping, not {_type_name(attributes)}")
    _check_keys(attributes, _ATTR_KEYS, "attributes")
    if "user" in attributes and not isinstance(attributes["user"], Mapping):
        raise _fail("attributes.user", f"must be a mapping, not {_type_name(attributes['user'])}")
    if "system" in attributes:
        _check_system(attributes["system"])


def validate_canonical(js: object) -> None:
    """Check that ``js`` (a decoded jobspec) is a valid RFC 14 canonical jobspec.

    Any version >= 1 is accepted.  Returns None if it is valid; raises
    :class:`~strato.jobspec.model.JobspecError` with a one-line message ``PATH: reason``
    for the first problem found.  ``js`` is not modified.
    """
    if not isinstance(js, Mapping):
        raise _fail("jobspec", f"must be a mapping, not {_type_name(js)}")
    _require(js, _TOP_KEYS, "")
    _check_keys(js, _TOP_KEYS, "jobspec")
    version = js["version"]
    if not _is_int(version) or version < 1:
        raise _fail("version", "must be an integer >= 1")
    _check_resources(js["resources"])
    _check_tasks(js["tasks"])
    _check_attributes(js["attributes"])


# -- reading -------------------------------------------------------------------------------


def _yaml_reason(exc: Exception, text: str) -> str:
    """``<short reason> at line N`` from a PyYAML error, on one line."""
    character = getattr(exc, "character", None)
    position = getattr(exc, "position", None)
    if isinstance(position, int) and character is not None:  # a ReaderError
        code = ord(character) if isinstance(character, str) else int(character)
        line = text.count("\n", 0, position) + 1
        return f"unacceptable character #x{code:04x} at line {line}"
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and context and problem.startswith("but "):
        problem = f"{context}, {problem}"  # "expected a single document ..., but found ..."
    reason = " ".join(str(problem or exc).split())
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        reason += f" at line {mark.line + 1}"
    return reason


def _decode(data: bytes, name: str) -> str:
    """Text of a jobspec file: UTF-8 (a BOM is allowed), or UTF-16 with a BOM."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        what = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise JobspecError(f"{name}: invalid YAML: not {what} text (byte {exc.start})") from None


def load_jobspec(text: str | bytes, name: str = "<stdin>") -> dict[str, Any]:
    """Parse a jobspec document (YAML or JSON) into a dict; it is not validated.

    Raises :class:`~strato.jobspec.model.JobspecError` with one line naming ``name``:
    ``NAME: invalid YAML: <reason> at line N`` for a syntax error, or
    ``NAME: jobspec must be a mapping, not ...`` for a document that is not a mapping.
    """
    import yaml  # here, so that importing strato.jobspec stays light

    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text), name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobspecError(f"{name}: invalid YAML: {_yaml_reason(exc, text)}") from None
    except RecursionError:
        raise JobspecError(f"{name}: invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build: 4300+ digits,
        reason = " ".join(str(exc).split())  # a timestamp with month 13, ...
        raise JobspecError(f"{name}: invalid YAML: {reason}") from None
    if data is None:
        raise JobspecError(f"{name}: empty document (a jobspec is a mapping)")
    if not isinstance(data, dict):
        raise JobspecError(f"{name}: jobspec must be a mapping, not {_type_name(data)}")
    return data
