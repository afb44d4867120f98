"""A resource-query session: load a graph, read commands, print what Fluxion prints.

This is the command interpreter of ``strato resource-query`` (Fluxion's tool, kept
byte-compatible so Fluxion's golden outputs can be compared). It lives with the CLI
because it is a user interface over the graph library in
``strato.plugins.sched_graph``, which does not depend on it.

``ResourceQuery`` holds the graph, matcher and job table; ``run_session`` feeds it
command lines from a stream. Output that resource-query writes to its ``-t`` file
goes to ``out`` (stdout when no file is given); prompts, ``info``/``stat`` lines and
``-e`` statistics go to ``stdout``; errors go to ``stderr``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from strato.core import gcpolicy
from strato.plugins.sched_graph.errors import Busy, MatchError, Unsatisfiable
from strato.plugins.sched_graph.graph import ResourceGraph
from strato.plugins.sched_graph.jobspec import JobspecError, parse_jobspec
from strato.plugins.sched_graph.policies import PolicyError, create_policy
from strato.plugins.sched_graph.writers import create_writer

SEP = "INFO: ============================="
SUBSYSTEMS = {
    "CA": ["containment"], "IBA": ["ibnet"], "IBBA": ["ibnetbw"], "PA": ["power"],
    "PFS1BA": ["pfs1bw"], "C+IBA": ["containment", "ibnet"],
    "C+IBBA": ["containment", "ibnetbw"], "C+PA": ["containment", "power"],
    "C+PFS1BA": ["containment", "pfs1bw"], "IB+IBBA": ["ibnet", "ibnetbw"],
    "C+P+IBA": ["containment", "power", "ibnet"], "V+PFS1BA": ["virtual1", "pfs1bw"],
    "VA": ["virtual1"], "ALL": ["containment", "ibnet", "ibnetbw", "pfs1bw", "power"],
}
MATCH_OPS = ("allocate", "allocate_orelse_reserve", "allocate_with_satisfiability",
             "satisfiability", "without_allocating", "without_allocating_future")


class SessionError(Exception):
    """The session cannot start (bad graph, policy, filters)."""


@dataclass
class Options:
    load_file: str = "conf/default"
    load_format: str = "grug"
    load_allowlist: str = ""
    subsystems: str = "CA"
    policy: str = "first"
    match_format: str = "simple"
    prune_filters: str = "ALL:core,ALL:node"
    traverser_policy: str = "simple"
    elapse_time: bool = False
    disable_prompt: bool = False
    reserve_vtx_vec: int = 0


@dataclass
class JobInfo:
    jobid: int
    state: str
    at: int
    jobspec: str
    overhead: float


@dataclass
class ResourceQuery:
    """One loaded graph and its matcher, allocations and job table."""

    opts: Options
    out: TextIO = field(default_factory=lambda: sys.stdout)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    cwd: str = "."

    def __post_init__(self) -> None:
        # The graph is large and acyclic (edges hold vertex indices, not objects): keep
        # the cyclic collector from rescanning it after every few thousand allocations.
        with gcpolicy.bulk_load():
            self._setup()

    def _setup(self) -> None:
        self.graph = load_graph(self.opts.load_file, self.opts.load_format,
                                self.opts.load_allowlist)
        try:
            policy = create_policy(self.opts.policy)
        except PolicyError as exc:
            raise SessionError(f"can't create matcher: {exc}") from exc
        subs = SUBSYSTEMS.get(self.opts.subsystems) or SUBSYSTEMS.get(self.opts.subsystems.upper())
        if subs is None:
            raise SessionError(f"unknown subsystems: {self.opts.subsystems}")
        from strato.plugins.sched_graph.flexible import TRAVERSERS

        trav_cls = TRAVERSERS.get(self.opts.traverser_policy)
        if trav_cls is None:
            raise SessionError(f"unknown traverser policy: {self.opts.traverser_policy}")
        try:
            self.trav = trav_cls(self.graph, policy, subs, self.opts.prune_filters)
            self.trav.initialize()
        except ValueError as exc:
            raise SessionError(f"can't initialize traverser: {exc}") from exc
        self.writer = create_writer(self.opts.match_format)
        self.jobid_counter = 1
        self.jobs: dict[int, JobInfo] = {}
        self.allocations: dict[int, int] = {}
        self.reservations: dict[int, int] = {}
        self.perf = [float("inf"), 0.0, 0.0]  # min, max, accum

    def path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.cwd, p)

    # -- commands ----------------------------------------------------------------
    def err(self, msg: str) -> None:
        self.stderr.write(msg)

    def cmd_match(self, args: list[str]) -> None:
        if len(args) != 3:
            self.err("ERROR: malformed command\n")
            return
        if args[1] not in MATCH_OPS:
            self.err(f"ERROR: unknown subcmd {args[1]}\n")
            return
        self.run_match(self.jobid_counter, args[1], args[2])

    def cmd_multi_match(self, args: list[str]) -> None:
        if len(args) <= 3:
            self.err("ERROR: malformed command\n")
            return
        if args[1] not in MATCH_OPS:
            self.err(f"ERROR: unknown subcmd {args[1]}\n")
            return
        for fn in args[2:]:
            if self.run_match(self.jobid_counter, args[1], fn) != 0:
                break

    def run_match(self, jobid: int, op: str, fn: str) -> int:
        try:
            with open(self.path(fn)) as f:
                text = f.read()
        except OSError:
            self.err(f"ERROR: can't open {fn}\n")
            return 0
        start = time.perf_counter()
        at = 0
        matched = False
        sat = True
        R = ""
        errmsg = ""
        rc = -1
        counted = op not in ("satisfiability", "without_allocating",
                             "without_allocating_future")
        try:
            js = parse_jobspec(text, known_types=self.graph.types.rank)
        except JobspecError as exc:
            errmsg = f"match_allocate: ERROR: Jobspec error for {self.jobid_counter}: {exc}\n"
            js = None
        if js is not None:
            try:
                at = self.trav.run(js, self.writer, op, jobid, 0)
            except MatchError as exc:
                if str(exc):
                    errmsg = f"match_allocate: ERROR: {exc}\n"
                sat = not isinstance(exc, Unsatisfiable)
                # as Fluxion: only "not now" and "never" use up a job id and print R
                if isinstance(exc, Busy | Unsatisfiable):
                    R = self.writer.emit()
                else:
                    counted = False
            else:
                rc = 0
                matched = op != "satisfiability"
                R = self.writer.emit()
        if errmsg:
            self.err(errmsg)
        elapse = time.perf_counter() - start
        if matched:
            if op.startswith("without"):
                pass
            elif at != 0:
                self.reservations[jobid] = jobid
            else:
                self.allocations[jobid] = jobid
        if js is not None and counted:
            self.jobid_counter += 1
        self.out.write(R)
        if op == "satisfiability":
            self.print_sat(sat, elapse)
        else:
            self.print_schedule(jobid, fn, matched, not op.startswith("without"), at, sat,
                                elapse)
        return rc

    def print_sat(self, sat: bool, elapse: float) -> None:
        o = self.out
        o.write(f"{SEP}\nINFO: {'Satisfiable' if sat else 'Unsatisfiable'} request\n{SEP}\n")
        if self.opts.elapse_time:
            self.stdout.write(f"INFO: ELAPSE={elapse:.6f}\n")
            self.print_counts()

    def print_counts(self) -> None:
        self.stdout.write(f"INFO: PREORDER VISIT COUNT={self.trav.total_preorder}\n"
                          f"INFO: POSTORDER VISIT COUNT={self.trav.total_postorder}\n")

    def print_schedule(self, jobid: int, fn: str, matched: bool, allocated: bool, at: int,
                       sat: bool, elapse: float) -> None:
        o = self.out
        if matched:
            mode = ("ALLOCATED" if at == 0 else "RESERVED") if allocated else "MATCHED"
            when = "Now" if at == 0 else str(at)
            o.write(f"{SEP}\nINFO: JOBID={jobid}\nINFO: RESOURCES={mode}\n"
                    f"INFO: SCHEDULED AT={when}\n")
            if self.opts.elapse_time:
                self.stdout.write(f"INFO: ELAPSE={elapse:.6f}\n")
                self.print_counts()
            o.write(f"{SEP}\n")
            if allocated:
                state = "ALLOCATED" if at == 0 else "RESERVED"
                self.jobs[jobid] = JobInfo(jobid, state, at, fn, elapse)
                self.perf[0] = min(self.perf[0], elapse)
                self.perf[1] = max(self.perf[1], elapse)
                self.perf[2] += elapse
        else:
            o.write(f"{SEP}\nINFO: No matching resources found\n")
            if not sat:
                o.write("INFO: Unsatisfiable request\n")
            o.write(f"INFO: JOBID={jobid}\n")
            if self.opts.elapse_time:
                o.write(f"INFO: ELAPSE={elapse:.6f}\n")
                self.print_counts()
            o.write(f"{SEP}\n")

    def cmd_cancel(self, args: list[str]) -> None:
        if len(args) < 2 or len(args) > 3:
            self.err("ERROR: malformed command\n")
            return
        jobid = _strtoll(args[1])
        if jobid in self.allocations or jobid in self.reservations:
            self.trav.remove(jobid)
            if jobid in self.jobs:
                self.jobs[jobid].state = "CANCELED"
            self.allocations.pop(jobid, None) if jobid in self.allocations else \
                self.reservations.pop(jobid, None)
        else:
            self.err(f"cancel: ERROR: nonexistent job {jobid}\n")
            return
        if len(args) == 3 and args[2] == "stats":
            self.out.write(f"{SEP}\nINFO: CANCEL PREORDER COUNT=\"{self.trav.total_preorder}\"\n"
                           f"INFO: CANCEL POSTORDER COUNT=\"{self.trav.total_postorder}\"\n"
                           f"{SEP}\n")

    def cmd_partial_cancel(self, args: list[str]) -> None:
        from strato.plugins.sched_graph.update import partial_cancel_r

        if len(args) < 4 or len(args) > 5:
            self.err("ERROR: malformed command\n")
            return
        jobid = _strtoll(args[1])
        reader = args[2]
        if reader not in ("jgf", "rv1exec"):
            self.err(f"ERROR: unsupported reader {reader}\n")
            return
        try:
            with open(self.path(args[3])) as f:
                text = f.read()
        except OSError:
            self.err(f"ERROR: can't open {args[3]}\n")
            return
        failed = False
        if jobid in self.allocations:
            try:
                if partial_cancel_r(self.trav, jobid, reader, text):
                    self.allocations.pop(jobid, None)
                    if jobid in self.jobs:
                        self.jobs[jobid].state = "CANCELED"
            except MatchError as exc:
                self.stdout.write(str(exc))
                failed = True
        elif jobid in self.reservations:
            self.err("ERROR: reservations not currently supported by partial cancel\n")
            return
        else:
            self.err(f"ERROR: nonexistent job {jobid}\n")
            return
        if failed:
            self.err(f"ERROR: error encountered while removing job {jobid}\n")
        if len(args) == 5 and args[4] == "stats":
            self.out.write(f"{SEP}\nINFO: PARTIAL CANCEL PREORDER COUNT="
                           f"\"{self.trav.total_preorder}\"\n"
                           f"INFO: PARTIAL CANCEL POSTORDER COUNT="
                           f"\"{self.trav.total_postorder}\"\n{SEP}\n")

    def cmd_update(self, args: list[str]) -> None:
        """``update allocate|reserve READER FILE JOBID AT DURATION``: record an R."""
        if len(args) != 7:
            self.err("ERROR: malformed command\n")
            return
        subcmd, reader, fn = args[1], args[2], args[3]
        if subcmd not in ("allocate", "reserve"):
            self.err(f"ERROR: unknown subcmd {subcmd}\n")
            return
        if reader not in ("jgf", "rv1exec", "jgf_shorthand"):
            self.err(f"ERROR: unsupported reader {reader}\n")
            return
        try:
            with open(self.path(fn)) as f:
                text = f.read()
        except OSError:
            self.err(f"ERROR: can't open {fn}\n")
            return
        jobid = _strtoll(args[4])
        if jobid in self.allocations or jobid in self.reservations:
            self.err("ERROR: existing Jobid \n")
            return
        at = _strtoll(args[5])
        duration = _strtoll(args[6])
        if at < 0 or duration == 0:
            self.err(f"ERROR: invalid time ({at}, {duration})\n")
            return
        trav = self.trav
        if reader == "rv1exec":
            from strato.plugins.sched_graph.rv1exec import rv1exec_update

            def book() -> None:
                rv1exec_update(trav, text, jobid, at, duration)
        else:
            from strato.plugins.sched_graph.jgf import jgf_update

            def book() -> None:
                jgf_update(trav, text, jobid, at, duration, reader == "jgf_shorthand")
        start = time.perf_counter()
        ok = True
        try:
            trav.run_update(book, self.writer, jobid, at, duration)
        except MatchError as exc:
            ok = False
            self.err("ERROR: traverser run () returned error \n")
            if str(exc):
                self.err(f"ERROR: {exc}")
        self.out.write(self.writer.emit())
        elapse = time.perf_counter() - start
        self.jobid_counter = jobid
        self.print_schedule(jobid, fn, ok, True, at, True, elapse)
        if ok:
            (self.allocations if at == 0 else self.reservations)[jobid] = jobid
        self.jobid_counter += 1

    def cmd_attach(self, args: list[str]) -> None:
        """``attach FILE``: grow the graph by a JGF subgraph, then re-prime the filters."""
        if len(args) != 2:
            self.err("ERROR: malformed command\n")
            return
        try:
            with open(self.path(args[1])) as f:
                text = f.read()
        except OSError:
            self.err(f"ERROR: can't open {args[1]}\n")
            return
        try:
            self.trav.attach_jgf(text)
        except MatchError as exc:
            self.err("ERROR: can't attach JGF subgraph \n"
                     "ERROR: add_subgraph: ERROR: add subgraph error: Invalid argument\n"
                     f"add_subgraph: ERROR: {exc}\n\n\n")

    def cmd_remove(self, args: list[str]) -> None:
        """``remove PATH true`` or ``remove IDSET false``: shrink the graph."""
        if len(args) != 3:
            self.err("ERROR: malformed command\n")
            return
        target, is_path = args[1], args[2]
        trav = self.trav
        if is_path == "true":
            try:
                trav.remove_subgraph_path(target)
            except MatchError as exc:
                self.err("ERROR: can't remove subgraph \n"
                         "ERROR: remove_subgraph: ERROR: remove_subgraph error: "
                         "Invalid argument\n"
                         f"remove_subgraph: ERROR: traverser returned error: {exc}\n\n")
                return
            try:
                trav.initialize(node_stats=False)
            except ValueError as exc:
                self.err("ERROR: can't remove subgraph \n"
                         "ERROR: remove_subgraph: ERROR: remove_subgraph error: "
                         "Invalid argument\n"
                         "remove_subgraph: ERROR: reinitialize traverser after subgraph "
                         f"removal. {exc}\n\n")
            return
        if is_path != "false":
            self.err("ERROR: invalid path boolean input \n")
            return
        from strato.jobspec.idset import decode_idset

        try:
            ranks = sorted(decode_idset(target.strip("[]")))
        except ValueError:
            self.err("ERROR: failed to decode ranks.\n")
            return
        try:
            trav.remove_ranks(ranks)
        except MatchError as exc:
            self.err(f"ERROR: can't partial cancel subgraph \nERROR: {exc}")
            return
        try:
            trav.remove_subgraph_ranks(ranks)
        except MatchError as exc:
            self.err(f"ERROR: can't remove subgraph \nERROR: {exc}")
            return
        try:
            trav.initialize(node_stats=False)
        except ValueError as exc:
            self.err("ERROR: failed to update counts after partial cancel and remove \n"
                     f"ERROR: {exc}\n")

    def cmd_set_property(self, args: list[str]) -> None:
        if len(args) != 3:
            self.err("ERROR: malformed command\n")
            return
        pos = args[2].find("=")
        if pos <= 0 or pos == len(args[2]) - 1:
            self.out.write("Incorrect input format. \n"
                           "Please use `set-property <resource> PROPERTY=VALUE`.\n")
            return
        try:
            self.trav.set_property(args[1], args[2][:pos], args[2][pos + 1:])
        except MatchError:
            self.out.write(f"Couldn't find path {args[1]} in resource graph.\n")

    def _vertices_at(self, args: list[str], nargs: int) -> list | None:
        """The vertices at the path ``args[1]`` of a command of `nargs` words; None,
        once the user is told why, if the command is malformed or nothing is there."""
        if len(args) != nargs:
            self.err("ERROR: malformed command\n")
            return None
        try:
            return self.trav.vertices_at(args[1])
        except MatchError:
            self.out.write(f"Could not find path {args[1]} in resource graph.\n")
            return None

    def cmd_get_property(self, args: list[str]) -> None:
        found = self._vertices_at(args, 2)
        if found is None:
            return
        for v in found:
            if not v.properties:
                self.out.write(f"No properties were found for {args[1]} "
                               f"(vtx's uniq_id={v.uniq_id}).\n")
            for k in sorted(v.properties):
                self.out.write(f"{k}={v.properties[k]}\n")

    def cmd_set_status(self, args: list[str]) -> None:
        if self._vertices_at(args, 3) is None:
            return
        if args[2] not in ("up", "down"):
            self.err("ERROR: unrecognized status\n")
            return
        self.trav.mark(args[1], args[2])

    def cmd_get_status(self, args: list[str]) -> None:
        found = self._vertices_at(args, 2)
        if found is None:
            return
        for v in found:
            self.out.write(f"{args[1]} is {v.status}\n")

    def cmd_info(self, args: list[str]) -> None:
        if len(args) != 2:
            self.err("ERROR: malformed command\n")
            return
        jobid = _strtoll(args[1])
        info = self.jobs.get(jobid)
        if info is None:
            self.err(f"info: ERROR: nonexistent job {jobid}\n")
            return
        self.stdout.write(f"INFO: {info.jobid}, {info.state}, {info.at}, {info.jobspec}, "
                          f"{info.overhead:g}\n")

    def cmd_list(self, args: list[str]) -> None:
        for info in self.jobs.values():
            self.stdout.write(f"INFO: {info.jobid}, {info.state}, {info.at}, {info.jobspec}, "
                              f"{info.overhead:g}\n")

    def cmd_stat(self, args: list[str]) -> None:
        if len(args) != 1:
            self.err("ERROR: malformed command\n")
            return
        n = len(self.jobs)
        avg = self.perf[2] / n if n else 0.0
        mn = self.perf[0] if n else 0.0
        self.stdout.write(f"INFO: Num. of Jobs Matched: {n}\nINFO: Min. Match Time: {mn:g}\n"
                          f"INFO: Max. Match Time: {self.perf[1]:g}\n"
                          f"INFO: Avg. Match Time: {avg:g}\n")

    def cmd_cat(self, args: list[str]) -> None:
        if len(args) < 2:
            return
        try:
            with open(self.path(args[1])) as f:
                self.stdout.write(f.read())
        except OSError:
            pass
        self.stdout.write(f"INFO: Jobspec in {args[1]}\n")

    def cmd_help(self, args: list[str]) -> None:
        names = [c for c, _ in COMMANDS]
        want = args[1] if len(args) == 2 else None
        for name, abbr in COMMANDS:
            if want is None or want in (name, abbr):
                self.stdout.write(f"INFO: {name} ({abbr})\n")
        if want is not None and want not in names and want not in dict(COMMANDS).values():
            self.stdout.write(f"ERROR: unknown command: {want}\n")

    def cmd_find(self, args: list[str]) -> None:
        if len(args) < 2:
            self.err("ERROR: malformed command: \n")
            return
        from strato.plugins.sched_graph.find import run_find

        criteria = " ".join(args[1:])
        try:
            text = run_find(self.trav, self.writer, criteria)
        except MatchError as exc:
            self.err(str(exc))
            return
        self.out.write(text)
        self.out.write(f"{SEP}\nINFO: EXPRESSION=\"{criteria}\"\n{SEP}\n")

    def dispatch(self, tokens: list[str]) -> bool:
        """Run one command line; False when the session should end."""
        handler = _lookup(tokens[0])
        if handler is None:
            return True
        if handler == "quit":
            return False
        mutates = handler not in ("match", "multi-match", "cancel")
        trav = getattr(self, "trav", None)
        if mutates and trav is not None:
            trav.cache_flush()  # any other command may change the graph's state
        getattr(self, "cmd_" + handler.replace("-", "_"), self.cmd_unsupported)(tokens)
        trav = getattr(self, "trav", None)
        if mutates and trav is not None:
            trav.cache_flush()
        return True

    def cmd_unsupported(self, args: list[str]) -> None:
        self.err(f"ERROR: {args[0]} is not supported\n")


COMMANDS = [("match", "m"), ("multi-match", "M"), ("update", "u"), ("attach", "j"),
            ("remove", "j"), ("find", "f"), ("cancel", "c"), ("partial-cancel", "pc"),
            ("set-property", "p"), ("get-property", "g"), ("set-status", "t"),
            ("get-status", "e"), ("list", "l"), ("info", "i"), ("stat", "s"), ("cat", "a"),
            ("help", "h"), ("quit", "q")]


def _lookup(word: str) -> str | None:
    for name, abbr in COMMANDS:
        if word in (name, abbr):
            return name
    return None


def _strtoll(s: str) -> int:
    import re

    m = re.match(r"\s*[+-]?\d+", s)
    return int(m.group(0)) if m else 0


def load_graph(path: str, fmt: str, allowlist: str = "") -> ResourceGraph:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise SessionError(f"can't read {path}: {exc.strerror}") from exc
    if fmt == "grug":
        from strato.plugins.sched_graph.grug import GrugError, load_grug

        try:
            return load_grug(text)
        except GrugError as exc:
            raise SessionError(f"{exc}\nERROR: error generating resources") from exc
    if fmt == "jgf":
        from strato.plugins.sched_graph.jgf import JgfError, load_jgf

        try:
            return load_jgf(text, allowlist=allowlist)
        except JgfError as exc:
            raise SessionError(f"{exc}\nERROR: error generating resources") from exc
    if fmt in ("rv1exec", "rv1exec_force"):
        from strato.plugins.sched_graph.rv1exec import load_rv1exec

        return load_rv1exec(text)
    if fmt == "hwloc":
        from strato.plugins.sched_graph.hwloc import HwlocError, load_hwloc

        try:
            return load_hwloc(text, allowlist=allowlist)
        except HwlocError as exc:
            raise SessionError(f"{exc}\nERROR: error generating resources") from exc
    raise SessionError(f"unsupported load format: {fmt}")


def run_session(opts: Options, stdin: TextIO, out: TextIO | None = None,
                stdout: TextIO | None = None, stderr: TextIO | None = None,
                cwd: str = ".") -> int:
    """Run a resource-query session over ``stdin``; returns an exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    rq = ResourceQuery(opts, out or stdout, stdout, stderr, cwd)
    prompt = "" if opts.disable_prompt else "resource-query> "
    for line in stdin:
        if prompt:
            stdout.write(prompt)
        tokens = line.split()
        if not tokens:
            continue
        if not rq.dispatch(tokens):
            break
    return 0
