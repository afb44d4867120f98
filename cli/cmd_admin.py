"""Instance-level commands: queue, resource, uri, ping, uptime, plugins.

Each parses its options, calls `strato.queue`, `strato.resource`, `strato.job` or
`strato.instance`, and prints.
"""

from __future__ import annotations

import json
import os
import time

import click

from strato.cli.common import handle

# -- queue ---------------------------------------------------------------------------------
QUEUE_OPT = click.option("-q", "--queue", metavar="NAME", help="One queue (default: all).")


@click.group()
def queue() -> None:
    """Control and inspect the queues."""


def _fsd(seconds: float) -> str:
    from strato.jobspec.fsd import format_fsd

    return format_fsd(seconds) if seconds else "inf"


@queue.command("status")
@QUEUE_OPT
def queue_status(queue) -> int:
    """Show whether each queue takes submissions and is scheduling."""
    from strato import queue as api

    for q in api.status(handle(), queue)["queues"]:
        who = f"{q['name']}: " if q["name"] else ""
        if q["enabled"]:
            click.echo(f"{who}Job submission is enabled")
        else:
            click.echo(f"{who}Job submission is disabled: {q['disable_reason']}")
        if q["started"]:
            click.echo(f"{who}Scheduling is started")
        else:
            reason = f": {q['stop_reason']}" if q["stop_reason"] else ""
            click.echo(f"{who}Scheduling is stopped{reason}")
    return 0


@queue.command("list")
@click.option("-n", "--no-header", is_flag=True, help="No header line.")
def queue_list(no_header) -> int:
    """One line per queue: enabled, started, time default and limit, size limits."""
    from strato import queue as api

    st = api.status(handle())
    if not no_header:
        click.echo(f"{'QUEUE':<12} {'EN':>2} {'ST':>2} {'TDEFAULT':>8} {'TLIMIT':>8} "
                   f"{'NNODES':>6} {'NCORES':>6} {'NGPUS':>6}")
    for q in st["queues"]:
        name = (q["name"] or "-") + ("*" if q["name"] and q["name"] == st["default"] else "")
        mx = q["max"]
        cells = [str(mx.get(k, "-")) if mx.get(k, -1) >= 0 else "-"
                 for k in ("nnodes", "ncores", "ngpus")]
        click.echo(f"{name:<12} {'✔' if q['enabled'] else '✗':>2} "
                   f"{'✔' if q['started'] else '✗':>2} {_fsd(q['duration_default']):>8} "
                   f"{_fsd(q['duration_limit']):>8} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6}")
    return 0


@queue.command("stop")
@QUEUE_OPT
@click.argument("reason", nargs=-1)
def queue_stop(queue, reason) -> int:
    """Stop scheduling (jobs can still be submitted)."""
    from strato import queue as api

    api.stop(handle(), queue, " ".join(reason))
    return 0


@queue.command("start")
@QUEUE_OPT
def queue_start(queue) -> int:
    """Start scheduling."""
    from strato import queue as api

    api.start(handle(), queue)
    return 0


@queue.command("disable")
@QUEUE_OPT
@click.argument("reason", nargs=-1)
def queue_disable(queue, reason) -> int:
    """Disable job submission."""
    from strato import queue as api

    api.disable(handle(), queue, " ".join(reason))
    return 0


@queue.command("enable")
@QUEUE_OPT
def queue_enable(queue) -> int:
    """Enable job submission."""
    from strato import queue as api

    api.enable(handle(), queue)
    return 0


@queue.command("drain")
@QUEUE_OPT
def queue_drain(queue) -> int:
    """Wait until no job is active."""
    from strato import queue as api

    api.drain(handle(), queue)
    return 0


@queue.command("idle")
@QUEUE_OPT
def queue_idle(queue) -> int:
    """Wait until no job is running."""
    from strato import queue as api

    api.idle(handle(), queue)
    return 0


# -- resource ------------------------------------------------------------------------------
@click.group()
def resource() -> None:
    """List, drain and undrain resources."""


@resource.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the resource status as JSON.")
def resource_list(as_json) -> int:
    """Free, allocated and down resources."""
    from strato import resource as api

    st = api.status(handle())
    if as_json:
        click.echo(json.dumps(st))
        return 0
    click.echo(f"{'STATE':>10} {'NNODES':>6} {'NCORES':>8} {'NGPUS':>8} NODELIST")
    for state in api.STATES:
        row = st[state]
        click.echo(f"{state:>10} {row['nnodes']:>6} {row['ncores']:>8} {row['ngpus']:>8} "
                   f"{row['nodelist']}")
    return 0


@resource.command("info")
def resource_info() -> int:
    """One line: how many nodes, cores and gpus the instance has."""
    from strato import resource as api

    total = api.info(handle())
    nodes, cores, gpus = total["nodes"], total["cores"], total["gpus"]
    click.echo(f"{nodes} Node{'s' if nodes != 1 else ''}, {cores} Core{'s' if cores != 1 else ''}"
               f", {gpus} GPU{'s' if gpus != 1 else ''}")
    return 0


@resource.command("R")
def resource_R() -> int:  # noqa: N802 - Flux's name
    """Print the instance's R."""
    from strato import resource as api

    click.echo(json.dumps(api.R(handle())))
    return 0


@resource.command("drain")
@click.argument("targets", required=False)
@click.argument("reason", nargs=-1)
def resource_drain(targets, reason) -> int:
    """Drain TARGETS (ranks or hostnames) so they get no new jobs; list if none."""
    from strato import resource as api

    h = handle()
    if targets is None:
        st = api.status(h)
        click.echo(f"{'TIMESTAMP':<20} {'RANK':>6} REASON")
        for rank, d in sorted(st["drained"].items(), key=lambda kv: int(kv[0])):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(d["timestamp"]))
            click.echo(f"{ts:<20} {rank:>6} {d['reason']}")
        return 0
    api.drain(h, targets, " ".join(reason))
    return 0


@resource.command("undrain")
@click.argument("targets")
def resource_undrain(targets) -> int:
    """Return drained TARGETS to service."""
    from strato import resource as api

    api.undrain(handle(), targets)
    return 0


# -- small commands ------------------------------------------------------------------------
@click.command()
@click.option("--parent", is_flag=True, help="The URI of TARGET's parent instance.")
@click.option("--local", is_flag=True, help="A URI usable on this host (local://).")
@click.option("--wait", is_flag=True, help="Wait for a job's instance to start.")
@click.argument("target", required=False)
def uri(parent, local, wait, target) -> int:
    """Print the URI of this instance, or of TARGET: a job's instance (JOBID), a
    path of them (JOBID/JOBID2, /JOBID from the root) or a URI."""
    from strato import instance as api

    found = api.resolve(target, wait=wait)
    if parent:
        from strato.handle import Handle

        with Handle(found) as h:
            found = api.attr_get(h, "parent-uri")
        if not found:
            raise click.ClickException("the instance has no parent (it is the root)")
    if local and not found.startswith("local://"):
        raise click.ClickException(f"{found}: not an instance on this host")
    click.echo(found)
    return 0


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("target")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def proxy(target, command) -> int:
    """Run COMMAND (default: a shell) connected to the instance TARGET (a job id,
    a path of job ids, or a URI); exit with its exit code."""
    from strato import instance as api
    from strato.handle import Handle

    found = api.resolve(target)
    with Handle(found) as h:  # one-line error now if it is dead or unreachable
        api.ping(h)
    argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
    env = dict(os.environ, STRATO_URI=found)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise click.ClickException(f"{argv[0]}: {exc.strerror}") from None


@click.command()
@click.argument("name")
def getattr(name) -> int:  # noqa: A001 - Flux's command name
    """Print the value of a broker attribute (see strato lsattr)."""
    from strato import instance as api

    click.echo(api.attr_get(handle(), name))
    return 0


@click.command()
@click.option("-v", "--values", is_flag=True, help="Show each attribute's value too.")
def lsattr(values) -> int:
    """List the broker attributes."""
    from strato import instance as api

    attrs = api.attributes(handle())
    width = max(len(k) for k in attrs)
    for key in sorted(attrs):
        click.echo(f"{key:<{width}}  {attrs[key]}" if values else key)
    return 0


@click.command()
@click.argument("target", required=False)
def shutdown(target) -> int:
    """Stop the instance (or TARGET: a job id or URI): its initial program ends,
    then its running jobs."""
    from strato import instance as api
    from strato.handle import Handle

    with Handle(api.resolve(target)) as h:
        api.shutdown(h)
    return 0


@click.command()
@click.option("-c", "--count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of requests to send.")
@click.argument("target", default="broker")
def ping(count, target) -> int:
    """Send requests to the instance and print round-trip times."""
    from strato import instance as api

    h = handle()
    for i in range(count):
        ms = api.ping(h, i) * 1000
        click.echo(f"{target}.ping seq={i} time={ms:.3f} ms")
    return 0


@click.command()
def uptime() -> int:
    """How long the instance has been up, and how many jobs it has."""
    from strato import instance as api

    info = api.info(handle())
    up = info["uptime"]
    h, rem = divmod(int(up), 3600)
    m, s = divmod(rem, 60)
    click.echo(f" {time.strftime('%H:%M:%S')} run {h}:{m:02d}:{s:02d}, owner "
               f"{os.environ.get('USER', os.getuid())}, size {info['size']}, "
               f"nodes {info['nodes']}, jobs {info['jobs']} ({info['active']} active)")
    return 0


@click.group()
def plugins() -> None:
    """Show loaded plugins and their hooks."""


@plugins.command("list")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the module of each plugin and the config keys it declares.")
def plugins_list(verbose) -> int:
    """Each loaded plugin and the hooks it implements."""
    from strato import instance as api

    for p in api.plugins(handle()):
        extra = f" ({p['module']})" if verbose else ""
        click.echo(f"{p['name']}{extra}: {', '.join(p['hooks'])}")
        if verbose:
            for k in p.get("config", []):
                default = f" = {k['default']}" if k["default"] is not None else ""
                click.echo(f"    {k['table']}.{k['key']}{default}  # {k['help']}")
    return 0
