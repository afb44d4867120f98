"""strato jobs: list jobs in Flux's formats (``-o FORMAT``, named formats, --json).

A job that is a running child instance (``strato batch``/``alloc``) is asked for
its own progress, which INFO shows (``PD:1 R:2 CD:3 F:0 cores:50%``) along with
the ``instance.*`` fields; ``-R`` lists the jobs inside each child too, under
its id path, as ``flux jobs -R`` does. Children are asked only when a listed
job is one, so a listing without instance jobs costs one request.
"""

from __future__ import annotations

import json
import sys

import click

from strato.cli.common import color_option, handle
from strato.core.states import ACTIVE, ALL

# Flux's colours: a job's result, else blue for an instance
_COLORS = {"COMPLETED": "\033[01;32m", "FAILED": "\033[01;31m", "CANCELED": "\033[37m",
           "TIMEOUT": "\033[01;31m"}
_INSTANCE_COLOR = "\033[01;34m"
_RESET = "\033[0;0m"


@click.command()
@click.option("-a", "all_states", is_flag=True, help="All jobs, inactive ones too.")
@click.option("-A", "all_users", is_flag=True, help="Jobs of every user.")
@click.option("-f", "--filter", "filt", metavar="STATE|RESULT,...",
              help="Only jobs in these states or with these results.")
@click.option("-n", "--no-header", is_flag=True, help="No header line.")
@click.option("-c", "--count", type=click.IntRange(min=0), default=0,
              help="At most this many jobs (in each instance, with -R).")
@click.option("--name", metavar="NAME", help="Only jobs with this name.")
@click.option("-u", "--user", metavar="USER", help="Jobs of USER (name or uid, or 'all').")
@click.option("-q", "--queue", metavar="QUEUE", help="Only jobs of this queue.")
@click.option("--since", metavar="WHEN",
              help="Only jobs active since WHEN (-FSD ago, @EPOCH or ISO 8601).")
@click.option("-o", "--format", "fmt", default="default",
              help="A format string or a named format (default, long, deps, ...).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the job records as JSON (with -R, an instance's jobs in its 'jobs').")
@click.option("-R", "--recursive", is_flag=True,
              help="List the jobs of child instances too, under each one's id path.")
@click.option("-L", "--level", type=click.IntRange(min=0), default=None, metavar="N",
              help="With -R, descend at most N levels (0: this instance only).")
@click.option("--recurse-all", is_flag=True,
              help="With -R, enter other users' instances too (implies -R).")
@click.option("--stats", is_flag=True,
              help="Print job counts (of --queue's jobs, with it) before the header "
                   "(with -R, of each child too).")
@click.option("--stats-only", is_flag=True,
              help="Print job counts only (other options but --queue are ignored); "
                   "exit 1 if no job is active.")
@color_option("Colour jobs by result, and instances blue: auto (on a terminal), never or "
              "always (the default without WHEN).")
@click.argument("jobids", nargs=-1, metavar="[JOBID]...")
def jobs(all_states, all_users, filt, no_header, count, name, user, queue, since, fmt,
         as_json, recursive, level, recurse_all, stats, stats_only, color, jobids) -> int:
    """List jobs (active ones by default, newest first; your own unless -A), or
    the jobs JOBID... in any state, in that order."""
    from strato import instance as instance_api
    from strato import job as jobapi
    from strato.cli.jobs_format import (
        NAMED_FORMATS,
        JobsFormatter,
        parse_filter,
        wants_instance_info,
    )

    recursive = recursive or recurse_all
    if as_json and (stats or stats_only):
        raise click.UsageError("--json cannot be used with --stats or --stats-only")
    if stats_only:  # as Flux: every other option but --queue is ignored
        counts = jobapi.stats(handle(), queue)
        click.echo(_stats_line(counts.as_dict(), purged=True))
        return 0 if counts.active else 1
    states, results = ALL if all_states else ACTIVE, set()
    if filt:
        try:
            states, results = parse_filter(filt)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--filter") from None
    formatter = None
    if not as_json:
        try:
            formatter = JobsFormatter(NAMED_FORMATS.get(fmt, fmt))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--format") from None
    uid = _userid(user, all_users)
    t_since = None
    if since:
        t_since = _since(since)
        if not filt:
            states = ALL
    ids = _parse_ids(jobids)
    h = handle()
    if stats:
        click.echo(_stats_line(jobapi.stats(h, queue).as_dict(), purged=True))
    filters = {"states": states, "results": sorted(results), "name": name,
               "max_entries": count, "userid": uid, "queue": queue, "since": t_since}
    info = formatter is not None and wants_instance_info(formatter.fields)
    if recursive:
        nodes = instance_api.walk(h, level=level, info=info or stats,
                                  recurse_all=recurse_all, **filters)
        if as_json:
            click.echo(json.dumps({"jobs": [_nested(n) for n in nodes]}))
            return 0
        records = [n.job for top in nodes for n in top]
    elif jobids:
        if recursive:
            raise click.UsageError("JOBID... cannot be used with -R")
        if any([all_states, all_users, filt, count, name, user, queue, since]):
            click.echo("strato-jobs: filtering options are ignored with a JOBID list", err=True)
        records = _records_by_id(h, jobids, ids)
        if not records:
            return 1
        if as_json:
            click.echo(json.dumps(records[0] if len(jobids) == 1 else {"jobs": records}))
            return 0
    else:
        records = jobapi.list_jobs(h, **filters)
        if as_json:
            click.echo(json.dumps({"jobs": records}))
            return 0
        if info:
            instance_api.add_instance_info(records)
    formatter = formatter.filter_empty(records, no_header=no_header)
    out = [] if no_header else [formatter.header()]
    paint = color == "always" or (color == "auto" and sys.stdout.isatty())
    line = _painter(formatter.format) if paint else formatter.format
    if recursive:
        _recursive_lines(nodes, line, stats, out)
    else:
        out.extend(line(r) for r in records)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def _parse_ids(texts: tuple[str, ...]) -> list[int]:
    """JOBID... in any form a job id is written (f58, decimal, hex, dothex, words)."""
    from strato.core.ids import parse

    ids = []
    for text in texts:
        try:
            ids.append(parse(text))
        except ValueError:
            raise click.BadParameter(f"invalid job id '{text}'", param_hint="JOBID") from None
    return ids


def _records_by_id(h, texts: tuple[str, ...], ids: list[int]) -> list[dict]:
    """The records of the jobs named, in the order given; an unknown one is
    reported on stderr, as ``flux jobs`` does, and left out."""
    from strato import job as jobapi
    from strato.core.errors import RPCError

    try:
        found = jobapi.list_jobs(h, states=ALL, userid=None, ids=ids)
    except RPCError:
        found = []
        for text, jobid in zip(texts, ids, strict=True):
            try:
                found += jobapi.list_jobs(h, states=ALL, userid=None, ids=[jobid])
            except RPCError:
                click.echo(f"strato-jobs: job {text} unknown", err=True)
    by_id = {rec["id"]: rec for rec in found}
    return [by_id[i] for i in ids if i in by_id]


def _painter(fmt_one):
    """`fmt_one` with Flux's colours: green, red or grey by result; blue for a job
    that is a child instance (has a URI) and has not ended."""

    def line(rec: dict) -> str:
        text = fmt_one(rec)
        color = _COLORS.get(rec.get("result")) or \
            (_INSTANCE_COLOR if (rec.get("memo") or {}).get("uri") else None)
        return f"{color}{text}{_RESET}" if color else text

    return line


def _stats_line(st: dict, purged: bool = False) -> str:
    """Flux's ``--stats`` summary (failed counts canceled and timed-out jobs too);
    the enclosing instance's also says how many ended jobs were purged, as
    Flux's does (a child's line under ``-R`` does not, as in Flux)."""
    line = (f"{st['running']} running, {st['successful']} completed, {st['failed']} failed, "
            f"{st['pending']} pending")
    return f"{line}, {st.get('inactive_purged', 0)} inactive purged" if purged else line


def _recursive_lines(nodes: list, line, stats: bool, out: list[str]) -> None:
    """As ``flux jobs -R``: the jobs of one instance, then for each child instance
    entered, a blank line, its id path and a colon, (its counts,) and its jobs,
    depth first. A child that could not be asked says why on stderr."""
    out.extend(line(n.job) for n in nodes)
    for node in nodes:
        if node.children is None and node.error is None:
            continue
        out.append("")
        out.append(f"{node.path}:")
        inst = node.job.get("instance")
        if stats and inst:
            out.append(_stats_line(inst["stats"]))
        if node.error is not None:
            click.echo(f"strato-jobs: {node.path}: {node.error}", err=True)
            continue
        _recursive_lines(node.children, line, stats, out)


def _nested(node) -> dict:
    """A node's record, with the records of the jobs inside it under ``jobs``."""
    rec = dict(node.job)
    if node.children is not None:
        rec["jobs"] = [_nested(c) for c in node.children]
    return rec


def _userid(user: str | None, all_users: bool) -> int | None:
    import os
    import pwd

    if all_users or user == "all":
        return None
    if user is None:
        return os.getuid()
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise click.BadParameter(f"unknown user '{user}'", param_hint="--user") from None


def _since(text: str) -> float:
    import datetime
    import time

    from strato.jobspec.fsd import parse_fsd

    try:
        if text.startswith("@"):
            return float(text[1:])
        if text.startswith("-"):
            return time.time() - parse_fsd(text[1:])
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(f"invalid time '{text}' (use -FSD, @EPOCH or ISO 8601)",
                                 param_hint="--since") from None
