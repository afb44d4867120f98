"""The screen of ``strato top``: a live view of an instance, as Flux's ``flux top``.

Two parts, as in Flux: a summary pane (the path of job ids descended into, the
nodes, cores and gpus in use and down as bars, the job counts by state, the
instance's size, depth and uptime) and a list of the running jobs, newest first,
in which a child instance (blue) can be opened with enter. ``q`` goes back to
the instance above, and quits from the first one. On an instance with queues,
``h``/``l`` (or the arrows) rotate the view through all queues, then each queue
alone, as Flux's do; the summary's first line names the queue shown.

What is shown is a `Snapshot`, taken through the public API (`strato.instance`,
`strato.job`) every `REFRESH` seconds and after each move: one summary round
trip, one listing, one ``broker.info``. The text of both panes is made by plain
functions (`summary_lines`, `JOB_FORMAT`), so they can be checked without a
terminal; only `run` needs urwid, the terminal UI library, which this module
imports on its own (``strato --help`` and the other commands never load it).

If the instance that ``strato top`` was started on goes away, the screen is
restored and `run` raises StratoError (one line, non-zero exit); a child
instance that ends while it is shown is left for the one above, with a note.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from strato import instance as instance_api
from strato import job as jobapi
from strato.cli.common import short_fsd
from strato.core.errors import StratoError
from strato.handle import Handle

#: seconds between two refreshes (Flux's ``flux top`` shows news within 2 s)
REFRESH = 2.0
#: the columns of the job list: Flux's ``flux top`` ones, in `strato jobs` format
JOB_FORMAT = ("{id.f58:>12} {username:<8.8} {status_abbrev:>2.2} {ntasks:>6} {nnodes:>6h}"
              " {runtime!F:>8h} {name}")
KEYS = "j/k: move  h/l: queue  enter: open instance  d: details  q: back/quit"
BAR_WIDTH = 30
#: the column where the job counts start, right of the bars
COUNTS_AT = BAR_WIDTH + 30


@dataclass
class Snapshot:
    """What one instance looks like now."""

    info: instance_api.InstanceInfo
    #: running jobs (RUN and CLEANUP) of every user, newest first
    jobs: list[dict]
    size: int
    uptime: float


def take_snapshot(h: Handle, queue: str | None = None) -> Snapshot:
    """A `Snapshot` of the instance at `h`, its counts and jobs those of `queue`
    if given (StratoError if it is gone)."""
    facts = instance_api.info(h)
    return Snapshot(instance_api.summary(h, queue),
                    jobapi.list_jobs(h, states=jobapi.RUNNING, queue=queue),
                    facts["size"], facts["uptime"])


def bar(used: int, down: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[|||||     xx]``: the used share from the left, the down share from the right."""
    if total <= 0:
        return "[" + " " * width + "]"
    n_used = round(width * used / total)
    n_down = min(width - n_used, round(width * down / total))
    return "[" + "|" * n_used + " " * (width - n_used - n_down) + "x" * n_down + "]"


def summary_lines(snap: Snapshot, path: str, depth: int, expiration: float | None,
                  split_inactive: bool = True, queue: str | None = None,
                  now: float | None = None) -> list[str]:
    """The summary pane as lines of text: the path and times, a bar for each of
    nodes, cores and gpus (``used/total``, and how many are down) beside the job
    counts, and the instance's size and depth.

    With `split_inactive` (the ``d`` key toggles it), ended jobs are counted as
    completed and failed; else as one ``inactive`` count. The counts are of
    `queue`'s jobs when it is named (the resources are always the instance's).
    """
    now = time.time() if now is None else now
    res = snap.info.resources
    st = snap.info.stats
    left = f" expires {short_fsd(max(0.0, expiration - now))}" if expiration else " expires ∞"
    head = f"{path or '.'}" + (f"  queue {queue}" if queue else "")
    counts = [("pending", st.pending), ("running", st.running)]
    if split_inactive:
        counts += [("completed", st.successful), ("failed", st.failed)]
    else:
        counts += [("inactive", st.inactive)]
    lines = [f"{head}{left.rjust(max(1, 76 - len(head)))}"]
    for i, (label, key) in enumerate((("nodes", "nnodes"), ("cores", "ncores"),
                                      ("gpus", "ngpus"))):
        used, down, total = res["allocated"][key], res["down"][key], res["all"][key]
        text = f"{label:>5} {bar(used, down, total)} {used:>4}/{total:<4}"
        text = (text + (f" {down} down" if down else "")).ljust(COUNTS_AT)
        if i < len(counts):
            text += f"{counts[i][1]:>6} {counts[i][0]}"
        lines.append(text)
    for extra in counts[3:]:
        lines.append(" " * COUNTS_AT + f"{extra[1]:>6} {extra[0]}")
    lines.append(f"size {snap.size}  depth {depth}  uptime {short_fsd(snap.uptime)}"
                 f"  strato {_version()}")
    return lines


def _version() -> str:
    import strato

    return strato.__version__


@dataclass
class Level:
    """An instance on the stack of those descended into."""

    handle: Handle
    #: job ids from the first instance, ``ƒA/ƒB`` ("" for the first)
    path: str
    depth: int
    #: when its allocation ends (None: unknown or never)
    expiration: float | None = None
    #: only this queue's jobs are counted and listed (None: all the jobs)
    queue: str | None = None
    #: the instance's queues in the order of its config, which h/l rotate through
    #: after "all" (empty: an instance without queues, where h/l do nothing)
    queues: list[str] = field(default_factory=list)
    #: the id of the job that had the cursor at the last refresh
    focus_id: int | None = None
    snapshot: Snapshot | None = field(default=None, repr=False)


def queue_names(h: Handle) -> list[str]:
    """The instance's queues, in the order of its config ([] if it has none)."""
    from strato import queue as queue_api

    return [q["name"] for q in queue_api.status(h)["queues"] if q["name"]]


def rotate(queues: list[str], current: str | None, step: int) -> str | None:
    """The queue `step` (1 or -1) places from `current` in the ring of all the jobs
    (None) followed by each queue, as Flux's ``flux top`` rotates."""
    ring: list[str | None] = [None, *queues]
    at = ring.index(current) if current in ring else 0
    return ring[(at + step) % len(ring)]


#: colours, and what a screen without colours shows instead (urwid's "mono" column)
PALETTE = [("title", "bold", "", "bold"), ("header", "black", "light gray", "standout"),
           ("instance", "light blue", "", ""), ("focus", "standout", "", "standout"),
           ("instance-focus", "light blue,standout", "", "standout"),
           ("note", "yellow", "", "")]


def run(h: Handle, queue: str | None = None, refresh: float = REFRESH,
        color: str = "auto") -> None:
    """Show the instance at `h` (its `queue`'s jobs only, if given) until the
    user quits (``q`` at the first level). `color`: ``always``, ``never``, or
    ``auto`` (as the terminal can, which is what urwid finds from ``TERM``).

    Raises StratoError when that instance goes away (the screen is restored first).
    """
    import urwid

    from strato.cli.jobs_format import JobsFormatter

    fmt = JobsFormatter(JOB_FORMAT)

    class Row(urwid.Text):
        """A job in the list: selectable, so the cursor can rest on it."""

        _selectable = True

        def __init__(self, rec: dict) -> None:
            super().__init__(fmt.format(rec), wrap="clip")
            self.rec = rec

        def keypress(self, size, key):
            return key

    class JobList(urwid.ListBox):
        def keypress(self, size, key):
            return super().keypress(size, {"j": "down", "k": "up"}.get(key, key))

    depth = int(instance_api.attr_get(h, "instance-level") or 0)
    stack = [Level(h, "", depth, queue=queue, queues=queue_names(h))]
    # the instance whose jobs the list shows, whether ended jobs are split by result,
    # and why the program ends, if it must
    state = {"shown": None, "split": True, "error": None}
    summary = urwid.Text("")
    header = urwid.AttrMap(urwid.Text(fmt.header(), wrap="clip"), "header")
    walker = urwid.SimpleFocusListWalker([])
    footer = urwid.Text(("note", ""))
    frame = urwid.Frame(JobList(walker), header=urwid.Pile([summary, urwid.Divider(), header]),
                        footer=footer)

    def note(text: str) -> None:
        footer.set_text([("note", text), "  " if text else "", KEYS])

    def redraw() -> None:
        level = stack[-1]
        snap = level.snapshot
        if state["shown"] is level and focused() is not None:
            level.focus_id = focused()["id"]  # the cursor may have moved since
        state["shown"] = level
        summary.set_text(("title", "\n".join(summary_lines(
            snap, level.path, level.depth, level.expiration, state["split"], level.queue))))
        focus_id = level.focus_id
        rows = []
        for rec in snap.jobs:
            style = "instance" if instance_api.is_instance(rec) else None
            rows.append(urwid.AttrMap(Row(rec), style,
                                      "instance-focus" if style else "focus"))
        walker[:] = rows
        if rows:  # the cursor stays on its job; on the newest if that one is gone
            ids = [rec["id"] for rec in snap.jobs]
            walker.set_focus(ids.index(focus_id) if focus_id in ids else 0)

    def update() -> bool:
        """Take a new snapshot of the shown instance; False if the program ends."""
        while True:
            level = stack[-1]
            try:
                level.snapshot = take_snapshot(level.handle, level.queue)
                break
            except StratoError as exc:
                if len(stack) == 1:
                    state["error"] = f"lost the instance: {exc}"
                    return False
                stack.pop().handle.close()
                note(f"{level.path}: the instance has gone away ({exc})")
        redraw()
        return True

    def tick(loop, _data=None) -> None:
        if not update():
            raise urwid.ExitMainLoop()
        loop.set_alarm_in(refresh, tick)

    def focused() -> dict | None:
        widget, _ = walker.get_focus()
        return widget.original_widget.rec if widget is not None else None

    def on_key(key) -> None:
        rec = focused()
        if key in ("q", "Q"):
            if len(stack) == 1:
                raise urwid.ExitMainLoop()
            stack.pop().handle.close()
            note("")
        elif key == "d":
            state["split"] = not state["split"]
        elif key in ("h", "left", "l", "right"):
            level = stack[-1]
            level.queue = rotate(level.queues, level.queue,
                                 -1 if key in ("h", "left") else 1)
        elif key == "enter" and rec is not None:
            if not open_child(rec):
                return
        elif key == "ctrl l":
            loop.screen.clear()
        else:
            return
        if not update():
            raise urwid.ExitMainLoop()

    def open_child(rec: dict) -> bool:
        """Descend into the job `rec` if it is a running instance of this user."""
        from strato.core.ids import f58

        name = f58(rec["id"])
        if not instance_api.is_instance(rec) or rec.get("userid") != os.getuid():
            note(f"{name} is not an instance of yours: it cannot be opened")
            return False
        try:
            child = Handle(rec["memo"]["uri"])
        except StratoError as exc:
            note(f"{name}: {exc}")
            return False
        try:
            child_depth = int(instance_api.attr_get(child, "instance-level") or 0)
            child_queues = queue_names(child)
        except StratoError as exc:
            child.close()
            note(f"{name}: {exc}")
            return False
        parent = stack[-1]
        parent.focus_id = rec["id"]  # back on this job after q
        stack.append(Level(child, f"{parent.path}/{name}" if parent.path else name,
                           child_depth, rec.get("expiration") or None, queues=child_queues))
        note("")
        return True

    if not update():
        raise StratoError(state["error"])
    note("")
    loop = urwid.MainLoop(frame, PALETTE, unhandled_input=on_key, handle_mouse=False)
    if color == "never":
        loop.screen.set_terminal_properties(colors=1)
    elif color == "always" and loop.screen.colors < 16:
        loop.screen.set_terminal_properties(colors=16)
    loop.set_alarm_in(refresh, tick)
    try:
        loop.run()
    finally:
        for level in stack[1:]:
            level.handle.close()
    if state["error"]:
        raise StratoError(state["error"])
