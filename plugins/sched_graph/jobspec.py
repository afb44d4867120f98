"""The part of an RFC 14 jobspec the graph matcher needs, parsed the way Fluxion does.

A resource request is a tree of ``Request`` (type, count with min/max/operator/
operand, exclusivity as true/false/unspecified, label, children). ``user_data`` is
filled by the matcher with the aggregate counts a subtree needs (for pruning).
RFC 31 constraints (properties, hostlist, ranks, and/or/not) are checked here with
Fluxion's error messages and compiled by ``strato.jobspec.constraints`` (the one
implementation of RFC 31 evaluation) into a predicate over node vertices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from strato.jobspec.constraints import Matcher

UINT_MAX = 2**32 - 1

# libyaml's loader when PyYAML was built with it (same constructors as safe_load).
_FastLoader = getattr(yaml, "CSafeLoader", None)
_CACHE_MAX = 256
_cache: dict[str, Jobspec] = {}  # jobspec text -> parsed (successful parses only)


class JobspecError(Exception):
    """The jobspec is malformed; the message is what resource-query prints."""


@dataclass
class Request:
    type: str
    min: int
    max: int = UINT_MAX
    oper: str = "+"
    operand: int = 1
    exclusive: bool | None = None
    label: str = ""
    with_: list[Request] = field(default_factory=list)
    user_data: dict[str, int] = field(default_factory=dict)


_BAD_PROPERTY_CHARS = frozenset("!&'\"^`|()")


def _is_scalar(v) -> bool:
    """A YAML scalar as yaml-cpp sees it (null, sequences and mappings are not)."""
    return isinstance(v, str | int | float | bool)


def _scalar_text(v) -> str:
    """``as<std::string>()`` of a scalar node (YAML booleans read back as written)."""
    if not _is_scalar(v):
        raise JobspecError("bad conversion")
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_constraint(obj) -> Matcher:
    """Check RFC 31 ``obj`` as Fluxion's jobspec parser does (its messages, its rules)
    and compile it into a predicate over vertices, with Fluxion's semantics: a
    vertex's name is not one of its properties and an empty ``or`` matches nothing.

    strato.jobspec.constraints is imported here, on the first constraint, so loading
    the graph library (resource-query's start-up) does not pay for it."""
    from strato.jobspec.constraints import compile_constraint

    return compile_constraint(_checked(obj), validate=False, host_is_property=False,
                              empty_or_matches=False)


def _checked(obj) -> dict:
    """``obj`` checked, with hostlist/ranks scalars as the text yaml-cpp reads."""
    if not isinstance(obj, dict):
        raise JobspecError("constraint is not a mapping")
    if len(obj) > 1:
        raise JobspecError("constraint map may not contain > 1 operation")
    if not obj:
        return {}
    op, value = next(iter(obj.items()))
    if not isinstance(value, list):
        raise JobspecError(f"{op} operator value must be an array")
    if op == "properties":
        for prop in value:
            if not isinstance(prop, str):
                raise JobspecError("non-string property specified")
            if any(ch in _BAD_PROPERTY_CHARS for ch in prop.removeprefix("^")):
                raise JobspecError(f"{prop} is invalid")
        return {op: list(value)}
    if op in ("hostlist", "ranks"):
        vals = [_scalar_text(x) for x in value]
        for x in vals:
            try:
                if op == "hostlist":
                    from strato.jobspec.hostlist import expand_hostlist

                    expand_hostlist(x)
                else:
                    from strato.jobspec.idset import decode_idset

                    decode_idset(x)
            except ValueError as exc:
                kind = "hostlist" if op == "hostlist" else "idset"
                raise JobspecError(f"Invalid {kind} `{x}'") from exc
        return {op: vals}
    if op in ("and", "or", "not"):
        return {op: [_checked(x) for x in value]}
    raise JobspecError(f"unknown constraint operator: {op}")


@dataclass
class Jobspec:
    resources: list[Request]
    duration: float = 0.0
    queue: str = ""
    constraint: Matcher | None = None


def _uint(value, what: str) -> int:
    if not _is_scalar(value):
        raise JobspecError(f"Value of \"{what}\" must be a scalar")
    if isinstance(value, bool) or isinstance(value, float):
        raise JobspecError("bad conversion")
    try:
        return int(value)
    except ValueError as exc:
        raise JobspecError("bad conversion") from exc


def _parse_count(req: Request, c) -> None:
    if not isinstance(c, dict):
        if not _is_scalar(c):
            raise JobspecError("count is not a mapping")
        req.min = req.max = _uint(c, "count")
        return
    if "min" not in c:
        raise JobspecError('Key "min" missing from count')
    if not _is_scalar(c["min"]):
        raise JobspecError('Value of "min" must be a scalar')
    extra = [k for k in ("max", "operator", "operand") if k in c]
    if extra:
        if len(extra) != 3:
            raise JobspecError(
                'All or none of "max", "operator", and "operand" must be specified')
        for k in ("max", "operator", "operand"):
            if not _is_scalar(c[k]):
                raise JobspecError(f'Value of "{k}" must be a scalar')
        req.max = _uint(c["max"], "max")
        oper = _scalar_text(c["operator"])
        if len(oper) != 1:
            raise JobspecError("bad conversion")
        req.oper = oper
        req.operand = _uint(c["operand"], "operand")
    req.min = _uint(c["min"], "min")
    if req.min < 1:
        raise JobspecError('"min" must be greater than zero')
    if "max" in c and req.max < req.min:
        raise JobspecError('"max" must be greater than or equal to "min"')
    if req.oper == "+":
        if req.operand < 1:
            raise JobspecError("\"operand\" must be greater than zero for addition '+'")
    elif req.oper == "*":
        if req.operand < 2:
            raise JobspecError("\"operand\" must be greater than one for multiplication '*'")
    elif req.oper == "^":
        if req.operand < 2:
            raise JobspecError("\"operand\" must be greater than one for exponentiation '^'")
        if req.min < 2:
            raise JobspecError("\"min\" must be greater than one for exponentiation '^'")
    else:
        raise JobspecError("Invalid count operator")


def _parse_resource(node, known_types=None) -> Request:
    if not isinstance(node, dict):
        raise JobspecError("resource is not a mapping")
    if "type" not in node:
        raise JobspecError('Key "type" missing from resource')
    if not _is_scalar(node["type"]):
        raise JobspecError('Value of "type" must be a scalar')
    rtype = _scalar_text(node["type"])
    if known_types is not None and rtype not in known_types:
        # Fluxion interns resource types; once the graph is loaded, a type that is
        # neither built in nor in the graph can't be interned.
        raise JobspecError('Value of "type" must be a resource type known to fluxion')
    if "count" not in node:
        raise JobspecError('Key "count" missing from resource')
    req = Request(type=rtype, min=1)
    _parse_count(req, node["count"])
    known = {"type", "count", "unit", "exclusive", "with", "label", "id"}
    if "unit" in node and not _is_scalar(node["unit"]):
        raise JobspecError('Value of "unit" must be a scalar')
    if "exclusive" in node:
        if not _is_scalar(node["exclusive"]):
            raise JobspecError('Value of "exclusive" must be a scalar')
        val = _scalar_text(node["exclusive"])
        if val == "false":
            req.exclusive = False
        elif val == "true":
            req.exclusive = True
        else:
            raise JobspecError('Value of "exclusive" must be either "true" or "false"')
    if "with" in node:
        if not isinstance(node["with"], list):
            raise JobspecError('"resources" is not a sequence')
        req.with_ = [_parse_resource(r, known_types) for r in node["with"]]
    if "label" in node:
        if not _is_scalar(node["label"]):
            raise JobspecError('Value of "label" must be a scalar')
        req.label = _scalar_text(node["label"])
    elif req.type == "slot":
        raise JobspecError("All slots must be labeled")
    if "id" in node and not _is_scalar(node["id"]):
        raise JobspecError('Value of "id" must be a scalar')
    if any(k not in known for k in node):
        raise JobspecError("Unrecognized key in resource mapping")
    return req


def parse_jobspec(text: str, known_types=None) -> Jobspec:
    """Parse jobspec text (YAML or JSON) into the matcher's view of it.

    ``known_types`` (a container of type names), when given, rejects resource types
    outside it, as Fluxion does once its graph is loaded.

    Successful parses are cached by text: the result depends only on the text and
    on whether its resource types are known, so a cached one is returned when all
    its types are known (otherwise the text is parsed again, which raises the same
    error as before). The matcher resets everything it stores on a Request
    (``user_data``) before each use, so sharing the parsed object is safe.
    """
    hit = _cache.get(text)
    if hit is not None and (known_types is None or _types_known(hit.resources, known_types)):
        return hit
    try:
        js = _parse_jobspec(text, known_types)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, JobspecError):
            raise
        raise JobspecError("bad conversion") from exc
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[text] = js
    return js


def match_text(jobspec: dict) -> str:
    """The text `parse_jobspec` needs of a jobspec given as a dict.

    What the parser neither reads nor checks is left out: the contents of each
    task's command, the system attributes other than duration, queue and
    constraints (the environment, files, ...), the contents of the user
    attributes. So jobs that differ only there (every child instance's command,
    a submission's environment) share one parse, and with it the matcher's
    subtree cache (keyed by the parsed requests). Parts of an unexpected shape are
    kept whole, so a bad jobspec fails as it did.
    """
    view = dict(jobspec)
    tasks = view.get("tasks")
    if isinstance(tasks, list) and all(isinstance(t, dict) and isinstance(t.get("command"), list)
                                       for t in tasks):
        view["tasks"] = [{**t, "command": []} for t in tasks]
    attrs = view.get("attributes")
    if isinstance(attrs, dict):
        attrs = dict(attrs)
        system = attrs.get("system")
        if isinstance(system, dict):
            attrs["system"] = {k: v for k, v in system.items()
                               if k in ("duration", "queue", "constraints")}
        if "user" in attrs:
            attrs["user"] = None
        view["attributes"] = attrs
    return json.dumps(view)


def _types_known(resources: list[Request], known_types) -> bool:
    for r in resources:
        if r.type not in known_types or not _types_known(r.with_, known_types):
            return False
    return True


def _load_yaml(text: str):
    """``yaml.safe_load(text)``, through libyaml when available.

    On a YAML error the pure-Python loader parses it again, so the error message is
    exactly safe_load's.
    """
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def _parse_jobspec(text: str, known_types) -> Jobspec:
    try:
        top = _load_yaml(text)
    except yaml.YAMLError as exc:
        try:
            top = json.loads(text)
        except ValueError:
            raise JobspecError(str(exc).replace("\n", " ")) from exc
    if not isinstance(top, dict):
        raise JobspecError("Top level of jobspec is not a mapping")
    for key, name in (("version", "version"), ("resources", "resource"), ("tasks", "tasks"),
                      ("attributes", "attributes")):
        if key not in top:
            raise JobspecError(f'Missing key "{name}" in top level mapping')
    if len(top) != 4:
        raise JobspecError("Top mapping in jobspec must have exactly four entries")
    try:
        version = int(top["version"])
    except (TypeError, ValueError) as exc:
        raise JobspecError('"version" must be an unsigned integer') from exc
    if version < 1 or version > 9999:
        raise JobspecError('Only jobspec "version" 1-9999 is supported')
    js = Jobspec(resources=[])
    attrs = top["attributes"]
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise JobspecError('"attributes" is not a map')
        for k, v in attrs.items():
            if k == "system":
                for sk, sv in (v or {}).items():
                    if sk == "duration":
                        js.duration = float(sv)
                    elif sk == "queue":
                        js.queue = str(sv)
                    elif sk == "constraints":
                        js.constraint = parse_constraint(sv)
            elif k != "user":
                raise JobspecError('Unknown key in "attributes"')
    if not isinstance(top["resources"], list):
        raise JobspecError('"resources" is not a sequence')
    js.resources = [_parse_resource(r, known_types) for r in top["resources"]]
    tasks = top["tasks"]
    if not isinstance(tasks, list):
        raise JobspecError('"tasks" is not a sequence')
    for t in tasks:
        if not isinstance(t, dict):
            raise JobspecError("task is not a mapping")
        if "command" not in t:
            raise JobspecError('Key "command" missing from task')
        if not isinstance(t["command"], list):
            raise JobspecError('"command" value must be a sequence')
        if "slot" not in t:
            raise JobspecError('Key "slot" missing from task')
        if not _is_scalar(t["slot"]):
            raise JobspecError('Value of task "slot" must be a YAML scalar')
        if "count" in t:
            if not isinstance(t["count"], dict):
                raise JobspecError('"count" in task is not a mapping')
            if len(t["count"]) != 1:
                raise JobspecError('"count" in task must have exactly one entry')
        if "distribution" in t and not _is_scalar(t["distribution"]):
            raise JobspecError('Value of task "distribution" must be a YAML scalar')
        if "attributes" in t and not isinstance(t["attributes"], dict):
            raise JobspecError('"attributes" in task is not a mapping')
        if len(t) < 3 or len(t) > 5:
            raise JobspecError("impossible number of entries in task mapping")
    return js


def calc_count(r: Request, qc: int) -> int:
    """How many of ``r`` to take when ``qc`` qualify (0: the request can't be met)."""
    if r.min > r.max or r.min > qc:
        return 0
    cur = r.min
    count = 0
    if r.oper == "+":
        count = qc if qc < r.max else r.max
        rng = count - cur
        count -= rng % r.operand
    elif r.oper == "*":
        if r.operand == 1:
            count = cur
        else:
            while cur <= qc and cur <= r.max:
                count = cur
                cur *= r.operand
    elif r.oper == "^":
        if r.operand < 2 or cur == 1:
            count = cur
        else:
            while cur <= qc and cur <= r.max:
                base = cur
                count = cur
                for _ in range(1, r.operand):
                    cur *= base
    return count


def calc_effective_max(r: Request) -> int:
    return calc_count(r, UINT_MAX)
