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


@config.command("reference")
def config_reference_cmd() -> int:
    """Print the reference of every config table and key (Markdown): the keys the
    core and every installed plugin declare, with default, accepted values and help.

    Generated from the declarations themselves (core_declare_config), so it is
    what strato start and strato config check enforce; make docs builds the
    admin guide's config reference from it.
    """
    click.echo(config_reference(), nl=False)
    return 0


def _md(text: str) -> str:
    """Declaration text as Markdown table-cell text (RST ``code`` to `code`)."""
    return text.replace("``", "`").replace("|", "\\|")


def _table_name(table: str) -> str:
    return ".".join("NAME" if part == "*" else part for part in table.split("."))


def config_reference() -> str:
    """The config reference as Markdown, one section per plugin (the core first),
    one table per config table, one row per key."""
    from strato.core.config import Registered, declare_core, describe_check
    from strato.core.plugins import (
        DEFAULT_PLUGINS,
        declared_keys,
        installed_names,
        installed_plugin_manager,
        show_value,
    )

    keys = declared_keys(installed_plugin_manager({}), core=declare_core)
    owners = list(dict.fromkeys(k.plugin for k in keys))
    owners = ["core"] + sorted(o for o in owners if o != "core")
    out = []
    for owner in owners:
        if owner == "core":
            out.append("## The core\n\nRead by every instance, whatever plugins it loads.\n")
        else:
            loaded = "loaded by default" if owner in DEFAULT_PLUGINS \
                else f"load it with `[plugins] load = [\"{owner}\"]`"
            if owner.startswith("sched-") and owner != "sched-simple":
                loaded += f" (or choose it with `[sched] plugin = \"{owner}\"`)"
            out.append(f"## Plugin `{owner}`\n\nDeclared by the `{owner}` plugin, {loaded}; "
                       "its keys are unknown (an error) while it is not loaded.\n")
        tables = list(dict.fromkeys(k.table for k in keys if k.plugin == owner))
        for table in tables:
            out.append(f"### `[{_table_name(table)}]`\n")
            out.append("| key | default | accepted values | meaning |")
            out.append("|---|---|---|---|")
            for k in keys:
                if k.plugin != owner or k.table != table:
                    continue
                default = "(none)" if k.default is None else f"`{show_value(k.default)}`"
                accepted = describe_check(k.check)
                if isinstance(k.check, Registered):
                    names = sorted(installed_names({}, k.check.hookname))
                    if names:
                        accepted += " Installed: " + ", ".join(f"`{n}`" for n in names) + "."
                out.append(f"| `{k.key}` | {default} | {_md(accepted)} | {_md(k.help)} |")
            out.append("")
    return "\n".join(out)
