"""strato resource-query: Fluxion's resource-query, on strato's graph matcher.

Loads a resource graph (-L FILE -f grug|jgf|rv1exec), reads the command language on
stdin (match, cancel, find, set-status, ...) and writes what Fluxion's tool writes, so
Fluxion's golden outputs can be compared byte for byte. The session itself is
``strato.cli.resource_query.run_session``; this module only parses
options.
"""

from __future__ import annotations

import sys

import click


@click.command("resource-query", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-L", "--load-file", default="conf/default", help="Graph file to load.")
@click.option("-f", "--load-format", default="grug",
              help="grug | jgf | rv1exec | hwloc (default grug).")
@click.option("-W", "--load-allowlist", multiple=True, help="Resource types to load.")
@click.option("-S", "--match-subsystems", default="CA", help="CA, PA, C+PA, ... (default CA).")
@click.option("-P", "--match-policy", default="first", help="Match policy (default first).")
@click.option("-F", "--match-format", default="simple", help="Match output format.")
@click.option("-T", "--traverser-policy", default="simple", help="simple | flexible.")
@click.option("-g", "--graph-format", default=None, hidden=True)
@click.option("-o", "--graph-output", default=None, hidden=True)
@click.option("-p", "--prune-filters", multiple=True,
              help="HL:LL pairs (default ALL:core,ALL:node).")
@click.option("-t", "--test-output", default=None, help="Write match output to this file.")
@click.option("-r", "--reserve-vtx-vec", default="0", help="Pre-size the vertex table.")
@click.option("-e", "--elapse-time", is_flag=True, help="Print timings and visit counts.")
@click.option("-d", "--disable-prompt", is_flag=True, help="Don't print the prompt.")
def resource_query(load_file, load_format, load_allowlist, match_subsystems, match_policy,
                   match_format, traverser_policy, graph_format, graph_output, prune_filters,
                   test_output, reserve_vtx_vec, elapse_time, disable_prompt) -> None:
    """Fluxion resource-query compatible matcher."""
    import os

    from strato.cli.resource_query import Options, SessionError, run_session
    from strato.plugins.sched_graph.policies import known_policy
    from strato.plugins.sched_graph.writers import FORMATS

    if not os.path.exists(load_file):
        raise click.ClickException(f"file does not exist for --load-file: {load_file}")
    if os.path.isdir(load_file):
        raise click.ClickException(f"path passed to --load-file is a directory: {load_file}")
    if load_format not in ("grug", "jgf", "rv1exec", "rv1exec_force", "hwloc"):
        raise click.ClickException(f"unknown format for --load-format: {load_format}")
    if match_format not in FORMATS:
        raise click.ClickException(f"unknown format for --match-format: {match_format}")
    if not known_policy(match_policy):
        raise click.ClickException(f"unknown match policy: {match_policy}")
    opts = Options(load_file=load_file, load_format=load_format, subsystems=match_subsystems,
                   policy=match_policy, match_format=match_format,
                   traverser_policy=traverser_policy, elapse_time=elapse_time,
                   disable_prompt=disable_prompt)
    filters = [p for p in prune_filters if p.strip()]
    if filters:
        opts.prune_filters = ",".join(filters)
    allow = [w for w in load_allowlist if w.strip()]
    if allow:
        opts.load_allowlist = "".join("cluster," + w for w in allow)
    out = open(test_output, "w") if test_output else None  # noqa: SIM115
    try:
        run_session(opts, sys.stdin, out=out)
    except SessionError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if out is not None:
            out.close()
