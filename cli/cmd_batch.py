"""strato batch and strato alloc: child instances as jobs (Flux's ``flux batch``,
``flux alloc``).

Both submit a job whose one task is ``strato start``: a complete instance that
owns exactly the job's resources and schedules its own jobs in them. ``batch``
runs a script as the child's initial program (its ``#STRATO:``/``#FLUX:``
directives, RFC 36, are options read before the command line's, so the command
line wins; the script travels in ``attributes.system.files.script``). ``alloc``
runs CMD in the child and streams its output, or, without CMD, gives an
interactive shell whose ``STRATO_URI`` is the child: the shell runs here, on the
user's terminal, as Slurm's ``salloc`` does, and the child lives until it exits.
``alloc --bg`` (as Flux's) returns once the child is ready, printing its job id;
the child then lives until it is shut down (``strato shutdown JOBID``), canceled
or out of time, or until its COMMAND ends if one was given.

``--conf`` (a TOML or JSON file, a KEY=VAL setting or a JSON object, merged in
order) is the child's whole config, independent of the parent's; it travels as
``attributes.system.files["conf.json"]``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading

import click

from strato.cli.flux_command import FluxCommand
from strato.cli.submitopts import (
    apply_options,
    job_options,
    multi_options,
    parse_flags,
    parse_urgency,
    slot_options,
)

_state = {"probing": False}


def _read_script(path: str | None, dump: str | None = None) -> str:
    """The batch script from `path` (or stdin); it must start with ``#!`` (Flux's
    rule), since the child instance executes it as its initial program."""
    name = path if path not in (None, "-") else "stdin"
    # `--dump FILE` takes the next word as its FILE (an optional value, as in
    # Flux), so `--dump job.sh` leaves no script: say what happened.
    hint = f" (--dump took '{dump}' as its archive: write --dump=FILE)" \
        if name == "stdin" and dump and os.path.isfile(dump) else ""
    if path in (None, "-"):
        if sys.stdin.isatty():
            raise click.UsageError(f"no script given (name a file or pipe one on stdin){hint}")
        text = sys.stdin.read()
    else:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                     param_hint="SCRIPT") from None
        except UnicodeDecodeError:
            raise click.BadParameter(f"{path} is not a text file",
                                     param_hint="SCRIPT") from None
    if not text.startswith("#!"):
        what = "is empty" if not text else "does not start with '#!'"
        raise click.UsageError(f"{name}: not a script: it {what}{hint}")
    return text


def _wrap(command: list[str]) -> str:
    """``--wrap``: the command (or stdin) as a /bin/sh script, as Flux's ``flux batch
    --wrap`` makes it (the words joined by spaces, so shell syntax in them works)."""
    if command:
        return "#!/bin/sh\n" + " ".join(command) + "\n"
    if sys.stdin.isatty():
        raise click.UsageError("--wrap: no command given (give one, or pipe one on stdin)")
    text = sys.stdin.read()
    if not text.strip():
        raise click.UsageError("--wrap: no command given and stdin is empty")
    return "#!/bin/sh\n" + text


class BatchCommand(FluxCommand):
    """Parses the command line twice: once to find the script, then again with
    the script's directives in front of the user's own arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if _state["probing"]:
            return super().parse_args(ctx, args)
        _state["probing"] = True
        try:
            probe = self.make_context(ctx.info_name, list(args), parent=ctx.parent)
        finally:
            _state["probing"] = False
        script = probe.params.get("script")
        if probe.params.get("wrap"):
            text = _wrap([script, *probe.params["args"]] if script else [])
        else:
            text = _read_script(script, probe.params.get("dump"))
        from strato.jobspec.directives import directive_args

        try:
            extra = directive_args(text)
        except ValueError as exc:
            raise click.UsageError(f"{script or 'stdin'}: {exc}") from None
        ctx.meta["strato.batch.script"] = text
        # directives first: the same option on the command line overrides them
        return super().parse_args(ctx, extra + list(args))


def instance_options(fn):
    """The options of a child instance, shared by batch and alloc (Flux's names)."""
    for opt in reversed([
        click.option("--conf", multiple=True, metavar="FILE|KEY=VAL|JSON",
                     help="The child's config: a TOML/JSON file, a KEY=VAL setting or a"
                          " JSON object (repeat to merge; later wins)."),
        click.option("--broker-opts", multiple=True, metavar="OPTS",
                     help="Options for the child's strato start, e.g. '-S exec.backend=sim'."),
        click.option("--dump", is_flag=False, flag_value="strato-{{id}}-dump.tgz",
                     default=None, metavar="[FILE]",
                     help="Archive the child's KVS to FILE at its end"
                          " (default strato-{{id}}-dump.tgz)."),
    ]):
        fn = opt(fn)
    return fn


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def child_config(items: tuple[str, ...]) -> dict:
    """The ``--conf`` values merged in order (BadParameter names a bad one)."""
    from strato.core.config import apply_override, read_config_file
    from strato.core.errors import ConfigError

    conf: dict = {}
    for item in items:
        try:
            if item.lstrip().startswith("{"):
                try:
                    value = json.loads(item)
                except ValueError as exc:
                    raise ConfigError(f"invalid JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise ConfigError("a JSON config must be an object")
                _merge(conf, value)
            elif os.path.isfile(item) or item.endswith((".toml", ".json")):
                _merge(conf, read_config_file(item))
            elif "=" in item:
                apply_override(conf, item)
            else:
                raise ConfigError("not a config file, KEY=VAL or JSON object")
        except ConfigError as exc:
            raise click.BadParameter(f"{item}: {exc}", param_hint="--conf") from None
    _check_child_config(conf)
    return conf


def _check_child_config(conf: dict) -> None:
    """Refuse at submission what the child would refuse at its start (an unknown
    key or table, a value its check refuses), as ``strato config check`` does,
    rather than let the job fail later. Plugins the config names are loaded for
    this, since they declare their own keys."""
    from strato.core.config import check_config
    from strato.core.errors import StratoError
    from strato.core.plugins import make_plugin_manager

    try:
        check_config(conf, make_plugin_manager(conf))
    except StratoError as exc:
        raise click.BadParameter(str(exc), param_hint="--conf") from None


def broker_options(o: dict) -> list[str]:
    """The child's ``strato start`` options: --broker-opts, --conf, --dump."""
    out: list[str] = []
    for text in o["broker_opts"]:
        try:
            out.extend(shlex.split(text))
        except ValueError as exc:
            raise click.BadParameter(f"{text}: {exc}", param_hint="--broker-opts") from None
    if o["conf"]:
        out.append("--config={{tmpdir}}/conf.json")
    if o["dump"]:
        out.append(f"--dump={o['dump']}")
    return out


def finish_instance_jobspec(js, o: dict) -> dict:
    """Add the child's config file and the job options; make ``strato`` runnable."""
    if o["conf"]:
        files = js.jobspec.get("attributes", {}).get("system", {}).get("files", {})
        files = dict(files, **{"conf.json": {"data": child_config(o["conf"]),
                                             "mode": 0o100600}})
        js.setattr("system.files", files)
    apply_options(js, o)
    if _instance_size() > 1:  # one broker per node, as a user's `strato run -N ...`
        js.setattr("system.shell.options.per-resource", {"type": "node", "count": 1})
    task = js.jobspec["tasks"][0]
    task["command"] = strato_argv(js.jobspec["attributes"]["system"].get("environment")) \
        + task["command"][1:]
    return js.jobspec


def _instance_size() -> int:
    """How many brokers the instance that gets the job has (1 when none answers,
    as for a --dry-run outside any instance).

    A child of a multi-broker instance runs one broker per node of its
    allocation, each a task of its job, bootstrapped through the job shell's PMI
    (as Flux's batch and alloc do). Over the virtual nodes of one broker there is
    one broker for the whole allocation: every node is on this one machine."""
    from strato.core.errors import StratoError
    from strato.handle import Handle
    from strato.instance import attr_get

    try:
        with Handle() as h:
            return int(attr_get(h, "size"))
    except (StratoError, KeyError, TypeError, ValueError):
        return 1


def strato_argv(env: dict | None) -> list[str]:
    """How a job runs this strato: ``strato`` if the job's PATH finds this very
    program, else this Python with ``-m strato`` (an unactivated venv)."""
    found = shutil.which("strato", path=(env if env is not None else os.environ).get("PATH"))
    if found and os.path.realpath(found) == os.path.realpath(sys.argv[0]):
        return ["strato"]
    return [sys.executable, "-m", "strato"]


def _cores(o: dict) -> int:
    return 1 if o["cores_per_task"] is None else o["cores_per_task"]


def batch_jobspec(script_text: str, args: tuple, o: dict) -> dict:
    """The jobspec of a batch job from the shared options (see JobspecV1)."""
    from strato.cli.submitopts import shape
    from strato.jobspec.model import JobspecV1

    nslots, common = shape(o)
    try:
        js = JobspecV1.from_batch_command(
            script_text, args, num_slots=nslots, cores_per_slot=_cores(o),
            gpus_per_slot=o["gpus_per_task"], name=o["job_name"] or "batch",
            broker_opts=broker_options(o), **common)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not o["output"]:
        o = dict(o, output="strato-{{id}}.out")
    return finish_instance_jobspec(js, o)


@click.command(cls=BatchCommand, context_settings={"allow_interspersed_args": False})
@slot_options
@job_options
@multi_options
@instance_options
@click.option("--wrap", is_flag=True,
              help="Run COMMAND ARGS... (or stdin) as a /bin/sh script instead of a SCRIPT.")
@click.argument("script", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def batch(script, args, wrap, **o) -> int:
    """Submit SCRIPT (or stdin) as a batch job: a child instance that runs it and
    schedules the jobs it submits; -n counts slots, not tasks."""
    from strato.cli.cmd_submit import submit_and_follow

    text = click.get_current_context().meta["strato.batch.script"]
    # the job is named after the script as given (its first word with --wrap), as in Flux
    o = dict(o, job_name=o["job_name"] or script)
    return submit_and_follow(batch_jobspec(text, () if wrap else args, o), o)


def alloc_jobspec(command: list[str], o: dict) -> dict:
    """A child instance running `command` (or, for an interactive shell, running
    until this process exits)."""
    from strato.cli.submitopts import shape
    from strato.jobspec.model import JobspecV1

    nslots, common = shape(o)
    if o["nodes"] and nslots < o["nodes"]:  # the builder would add slots; Flux refuses
        raise click.BadParameter("node count must not be greater than task count")
    program = command or (["--no-program"] if o.get("bg") else [f"--exit-with={os.getpid()}"])
    try:
        js = JobspecV1.from_nest_command(
            [*broker_options(o), *program], num_slots=nslots,
            cores_per_slot=_cores(o), gpus_per_slot=o["gpus_per_task"],
            name=o["job_name"] or (os.path.basename(command[0]) if command else "alloc"),
            **common)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return finish_instance_jobspec(js, o)


@click.command(cls=FluxCommand, context_settings={"allow_interspersed_args": False})
@slot_options
@job_options
@instance_options
@click.option("-v", "--verbose", count=True,
              help="Say on stderr how the start goes (with --bg).")
@click.option("--bg", is_flag=True,
              help="Do not attach: wait until the instance is ready, print its job id and "
                   "return. It runs until shut down (strato shutdown JOBID), canceled or "
                   "out of time, or until COMMAND ends if one is given.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def alloc(command, **o) -> int:
    """Start a child instance as a job and run COMMAND in it (default: an interactive
    shell), streaming its output; the instance ends with it. -n counts slots."""
    if not command and not o["dry_run"] and not o["bg"] and not sys.stdin.isatty():
        raise click.UsageError("no command given and stdin is not a terminal"
                               " (give a command to run in the new instance)")
    # the I/O options are for batch; alloc accepts and ignores them, as Flux's does
    o = dict(o, input=None, output=None, error=None)
    js = alloc_jobspec(list(command), o)
    if o["dry_run"]:
        click.echo(json.dumps(js))
        return 0
    from strato import job as jobapi
    from strato.handle import Handle

    h = Handle()
    urgency, flags = parse_urgency(o["urgency"]), parse_flags(o["flags"])
    if o["bg"]:
        return _background(h, jobapi.submit(h, js, urgency, flags), o["verbose"])
    if command:
        from strato.cli.attach import attach_stream

        jobid, stream = jobapi.submit_and_watch(h, js, urgency, flags, output=True)
        return attach_stream(h, jobid, stream, "strato-alloc", o["label_io"])
    return _interactive(h, jobapi.submit(h, js, urgency, flags))


def _background(h, jobid: int, verbose: int) -> int:
    """``--bg``: follow the job's eventlog until its instance posts its URI, check that
    it answers there, then print the job id. A job that ends first is an error that
    says why (its exception, such as the child's own start-up error); ^C, or a child
    that does not answer at its URI, cancels it."""
    import contextlib
    import time

    from strato import instance
    from strato import job as jobapi
    from strato.core.errors import StratoError
    from strato.core.ids import f58
    from strato.handle import Handle

    name, t0 = f58(jobid), time.monotonic()

    def log(what: str) -> None:
        if verbose:
            click.echo(f"{name}: {time.monotonic() - t0:6.3f}s: {what}", err=True)

    log("waiting for resources")
    why = ""
    stream = jobapi.event_watch(h, jobid)
    try:
        for msg in stream:
            entry = msg["entry"]
            ctx = entry.get("context") or {}
            if entry["name"] == "alloc":
                log("resources allocated")
            elif entry["name"] == "exception" and ctx.get("severity") == 0:
                why = f": {ctx.get('type')}: {ctx.get('note')}"
            elif entry["name"] == "memo" and "uri" in ctx:
                log("waiting for instance")
                try:
                    with Handle(ctx["uri"]) as child:
                        instance.ping(child)
                except StratoError as exc:
                    # not left holding its allocation until the time limit
                    with contextlib.suppress(StratoError):
                        jobapi.cancel(h, jobid, "alloc --bg could not reach the instance")
                    raise StratoError(f"{name}: the instance at {ctx['uri']} does not "
                                      f"answer: {exc}") from None
                log("ready")
                click.echo(name)
                return 0
    except KeyboardInterrupt:
        click.echo(f"\r{name}: Interrupt: canceling job", err=True)
        jobapi.cancel(h, jobid, "interrupted")
        return 1
    finally:
        stream.close()
    raise StratoError(f"{name}: the instance ended before it was ready{why}")


def _interactive(h, jobid: int) -> int:
    """Run the user's shell here with STRATO_URI set to the child; when it exits,
    stop the child with its exit code. If the job ends first, the shell is hung up."""
    from strato import instance
    from strato import job as jobapi
    from strato.handle import Handle

    uri = jobapi.uri(h, jobid, wait=True)
    env = dict(os.environ, STRATO_URI=uri)
    shell = subprocess.Popen([os.environ.get("SHELL", "/bin/sh")], env=env)

    def hang_up_when_job_ends() -> None:
        with Handle(h.uri) as mine:
            jobapi.wait(mine, jobid)
        if shell.poll() is None:
            shell.send_signal(signal.SIGHUP)

    threading.Thread(target=hang_up_when_job_ends, daemon=True).start()
    rc = shell.wait()
    rc = 128 - rc if rc < 0 else rc
    from strato.core.errors import StratoError

    try:
        with Handle(uri) as child:
            instance.shutdown(child, rc)
    except StratoError:
        pass  # the child is already gone
    jobapi.wait(h, jobid)
    return rc
