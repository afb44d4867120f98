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

import pluggy

PROJECT = "strato"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------
# core: the life of an instance
# ---------------------------------------------------------------------------------------


@hookspec
def core_declare_config(declare):
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
def core_configure(instance, config):
    """Called once at instance startup, after every plugin is loaded.

    :param instance: the `strato.core.instance.Instance` being started.
    :param config: this plugin's own config table (a dict, empty if absent).

    Return value is ignored. Raising stops startup with a message naming the plugin.
    """


@hookspec
def core_register_services(register):
    """Add broker services.

    :param register: ``register(topic, handler)``; ``handler(request)`` answers with
        ``request.respond(body)`` or ``request.error(message)``.
    """


# ---------------------------------------------------------------------------------------
# ingest: accepting a submitted job
# ---------------------------------------------------------------------------------------


@hookspec
def ingest_validate(jobspec, user):
    """Check a submitted jobspec before the job exists.

    :param jobspec: the jobspec (a dict, already frobnicated).
    :param user: the submitting user's uid (int).

    Raise ``ValueError`` (or any exception) to reject the job: its message is what
    the user sees, and the job never gets an id. Return value is ignored.
    """


@hookspec
def ingest_frobnicate(jobspec, user):
    """Fill in defaults in a submitted jobspec, in place, before validation.

    :param jobspec: the jobspec dict; modify it in place.
    :param user: the submitting user's uid.

    Raising rejects the job with the exception's message.
    """


# ---------------------------------------------------------------------------------------
# job: the life of a job in the job manager
# ---------------------------------------------------------------------------------------


@hookspec
def job_state_change(job, old, new):
    """Called after a job moves from state `old` to state `new` (RFC 21 names).

    :param job: the `strato.core.jobmanager.Job`.

    Called for every transition of every job: keep implementations cheap.
    Exceptions are logged and otherwise ignored.
    """


@hookspec(firstresult=True)
def job_priority(job):
    """Return the priority (int, 0 = held) of a job from its urgency and anything else.

    :param job: the `Job`, with ``urgency`` (0-31), ``userid`` and ``jobspec``.

    First result wins. Urgency 0 must give 0 (held) and 31 the highest priority.
    """


@hookspec
def job_register_dependency_schemes(register):
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
    """


# ---------------------------------------------------------------------------------------
# sched: scheduling
# ---------------------------------------------------------------------------------------


@hookspec
def sched_register_schedulers(register):
    """Add schedulers that an instance can choose with ``[sched] plugin = NAME``.

    :param register: ``register(name, factory)``; ``factory(instance, config)``
        returns an object with ``set_resources(R)``, ``schedule(pending)``,
        ``free(job)`` and ``resource_status()`` (see `strato.plugins.sched_simple`).
    """


@hookspec
def sched_register_match_policies(register):
    """Add match policies that ``sched-graph`` can choose with ``match-policy = NAME``.

    :param register: ``register(name, factory)``; ``factory()`` returns a
        `strato.plugins.sched_graph.policies.MatchPolicy`: the scores it gives
        vertices during the depth-first search decide which resources are chosen.
    """


@hookspec
def sched_register_prune_filters(register):
    """Add resource types that ``prune-filters`` may name (``ALL:core,ALL:gpu``).

    :param register: ``register(resource_type)``; sched-graph then keeps an
        aggregate of that type per subtree and skips subtrees that lack enough.
    """


@hookspec
def sched_register_queue_policies(register):
    """Add queue policies that ``sched-graph`` can choose with ``queue-policy = NAME``.

    :param register: ``register(name, factory)``; ``factory(config)`` returns an
        object with ``reservation_depth`` (how many blocked jobs get a reservation
        each cycle: 0 for fcfs, 1 for easy, unlimited for conservative) and
        ``blocks`` (whether a blocked job stops the cycle, as in fcfs).
    """


# ---------------------------------------------------------------------------------------
# exec: running an allocated job
# ---------------------------------------------------------------------------------------


@hookspec
def exec_register_backends(register):
    """Add exec backends that an instance or a job can choose by name.

    :param register: ``register(name, factory)``; ``factory(instance, config)``
        returns an object with ``start(job)`` and ``kill(job, signum)`` that reports
        back through ``instance.jobs.exec_started/exec_finished/exec_output``.
    """


# ---------------------------------------------------------------------------------------
# shell: the job shell, one per job on each node
# ---------------------------------------------------------------------------------------


@hookspec
def shell_init(shell):
    """Called when a job shell starts, before any task is launched.

    :param shell: the `strato.shell.shell.JobShell` (``jobid``, ``jobspec``, ``env``).

    Raising fails the job with the exception's message.
    """


@hookspec
def shell_task_init(shell, task):
    """Called for each task just before it is spawned; may edit ``task.env``."""


@hookspec
def shell_task_exit(shell, task):
    """Called when a task has exited; ``task.status`` is its wait status."""


@hookspec
def shell_exit(shell):
    """Called when every task of the shell has exited, before the job finishes."""


# ---------------------------------------------------------------------------------------
# acct: accounting
# ---------------------------------------------------------------------------------------


@hookspec
def acct_job_end(job, usage):
    """Called once when a job becomes inactive.

    :param job: the `Job` (state INACTIVE, with its result).
    :param usage: dict with ``t_submit``, ``t_run``, ``t_inactive``, ``nnodes``,
        ``ncores``, ``ngpus``, ``runtime`` (seconds) and ``result``.
    """
