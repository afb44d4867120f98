"""strato top: a live, full-screen view of an instance, as Flux's ``flux top``.

TARGET, as ``strato uri`` takes it (a job id, a path of them, or a URI), shows
another instance than the enclosing one. The screen itself is `strato.cli.top`;
it needs urwid (``pip install 'strato[top]'``), imported only here.
"""

from __future__ import annotations

import sys

import click

from strato.cli.common import color_option
from strato.core.errors import StratoError


@click.command()
@click.option("-q", "--queue", metavar="NAME",
              help="Count and list only this queue's jobs (of the first instance shown); "
                   "h/l rotate through the queues.")
@color_option("Colours: auto (as the terminal can), never or always (the default without "
              "WHEN).")
@click.argument("target", required=False)
def top(queue, color, target) -> int:
    """Show the instance (or TARGET: a job id, a path of them, or a URI) live:
    resources in use, job counts, running jobs; h/l rotate through its queues,
    enter opens a child instance, q goes back or quits."""
    from strato import instance as api
    from strato.handle import Handle

    # bad input is said first, terminal or not: an unknown TARGET or queue
    with Handle(api.resolve(target)) as h:
        if queue is not None:
            from strato import queue as queue_api

            queue_api.status(h, queue)
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise StratoError("needs a terminal (standard input and output are not both one)")
        try:
            import urwid  # noqa: F401 - only to say what is missing, in one line
        except ImportError:
            raise StratoError("needs urwid: pip install 'strato[top]'") from None
        from strato.cli import top as screen

        screen.run(h, queue, color=color)
    return 0
