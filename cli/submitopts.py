"""The submission options shared by submit, run, batch, alloc and bulksubmit, and the
code that turns them into a jobspec. The names, values and meanings are Flux's
(flux-submit(1) and friends): the same command line gives the same jobspec, which
``tests/conformance/flux_cli_compare.py`` checks against Flux itself.

Where order matters on a Flux command line it matters here too: ``--env``,
``--env-remove`` and ``--env-file`` rules apply in the order given, and so do
``--dependency`` and ``--begin-time``; `strato.cli.flux_command.FluxCommand`
records that order.

This module does not import click: the options are declared as plain data
(`Option`), made into click options by the commands that use them, and read
directly by ``strato run``'s fast path (`defaults`), which never loads click
(docs/performance.md). Errors are still click's (`bad`, `usage`), made on demand.
"""

from __future__ import annotations

import os
import re
import time

URGENCY_NAMES = {"hold": 0, "default": 16, "expedite": 31}
FLAG_BITS = {"debug": 2, "waitable": 4}

# rlimits Flux does not pass on to a job unless asked (its default rules)
_RLIMIT_DEFAULT_RULES = ("-memlock", "-ofile", "-msgqueue", "-nice", "-rtprio", "-rttime",
                         "-sigpending")
TASKMAP_SCHEMES = ("block", "cyclic", "manual")


class Option:
    """One option as ``click.option(*decls, **attrs)`` declares it."""

    __slots__ = ("decls", "attrs")

    def __init__(self, decls: tuple, attrs: dict) -> None:
        self.decls = decls
        self.attrs = attrs

    @property
    def name(self) -> str:
        """The parameter's name, by click's rule: a declaration without dashes, else
        the first long name (then the first short one), dashes made underscores."""
        plain = [d for d in self.decls if not d.startswith("-")]
        if plain:
            return plain[0]
        longs = [d for d in self.decls if d.startswith("--")]
        return (longs or list(self.decls))[0].lstrip("-").replace("-", "_").lower()

    @property
    def default(self) -> object:
        """The value the command gets when the option is not given."""
        value = self.attrs.get("default")
        if value is not None:
            return value
        if self.attrs.get("multiple"):
            return ()
        if self.attrs.get("count"):
            return 0
        if self.attrs.get("is_flag"):
            return False
        return None


def _opt(*decls, **attrs) -> Option:
    return Option(decls, attrs)


JOB_OPTIONS = [
    _opt("-N", "--nodes", type=int, help="Number of nodes."),
    _opt("-x", "--exclusive", is_flag=True, help="Allocate whole nodes (with -N)."),
    _opt("-t", "--time-limit", metavar="MIN|FSD",
         help="Time limit: minutes without units, else an FSD such as 30s, 2h."),
    _opt("-q", "--queue", metavar="NAME", help="Submit to this queue."),
    _opt("-B", "--bank", metavar="BANK", help="Submit under this bank."),
    _opt("--requires", "--require", "requires", multiple=True, metavar="CONSTRAINT",
         help="Only nodes matching, e.g. 'amd64 and not host:node[0-3]'."),
    _opt("--dependency", multiple=True, metavar="URI",
         help="afterok:JOBID, afterany:, afternotok:, afterexcept:, after:, singleton."),
    _opt("--begin-time", multiple=True, metavar="+FSD|TIME",
         help="Do not start before TIME (+FSD from now, @EPOCH, ISO 8601)."),
    _opt("--urgency", default="16", metavar="N", help="0-31, or hold/default/expedite."),
    _opt("--job-name", metavar="NAME", help="Name of the job (default: the command's name)."),
    _opt("--cwd", metavar="DIR", help="Working directory of the tasks."),
    _opt("--env", multiple=True, metavar="RULE",
         help="VAR=VAL sets, -PATTERN removes, PATTERN copies, ^FILE reads rules.",),
    _opt("--env-remove", multiple=True, metavar="PATTERN",
         help="Remove matching variables (a glob, or /REGEX/), as --env=-PATTERN."),
    _opt("--env-file", multiple=True, metavar="FILE", help="Read --env rules from FILE."),
    _opt("--rlimit", multiple=True, metavar="RULE",
         help="Which soft limits the job gets: NAME, NAME=VALUE, -PATTERN (e.g. -*,core)."),
    _opt("-o", "--setopt", multiple=True, metavar="OPT[=VAL]",
         help="Set a shell option (VAL defaults to 1; ^OPT=FILE reads JSON)."),
    _opt("-S", "--setattr", multiple=True, metavar="ATTR[=VAL]",
         help="Set a jobspec attribute (system. implied, .KEY for attributes.KEY;"
              " VAL defaults to 1; ^ATTR=FILE reads JSON)."),
    _opt("--add-file", multiple=True, metavar="[NAME[:PERMS]=]PATH",
         help="Put a file (or text with \\n) in the job's {{tmpdir}}/NAME."),
    _opt("--input", metavar="FILE", help="Tasks read stdin from FILE."),
    _opt("--output", metavar="TEMPLATE", help="stdout to a file, e.g. job-{{id}}.out."),
    _opt("--error", metavar="TEMPLATE", help="stderr to a file."),
    _opt("-l", "--label-io", is_flag=True, help="Prefix output lines with the task rank."),
    _opt("-u", "--unbuffered", is_flag=True,
         help="Forward output as it is read (the shell never buffers it)."),
    _opt("--flags", multiple=True, metavar="LIST", help="Comma-separated: waitable, debug."),
    _opt("--signal", metavar="[SIG][@TIME]",
         help="Send SIG (default SIGUSR1) TIME (default 60s) before the time limit."),
    _opt("--dry-run", "--dry", "dry_run", is_flag=True,
         help="Print the jobspec; submit nothing."),
    _opt("--quiet", is_flag=True, help="Do not print job ids."),
]

# The per-task and per-resource options of submit, run and bulksubmit (not of
# batch and alloc, whose -n/-c/-g count slots), as in Flux.
TASK_OPTIONS = [
    _opt("-n", "--ntasks", type=int, help="Number of tasks."),
    _opt("-c", "--cores-per-task", type=int, default=None, help="Cores for each task (1)."),
    _opt("-g", "--gpus-per-task", type=int, default=None, help="GPUs for each task."),
    _opt("--cores", type=int, metavar="N", help="Total number of cores (per-resource)."),
    _opt("--tasks-per-node", type=int, metavar="N",
         help="Run N tasks on each node (per-resource)."),
    _opt("--tasks-per-core", type=int, metavar="N",
         help="Run N tasks on each core (per-resource)."),
    _opt("--gpus-per-node", type=int, metavar="N", help="GPUs on each node, with -N."),
    _opt("--taskmap", metavar="URI",
         help="Task ids to nodes: block (default), cyclic[:N], manual:TASKMAP."),
    _opt("--resources-shape", metavar="SHAPE",
         help="The resources as an RFC 46 shape, e.g. 'node=2/slot/core=4'."),
    _opt("--resources-json", metavar="FILE",
         help="The resources section (or a whole jobspec) from a JSON file."),
    _opt("-v", "--verbose", count=True, help="Say more on stderr (repeat for more)."),
]

# The resource slots of batch and alloc: the child instance's size (same keys as
# the per-task options, so the builders share them).
SLOT_OPTIONS = [
    _opt("-n", "--nslots", "ntasks", type=int, help="Number of resource slots."),
    _opt("-c", "--cores-per-slot", "cores_per_task", type=int, default=None,
         help="Cores in each slot (1)."),
    _opt("-g", "--gpus-per-slot", "gpus_per_task", type=int, default=None,
         help="GPUs in each slot."),
]

MULTI_OPTIONS = [
    _opt("--cc", metavar="IDSET", help="Submit a copy per id; {{cc}} and STRATO_JOB_CC name it."),
    _opt("--bcc", metavar="IDSET", help="Like --cc but without {{cc}}/STRATO_JOB_CC."),
    _opt("--wait", is_flag=True, help="Wait for the jobs; exit with the largest exit code."),
    _opt("--wait-event", metavar="NAME",
         help="Wait until each job has posted event NAME (e.g. start)."),
    _opt("--watch", is_flag=True, help="Show the jobs' output as they run (implies --wait)."),
    _opt("--log", metavar="FILE", help="Write job ids and messages to FILE, not the terminal."),
    _opt("--log-stderr", metavar="FILE", help="Write error messages to FILE."),
    _opt("--progress", is_flag=True, help="Show a progress bar (implies --wait)."),
    _opt("--jps", is_flag=True, help="Show the job throughput with --progress."),
]

# What strato run has besides the job and task options.
RUN_OPTIONS = [
    _opt("--wait-event", metavar="NAME",
         help="Return once the job has posted event NAME (e.g. start), not at its end."),
]


def _apply(fn, options: list[Option]):
    import click

    for opt in reversed(options):
        fn = click.option(*opt.decls, **opt.attrs)(fn)
    return fn


def job_options(fn):
    return _apply(fn, JOB_OPTIONS)


def task_options(fn):
    return _apply(fn, TASK_OPTIONS)


def slot_options(fn):
    return _apply(fn, SLOT_OPTIONS)


def multi_options(fn):
    return _apply(fn, MULTI_OPTIONS)


def run_options(fn):
    return _apply(fn, RUN_OPTIONS)


def defaults(options: list[Option]) -> dict:
    """What a command declaring `options` gets when none is given (and no option
    order): ``strato run CMD``'s fast path builds its options with this, and a test
    checks it against what click makes of the same command line."""
    return {**{opt.name: opt.default for opt in options}, "option_order": []}


def bad(message: str, hint: str | None = None):
    """click.BadParameter: a bad option value, named by `hint`."""
    import click

    return click.BadParameter(message, param_hint=hint)


def usage(message: str):
    """click.UsageError: options that do not go together."""
    import click

    return click.UsageError(message)


def in_order(o: dict, prefixes: dict[str, str]) -> list[str]:
    """The values of several multiple options in command-line order, each prefixed
    (``{"env": "", "env_remove": "-"}`` gives ``--env`` rules and ``-PATTERN`` ones).
    Without a recorded order (a Python caller), the options come in dict order."""
    queues = {name: list(o.get(name) or ()) for name in prefixes}
    out = []
    for name in o.get("option_order") or ():
        if name in queues and queues[name]:
            out.append(prefixes[name] + queues[name].pop(0))
    for name, rest in queues.items():
        out.extend(prefixes[name] + v for v in rest)
    return out


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


def parse_flags(text: str | tuple | list | None) -> int:
    """``--flags`` (a comma-separated list, possibly given several times) as bits."""
    items = [text] if isinstance(text, str) else list(text or ())
    bits = 0
    for name in ",".join(items).split(","):
        if not name:
            continue
        if name not in FLAG_BITS:
            raise bad(f"unknown flag '{name}' (have: {', '.join(FLAG_BITS)})", "--flags")
        bits |= FLAG_BITS[name]
    return bits


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def uri_entry(text: str, what: str) -> dict:
    """``SCHEME[:VALUE][?KEY=VAL&...]`` as ``{"scheme", "value", KEY: VAL...}`` (the
    RFC 26 dependency and ``--taskmap`` form); query values become numbers when they
    are numbers, and a key given twice a list."""
    from urllib.parse import parse_qs

    scheme, _, rest = text.partition(":")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise bad(f"invalid {what} URI '{text}'", f"--{what}")
    rest = rest.partition("#")[0]
    value, _, query = rest.partition("?")
    entry: dict = {"scheme": scheme.lower(), "value": value}
    for key, vals in parse_qs(query).items():
        nums = [_number(v) for v in vals]
        entry[key] = nums[0] if len(nums) == 1 else nums
    return entry


def parse_dependency(text: str) -> dict:
    """An RFC 26 dependency from ``--dependency=SCHEME:VALUE`` (``singleton`` needs no
    value). Unlike Flux, a malformed job id in an after* dependency is refused here,
    at submission, rather than when the job is processed."""
    entry = uri_entry(text, "dependency")
    if entry["scheme"].startswith("after"):
        from strato.core.ids import parse

        try:
            parse(entry["value"])
        except ValueError as exc:
            raise bad(f"invalid dependency '{text}': {exc}", "--dependency") from None
    if entry["scheme"] == "begin-time" and not isinstance(_number(entry["value"]), float):
        entry["value"] = repr(parse_begin_time(entry["value"]))
    return entry


def parse_begin_time(text: str, now: float | None = None) -> float:
    """``+FSD``/``-FSD`` from now, ``now``, ``@EPOCH``, or an ISO 8601 date/time."""
    from strato.jobspec.fsd import parse_fsd

    now = time.time() if now is None else now
    try:
        if text == "now":
            return now
        if text[:1] in ("+", "-"):
            offset = parse_fsd(text[1:])
            return now + offset if text[0] == "+" else now - offset
        if text.startswith("@"):
            return float(text[1:])
        import datetime

        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise bad(f"invalid time '{text}' (use +FSD, @EPOCH or an ISO 8601 time)",
                  "--begin-time") from None


def parse_time_limit(text: str) -> float:
    """``-t``: minutes when a bare number (``-t 30`` is half an hour), else an FSD;
    0 means no limit; infinite, negative or NaN limits are refused (as Flux does)."""
    from strato.jobspec.fsd import parse_fsd

    try:
        seconds = float(text) * 60
    except ValueError:
        try:
            seconds = parse_fsd(text)
        except ValueError as exc:
            raise bad(str(exc), "-t/--time-limit") from None
    if not 0 <= seconds < float("inf"):
        raise bad(f"invalid time limit '{text}': must be finite and >= 0 (0 means none)",
                  "-t/--time-limit")
    return seconds


def parse_signal(text: str) -> dict:
    """``--signal=[SIG][@TIME]``: which signal (name, SIGNAME or number; default
    SIGUSR1) to send how long (seconds or FSD; default 60) before the time limit."""
    import signal

    from strato.jobspec.fsd import parse_fsd

    sig, _, when = text.partition("@")
    signum: int | None
    if not sig:
        signum = int(signal.SIGUSR1)
    elif sig.isdigit():
        signum = int(sig)
    else:
        found = getattr(signal.Signals, sig, None) or getattr(signal.Signals, "SIG" + sig, None)
        signum = None if found is None else int(found)
    if signum is None or signum <= 0 or signum >= signal.NSIG:
        raise bad(f"invalid signal '{sig}' in '{text}'", "--signal")
    timeleft: float = 60
    if when:
        try:
            timeleft = float(when)
        except ValueError:
            try:
                timeleft = parse_fsd(when)
            except ValueError as exc:
                raise bad(f"{exc} in '{text}'", "--signal") from None
    return {"signum": signum, "timeleft": timeleft}


def parse_taskmap(text: str) -> dict:
    """``--taskmap=block|cyclic[:N]|manual:TASKMAP`` as the shell option's value."""
    entry = uri_entry(text, "taskmap")
    scheme, value = entry["scheme"], entry["value"]
    if scheme not in TASKMAP_SCHEMES:
        raise bad(f"unknown taskmap scheme '{scheme}' (have: {', '.join(TASKMAP_SCHEMES)})",
                  "--taskmap")
    if scheme == "cyclic" and value and not (value.isdigit() and int(value) >= 1):
        raise bad(f"invalid cyclic stride '{value}' (an integer >= 1)", "--taskmap")
    if scheme == "manual":
        from strato.jobspec.taskmap import decode_taskmap

        try:
            decode_taskmap(value)
        except ValueError as exc:
            raise bad(f"invalid manual taskmap: {exc}", "--taskmap") from None
    return entry


def parse_keyval(text: str, hint: str) -> tuple[str, object]:
    """``KEY[=VAL]`` of -o/-S: VAL is JSON when it parses as JSON, else text; no VAL
    means 1; ``^KEY=FILE`` takes the value from the JSON file FILE."""
    import json  # imported where used: `strato run true` needs no JSON

    key, sep, raw = text.partition("=")
    if key.startswith("^"):
        key = key.lstrip("^")
        if not sep:
            raise bad(f"'{text}': ^{key} needs =FILE", hint)
        try:
            with open(raw) as f:
                value = json.load(f)
        except OSError as exc:
            raise bad(f"{raw}: {exc.strerror}", hint) from None
        except ValueError as exc:
            raise bad(f"{raw}: invalid JSON: {exc}", hint) from None
    elif not sep:
        value = 1
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if not key or any(not part for part in key.lstrip(".").split(".")):
        raise bad(f"invalid key in '{text}'", hint)
    return key, value


class _Exactly:
    """A pattern without wildcards: every job's default rlimit rules are such names,
    and comparing costs nothing where compiling a regular expression would cost every
    ``strato run`` about a millisecond."""

    def __init__(self, text: str) -> None:
        self.text = text

    def match(self, name: str) -> bool:
        return name == self.text


def _pattern(text: str):
    """A glob, or ``/REGEX/``, as a compiled regular expression matched at the start
    (an `_Exactly` for a plain name)."""
    import fnmatch

    if not text.startswith("/") and not any(c in text for c in "*?["):
        return _Exactly(text)
    try:
        return re.compile(text[1:].rstrip("/") if text.startswith("/")
                          else fnmatch.translate(text))
    except re.error as exc:
        raise bad(f"invalid pattern '{text}': {exc}", "--env") from None


def environment_rules(rules: list[str], env: dict | None = None,
                      expand: dict | None = None) -> tuple[dict, dict]:
    """The job's environment from the submitter's and the ``--env`` rules in order:
    ``-PATTERN`` removes, ``^FILE`` reads more rules, ``PATTERN`` copies matching
    variables not yet set, ``VAR=VAL`` sets VAL with ``$VAR``s expanded from the
    environment built so far (then the submitter's); a VAL with ``{{...}}`` is left
    for the job shell to expand per task (the second dict returned)."""
    env = dict(os.environ) if env is None else env
    expand = {} if expand is None else expand
    for rule in rules:
        if rule.startswith("-"):
            pat = _pattern(rule[1:])
            env = {k: v for k, v in env.items() if not pat.match(k)}
        elif rule.startswith("^"):
            path = os.path.expanduser(rule[1:])
            try:
                with open(path) as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise bad(f"cannot read {path}: {exc.strerror}", "--env-file") from None
            env, _ = environment_rules([ln for ln in lines if ln and not ln.startswith("#")],
                                       env, expand)
        elif "=" not in rule:
            pat = _pattern(rule)
            for k, v in os.environ.items():
                if pat.match(k) and k not in env:
                    env[k] = v
        else:
            var, _, value = rule.partition("=")
            if "{{" in value:
                expand[var] = value
                continue
            from collections import ChainMap
            from string import Template

            try:
                env[var] = Template(value).substitute(ChainMap(env, os.environ))
            except KeyError as exc:
                raise bad(f"variable {exc} not found in '{rule}'", "--env") from None
            except ValueError:
                raise bad(f"cannot substitute '{rule}'", "--env") from None
    return env, expand


def rlimits(rules: list[str]) -> dict[str, int]:
    """The soft limits a job gets: all of the submitter's but Flux's default
    exclusions, then the ``--rlimit`` rules (comma lists allowed) in order."""
    import resource

    def current(pattern: str) -> dict[str, int]:
        pat = _pattern(f"RLIMIT_{pattern}".upper())
        found = {k[7:].lower(): resource.getrlimit(getattr(resource, k))[0]
                 for k in dir(resource) if k.startswith("RLIMIT_") and pat.match(k)}
        if not found:
            raise bad(f"no rlimit matches '{pattern}'", "--rlimit")
        return found

    limits = current("*")
    for rule in [*_RLIMIT_DEFAULT_RULES, *",".join(rules).split(",")]:
        if not rule:
            continue
        if rule.startswith("-"):
            pat = _pattern(rule[1:].lower())
            limits = {k: v for k, v in limits.items() if not pat.match(k)}
            continue
        name, sep, value = rule.partition("=")
        if not sep:
            limits.update(current(name.lower()))
            continue
        if not hasattr(resource, f"RLIMIT_{name.upper()}"):
            raise bad(f"invalid rlimit '{name}'", "--rlimit")
        if value in ("unlimited", "infinity", "inf"):
            limits[name.lower()] = resource.RLIM_INFINITY
            continue
        try:
            limits[name.lower()] = int(value)
        except ValueError:
            raise bad(f"invalid value in {name}={value}", "--rlimit") from None
    return limits


def file_entry(arg: str) -> tuple[str, dict]:
    """``--add-file=[NAME[:PERMS]=]PATH|TEXT`` as an RFC 37 file: TEXT (with a newline,
    ``\\n`` counting as one) is the content; else PATH is read (as UTF-8, or base64)
    with its mode. NAME defaults to PATH's basename."""
    import base64
    import stat

    name, sep, data = arg.replace("\\n", "\n").partition("=")
    perms = 0o600
    if not sep or not data:
        if "\n" in name:
            raise bad(f"'{arg}': file name missing", "--add-file")
        data, name = name, os.path.basename(name)
    else:
        base, colon, text = name.partition(":")
        if colon:
            try:
                perms, name = int(text, 8), base
            except ValueError:
                pass  # the ':' is part of the name
    if not name or "/" in name or name in (".", ".."):
        raise bad(f"'{arg}': invalid file name '{name}'", "--add-file")
    if "\n" in data:
        return name, {"mode": perms | stat.S_IFREG, "data": data, "encoding": "utf-8"}
    try:
        st = os.stat(data)
        with open(data, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise bad(f"{data}: {exc.strerror}", "--add-file") from None
    entry: dict = {"mode": st.st_mode, "size": st.st_size}
    try:
        entry.update(data=raw.decode("utf-8"), encoding="utf-8")
    except UnicodeDecodeError:
        entry.update(data=base64.b64encode(raw).decode("ascii"), encoding="base64")
    return name, entry


def _is_idset(text: str) -> bool:
    from strato.jobspec.idset import decode_idset

    try:
        decode_idset(text)
    except ValueError:
        return False
    return True


# -- building --------------------------------------------------------------------------------
def _count(o: dict, key: str) -> int | None:
    """A count option. Flux takes 0 as 'not given' (``-n0`` runs one task); strato
    refuses a count of 0 instead, when the builder checks it."""
    return o.get(key)


def common_args(o: dict) -> dict:
    """The keyword arguments every JobspecV1 builder shares."""
    return {"duration": parse_time_limit(o["time_limit"]) if o["time_limit"] else 0.0,
            "cwd": os.path.abspath(o["cwd"]) if o["cwd"] else os.getcwd(),
            "environment": {}}


def shape(o: dict) -> tuple[int, dict]:
    """The count of -n (slots, for batch and alloc) and the keyword arguments of
    the builder. ``-N`` without ``-n`` means one per node, whole nodes."""
    count, nodes, exclusive = _count(o, "ntasks"), o["nodes"], o["exclusive"]
    if nodes and count is None:
        count, exclusive = nodes, True
    return (1 if count is None else count), {
        "num_nodes": nodes, "exclusive": exclusive, **common_args(o)}


_PER_RESOURCE = ("cores", "tasks_per_node", "tasks_per_core", "gpus_per_node")


def _resource_jobspec(command, o: dict):
    """The jobspec of the per-task (-n/-c/-g) or per-resource (--cores,
    --tasks-per-node/core, --gpus-per-node) options, which do not mix."""
    from strato.jobspec.model import JobspecV1

    if o.get("tasks_per_node") is not None and o.get("tasks_per_core") is not None:
        raise usage("--tasks-per-node and --tasks-per-core cannot be used together")
    for key in ("tasks_per_node", "tasks_per_core"):
        if o.get(key) is not None and o[key] < 1:
            raise bad(f"must be >= 1, not {o[key]}", "--" + key.replace("_", "-"))
    if o.get("gpus_per_node") and not o["nodes"]:
        raise usage("--gpus-per-node requires -N/--nodes")
    if any(o.get(k) is not None for k in _PER_RESOURCE):
        if o["ntasks"] is not None or o["cores_per_task"] is not None or o["gpus_per_task"]:
            raise usage("per-resource options (--cores, --tasks-per-node,"
                                   " --tasks-per-core, --gpus-per-node) cannot be used with"
                                   " per-task options (-n, -c, -g)")
        per = None
        if o.get("tasks_per_node") is not None:
            per = ("node", o["tasks_per_node"])
        elif o.get("tasks_per_core") is not None:
            per = ("core", o["tasks_per_core"])
        exclusive = o["exclusive"] or bool(o["nodes"] and o.get("cores") is None)
        return JobspecV1.per_resource(
            list(command), ncores=o.get("cores"), nnodes=o["nodes"],
            per_resource_type=per and per[0], per_resource_count=per and per[1],
            gpus_per_node=o.get("gpus_per_node"), exclusive=exclusive,
            name=o["job_name"], **common_args(o))
    count, common = shape(o)
    return JobspecV1.from_command(
        list(command), num_tasks=count,
        cores_per_task=1 if o["cores_per_task"] is None else o["cores_per_task"],
        gpus_per_task=o["gpus_per_task"], name=o["job_name"], **common)


def build_jobspec(command, o: dict) -> dict:
    """A jobspec for running COMMAND as tasks; click.BadParameter on bad values."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise usage("no command given")
    if o.get("input") and _is_idset(o["input"]):
        raise bad(f"'{o['input']}': input for some tasks only (an idset) is not supported",
                  "--input")
    shaped = o.get("resources_shape") or o.get("resources_json")
    if shaped:
        o = dict(o, nodes=o["nodes"] or 1)  # a placeholder: the resources are replaced
    try:
        js = _resource_jobspec(command, o)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if o.get("taskmap"):
        js.setattr("system.shell.options.taskmap", parse_taskmap(o["taskmap"]))
    apply_options(js, o)
    if shaped:
        _replace_resources(js, o)
    return js.jobspec


def _replace_resources(js, o: dict) -> None:
    """--resources-shape / --resources-json: these resources instead of the options'."""
    from strato.jobspec.model import JobspecError

    if o.get("resources_shape") and o.get("resources_json"):
        raise usage("--resources-shape and --resources-json cannot be used together")
    if o.get("resources_shape"):
        from strato.jobspec.shape import parse_shape

        hint = "--resources-shape"
        try:
            resources = parse_shape(o["resources_shape"])
        except ValueError as exc:
            raise bad(str(exc), hint) from None
    else:
        import json

        hint = "--resources-json"
        try:
            with open(o["resources_json"]) as f:
                data = json.load(f)
        except OSError as exc:
            raise bad(f"{o['resources_json']}: {exc.strerror}", hint) from None
        except ValueError as exc:
            raise bad(f"{o['resources_json']}: invalid JSON: {exc}", hint) from None
        resources = data["resources"] if isinstance(data, dict) and "resources" in data \
            else data
    js.jobspec["resources"] = resources
    try:
        js.validate()
    except JobspecError as exc:
        raise bad(f"these resources are not a version 1 jobspec strato can run: {exc}",
                  hint) from None


def apply_options(js, o: dict) -> None:
    """Set what every kind of submission shares on a `JobspecV1`, in Flux's order:
    I/O, queue and bank, environment, rlimits, signal, dependencies, constraints,
    shell options, time limit, attributes, files."""
    shell = "system.shell.options."
    if o.get("input") and not _is_idset(o["input"]):
        js.setattr(shell + "input", {"stdin": {"type": "file", "path": o["input"]}})
    for key, stream in (("output", "stdout"), ("error", "stderr")):
        path = o.get(key)
        if path and path not in ("none", "kvs"):
            spec = {"type": "file", "path": path}
            if o["label_io"]:
                spec["label"] = True
            js.setattr(f"{shell}output.{stream}", spec)
    if o["unbuffered"]:
        for stream in ("stdout", "stderr"):
            js.setattr(f"{shell}output.{stream}.buffer", {"type": "none"})
        options = js.jobspec["attributes"]["system"]["shell"]["options"]
        options["output"]["batch-timeout"] = 0.05  # Flux's values
        options.setdefault("input", {})["batch-timeout"] = 0.0
    if o["queue"]:
        js.setattr("system.queue", o["queue"])
    if o.get("bank"):
        js.setattr("system.bank", o["bank"])
    env, expand = environment_rules(
        in_order(o, {"env": "", "env_remove": "-", "env_file": "^"}))
    js.setattr("system.environment", env)
    if expand:
        js.setattr(shell + "env-expand", expand)
    limits = rlimits(list(o.get("rlimit") or ()))
    if limits:
        js.setattr(shell + "rlimit", limits)
    if o.get("signal"):
        js.setattr(shell + "signal", parse_signal(o["signal"]))
    deps = [parse_dependency(v[1:]) if v[0] == "d" else
            {"scheme": "begin-time", "value": repr(parse_begin_time(v[1:]))}
            for v in in_order(o, {"dependency": "d", "begin_time": "b"})]
    if deps:
        js.setattr("system.dependencies", deps)
    if o["requires"]:
        from strato.jobspec.constraints import parse_constraint

        try:
            js.setattr("system.constraints", parse_constraint(" ".join(o["requires"])))
        except ValueError as exc:
            raise bad(str(exc), "--requires") from None
    for opt in o["setopt"]:
        key, value = parse_keyval(opt, "-o/--setopt")
        _set(js, shell + key, value, "-o/--setopt")
    for attr in o["setattr"]:
        key, value = parse_keyval(attr, "-S/--setattr")
        if key.startswith("."):
            key = "attributes" + key
        elif not key.startswith(("attributes.", "user.", "system.")):
            key = "system." + key
        _set(js, key, value, "-S/--setattr")
    if o.get("add_file"):
        files = js.jobspec["attributes"]["system"].setdefault("files", {})
        for arg in o["add_file"]:
            name, entry = file_entry(arg)
            files[name] = entry


def _set(js, key: str, value, hint: str) -> None:
    try:
        js.setattr(key, value)
    except (TypeError, ValueError) as exc:
        raise bad(str(exc), hint) from None


def cc_ids(o: dict) -> tuple[list[int] | None, int]:
    """The --cc ids (or None) and how many copies to submit."""
    from strato.jobspec.idset import decode_idset

    if o["cc"] and o["bcc"]:
        raise usage("--cc and --bcc cannot be used together")
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
