"""strato jobs: list jobs in Flux's formats (``-o FORMAT``, named formats, --json)."""

from __future__ import annotations

import json
import sys

import click

from strato.cli.common import handle
from strato.core.states import ACTIVE, ALL


@click.command()
@click.option("-a", "all_states", is_flag=True, help="All jobs, inactive ones too.")
@click.option("-A", "all_users", is_flag=True, help="Jobs of every user.")
@click.option("-f", "--filter", "filt", metavar="STATE|RESULT,...",
              help="Only jobs in these states or with these results.")
@click.option("-n", "--no-header", is_flag=True)
@click.option("-c", "--count", type=click.IntRange(min=0), default=0,
              help="At most this many jobs.")
@click.option("--name", metavar="NAME", help="Only jobs with this name.")
@click.option("-u", "--user", metavar="USER", help="Jobs of USER (name or uid, or 'all').")
@click.option("-q", "--queue", metavar="QUEUE", help="Only jobs of this queue.")
@click.option("--since", metavar="WHEN",
              help="Only jobs active since WHEN (-FSD ago, @EPOCH or ISO 8601).")
@click.option("-o", "--format", "fmt", default="default",
              help="A format string or a named format (default, long, deps, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the job records as JSON.")
def jobs(all_states, all_users, filt, no_header, count, name, user, queue, since, fmt,
         as_json) -> int:
    """List jobs (active ones by default, newest first; your own unless -A)."""
    from strato.cli.jobs_format import NAMED_FORMATS, JobsFormatter, parse_filter

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
    from strato import job as jobapi

    records = jobapi.list_jobs(handle(), states=states, results=sorted(results), name=name,
                               max_entries=count, userid=uid, queue=queue, since=t_since)
    if as_json:
        click.echo(json.dumps({"jobs": records}))
        return 0
    formatter = formatter.filter_empty(records, no_header=no_header)
    out = [] if no_header else [formatter.header()]
    fmt_one = formatter.format
    out.extend(fmt_one(r) for r in records)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


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
