"""The submission options shared by submit, run, batch and bulksubmit, and the
code that turns them into a jobspec. The names and meanings are Flux's.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import time

import click

URGENCY_NAMES = {"hold": 0, "default": 16, "expedite": 31}
FLAG_BITS = {"debug": 2, "waitable": 4}


def _opt(*args, **kw):
    return click.option(*args, **kw)


JOB_OPTIONS = [
    _opt("-n", "--ntasks", type=int, help="Number of tasks (slots for batch)."),
    _opt("-N", "--nodes", type=int, help="Number of nodes."),
    _opt("-c", "--cores-per-task", type=int, default=1, show_default=True,
         help="Cores for each task."),
    _opt("-g", "--gpus-per-task", type=int, default=None, help="GPUs for each task."),
    _opt("-x", "--exclusive", is_flag=True, help="Allocate whole nodes (with -N)."),
    _opt("-t", "--time-limit", metavar="FSD", help="Time limit, e.g. 30s, 2h."),
    _opt("-q", "--queue", metavar="NAME", help="Submit to this queue."),
    _opt("--requires", multiple=True, metavar="CONSTRAINT",
         help="Only nodes matching, e.g. 'amd64 and not host:node[0-3]'."),
    _opt("--dependency", multiple=True, metavar="SCHEME:VALUE",
         help="afterok:JOBID, afterany:, afternotok:, afterexcept:, after:, singleton."),
    _opt("--begin-time", metavar="TIME", help="Do not start before TIME (+FSD, @EPOCH, ISO)."),
    _opt("--urgency", default="16", metavar="N", help="0-31, or hold/default/expedite."),
    _opt("--job-name", metavar="NAME", help="Name of the job (default: the command's name)."),
    _opt("--cwd", metavar="DIR", help="Working directory of the tasks."),
    _opt("--env", multiple=True, metavar="RULE",
         help="VAR=VAL sets, -PATTERN removes, VAR copies (after the default copy)."),
    _opt("--env-remove", multiple=True, metavar="PATTERN",
         help="Remove matching variables from the environment (as --env=-PATTERN)."),
    _opt("--env-file", multiple=True, metavar="FILE", help="Read --env rules from FILE."),
    _opt("--rlimit", multiple=True, metavar="NAME=VALUE", help="Set a soft limit, e.g. core=0."),
    _opt("-o", "--setopt", multiple=True, metavar="OPT[=VAL]", help="Set a shell option."),
    _opt("-S", "--setattr", multiple=True, metavar="KEY=VAL",
         help="Set a jobspec attribute (system. is implied)."),
    _opt("--input", metavar="FILE", help="Tasks read stdin from FILE."),
    _opt("--output", metavar="TEMPLATE", help="stdout to a file, e.g. job-{{id}}.out."),
    _opt("--error", metavar="TEMPLATE", help="stderr to a file."),
    _opt("-l", "--label-io", is_flag=True, help="Prefix output lines with the task rank."),
    _opt("-u", "--unbuffered", is_flag=True,
         help="Forward output as it is read (the shell never buffers it)."),
    _opt("--flags", metavar="LIST", help="Comma-separated: waitable, debug."),
    _opt("--dry-run", is_flag=True, help="Print the jobspec; submit nothing."),
]

MULTI_OPTIONS = [
    _opt("--cc", metavar="IDSET", help="Submit a copy per id; {{cc}} and STRATO_JOB_CC name it."),
    _opt("--bcc", metavar="IDSET", help="Like --cc but without {{cc}}/STRATO_JOB_CC."),
    _opt("--quiet", is_flag=True, help="Do not print job ids."),
    _opt("--wait", is_flag=True, help="Wait for the jobs; exit with the largest exit code."),
    _opt("--watch", is_flag=True, help="Show the jobs' output as they run (implies --wait)."),
    _opt("--progress", is_flag=True, help="Show a progress bar (implies --wait)."),
    _opt("--jps", is_flag=True, help="Show the job throughput with --progress."),
]


def job_options(fn):
    for opt in reversed(JOB_OPTIONS):
        fn = opt(fn)
    return fn


def multi_options(fn):
    for opt in reversed(MULTI_OPTIONS):
        fn = opt(fn)
    return fn


def bad(message: str, hint: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=hint)


# -- parsers for option values ---------------------------------------------------------------
def parse_urgency(text: str, hint: str = "--urgency") -> int:
    """0-31 or a name (hold, default, expedite); errors name `hint`, the option or
    argument the value came from."""
    value = URGENCY_NAMES.get(text)
    if value is None:
        try:
            value = int(text)
        except ValueError:
            raise bad(f"invalid urgency '{text}'", hint) from None
    if not 0 <= value <= 31:
        raise bad(f"urgency {value} is not in 0-31", hint)
    return value


def parse_flags(text: str | None) -> int:
    bits = 0
    for name in (text or "").split(","):
        if not name:
            continue
        if name not in FLAG_BITS:
            raise bad(f"unknown flag '{name}' (have: {', '.join(FLAG_BITS)})", "--flags")
        bits |= FLAG_BITS[name]
    return bits


def parse_dependency(text: str) -> dict:
    """``scheme:value`` (or ``singleton``) as an RFC 26 dependency."""
    scheme, sep, value = text.partition(":")
    if scheme == "singleton" and not value:
        return {"scheme": "singleton", "value": ""}
    if not sep or not scheme or not value:
        raise bad(f"invalid dependency '{text}' (expected SCHEME:VALUE)", "--dependency")
    if scheme.startswith("after"):
        from strato.core.ids import parse

        try:
            parse(value)
        except ValueError as exc:
            raise bad(f"invalid dependency '{text}': {exc}", "--dependency") from None
    if scheme == "begin-time":
        return {"scheme": scheme, "value": repr(parse_begin_time(value))}
    return {"scheme": scheme, "value": value}


def parse_begin_time(text: str, now: float | None = None) -> float:
    """``+FSD`` from now, ``@EPOCH``, ``now``, or an ISO 8601 date/time (local time)."""
    from strato.jobspec.fsd import parse_fsd

    now = time.time() if now is None else now
    try:
        if text == "now":
            return now
        if text.startswith("+"):
            return now + parse_fsd(text[1:])
        if text.startswith("@"):
            return float(text[1:])
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise bad(f"invalid time '{text}' (use +FSD, @EPOCH or an ISO 8601 time)",
                  "--begin-time") from None


def parse_rlimit(text: str) -> tuple[str, int]:
    import resource

    name, sep, value = text.partition("=")
    if not sep or not hasattr(resource, f"RLIMIT_{name.upper()}"):
        raise bad(f"invalid rlimit '{text}' (expected NAME=VALUE, e.g. core=0)", "--rlimit")
    if value in ("unlimited", "infinity", "inf", "-1"):
        return name.lower(), -1
    try:
        num = int(value)
    except ValueError:
        raise bad(f"invalid rlimit value '{value}'", "--rlimit") from None
    if num < 0:
        raise bad(f"invalid rlimit value '{value}'", "--rlimit")
    return name.lower(), num


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _environment(o: dict) -> dict:
    env = dict(os.environ)
    rules = list(o["env"])
    for path in o["env_file"]:
        try:
            with open(path) as f:
                rules += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise bad(f"cannot read {path}: {exc.strerror}", "--env-file") from None
    for pat in o["env_remove"]:
        for k in [k for k in env if fnmatch.fnmatchcase(k, pat)]:
            del env[k]
    for rule in rules:
        if rule.startswith("-"):
            for k in [k for k in env if fnmatch.fnmatchcase(k, rule[1:])]:
                del env[k]
        elif "=" in rule:
            k, _, v = rule.partition("=")
            env[k] = os.path.expandvars(v)
        elif rule in os.environ:
            env[rule] = os.environ[rule]
    return env


def _duration(o: dict) -> float:
    if not o["time_limit"]:
        return 0.0
    from strato.jobspec.fsd import parse_fsd

    try:
        duration = parse_fsd(o["time_limit"])
    except ValueError as exc:
        raise bad(str(exc), "-t/--time-limit") from None
    return 0.0 if duration == float("inf") else duration


# -- building --------------------------------------------------------------------------------
def shape(o: dict) -> tuple[int, dict]:
    """The count of -n (tasks, or slots for batch) and the keyword arguments every
    JobspecV1 builder shares. ``-N`` without ``-n`` means one per node, whole nodes."""
    count, nodes, exclusive = o["ntasks"], o["nodes"], o["exclusive"]
    if nodes is not None and count is None:
        count, exclusive = nodes, True
    return (1 if count is None else count), {
        "num_nodes": nodes, "exclusive": exclusive, "duration": _duration(o),
        "cwd": os.path.abspath(o["cwd"]) if o["cwd"] else os.getcwd(),
        "environment": _environment(o)}


def build_jobspec(command, o: dict) -> dict:
    """A jobspec for running COMMAND as tasks; click.BadParameter on bad values."""
    from strato.jobspec.model import JobspecV1

    if not command:
        raise click.UsageError("no command given")
    count, common = shape(o)
    try:
        js = JobspecV1.from_command(
            list(command), num_tasks=count, cores_per_task=o["cores_per_task"],
            gpus_per_task=o["gpus_per_task"], name=o["job_name"], **common)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    apply_options(js, o)
    return js.jobspec


def apply_options(js, o: dict) -> None:
    """Set the attributes every kind of submission shares on a `JobspecV1`."""
    output = {}
    if o["output"]:
        output["stdout"] = {"type": "file", "path": o["output"]}
    if o["error"]:
        output["stderr"] = {"type": "file", "path": o["error"]}
    if output:
        js.setattr("system.shell.options.output", output)
    if o["input"]:
        js.setattr("system.shell.options.input",
                   {"stdin": {"type": "file", "path": o["input"]}})
    if o["rlimit"]:
        js.setattr("system.shell.options.rlimit", dict(parse_rlimit(r) for r in o["rlimit"]))
    if o["label_io"]:
        js.setattr("system.shell.options.output.label", True)
    if o["queue"]:
        js.setattr("system.queue", o["queue"])
    if o["requires"]:
        from strato.jobspec.constraints import parse_constraint

        text = " and ".join(f"({r})" for r in o["requires"])
        try:
            js.setattr("system.constraints", parse_constraint(text))
        except ValueError as exc:
            raise bad(str(exc), "--requires") from None
    deps = [parse_dependency(d) for d in o["dependency"]]
    if o["begin_time"]:
        deps.append({"scheme": "begin-time", "value": repr(parse_begin_time(o["begin_time"]))})
    if deps:
        js.setattr("system.dependencies", deps)
    for opt in o["setopt"]:
        key, sep, val = opt.partition("=")
        if not key:
            raise bad(f"invalid shell option '{opt}'", "-o/--setopt")
        js.setattr(f"system.shell.options.{key}", _parse_value(val) if sep else 1)
    for attr in o["setattr"]:
        key, sep, val = attr.partition("=")
        if not sep or not key:
            raise bad(f"invalid attribute '{attr}' (expected KEY=VAL)", "-S/--setattr")
        try:
            js.setattr(key, _parse_value(val))
        except ValueError as exc:
            raise bad(str(exc), "-S/--setattr") from None


def cc_ids(o: dict) -> tuple[list[int] | None, int]:
    """The --cc ids (or None) and how many copies to submit."""
    from strato.jobspec.idset import decode_idset

    if o["cc"] and o["bcc"]:
        raise click.UsageError("--cc and --bcc cannot be used together")
    text = o["cc"] or o["bcc"]
    if text is None:
        return None, 1
    hint = "--cc" if o["cc"] else "--bcc"
    try:
        ids = decode_idset(text)
    except ValueError as exc:
        raise bad(str(exc), hint) from None
    if not ids:
        raise bad("empty idset", hint)
    return (ids if o["cc"] else None), len(ids)
