"""The plugin contract: every hook a strato plugin can implement.

Read this file top to bottom to learn the whole extension surface. Hooks are
grouped by area, named ``<area>_<verb>``, and are of two kinds:

- *registration* hooks receive a ``register`` callable and add named things
  (schedulers, exec backends); the instance picks one by name from its config.
  They are run one implementation at a time (`strato.core.plugins.registry`),
  so a name registered by two plugins is an error naming both, and an unknown
  name is reported with every name that installed plugins register;
  ``core_declare_config`` is of this kind too, with ``declare``;
- *event* hooks are called at a point in the life of an instance, a job or a
  job shell.

Every instance (and every job shell) owns its own plugin manager; there is no
global one. Implement a hook with ``@strato.core.hookspecs.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pluggy

PROJECT = "strato"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------
# core: the life of an instance
# ---------------------------------------------------------------------------------------


@hookspec
def core_declare_config(declare: Callable[..., None]) -> None:
    """Declare the config keys this plugin reads, with defaults, checks and help.

    Called, implementation by implementation, whenever the declarations are
    needed: before the instance exists when ``strato start`` checks its config,
    by ``strato config check``, and for ``strato plugins list -v``; so declare
    only, without side effects. A key or table that no loaded
    plugin (nor the core) declares is an error at startup, with the nearest
    declared name as a hint, so a misspelt key never goes silently unused.

    :param declare: ``declare(table, key, default=None, check=None, help="")``.
        ``table`` is the dotted name of a table (``"sched-graph"``,
        ``"exec"``); ``"*"`` stands for any one name (``"queues.*"``); a table
        given as a list of tables (``[[resource.config]]``) is checked entry by
        entry. ``key`` is a key of that table. ``default`` is what the plugin
        uses when the key is absent (shown to users, not filled in).
        ``check(value)`` raises ``ValueError`` (or ``TypeError``) with a short
        message if the value is not acceptable (``strato.core.config`` has
        ``string``, ``strings``, ``integer``, ``duration``, ``one_of``, and
        ``Registered(what, hookname)`` for a name that plugins register, such
        as a match policy).
        ``help`` is one line for ``strato plugins list -v``.

    Return value is ignored. Raising (or declaring a key another plugin already
    declared) stops startup with a message naming the plugin.
    """


@hookspec
def core_configure(instance: Any, config: dict) -> None:
    """Called once at instance startup, after every plugin is loaded.

    :param instance: the `strato.core.instance.Instance` being started.
    :param config: this plugin's own config table (a dict, empty if absent).

    Return value is ignored. Raising stops startup with a message naming the plugin.
    """


@hookspec
def core_register_services(register: Callable[[str, Callable], None]) -> None:
    """Add broker services.

    :param register: ``register(topic, handler)``; ``handler(request)`` answers with
        ``request.respond(body)`` or ``request.error(message)``. A client's request
        body is a mapping or None: the broker answers any other with EPROTO itself.

    Raising (or registering a topic twice) stops startup with the message; an
    exception raised later by a handler fails that request with
    ``TOPIC: internal error: ...`` and the broker goes on.
    """


# ---------------------------------------------------------------------------------------
# ingest: accepting a submitted job
# ---------------------------------------------------------------------------------------


@hookspec
def ingest_validate(jobspec: dict, user: int) -> None:
    """Check a submitted jobspec before the job exists.

    :param jobspec: the jobspec (a dict, already frobnicated).
    :param user: the submitting user's uid (int).

    Raise ``ValueError`` (or any exception) to reject the job: its message is what
    the user sees, and the job never gets an id. Return value is ignored.
    """


@hookspec
def ingest_frobnicate(jobspec: dict, user: int) -> None:
    """Fill in defaults in a submitted jobspec, in place, before validation.

    :param jobspec: the jobspec dict; modify it in place.
    :param user: the submitting user's uid.

    Raising rejects the job with the exception's message.
    """


# ---------------------------------------------------------------------------------------
# job: the life of a job in the job manager
# ---------------------------------------------------------------------------------------


@hookspec
def job_state_change(job: Any, old: str, new: str) -> None:
    """Called after a job moves from state `old` to state `new` (RFC 21 names).

    :param job: the `strato.core.jobmanager.Job`.

    Called for every transition of every job: keep implementations cheap.
    Exceptions are logged and otherwise ignored.
    """


@hookspec(firstresult=True)
def job_priority(job: Any) -> int | None:
    """Return the priority (int, 0 = held) of a job from its urgency and anything else.

    :param job: the `Job`, with ``urgency`` (0-31), ``userid`` and ``jobspec``.

    First result wins. Urgency 0 must give 0 (held) and 31 the highest priority.
    An exception is logged and the job gets its urgency as its priority.
    """


@hookspec
def job_register_dependency_schemes(register: Callable[[str, Any], None]) -> None:
    """Add RFC 26 dependency schemes (``afterok``, ``singleton``, ...).

    :param register: ``register(scheme, handler)``. The handler has two methods:

        ``check(dep, jobs)`` is called at submission for each dependency of the
        scheme (``dep`` is ``{"scheme", "value"}``, ``jobs`` the `JobManager`);
        raise ``ValueError`` to reject the job with that message.

        ``add(dependency)`` is called when the job enters DEPEND; the
        `strato.core.dependencies.Dependency` it gets has ``job``, ``dep`` and
        ``jobs``, and the handler calls ``dependency.resolve()`` once it is
        satisfied or ``dependency.fail(note)`` if it never can be (the job then
        ends with a ``dependency`` exception), now or later.

    A jobspec naming a scheme nobody registered is rejected at submission.
    Raising from the hook stops startup with the message.
    """


# ---------------------------------------------------------------------------------------
# sched: scheduling
# ---------------------------------------------------------------------------------------


@hookspec
def sched_register_schedulers(register: Callable[[str, Callable], None]) -> None:
    """Add schedulers that an instance can choose with ``[sched] plugin = NAME``
    (and switch to while it runs with ``strato module load NAME``).

    :param register: ``register(name, factory)``; ``factory(env, config)`` returns
        a `Scheduler`. ``env`` is a `strato.core.schedutil.SchedEnv` (``hook``,
        ``R``, ``nodes``, ``queues``, ``config``); ``config`` is the scheduler's
        own table.

    Raising (or a factory that raises) stops startup, or fails the ``module
    load`` with the old scheduler left in charge, with the message.
    """


@runtime_checkable
class Scheduler(Protocol):
    """What a scheduler plugin implements; `strato.core.schedutil.SchedModule` runs
    it behind the scheduler protocol (RFC 27's messages), so it never sees the job
    manager and the job manager never calls it.

    Jobs reach it as `strato.core.schedutil.PendingJob` (``id``, ``priority``,
    ``userid``, ``t_submit``, ``jobspec`` and ``summary``: counts, queue and
    compiled constraint). R is RFC 20 R version 1. An exception raised by a
    method is a bug in the scheduler: the request that caused it is logged and
    dropped (an alloc stays unanswered and the job pending), and at load time
    (``set_resources``, ``allocate_existing``) the scheduler is not loaded and the
    one running, if any, stays in charge.
    """

    name: str

    def set_resources(self, nodes: list) -> None:
        """Take the instance's nodes (`strato.core.resource.Node`: rank, hostname,
        cores, gpus, properties) before any other call."""

    def allocate_existing(self, job: Any, R: dict) -> None:
        """Book `R` for a job that already holds it (a scheduler loaded while jobs
        run learns them from the hello); raise if R cannot be booked."""

    def schedule(self, pending: list) -> Any:
        """Decide for the pending jobs, in queue order (priority, then submission);
        return a `strato.core.schedutil.SchedulePass` of allocations (job, R),
        rejections (job, one-line reason: the job can never run) and annotations
        of jobs left pending; ``more=True`` if it looked at only part of the queue
        and wants another pass. Called at most once per event-loop turn."""

    def free(self, jobid: int, R: dict, final: bool) -> None:
        """Give back the resources of a job: those on the ranks of `R` (a partial
        release) or, if `final`, all it still holds."""

    def feasibility(self, job: Any) -> str | None:
        """Why the job could never run here, even on an idle instance (None: it
        could); checked at submission so an impossible job is refused then."""

    def drain(self, ranks: list[int], drained: bool) -> None:
        """Stop (or resume) giving new jobs the nodes of `ranks`."""

    def resource_status(self) -> dict:
        """``{free, allocated, down}`` rows (`strato.core.resource.status_rows`)."""


@hookspec
def sched_register_match_policies(register: Callable[[str, Callable], None]) -> None:
    """Add match policies that ``sched-graph`` can choose with ``match-policy = NAME``.

    :param register: ``register(name, factory)``; ``factory()`` returns an object
        implementing `MatchPolicy` (below): the scores it gives vertices during the
        depth-first search decide which resources are chosen. Subclassing
        `strato.plugins.sched_graph.policies.MatchPolicy` supplies the defaults.

    Raising (or a factory that raises) stops sched-graph from loading with the
    message; an exception from a policy's methods is described on `MatchPolicy`.
    """


@hookspec
def sched_register_prune_filters(register: Callable[[str], None]) -> None:
    """Add resource types that ``prune-filters`` may name (``ALL:core,ALL:gpu``).

    :param register: ``register(resource_type)``; sched-graph then keeps an
        aggregate of that type per subtree and skips subtrees that lack enough
        (see `PruneFilter` below).

    Raising stops sched-graph from loading with the message.
    """


@hookspec
def sched_register_queue_policies(register: Callable[[str, Callable], None]) -> None:
    """Add queue policies that ``sched-graph`` can choose with ``queue-policy = NAME``.

    :param register: ``register(name, factory)``; ``factory(config)`` returns an
        object implementing `QueuePolicy` (below): ``reservation_depth`` (how many
        blocked jobs get a reservation each cycle: 0 for fcfs, 1 for easy, unlimited
        for conservative) and ``blocks`` (whether a blocked job stops the cycle, as
        in fcfs).

    Raising (or a factory that raises) stops sched-graph from loading with the
    message.
    """


# The objects the sched registration hooks return. A match policy, a prune filter or
# a queue policy is any object with these members (structural typing: no base class
# is required, though `strato.plugins.sched_graph.policies.MatchPolicy` provides
# defaults for every member of `MatchPolicy`).


@runtime_checkable
class MatchPolicy(Protocol):
    """How sched-graph's depth-first search scores candidates and which ones it keeps.

    The traverser walks the dominant subsystem (containment) from the root down to
    the leaves and back up ("depth-first and up"). It calls:

    - ``dom_discover_vtx(v)`` when it enters a vertex, before its children;
    - ``dom_finish_vtx(v, ...)`` when it leaves a vertex whose children were all
      evaluated: the *finishing pass at a node*. The policy chooses, for each
      child type the request asks for, the best ``k`` candidates (``dfu`` holds
      them, with their scores) and gives the vertex its own score
      (``dfu.overall_score``), which its parent then compares with its siblings';
    - ``dom_finish_slot(s, dfu)`` once the candidates for one ``slot`` are known;
    - ``dom_finish_graph(s, resources, dfu)`` at the root, to choose the top-level
      resources.

    Scores are integers; ``MATCH_MET`` (`strato.plugins.sched_graph.scoring`) and
    above mean "this subtree satisfies its part of the request", ``MATCH_UNMET``
    means it does not. Each callback returns 0 to go on, or -1 to reject the
    vertex (or slot, or graph): the walk then treats that subtree as not matching.
    An exception raised from a callback is a bug in the policy, not "no match": the
    traverser does not catch it, so it aborts the match (the graph may be left
    partly evaluated) and propagates out of the scheduler's ``schedule`` call.

    **Score factors.** A policy may weigh everything below a vertex by something
    of that vertex (``lonode`` ranks cores by the id of the node they are on). It
    does so with two members the traverser also reads: ``factor_value`` (type ->
    the factor the vertex of that type being visited contributes) and ``scores``
    (the sum of the factors of the vertices on the current path from the root),
    which ``dom_discover_vtx`` adds to and ``dom_finish_vtx`` takes back off.
    """

    #: the name the policy is chosen by (``match-policy = NAME``)
    name: str
    #: stop exploring a vertex's children once this many matches are found (0: never);
    #: a policy that stops early sees a walk-order-dependent subset of candidates
    stop_on_k_matches: int
    #: resource types the policy always allocates whole (``node`` for ``*nodex``);
    #: the traverser adds the jobspec's exclusive types for the length of a match
    x_types: set[str]
    #: sum of the score factors on the current path (see the class docstring)
    scores: int
    #: type -> score factor of the vertex of that type being visited
    factor_value: dict[str, int]
    #: True declares that the score this policy gives a vertex depends only on the
    #: vertex's own subtree, the request and ``scores`` (not on vertices visited
    #: before it, nor on other state kept between callbacks). sched-graph then
    #: caches each subtree's evaluation and replays it while the subtree is
    #: unchanged, which makes repeated matches on a large graph several times
    #: faster; results are identical to a full walk. Declare it only if it holds:
    #: with a wrong declaration, stale evaluations are replayed. A policy without
    #: the attribute is treated as False.
    subtree_local: bool

    def dom_discover_vtx(self, v: Any) -> int:
        """Entering vertex ``v`` (a `Vertex`: ``type``, ``id``, ``name``, ``rank``,
        ``properties``, ...), before its children. Add ``v``'s score factor here, if
        the policy has one. Returns 0, or -1 to skip ``v`` and its subtree."""

    def dom_finish_vtx(self, v: Any, s: str, resources: list, dfu: Any) -> int:
        """Leaving vertex ``v`` in subsystem ``s``: the finishing pass at a node.

        ``resources`` is the part of the request that applies at ``v``; ``dfu`` (a
        `Scoring`) holds the evaluated children by type. Choose the best ``k`` of
        each requested child type (``dfu.choose_accum_best_k(s, type, k, comp)``),
        set ``dfu.overall_score`` (``MATCH_UNMET`` if a child type has too few
        candidates) and take ``v``'s score factor back off ``scores``. Returns 0 if
        ``v`` qualifies, -1 if not.
        """

    def dom_finish_slot(self, s: str, dfu: Any) -> int:
        """The candidates for one ``slot`` are in ``dfu``: order them (for example
        ``dfu.choose_accum_all(s, type, comp)`` for each type). Returns 0, or -1 to
        reject the slot."""

    def dom_finish_graph(self, s: str, resources: list, dfu: Any) -> int:
        """At the root: choose the top-level ``resources`` from ``dfu`` as
        ``dom_finish_vtx`` does for a vertex, set ``dfu.overall_score`` and reset
        ``scores`` to 0. Returns 0 if the request is met, -1 if not."""


@runtime_checkable
class PruneFilter(Protocol):
    """Which resource types sched-graph counts per subtree, to skip subtrees early.

    Configured as ``prune-filters = "ALL:core,rack:node"`` (``ANCHOR:TYPE``: under
    every vertex of type ANCHOR, or ``ALL``, keep a time-indexed count of the TYPE
    resources below it); a match then skips a subtree whose counts show it cannot
    hold the request. The types ``prune-filters`` may name are the ones registered
    with ``sched_register_prune_filters``. The built-in implementation is
    `strato.plugins.sched_graph.prune.PruneSpec`. Counting is exact, so pruning
    changes only how many vertices are visited, never which are chosen.
    """

    def set_spec(self, spec: str) -> None:
        """Add every ``ANCHOR:TYPE`` pair of the comma-separated ``spec``. Raises
        ValueError (``InvalidRequest``) for a malformed pair; startup then stops."""

    def is_pruning_type(self, t: str) -> bool:
        """True if resources of type ``t`` are counted under some anchor."""

    def my_types(self, anchor: str) -> list[str]:
        """The types counted under a vertex of type ``anchor``, in the graph's type
        order (the ``ALL`` types included)."""


@runtime_checkable
class QueuePolicy(Protocol):
    """How sched-graph orders its queue: how far it looks ahead of a blocked job.

    Each scheduling cycle walks the pending jobs in priority order (at most
    ``queue-depth`` of them). A job that does not fit now is *blocked*: the first
    ``reservation_depth`` blocked jobs get a reservation at the earliest time they
    fit (later jobs may backfill only where they do not delay one); after that,
    ``blocks`` says whether the cycle stops at a blocked job. The object is made by
    the registered ``factory(config)`` from the ``[sched-graph]`` table; raising
    there (ValueError, ConfigError) stops startup with the message.
    """

    #: the name the policy is chosen by (``queue-policy = NAME``)
    name: str
    #: how many blocked jobs get a reservation per cycle: 0 for fcfs, 1 for easy,
    #: unlimited for conservative, N for hybrid
    reservation_depth: int
    #: whether a blocked job without a reservation stops the cycle (fcfs: True)
    blocks: bool


# ---------------------------------------------------------------------------------------
# exec: running an allocated job
# ---------------------------------------------------------------------------------------


@hookspec
def exec_register_backends(register: Callable[[str, Callable], None]) -> None:
    """Add exec backends that an instance or a job can choose by name.

    :param register: ``register(name, factory)``; ``factory(service, config)``
        returns an `ExecBackend`; ``service`` is the exec service (``event``,
        ``broker``, ``config``, ``uri``, ``rundir``, ``reaper``) and ``config`` the
        instance's ``[exec]`` table.

    Raising (or a factory that raises) stops startup with the message.
    """


@runtime_checkable
class ExecBackend(Protocol):
    """What an exec backend implements. The exec service (`strato.core.exec`) gives
    it each allocated job and passes on the events it reports with
    ``service.event(jobid, name, context)``: ``start`` once the job runs,
    ``exception`` (``{type, note}``) if it must end early, and exactly one
    ``finish`` (``{status}``, a wait status) when it has ended.

    An exception raised by ``start`` ends that job with an ``exec`` exception
    naming it; one raised by ``kill`` or ``shutdown`` is logged.

    A backend whose jobs can outlive a broker restart (an instance with a
    statedir: ``service.keep_running``) also has ``reattach(job, started, t_run)``:
    called at restart for each job that was running (``started``: its ``start``
    event was recorded; ``t_run``: when it got its resources), it takes the job up
    again and reports its events as for ``start``. A backend without it has such
    jobs end with a ``node-failure`` exception.
    """

    name: str

    def start(self, job: Any) -> None:
        """Run a `strato.core.exec.ExecJob` (``id``, ``jobspec``, ``R``, ``userid``,
        ``cc``, ``summary``, ``name``); return at once and report by events."""

    def kill(self, jobid: int, signum: int) -> None:
        """Send `signum` to the job's tasks; a killed job still reports ``finish``."""

    def shutdown(self) -> None:
        """The instance is stopping: end every job now (no events are needed), or,
        if ``service.keep_running``, leave them running for ``reattach``."""


# ---------------------------------------------------------------------------------------
# shell: the job shell, one per job on each node
# ---------------------------------------------------------------------------------------


@hookspec
def shell_init(shell: Any) -> None:
    """Called when a job shell starts, before any task is launched.

    :param shell: the `strato.shell.shell.JobShell` (``jobid``, ``jobspec``, ``env``).

    Raising fails the job with the exception's message.
    """


@hookspec
def shell_task_init(shell: Any, task: Any) -> None:
    """Called for each task just before it is spawned; may edit ``task.env``.

    Raising fails the job with the exception's message (no task is started).
    """


@hookspec
def shell_task_exit(shell: Any, task: Any) -> None:
    """Called when a task has exited; ``task.status`` is its wait status.

    Exceptions are logged and otherwise ignored.
    """


@hookspec
def shell_exit(shell: Any) -> None:
    """Called when every task of the shell has exited, before the job finishes.

    Exceptions are logged and otherwise ignored.
    """


# ---------------------------------------------------------------------------------------
# acct: accounting
# ---------------------------------------------------------------------------------------


@hookspec
def acct_job_end(job: Any, usage: dict) -> None:
    """Called once when a job becomes inactive.

    :param job: the `Job` (state INACTIVE, with its result).
    :param usage: dict with ``t_submit``, ``t_run``, ``t_inactive``, ``nnodes``,
        ``ncores``, ``ngpus``, ``runtime`` (seconds) and ``result``.

    Exceptions are logged and otherwise ignored.
    """


# ---------------------------------------------------------------------------------------
# what an exception from each event hook means (applied by strato.core.plugins.call_hook)
# ---------------------------------------------------------------------------------------

#: ``"raise"``: the caller turns the exception into the documented failure (a
#: rejected job, a failed job, a stopped startup); ``"log"``: it is logged with
#: the hook's name and the work goes on as if the hook had returned nothing.
ON_ERROR: dict[str, str] = {
    "core_configure": "raise",
    "ingest_validate": "raise",
    "ingest_frobnicate": "raise",
    "job_state_change": "log",
    "job_priority": "log",
    "shell_init": "raise",
    "shell_task_init": "raise",
    "shell_task_exit": "log",
    "shell_exit": "log",
    "acct_job_end": "log",
}
