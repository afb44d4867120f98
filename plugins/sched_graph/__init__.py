"""sched-graph: a Fluxion-class resource graph and matcher.

What lives here:

- ``graph``      the resource graph (typed vertices, edges in named subsystems),
                 compact per-vertex child lists for the hot path, networkx export;
- ``planner``    time-indexed availability (Fluxion's planner and planner_multi), used
                 per vertex and for the subtree aggregate filters;
- ``grug``, ``jgf``, ``rv1exec``  readers that build a graph from GRUG recipes, JSON Graph
                 Format documents and RFC 20 R;
- ``jobspec``    the resource-request view of an RFC 14 jobspec the matcher needs
                 (counts with min/max/operator/operand, exclusivity, slots, constraints);
- ``scoring``, ``policies``  per-visit evaluation records and the match policies
                 (first, low, high, lonode, hinode, lonodex, hinodex, firstnodex,
                 locality, variation);
- ``traverser``  the depth-first-and-up matcher, composed of ``matching`` (the DFS and
                 scoring walk, ``select``), ``subtree_cache`` (replaying unchanged
                 subtrees' evaluations), ``schedule`` (``run``: allocate, reserve,
                 satisfiability), ``update`` (booking, cancel, partial cancel) and
                 ``edit`` (attach, remove subgraphs, mark up/down, properties);
                 ``prune`` holds the subtree filter spec, ``find`` the queries;
- ``errors``     the exceptions every operation raises (``MatchError`` and kin);
- ``writers``    simple, pretty_simple, jgf, rv1, rv1_nosched output.

Fluxion's ``resource-query`` command language is spoken by ``strato.cli.resource_query``,
a client of this package; nothing here imports the CLI.
"""
