"""Output formatting for ``strato jobs``: Flux's ``flux jobs --format`` language.

Why this exists: ``strato jobs`` must print the same columns as ``flux jobs`` and accept
the same ``--format`` strings, so that Flux users' habits, aliases and scripts keep working.

A format is Python ``str.format`` syntax over job fields, e.g. the default::

    {id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status_abbrev:>2.2} \
{ntasks:>6} {nnodes:>6h} {contextual_time!F:>8h} {contextual_info}

with the Flux extensions (see flux-jobs(1)):

* conversions ``!d`` (timestamp to datetime; the spec is a strftime format, optionally
  followed by ``::`` and a normal spec, e.g. ``{t_submit!d:%b%d %R::>12}``), ``!D``
  (ISO 8601 date), ``!F`` (duration as FSD, RFC 23), ``!H`` (duration as H:MM:SS) and
  ``!P`` (fraction as a percentage);
* an ``h`` suffix on the spec prints ``-`` for an empty value ("", "0s", "0.0", "0:00:00",
  the epoch);
* a ``+`` suffix (after ``h``) marks truncation: ``{name:<10.10+}`` prints at most ten
  characters and ends a truncated name with ``+``;
* prefixes ``?:`` (drop the column when it is empty for every job), ``+:`` (widen the
  column to its widest value) and ``?+:`` (both), applied by
  :meth:`JobsFormatter.filter_empty`.

A format is compiled once, into one generated Python function that looks up, converts
and pads every field of a record and joins them with a single f-string: no parsing, no
loop over parts per record (100,000 records take a few tenths of a second).

Records are the plain dicts the broker returns (``id``, ``userid``, ``state``, ``result``,
``t_submit``, ... ; see :data:`FIELDS` for everything that can be printed).  Unset values
(``None``, missing keys) print as an empty string, unset timestamps as ``0.0``, as in
Flux.

Differences from Flux, on purpose: ``{id}`` always prints F58 (Flux prints decimal when
a spec is given); ``!F`` prints 4 significant digits like ``flux jobs`` but without its
trailing zeros below 10s (``1.5s`` where Flux prints ``1.500s``); a NEW job's status is
``NEW``/``N`` (Flux prints nothing); ``h`` with a numeric type (``{runtime:.1fh}``) and
a spec that does not suit the value (``{ntasks:.3}``) work instead of raising.
"""

from __future__ import annotations

import math
import os
import re
import string
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from strato.core.ids import encode, f58
from strato.core.states import ALL, INACTIVE, PENDING, RESULTS, RUNNING, STATES
from strato.jobspec.fsd import format_fsd

__all__ = [
    "FIELDS",
    "NAMED_FORMATS",
    "RESULT_NAMES",
    "STATE_BITS",
    "JobsFormatter",
    "match_filter",
    "parse_filter",
]

# --- states, results, filters ---------------------------------------------------------

STATE_BITS = STATES
RESULT_NAMES = RESULTS

_FILTER_STATES = {name.lower(): bit for name, bit in STATE_BITS.items()}
_FILTER_STATES.update(pending=PENDING, running=RUNNING, active=ALL & ~INACTIVE)


def parse_filter(text: str) -> tuple[int, set[str]]:
    """Parse a ``--filter=STATE|RESULT,...`` argument into (state mask, result names).

    Names are case-insensitive: the states ``new depend priority sched run cleanup
    inactive``, the aliases ``pending`` (DEPEND|PRIORITY|SCHED), ``running`` (RUN|CLEANUP)
    and ``active`` (everything but INACTIVE), and the results ``completed failed canceled
    timeout``, which imply INACTIVE.  See :func:`match_filter` for how the two combine.

    As in Flux, a job is listed if its state *or* its result was asked for, so when
    ``inactive`` itself is given every result matches and the result set comes back
    empty: ``inactive,failed`` is ``(INACTIVE, set())``, ``failed`` is
    ``(INACTIVE, {"FAILED"})``.

    Raises ValueError ``invalid filter 'x'`` for an unknown or empty name.
    """
    mask = 0
    results: set[str] = set()
    for item in text.split(","):
        name = item.strip().lower()
        bit = _FILTER_STATES.get(name)
        if bit is not None:
            mask |= bit
        elif name.upper() in RESULT_NAMES:
            results.add(name.upper())
        else:
            raise ValueError(f"invalid filter {item.strip()!r}")
    if mask & INACTIVE:
        results.clear()  # all inactive jobs were asked for
    elif results:
        mask |= INACTIVE
    return mask, results


def match_filter(record: dict, states: int, results: set[str]) -> bool:
    """True if ``record`` passes a filter from :func:`parse_filter`.

    The job's state must be in ``states``, and an inactive job must also have one of
    ``results`` when any are given: ``running,failed`` lists running jobs and failed
    ones, as Flux's job-list does.
    """
    state = record.get("state")
    if not STATE_BITS.get(state, 0) & states:
        return False
    if state == "INACTIVE" and results:
        return record.get("result") in results
    return True


# --- field values ---------------------------------------------------------------------

_STATE_SINGLE = {name: name[0] for name in STATE_BITS}
_RESULT_ABBREV = {"COMPLETED": "CD", "FAILED": "F", "CANCELED": "CA", "TIMEOUT": "TO"}
_PENDING_STATES = frozenset({"NEW", "DEPEND", "PRIORITY", "SCHED"})

# Looked up as a module global so that tests can replace it.
_now = time.time

_usernames: dict[Any, str] = {}


def _username(uid: Any) -> str:
    try:
        return _usernames[uid]
    except KeyError:
        pass
    import pwd

    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, TypeError, ValueError, OverflowError):
        name = "" if uid is None else str(uid)
    _usernames[uid] = name
    return name


def _key(key: str, default: Any = "") -> Callable[[dict], Any]:
    """Getter for a plain record key; ``None`` and a missing key give ``default``."""

    def get(rec: dict) -> Any:
        v = rec.get(key)
        return default if v is None else v

    get.key = key  # type: ignore[attr-defined]  # lets the compiler inline the lookup
    get.default = default  # type: ignore[attr-defined]
    return get


def _runtime(rec: dict) -> float:
    t_run = rec.get("t_run") or 0.0
    if t_run <= 0:
        return 0.0
    t_cleanup = rec.get("t_cleanup") or 0.0
    if t_cleanup > 0:
        return t_cleanup - t_run
    return _now() - t_run


def _t_remaining(rec: dict) -> float:
    if rec.get("state") != "RUN":
        return 0.0
    left = (rec.get("expiration") or 0.0) - _now()
    return left if left > 0 else 0.0


def _status(rec: dict) -> str:
    state = rec.get("state")
    if state == "INACTIVE":
        return rec.get("result") or ""
    return state or ""


def _status_abbrev(rec: dict) -> str:
    state = rec.get("state")
    if state == "INACTIVE":
        return _RESULT_ABBREV.get(rec.get("result"), "")
    return _STATE_SINGLE.get(state, "")


def _returncode(rec: dict) -> Any:
    ws = rec.get("waitstatus")
    if not isinstance(ws, int) or isinstance(ws, bool):
        result = rec.get("result")
        if result == "CANCELED":
            return -128  # canceled before it ran
        if result == "FAILED":
            return 1  # e.g. a fatal exception before it ran
        return ""
    if os.WIFSIGNALED(ws):
        return -os.WTERMSIG(ws)
    if os.WIFEXITED(ws):
        return os.WEXITSTATUS(ws)
    return ""


def _exception(key: str) -> Callable[[dict], Any]:
    def get(rec: dict) -> Any:
        exc = rec.get("exception")
        if not exc:
            return ""
        v = exc.get(key)
        return "" if v is None else v

    return get


def _dependencies(rec: dict) -> str:
    deps = rec.get("dependencies")
    if not deps:
        return ""
    out = []
    for dep in deps:
        if dep.startswith("begin-time="):  # shown as begin@HH:MM, as Flux does
            try:
                dt = datetime.fromtimestamp(float(dep.partition("=")[2]))
            except (ValueError, OverflowError, OSError):
                pass
            else:
                today = dt.date() == datetime.now().date()
                dep = f"begin@{dt:%H:%M}" if today else f"begin@{dt:%b%d-%H:%M}"
                if dt.second:
                    dep += f":{dt:%S}"
        out.append(dep)
    return ",".join(out)


def _dig(v: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in nested dicts, or None where the path ends early."""
    for key in path:
        if not isinstance(v, dict):
            return None
        v = v.get(key)
    return v


def _annotation(path: tuple[str, ...]) -> Callable[[dict], Any]:
    def get(rec: dict) -> Any:
        v = _dig(rec.get("annotations"), path)
        if v is None:
            return ""
        if isinstance(v, dict):
            if not v:
                return ""
            import json

            return json.dumps(v)
        return v

    return get


_sched_t_estimate = _annotation(("sched", "t_estimate"))


def _contextual_info(rec: dict) -> str:
    state = rec.get("state")
    if state == "PRIORITY":
        return "priority-wait"
    if state == "DEPEND":
        return "depends:" + _dependencies(rec)
    if state == "SCHED":
        t_est = _sched_t_estimate(rec)
        if isinstance(t_est, (int, float)) and not isinstance(t_est, bool):
            eta = t_est - _now()
            return "eta:now" if eta < 0 else "eta:" + _fsd(eta)
        if rec.get("urgency") == 0:
            return "held"
        if rec.get("priority") == 0:
            return "priority-hold"
        return ""
    inst = rec.get("instance")
    if inst is not None:  # a running child instance: where it runs, and its progress
        nodelist = rec.get("nodelist")
        return f"{nodelist} {_instance_summary(inst)}" if nodelist else _instance_summary(inst)
    return rec.get("nodelist") or ""


def _contextual_time(rec: dict) -> float:
    if rec.get("state") in _PENDING_STATES:
        return rec.get("duration") or 0.0
    return _runtime(rec)


def _inactive_reason(rec: dict) -> str:
    if rec.get("state") != "INACTIVE":
        return ""
    result = rec.get("result")
    exc = rec.get("exception") or {}
    if result == "CANCELED":
        if exc.get("type") == "cancel" and exc.get("note"):
            return f"Canceled: {exc['note']}"
        return "Canceled"
    if result == "TIMEOUT":
        return "Timeout"
    rc = _returncode(rec)
    if result == "FAILED":
        if exc and exc.get("type") != "exec" and exc.get("severity") == 0:
            note = f" note={exc['note']}" if exc.get("note") else ""
            return f"Exception: type={exc.get('type')}{note}"
        if isinstance(rc, int):
            if rc > 128:
                import signal

                try:
                    return signal.strsignal(rc - 128) or f"Signaled {rc - 128}"
                except ValueError:
                    return f"Signaled {rc - 128}"
            special = {
                126: "Command invoked cannot execute",
                127: "command not found",
                128: "Invalid argument to exit",
            }
            if rc in special:
                return special[rc]
    return f"Exit {rc}"


# Id 0 is the enclosing instance itself when ``strato pstree`` shows it as the
# root of its tree (no job has it), printed as "." in every id form, as Flux does.
def _f58plain(rec: dict) -> str:
    i = rec["id"]
    return "f" + f58(i)[1:] if i else "."


def _id_form(form: str) -> Callable[[dict], str]:
    def get(rec: dict) -> str:
        i = rec["id"]
        return encode(i, form) if i else "."

    return get


def _id_f58(rec: dict) -> str:
    i = rec["id"]
    return f58(i) if i else "."


def _id_dec(rec: dict) -> str:
    i = rec["id"]
    return str(i) if i else "."


# --- child instances (records given an "instance" key by strato.instance) -------------

def _instance(path: tuple[str, ...]) -> Callable[[dict], Any]:
    """Getter for a value of a running child instance's ``instance`` record;
    empty for a job that is no instance, or whose instance did not answer."""

    def get(rec: dict) -> Any:
        v = _dig(rec.get("instance"), path)
        return "" if v is None else v

    return get


def _stats_text(stats: dict) -> str:
    return (f"PD:{stats['pending']} R:{stats['running']} CD:{stats['successful']} "
            f"F:{stats['failed']}")


def _instance_stats(rec: dict) -> str:
    inst = rec.get("instance")
    return _stats_text(inst["stats"]) if inst else ""


def _instance_summary(inst: dict) -> str:
    """What INFO shows of a running child instance: its jobs by status (Flux's
    ``instance.stats``) and how busy its cores (and gpus) are."""
    out = _stats_text(inst["stats"])
    for key, what in (("utilization", "cores"), ("gpu_utilization", "gpus")):
        if inst.get(key) is not None:
            out += f" {what}:{_percent(inst[key])}"
    return out


def _uri(rec: dict) -> str:
    return (rec.get("memo") or {}).get("uri") or ""


# field name -> (heading, getter).  Headings are Flux's.
FIELDS: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "id": ("JOBID", _id_f58),
    "id.f58": ("JOBID", _id_f58),
    "id.f58plain": ("JOBID", _f58plain),
    "id.dec": ("JOBID", _id_dec),
    "id.hex": ("JOBID", _id_form("hex")),
    "id.dothex": ("JOBID", _id_form("dothex")),
    "id.kvs": ("JOBID", _id_form("kvs")),
    "id.words": ("JOBID", _id_form("words")),
    "userid": ("UID", _key("userid")),
    "username": ("USER", lambda rec: _username(rec.get("userid"))),
    "urgency": ("URG", _key("urgency")),
    "priority": ("PRI", _key("priority")),
    "state": ("STATE", _key("state")),
    "state_single": ("S", lambda rec: _STATE_SINGLE.get(rec.get("state"), "")),
    "status": ("STATUS", _status),
    "status_abbrev": ("ST", _status_abbrev),
    "name": ("NAME", _key("name")),
    "cwd": ("CWD", _key("cwd")),
    "queue": ("QUEUE", _key("queue")),
    "project": ("PROJECT", _key("project")),
    "bank": ("BANK", _key("bank")),
    "ntasks": ("NTASKS", _key("ntasks")),
    "ncores": ("NCORES", _key("ncores")),
    "nnodes": ("NNODES", _key("nnodes")),
    "duration": ("DURATION", _key("duration", 0.0)),
    "ranks": ("RANKS", _key("ranks")),
    "nodelist": ("NODELIST", _key("nodelist")),
    "result": ("RESULT", _key("result")),
    "result_abbrev": ("RS", lambda rec: _RESULT_ABBREV.get(rec.get("result"), "")),
    "success": ("SUCCESS", _key("success")),
    "waitstatus": ("WSTATUS", _key("waitstatus")),
    "returncode": ("RC", _returncode),
    "exception.occurred": ("EXCEPTION-OCCURRED", lambda rec: bool(rec.get("exception"))),
    "exception.severity": ("EXCEPTION-SEVERITY", _exception("severity")),
    "exception.type": ("EXCEPTION-TYPE", _exception("type")),
    "exception.note": ("EXCEPTION-NOTE", _exception("note")),
    "t_submit": ("T_SUBMIT", _key("t_submit", 0.0)),
    "t_depend": ("T_DEPEND", _key("t_depend", 0.0)),
    "t_priority": ("T_PRIORITY", _key("t_priority", 0.0)),
    "t_sched": ("T_SCHED", _key("t_sched", 0.0)),
    "t_run": ("T_RUN", _key("t_run", 0.0)),
    "t_cleanup": ("T_CLEANUP", _key("t_cleanup", 0.0)),
    "t_inactive": ("T_INACTIVE", _key("t_inactive", 0.0)),
    "runtime": ("RUNTIME", _runtime),
    "expiration": ("EXPIRATION", _key("expiration", 0.0)),
    "t_remaining": ("T_REMAINING", _t_remaining),
    "dependencies": ("DEPENDENCIES", _dependencies),
    "annotations": ("ANNOTATIONS", _annotation(())),
    "sched": ("SCHED", _annotation(("sched",))),
    "user": ("USER", _annotation(("user",))),
    "contextual_info": ("INFO", _contextual_info),
    "contextual_time": ("TIME", _contextual_time),
    "inactive_reason": ("INACTIVE-REASON", _inactive_reason),
    "uri": ("URI", _uri),
    "uri.local": ("URI", _uri),
    "instance.stats": ("STATS", _instance_stats),
    "instance.stats.total": ("NJOBS", _instance(("stats", "total"))),
    "instance.utilization": ("CORE%", _instance(("utilization",))),
    "instance.gpu_utilization": ("GPU%", _instance(("gpu_utilization",))),
    "instance.progress": ("PROG", _instance(("progress",))),
}
# instance.resources.<state>.<nnodes|ncores|ngpus>, headed as Flux heads them
for _state, _heading in (("all", ""), ("up", "UP"), ("down", "DOWN"), ("allocated", "USED"),
                         ("free", "FREE")):
    for _kind in ("nnodes", "ncores", "ngpus"):
        FIELDS[f"instance.resources.{_state}.{_kind}"] = (
            _heading or _kind[1:].upper(), _instance(("resources", _state, _kind)))
# and the other counts of a child's jobs (strato's: Flux has stats and stats.total)
for _count in ("pending", "running", "active", "successful", "failed", "canceled", "timeout",
               "inactive", "new", "depend", "priority", "sched", "run", "cleanup"):
    FIELDS[f"instance.stats.{_count}"] = (_count.upper(), _instance(("stats", _count)))
del _state, _heading, _kind, _count

#: the fields whose value comes from a child instance itself (see `wants_instance_info`)
_FROM_CHILD = ("contextual_info", "instance.")


def wants_instance_info(fields: Iterable[str]) -> bool:
    """True if a format shows anything that a running child instance must be asked
    for (``instance.*``, and INFO, which shows a child's progress): only then does
    ``strato jobs`` contact the children."""
    return any(f.startswith(_FROM_CHILD) for f in fields)

# Headings Flux gives to well-known annotations (RFC 27); other annotation fields are
# headed by their upper-cased name.
_ANNOTATION_HEADINGS = {
    "sched.t_estimate": "T_ESTIMATE",
    "sched.reason_pending": "REASON",
    "sched.resource_summary": "RESOURCES",
}


def _lookup_field(name: str) -> tuple[str, Callable[[dict], Any]]:
    try:
        return FIELDS[name]
    except KeyError:
        pass
    for prefix, path in (("annotations.", ()), ("sched.", ("sched",)), ("user.", ("user",))):
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix) :]
            keys = rest.split(".")
            if all(keys):
                full = ".".join(path + (rest,)) if path else rest
                heading = _ANNOTATION_HEADINGS.get(full)
                if heading is None:
                    heading = (rest if prefix == "annotations." else name).upper()
                return heading, _annotation(path + tuple(keys))
    raise ValueError(f"unknown field {name!r}")


# --- conversions ----------------------------------------------------------------------

# Values that the ``h`` suffix shows as "-" and that ``?:`` counts as empty.
_EMPTY = frozenset(
    {"", "0s", "0.0", "0:00:00", "1970-01-01T00:00:00", datetime.fromtimestamp(0).isoformat()}
)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fsd(v: Any) -> str:
    """``!F``: an RFC 23 duration with 4 significant digits, as ``flux jobs`` shows it.

    ``1.088m`` rather than ``1.08833m``, so a running job's time does not jitter in the
    last digits.  Below 1ms (and a negative value from clock skew) is ``0s``.  The text
    always parses back with ``parse_fsd``.
    """
    cls = v.__class__
    if cls is not float and cls is not int:
        if not _is_number(v):
            return "" if v == "" or v is None else str(v)
        v = float(v)
    if v < 60.0:
        return f"{v:.4g}s" if v >= 1.0e-3 else "0s"
    if v < 3600.0:
        return f"{v / 60.0:.4g}m"
    if v < 86400.0:
        return f"{v / 3600.0:.4g}h"
    if v < 864000000.0:  # 10000 days, where %.4g would turn to exponent notation
        return f"{v / 86400.0:.4g}d"
    if v != v:
        return "nan"
    return format_fsd(v)  # "inf", or %g days


def _hms(v: Any) -> str:
    if not _is_number(v) or math.isnan(v) or math.isinf(v):
        return "" if v == "" or v is None else str(v)
    if 0 < v < 1:
        v = 1  # a nonzero time never shows as 0:00:00
    try:
        return str(timedelta(seconds=round(v)))
    except OverflowError:
        return str(v)


_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _iso(v: Any) -> str:
    return _strftime(v, _ISO_FORMAT)


def _percent(v: Any) -> str:
    if not _is_number(v):
        return "" if v == "" or v is None else str(v)
    v = v * 100
    return f"{v:.2f}%" if 0 < v < 1 else f"{v:.3g}%"


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "s": str,
    "r": repr,
    "a": ascii,
    "D": _iso,
    "F": _fsd,
    "H": _hms,
    "P": _percent,
}


# (timefmt, whole second) -> text.  Jobs submitted together share their second, and
# strftime costs more than the rest of a line; "%f" (microseconds) is never cached.
_strftime_cache: dict[tuple[str, int], str] = {}


def _strftime(v: Any, timefmt: str) -> str:
    """``!d``: a timestamp through strftime; unset (0, "") gives ""."""
    if not v or not _is_number(v):
        return "" if not v else str(v)
    try:
        key = (timefmt, int(v))
        return _strftime_cache[key]
    except KeyError:
        pass
    except (OverflowError, ValueError):  # inf, nan
        return str(v)
    try:
        text = datetime.fromtimestamp(v).strftime(timefmt)
    except (ValueError, OverflowError, OSError):
        return str(v)
    if "%f" not in timefmt:
        if len(_strftime_cache) >= 4096:
            _strftime_cache.clear()
        _strftime_cache[key] = text
    return text


# --- format specs ---------------------------------------------------------------------

_SPEC_PARTS = (
    "fill",
    "align",
    "sign",
    "z",
    "alt",
    "zero",
    "width",
    "grouping",
    "precision",
    "type",
)


_SPEC_RE = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>\d+)?(?P<grouping>[_,])?(?:\.(?P<precision>\d+))?"
    r"(?P<type>[bcdeEfFgGnosxX%])?",
    re.S,
)


class _Spec:
    """A format spec split into its parts, plus Flux's ``h`` and ``+`` suffixes."""

    __slots__ = _SPEC_PARTS + ("hyphen", "plus")

    def __init__(self, spec: str, field: str) -> None:
        written = spec
        self.plus = spec.endswith("+")
        if self.plus:
            spec = spec[:-1]
        self.hyphen = spec.endswith("h")
        if self.hyphen:
            spec = spec[:-1]
        m = _SPEC_RE.fullmatch(spec)
        if m is None:
            raise ValueError(f"invalid format spec {written!r} for field {field!r}")
        for part in _SPEC_PARTS:
            setattr(self, part, m.group(part) or "")

    def python(self) -> str:
        """The spec without the Flux suffixes."""
        return self._join(self.fill, self.align)

    def text(self) -> str:
        """The spec as written (Flux suffixes included)."""
        return self.python() + ("h" if self.hyphen else "") + ("+" if self.plus else "")

    def for_string(self) -> str:
        """Only the parts valid for a str: fill, align, width, precision."""
        align = ">" if self.align == "=" else self.align
        prec = f".{self.precision}" if self.precision else ""
        return f"{self.fill if align else ''}{align}{self.width}{prec}"

    def heading(self) -> str:
        """Align and width only, as Flux's headers use."""
        return (">" if self.align == "=" else self.align) + self.width

    def _join(self, fill: str, align: str) -> str:
        prec = f".{self.precision}" if self.precision else ""
        return (
            f"{fill}{align}{self.sign}{self.z}{self.alt}{self.zero}{self.width}"
            f"{self.grouping}{prec}{self.type}"
        )


def _format(value: Any, spec: str, str_spec: str) -> str:
    try:
        return format(value, spec)
    except (ValueError, TypeError):  # e.g. {ntasks:.3} or {x:d} on an unset ("") value
        try:
            return format(str(value), str_spec)
        except (ValueError, TypeError):
            return str(value)


def _field_code(i: int, field: _Field, ns: dict[str, Any]) -> list[str]:
    """Python lines that leave field ``i`` of a record, formatted, in ``s{i}``.

    Only generated names appear in the code; values (keys, specs, functions) are passed
    in ``ns``, so no text from the user's format reaches the compiler.
    """
    spec = field.spec
    pyspec = spec.python()
    getter = field.getter
    lines = []
    if hasattr(getter, "key"):  # a plain record key: look it up inline
        ns[f"_k{i}"] = getter.key
        ns[f"_d{i}"] = getter.default
        lines += [f"v = rec.get(_k{i})", "if v is None:", f"    v = _d{i}"]
    else:
        ns[f"_g{i}"] = getter
        lines.append(f"v = _g{i}(rec)")
    if field.timefmt is not None:
        ns[f"_t{i}"] = field.timefmt
        lines.append(f"v = _strftime(v, _t{i})")
    elif field.conv:
        ns[f"_c{i}"] = _CONVERSIONS[field.conv]
        lines.append(f"v = _c{i}(v)")
    if spec.hyphen:
        lines.append("s = v if v.__class__ is str else str(v)")
        if spec.type and field.timefmt is None:
            lines += ["if s in _EMPTY:", "    v = '-'"]
        else:  # as Flux: an 'h' field is formatted as a string
            lines.append("v = '-' if s in _EMPTY else s")
    if not pyspec:
        lines.append(f"s{i} = v if v.__class__ is str else _format(v, '', '')")
    else:
        ns[f"_p{i}"] = pyspec
        ns[f"_q{i}"] = spec.for_string()
        lines += [
            "try:",
            f"    s{i} = format(v, _p{i})",
            "except (ValueError, TypeError):",
            f"    s{i} = _format(v, _p{i}, _q{i})",
        ]
    if spec.plus:
        lines += [
            "t = v if v.__class__ is str else str(v)",
            f"if len(s{i}) < len(t):",
            f"    s{i} = s{i}[:-1] + '+'",
        ]
    return lines


# --- the formatter --------------------------------------------------------------------

_SENTINELS = ("?+:", "?:", "+:")  # longest first


class _Field:
    __slots__ = (
        "text",
        "name",
        "conv",
        "spec_text",
        "sentinel",
        "heading",
        "getter",
        "spec",
        "timefmt",
    )

    def __init__(self, text: str, name: str, conv: str | None, spec_text: str) -> None:
        self.sentinel = ""
        for s in _SENTINELS:
            if text.endswith(s):
                self.sentinel = s
                text = text[: -len(s)]
                break
        self.text = text
        self.name = name
        self.conv = conv
        self.spec_text = spec_text
        if not name:
            raise ValueError("empty field '{}' in format")
        if "{" in spec_text or "}" in spec_text:
            raise ValueError(f"nested fields are not supported in field {name!r}")
        self.heading, self.getter = _lookup_field(name)
        self.timefmt = None
        if conv == "d":
            timefmt, sep, rest = spec_text.partition("::")
            self.timefmt = timefmt or "%Y-%m-%dT%H:%M:%S"
            spec_text = rest if sep else ""
        elif conv is not None and conv not in _CONVERSIONS:
            raise ValueError(f"unknown conversion '!{conv}' for field {name!r}")
        self.spec = _Spec(spec_text, name)

    def source(self, text: str, spec: _Spec | None = None) -> str:
        """This field as format-string text, preceded by ``text``."""
        spec = spec or self.spec
        conv = f"!{self.conv}" if self.conv else ""
        if self.timefmt is not None:
            pyspec = spec.text()
            spec_text = self.timefmt + ("::" + pyspec if pyspec else "")
        else:
            spec_text = spec.text()
        spec_text = f":{spec_text}" if spec_text else ""
        return f"{_escape(text)}{{{self.name}{conv}{spec_text}}}"

    def bare(self, rec: dict) -> str:
        """The value after conversion, without spec (used to measure width)."""
        v = self.getter(rec)
        if self.timefmt is not None:
            return _strftime(v, self.timefmt)
        if self.conv:
            v = _CONVERSIONS[self.conv](v)
        return str(v)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class JobsFormatter:
    """A compiled ``flux jobs`` format.

    ``JobsFormatter(fmt)`` raises ValueError (one line, e.g. ``unknown field 'foo'``) for
    an unknown field, conversion or spec, or a malformed format string.  For a named
    format pass ``NAMED_FORMATS[name]``.  ``fields`` lists the field names used.
    """

    def __init__(self, fmt: str) -> None:
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError as err:
            raise ValueError(f"bad format: {err}") from None
        self.format_string = fmt
        self._items: list[_Field | str] = []
        for text, name, spec, conv in parsed:
            if name is None:
                if text:
                    self._items.append(text)
                continue
            self._items.append(_Field(text, name, conv, spec or ""))
        self._fields = [item for item in self._items if isinstance(item, _Field)]
        self.fields = [f.name for f in self._fields]
        self._compile()

    def _compile(self) -> None:
        # One generated function formats a whole record: each field's lookup, conversion
        # and spec inline, then a single f-string; no per-record parsing or looping.
        ns: dict[str, Any] = {"_EMPTY": _EMPTY, "_format": _format, "_strftime": _strftime}
        body: list[str] = []
        out: list[str] = []
        i = 0
        pending = ""
        for item in self._items:
            if isinstance(item, str):
                pending += item
                continue
            ns[f"_l{i}"] = pending + item.text
            pending = ""
            body += _field_code(i, item, ns)
            out.append(f"{{_l{i}}}{{s{i}}}")
            i += 1
        ns["_tail"] = pending
        src = "\n    ".join(["def _fmt(rec):"] + body + ['return f"' + "".join(out) + '{_tail}"'])
        exec(compile(src + "\n", "<jobs-format>", "exec"), ns)
        self._source = src
        # The instance attribute shadows the method below: one call less per record.
        self.format = ns["_fmt"]  # type: ignore[method-assign]

    def header(self) -> str:
        """The header line: each field's heading, aligned and padded like the field."""
        out = []
        for item in self._items:
            if isinstance(item, str):
                out.append(item)
            else:
                out.append(item.text)
                out.append(format(item.heading, item.spec.heading()))
        return "".join(out)

    def format(self, record: dict) -> str:
        """Format one job record (replaced per instance by the compiled function)."""
        return self.__dict__["format"](record)

    def filter_empty(self, records: Iterable[dict], no_header: bool = False) -> JobsFormatter:
        """Apply the ``?:``, ``+:`` and ``?+:`` prefixes for this set of records.

        Returns a new formatter without the ``?:`` columns that are empty for every
        record, and with the ``+:`` columns widened to their widest value (and heading,
        unless ``no_header``).  ``records`` is iterated once.
        """
        marked = [f for f in self._fields if f.sentinel]
        if not marked:
            return self
        widths = dict.fromkeys(range(len(marked)), 0)
        empty = _EMPTY
        for rec in records:
            for i, f in enumerate(marked):
                s = f.bare(rec)
                n = 0 if s in empty else len(s)
                if n > widths[i]:
                    widths[i] = n
        keep: dict[int, _Spec | None] = {}
        for i, f in enumerate(marked):
            width = widths[i]
            if width == 0 and "?" in f.sentinel:
                continue
            spec = None
            if "+" in f.sentinel[:-1]:
                spec = _Spec(f.spec.text(), f.name)
                heading = 0 if no_header else len(f.heading)
                width = max(int(spec.width or 0), heading, width)
                spec.width = str(width)
                if spec.precision and spec.type in ("", "s") and int(spec.precision) < width:
                    spec.precision = str(width)
            keep[id(f)] = spec
        out = []
        for item in self._items:
            if isinstance(item, str):
                out.append(_escape(item))
            elif not item.sentinel:
                out.append(item.source(item.text))
            elif id(item) in keep:
                out.append(item.source(item.text, keep[id(item)]))
            # else: dropped, with the text before it
        return JobsFormatter("".join(out))


# --- named formats --------------------------------------------------------------------

# Flux's built-in formats (flux-jobs --format=NAME) for the fields strato has; "cute"
# (emoji) is left out.  Newer Flux writes the user column as "+:{username:<8}" (widened
# to the longest name); this is the fixed-width form of the default strato was asked for.
NAMED_FORMATS: dict[str, str] = {
    "default": (
        "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} "
        "{status_abbrev:>2.2} {ntasks:>6} {nnodes:>6h} "
        "{contextual_time!F:>8h} {contextual_info}"
    ),
    "long": (
        "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} "
        "{status:>9.9} {ntasks:>6} {nnodes:>6h} "
        "{t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} "
        "{contextual_time!F:>8h} {contextual_info}"
    ),
    "deps": (
        "{id.f58:>12} ?:{queue:<8.8} {name:<10.10+} {urgency:<3} "
        "{priority:<12} {state:<8.8} {dependencies}"
    ),
    "endreason": (
        "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} "
        "{status_abbrev:>2.2} {t_inactive!d:%b%d %R::>12h} {inactive_reason}"
    ),
}


def fields_markdown() -> str:
    """The field and named-format tables of ``docs/jobs-format.md``, generated from
    :data:`FIELDS` and :data:`NAMED_FORMATS` so the page cannot drift from the code
    (a test compares them; regenerate with ``python -m strato.cli.jobs_format``)."""
    out = ["| field | heading |", "|---|---|"]
    out += [f"| `{name}` | {heading} |" for name, (heading, _) in FIELDS.items()]
    out += ["", "| `-o NAME` | format |", "|---|---|"]
    out += [f"| `{name}` | `{fmt}` |" for name, fmt in NAMED_FORMATS.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(fields_markdown(), end="")
