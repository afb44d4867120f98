"""strato start: run an instance in this process with a command inside it."""

from __future__ import annotations

import click


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--config", "config_path", metavar="FILE", help="Instance config (TOML).")
@click.option("-S", "--setattr", "overrides", multiple=True, metavar="KEY=VAL",
              help="Override a config key, e.g. -S exec.backend=sim.")
@click.option("--statedir", metavar="DIR", help="Keep the KVS here, so a restart recovers.")
@click.option("--rundir", metavar="DIR", help="Put the instance's socket here.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def start(config_path, overrides, statedir, rundir, command) -> int:
    """Start an instance and run COMMAND in it (default: an interactive shell).

    The instance exits when COMMAND does, with its exit code.
    """
    from strato.core.config import check_config, load_config
    from strato.core.instance import run_instance
    from strato.core.plugins import make_plugin_manager

    config = load_config(config_path, list(overrides))
    check_config(config, make_plugin_manager(config))  # a misspelt key must not go unused
    return run_instance(config, list(command), statedir=statedir, rundir=rundir)
