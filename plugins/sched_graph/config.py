"""The config keys of the ``sched-graph`` plugin (its ``[sched-graph]`` table).

Declared here, apart from the scheduler, so that ``strato config check`` and
``strato plugins list -v`` know them and a misspelt key stops startup. Match
and queue policies are names plugins register: the check looks them up in what
the loaded plugins register (prune filter types are checked when the scheduler
starts).
"""

from __future__ import annotations

from collections.abc import Callable

from strato.core.config import Registered, integer, one_of, string
from strato.core.hookspecs import hookimpl

from .flexible import TRAVERSERS


@hookimpl
def core_declare_config(declare: Callable[..., None]) -> None:
    table = "sched-graph"
    declare(table, "match-policy", default="first",
            check=Registered("match-policy", "sched_register_match_policies"),
            help="which resources a match prefers: first, low, high, lonode, hinode, "
                 "lonodex, hinodex, firstnodex, locality, variation, or a plugin's")
    declare(table, "prune-filters", default="ALL:core,ALL:node", check=string,
            help="ANCHOR:TYPE,... subtree aggregates used to skip subtrees that lack enough")
    declare(table, "traverser", default="simple", check=one_of("traverser", list(TRAVERSERS)),
            help="simple, or flexible (jobspecs with or/xor slots)")
    declare(table, "queue-policy", default="fcfs",
            check=Registered("queue-policy", "sched_register_queue_policies"),
            help="fcfs, easy, conservative, hybrid, or a plugin's: how jobs backfill")
    declare(table, "reservation-depth", default=64, check=integer(0),
            help="blocked jobs that get a reservation each cycle (queue-policy hybrid)")
    declare(table, "queue-depth", default=32, check=integer(1),
            help="pending jobs considered per scheduling cycle")
