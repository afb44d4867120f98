"""Pictures of a `strato.timeline.Timeline`: a Gantt chart of the jobs on the
nodes over time above the utilisation curve (cores in use, as a share of the
instance's), drawn with matplotlib's Agg backend into a file.

matplotlib is imported here only, on the first drawing (``pip install
'strato[plot]'``); no pyplot, so nothing global is touched and no display is
needed.
"""

from __future__ import annotations

import os

from strato.core.errors import StratoError
from strato.timeline import Timeline


def draw(line: Timeline, path: str, title: str) -> None:
    """Draw `line` into the file `path` (in the format its extension names, else PNG).

    StratoError (one line) if matplotlib is missing, the format is unknown or the
    file cannot be written.
    """
    try:
        import matplotlib
    except ImportError:
        raise StratoError("needs matplotlib: pip install 'strato[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    hosts = line.hosts
    fig = Figure(figsize=(10, 2.5 + min(0.3 * len(hosts), 18)), layout="constrained")
    gantt, use = fig.subplots(2, 1, sharex=True,
                              gridspec_kw={"height_ratios": [max(2, min(len(hosts), 12)), 2]})
    fig.suptitle(title)
    t0 = line.start
    palette = matplotlib.colormaps["tab20"]
    color = {jobid: palette(i % 20) for i, jobid in enumerate(line.jobs)}
    row = {host: i for i, host in enumerate(hosts)}
    for host, intervals in line.by_host().items():
        y = row.setdefault(host, len(row))
        for iv in intervals:
            x, width = iv.start - t0, line.end_of(iv) - iv.start
            gantt.broken_barh([(x, width)], (y - 0.4, 0.8), facecolors=color[iv.jobid],
                              edgecolors="black", linewidth=0.3)
            gantt.text(x + width / 2, y, iv.label, ha="center", va="center", fontsize=6,
                       clip_on=True)
    gantt.set_yticks(range(len(row)), list(row), fontsize=7 if len(row) < 40 else 4)
    gantt.set_ylim(len(row) - 0.5, -0.5)  # rank 0 on top
    gantt.set_ylabel("node")
    gantt.grid(axis="x", linestyle=":", linewidth=0.5)

    steps = line.utilisation()
    xs = [t - t0 for t, _ in steps]
    ys = [100.0 * cores / line.ncores if line.ncores else 0.0 for _, cores in steps]
    use.fill_between(xs, ys, step="post", alpha=0.4)
    use.step(xs, ys, where="post")
    use.set_ylim(0, 105)
    use.set_ylabel("cores in use (%)")
    use.set_xlabel("seconds since the first job started")
    use.grid(linestyle=":", linewidth=0.5)
    # the format is the extension's, else PNG, and the file is `path` exactly
    # (matplotlib would add ".png" to a name without an extension)
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    try:
        fig.savefig(path, format=fmt, dpi=100)
    except OSError as exc:
        raise StratoError(f"cannot write {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a format matplotlib does not know
        raise StratoError(f"cannot write {path}: {exc}") from None
