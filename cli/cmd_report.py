"""strato report: how the instance's jobs used it over time, in numbers and, with
``--plot FILE``, as a picture (`strato.cli.plot`).

An instance where no job has run has nothing to report: a one-line error and
exit 1, and no picture is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from strato.cli.common import handle, short_fsd
from strato.core.errors import StratoError

if TYPE_CHECKING:
    from strato.timeline import Timeline


@click.command()
@click.option("--plot", metavar="FILE",
              help="Also draw the jobs on the nodes over time and the cores in use into "
                   "FILE (PNG, or the format its extension names; needs strato[plot]).")
def report(plot) -> int:
    """Summarise how the jobs that ran used the instance: jobs, span, core-time,
    mean and peak use of the cores."""
    from strato import timeline

    h = handle()
    line = timeline.build(h)
    if not line.intervals:
        raise StratoError("no job has run in this instance: nothing to report")
    if plot:  # first: a picture that cannot be written is an error, with nothing else
        from strato.cli.plot import draw

        draw(line, plot, f"strato report: {len(line.jobs)} jobs on {h.uri}")
    for text in summary_lines(line):
        click.echo(text)
    return 0


def summary_lines(line: Timeline) -> list[str]:
    """The report's numbers as ``label: value`` lines."""
    running = len({iv.jobid for iv in line.intervals if iv.end is None})
    mean = line.mean_utilisation()
    peak = line.peak()
    share = f" ({100.0 * peak / line.ncores:.0f}%)" if line.ncores else ""
    return [
        f"jobs:      {len(line.jobs)} ran" + (f", {running} still running" if running else ""),
        f"resources: {len(line.hosts)} nodes, {line.ncores} cores",
        f"span:      {short_fsd(line.end - line.start)}",
        f"core-time: {short_fsd(line.core_seconds())}"
        + (f" ({100.0 * mean:.1f}% of the instance's)" if mean is not None else ""),
        f"peak:      {peak} cores{share}",
    ]
