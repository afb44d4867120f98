"""strato config check: validate an instance config without starting an instance."""

from __future__ import annotations

import click


@click.group()
def config() -> None:
    """Check instance configs."""


@config.command("check")
@click.argument("path", metavar="FILE")
@click.option("-S", "--setattr", "overrides", multiple=True, metavar="KEY=VAL",
              help="Override a config key, as strato start -S does.")
def config_check(path, overrides) -> int:
    """Check FILE (with -S overrides) as strato start would: every unknown key or
    table, with the nearest known name, and every value its check refuses.

    Loads the plugins the config names, since they declare their own keys.
    """
    from strato.core.config import config_errors, load_config
    from strato.core.plugins import make_plugin_manager

    cfg = load_config(path, list(overrides))
    errors = config_errors(cfg, make_plugin_manager(cfg))
    for error in errors:
        click.echo(f"strato-config: {error}", err=True)
    if errors:
        raise click.exceptions.Exit(1)
    click.echo(f"{path}: ok")
    return 0
