"""strato job timeline JOBID...: when each job did what, and where and when they ran.

Flux has no such command; the nearest is ``flux job eventlog -H``, whose relative
times this follows: for each job, a line with its id, name and nodes, then its
events, each with the seconds since the job was submitted. ``--plot FILE``
draws the jobs on the nodes over time and the cores they used instead
(`strato.cli.plot`), as ``strato report --plot`` draws every job.
"""

from __future__ import annotations

import json

import click

from strato.cli.common import JOBID, handle
from strato.core.errors import StratoError


@click.command()
@click.option("--plot", metavar="FILE",
              help="Draw the jobs on the nodes over time and the cores in use into FILE "
                   "instead (PNG, or the format its extension names; needs strato[plot]).")
@click.argument("jobids", nargs=-1, required=True, type=JOBID)
def timeline(plot, jobids) -> int:
    """Print each job's events with the seconds since it was submitted (--plot FILE:
    draw where and when the jobs ran)."""
    from strato import job as jobapi

    h = handle()
    infos = [jobapi.info(h, jobid) for jobid in dict.fromkeys(jobids)]
    if plot:
        from strato import resource
        from strato.cli.plot import draw
        from strato.timeline import from_jobs

        line = from_jobs(resource.R(h), infos)
        if not line.intervals:
            raise StratoError("none of these jobs has run yet: nothing to draw")
        draw(line, plot, f"strato job timeline: {len(line.jobs)} jobs on {h.uri}")
        return 0
    out = []
    for info in infos:
        out.extend(event_lines(info))
    click.echo("\n".join(out))
    return 0


def event_lines(info: dict) -> list[str]:
    """A job's ``job-list.info`` answer as a heading and one line per event."""
    from strato.core.ids import f58

    where = f" on {info['nodelist']}" if info.get("nodelist") else ""
    lines = [f"{f58(info['id'])} {info.get('name', '')}{where}"]
    events = info.get("eventlog") or []
    t0 = events[0]["timestamp"] if events else 0.0
    for entry in events:
        context = " ".join(f"{k}={json.dumps(v)}" for k, v in (entry.get("context") or {}).items())
        lines.append(f"  {entry['timestamp'] - t0:+12.6f}s {entry['name']}"
                     + (f" {context}" if context else ""))
    return lines
