"""strato submit and strato run: build a jobspec from a command line and submit it.

The options are Flux's (``-n -N -c -g -t --urgency --job-name -o/--setopt
-S/--setattr --env --cwd --output --error --cc --wait --quiet --dry-run``), so a
Flux user's habits work.
"""

from __future__ import annotations

import json
import os
import sys

import click

from strato.core.errors import StratoError


def submission_options(fn):
    """The option set that submit and run share."""
    opts = [
        click.option("-n", "--ntasks", type=int, help="Number of tasks."),
        click.option("-N", "--nodes", type=int, help="Number of nodes."),
        click.option("-c", "--cores-per-task", type=int, default=1, show_default=True),
        click.option("-g", "--gpus-per-task", type=int, default=None),
        click.option("-x", "--exclusive", is_flag=True, help="Allocate whole nodes (with -N)."),
        click.option("-t", "--time-limit", metavar="FSD", help="Time limit, e.g. 30s, 2h."),
        click.option("--urgency", default="16", metavar="N",
                     help="0-31, or hold/default/expedite."),
        click.option("--job-name", metavar="NAME"),
        click.option("-o", "--setopt", multiple=True, metavar="OPT[=VAL]",
                     help="Set a shell option."),
        click.option("-S", "--setattr", multiple=True, metavar="KEY=VAL",
                     help="Set a jobspec attribute (system. is implied)."),
        click.option("--env", multiple=True, metavar="RULE",
                     help="VAR=VAL sets, -VAR removes, VAR copies (after the default copy)."),
        click.option("--env-remove", multiple=True, metavar="PATTERN"),
        click.option("--cwd", metavar="DIR", help="Working directory of the tasks."),
        click.option("--output", metavar="TEMPLATE", help="stdout to a file, e.g. job-{{id}}.out."),
        click.option("--error", metavar="TEMPLATE", help="stderr to a file."),
        click.option("--dry-run", is_flag=True, help="Print the jobspec; submit nothing."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


URGENCY_NAMES = {"hold": 0, "default": 16, "expedite": 31}


def parse_urgency(text: str) -> int:
    value = URGENCY_NAMES.get(text)
    if value is None:
        try:
            value = int(text)
        except ValueError:
            raise click.BadParameter(f"invalid urgency '{text}'", param_hint="--urgency") \
                from None
    if not 0 <= value <= 31:
        raise click.BadParameter(f"urgency {value} is not in 0-31", param_hint="--urgency")
    return value


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_jobspec(command, o: dict) -> dict:
    """Turn the shared options into a jobspec dict; click.BadParameter on bad values."""
    import fnmatch

    from strato.jobspec.fsd import parse_fsd
    from strato.jobspec.model import JobspecV1

    if not command:
        raise click.UsageError("no command given")
    ntasks, nodes, exclusive = o["ntasks"], o["nodes"], o["exclusive"]
    if nodes is not None and ntasks is None:
        ntasks = nodes
        exclusive = True
    duration = 0.0
    if o["time_limit"]:
        try:
            duration = parse_fsd(o["time_limit"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="-t/--time-limit") from None
    env = dict(os.environ)
    for pat in o["env_remove"]:
        for k in [k for k in env if fnmatch.fnmatchcase(k, pat)]:
            del env[k]
    for rule in o["env"]:
        if rule.startswith("-"):
            for k in [k for k in env if fnmatch.fnmatchcase(k, rule[1:])]:
                del env[k]
        elif "=" in rule:
            k, _, v = rule.partition("=")
            env[k] = os.path.expandvars(v)
        elif rule in os.environ:
            env[rule] = os.environ[rule]
    try:
        js = JobspecV1.from_command(
            list(command), num_tasks=1 if ntasks is None else ntasks,
            cores_per_task=o["cores_per_task"],
            gpus_per_task=o["gpus_per_task"], num_nodes=nodes, exclusive=exclusive,
            duration=duration if duration != float("inf") else 0.0,
            cwd=os.path.abspath(o["cwd"]) if o["cwd"] else os.getcwd(),
            environment=env, name=o["job_name"])
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    output = {}
    if o["output"]:
        output["stdout"] = {"type": "file", "path": o["output"]}
    if o["error"]:
        output["stderr"] = {"type": "file", "path": o["error"]}
    if output:
        js.setattr("system.shell.options.output", output)
    for opt in o["setopt"]:
        key, sep, val = opt.partition("=")
        js.setattr(f"system.shell.options.{key}", _parse_value(val) if sep else 1)
    for attr in o["setattr"]:
        key, sep, val = attr.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"invalid attribute '{attr}' (expected KEY=VAL)",
                                     param_hint="-S/--setattr")
        try:
            js.setattr(key, _parse_value(val))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="-S/--setattr") from None
    return js.jobspec


def _cc_count(text: str | None) -> int:
    if text is None:
        return 1
    from strato.jobspec.idset import decode_idset

    try:
        ids = decode_idset(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cc") from None
    if not ids:
        raise click.BadParameter("empty idset", param_hint="--cc")
    return len(ids)


@click.command(context_settings={"allow_interspersed_args": False})
@submission_options
@click.option("--cc", metavar="IDSET", help="Submit copies, one per id (e.g. 1-1000).")
@click.option("--wait", is_flag=True, help="Wait for the jobs to end.")
@click.option("--quiet", is_flag=True, help="Do not print job ids.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(command, cc, wait, quiet, **o) -> int:
    """Submit COMMAND as a job and print its id."""
    urgency = parse_urgency(o["urgency"])
    js = build_jobspec(command, o)
    count = _cc_count(cc)
    if o["dry_run"]:
        click.echo(json.dumps(js))
        return 0
    from strato import job as jobapi
    from strato.core.ids import f58
    from strato.handle import Handle

    h = Handle()
    jobids = jobapi.submit_many(h, js, count, urgency=urgency)
    if not quiet:
        sys.stdout.write("".join(f58(i) + "\n" for i in jobids))
        sys.stdout.flush()
    if not wait:
        return 0
    rc = 0
    for res in jobapi.wait_all(h, jobids):
        if not res.success:
            rc = max(rc, res.returncode or 1)
    return rc


@click.command(context_settings={"allow_interspersed_args": False})
@submission_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command, **o) -> int:
    """Run COMMAND as a job, stream its output, and exit with its exit code."""
    urgency = parse_urgency(o["urgency"])
    js = build_jobspec(command, o)
    if o["dry_run"]:
        click.echo(json.dumps(js))
        return 0
    from strato.cli.attach import attach_stream
    from strato.handle import Handle

    h = Handle()
    body = {"jobspec": js, "count": 1, "urgency": urgency, "watch": True, "output": True}
    stream = h.rpc_stream("job-manager.submit", body)
    try:
        first = next(stream)
    except StopIteration:
        raise StratoError("submit: no answer from the instance") from None
    return attach_stream(h, first["ids"][0], stream, "strato-run")
