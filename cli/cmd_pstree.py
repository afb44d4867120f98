"""strato pstree: the tree of instances and their jobs, as Flux's ``flux pstree``.

Running jobs by name, with every running child instance drawn as a parent of
the jobs inside it, as deep as the hierarchy goes (``strato.instance.walk``
asks each level's children at once). Identical leaves are combined as
``N*[label]``, as pstree(1) does. ``-x``/``-d NAME``/``--detail-format`` print
columns before the tree (job ids, counts, a child's progress and utilisation)
and then leave out the enclosing instance, which is otherwise the root, ``.``.
Labels and details are ``strato jobs`` formats, so every ``instance.*`` field
works here too.

Differences from Flux, on purpose: the state filter applies at every level
(Flux keeps only running jobs at the top when the root is skipped), and a
child instance that cannot be asked is drawn without children rather than
silently: a note on stderr says which one and why.
"""

from __future__ import annotations

import os
import shutil
import sys

import click

from strato.cli.common import JOBID, handle

#: named formats of the columns before the tree (Flux's)
DETAILS = {
    "default": ("{id.f58:>12} {username:<8.8} {status_abbrev:>2.2} {ntasks:>6h}"
                " {nnodes:>6h} {runtime!F:>8h}"),
    "resources": ("{id.f58:>12} {instance.resources.all.nnodes:>5} "
                  "{instance.resources.allocated.nnodes:>5} "
                  "{instance.resources.all.ncores:>5} "
                  "{instance.resources.allocated.ncores:>5} "
                  "{instance.resources.all.ngpus:>5} "
                  "{instance.resources.allocated.ngpus:>5}"),
    "progress": ("{id.f58:>12} {ntasks:>6h} {instance.stats.total:>6} "
                 "{instance.progress!P:>5} {instance.utilization!P:>5} "
                 "{instance.gpu_utilization!P:>5} {runtime!H:>10}"),
    "stats": "{id.f58:>12} {instance.stats:^25} {runtime!H:>10}",
}
LABEL, LABEL_ALL = "{name}", "{name}:{status_abbrev}"

# connectors: (pipe, tee, elbow, blank)
STYLES = {
    "box": ("│   ", "├── ", "└── ", "    "),
    "compact": ("│ ", "├─", "└─", "  "),
    "ascii": ("|   ", "|-- ", "`-- ", "    "),
}


class Tree:
    """One node of the drawing: a label, the details before it, and its children.

    Children that are leaves with the same details and label are kept once, with
    a count, when `combine` is set (pstree(1)'s ``N*[label]``).
    """

    def __init__(self, label: str, prefix: str = "", combine: bool = True) -> None:
        self.label = label
        self.prefix = prefix + " " if prefix else ""
        self.combine = combine
        self.count = 1
        self.children: list[Tree] = []
        self._leaves: dict[str, Tree] = {}

    def append(self, child: Tree) -> None:
        if not self.combine or child.children:
            self.children.append(child)
            return
        key = child.prefix + child.label
        twin = self._leaves.get(key)
        if twin is not None:
            twin.count += 1
        else:
            self._leaves[key] = child
            self.children.append(child)

    def lines(self, style: str, stack: list[str] | None = None,
              connector: str = "") -> list[str]:
        """This node and those below it as lines; `stack` holds the connectors of
        the levels above (its top one is for the next level down)."""
        stack = [] if stack is None else stack
        label = f"{self.count}*[{self.label}]" if self.count > 1 else self.label
        out = [f"{self.prefix}{''.join(stack[:-1])}{connector}{label}"]
        pipe, tee, elbow, blank = STYLES[style]
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            stack.append(blank if last else pipe)
            out.extend(child.lines(style, stack, elbow if last else tee))
            stack.pop()
        return out


class _YesNo(click.Choice):
    def __init__(self) -> None:
        super().__init__(["yes", "no"], case_sensitive=False)


@click.command()
@click.option("-a", "--all", "all_states", is_flag=True,
              help="Jobs in every state (inactive too); labels show the status.")
@click.option("-c", "--count", type=click.IntRange(min=0), default=1000, metavar="N",
              help="At most N jobs of each instance (default 1000; 0: all).")
@click.option("-f", "--filter", "filt", default="running", metavar="STATE|RESULT,...",
              help="Only jobs in these states or with these results (default running).")
@click.option("-x", "--extended", is_flag=True,
              help="Print details before the tree (same as --details=default).")
@click.option("-l", "--long", "long_lines", is_flag=True,
              help="Do not cut lines at the terminal's width.")
@click.option("-L", "--level", type=click.IntRange(min=0), default=None, metavar="N",
              help="Descend at most N levels of child instances.")
@click.option("-p", "--parent-ids", is_flag=True, help="Put the job id before parent labels.")
@click.option("-n", "--no-header", is_flag=True, help="No header line over the details.")
@click.option("-X", "--no-combine", is_flag=True,
              help="Do not combine identical leaves as N*[label].")
@click.option("-o", "--label", metavar="FORMAT", help="Label format (default '{name}').")
@click.option("--parent-label", metavar="FORMAT",
              help="Label format of child instances (default: the label's).")
@click.option("--detail-format", metavar="FORMAT",
              help="Format of the details before the tree (implies -x).")
@click.option("-d", "--details", metavar="NAME",
              help=f"A named details format ({', '.join(DETAILS)}).")
@click.option("--skip-root", type=_YesNo(), default=None, metavar="yes|no",
              help="Leave out (yes) or show (no) the enclosing instance; by default it is"
                   " shown unless details are printed or JOBIDs given.")
@click.option("-C", "--compact", is_flag=True, help="Compact connectors, for deep trees.")
@click.option("--ascii", is_flag=True, help="ASCII connectors.")
@click.argument("jobids", nargs=-1, type=JOBID)
def pstree(all_states, count, filt, extended, long_lines, level, parent_ids, no_header,
           no_combine, label, parent_label, detail_format, details, skip_root, compact,
           ascii, jobids) -> int:  # noqa: A002 - Flux's option name
    """Draw running jobs as a tree by name, descending into child instances
    (JOBID...: only these jobs and what runs inside them)."""
    from strato import instance as api
    from strato.cli.jobs_format import JobsFormatter, parse_filter, wants_instance_info

    if compact and ascii:
        raise click.UsageError("choose only one of --ascii and --compact")
    if details is not None and details not in DETAILS:
        raise click.BadParameter(f"unknown details format '{details}' (use "
                                 f"{', '.join(DETAILS)})", param_hint="--details")
    try:
        states, results = parse_filter("pending,running,inactive" if all_states else filt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    if jobids and (all_states or filt != "running"):
        click.echo("strato-pstree: filtering options are ignored for the JOBIDs given",
                   err=True)
    # Flux's defaults: -o sets both labels; -a adds the status to leaves
    parent_label = parent_label or label or LABEL
    label = label or (LABEL_ALL if all_states else LABEL)
    if parent_ids:
        parent_label = "{id.f58} " + parent_label
    if extended or details or detail_format:
        detail_format = detail_format or DETAILS[details or "default"]
    formats = {}
    for what, text in (("--label", label), ("--parent-label", parent_label),
                       ("--detail-format", detail_format)):
        if text is None:
            continue
        try:
            formats[what] = JobsFormatter(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=what) from None
    leaf_fmt, parent_fmt = formats["--label"].format, formats["--parent-label"].format
    prefix_fmt = formats.get("--detail-format")
    skip = (prefix_fmt is not None or bool(jobids)) if skip_root is None \
        else skip_root.lower() == "yes"
    info = any(wants_instance_info(f.fields) for f in formats.values())

    h = handle()
    nodes = api.walk(h, states=states, results=sorted(results), max_entries=count,
                     userid=os.getuid(), ids=list(jobids) or None, level=level, info=info)
    combine = not no_combine

    def draw(node) -> Tree:
        rec = node.job
        parent = api.is_instance(rec)
        tree = Tree((parent_fmt if parent else leaf_fmt)(rec),
                    prefix_fmt.format(rec) if prefix_fmt else "", combine)
        for child in node.children or ():
            tree.append(draw(child))
        if node.error is not None:
            click.echo(f"strato-pstree: {node.path}: {node.error}", err=True)
        return tree

    if skip:
        root = Tree(".", combine=combine)
    else:
        rec = api.root_record(h, with_info=info)
        root = Tree(parent_fmt(rec), prefix_fmt.format(rec) if prefix_fmt else "", combine)
    for node in nodes:
        root.append(draw(node))
    style = "compact" if compact else "ascii" if ascii else "box"
    out = [prefix_fmt.header()] if prefix_fmt is not None and not no_header else []
    if skip:
        for top in root.children:
            out.extend(top.lines(style))
    else:
        out.extend(root.lines(style))
    if not long_lines:
        width = shutil.get_terminal_size((132, 25)).columns
        out = [line if len(line) <= width else line[:width - 1] + "+" for line in out]
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0
