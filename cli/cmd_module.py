"""strato module: list the instance's services; load, reload or remove the scheduler."""

from __future__ import annotations

import click

from strato.cli.common import handle


@click.group()
def module() -> None:
    """List, load, reload and remove modules (as Flux's flux-module)."""


def _memory(kib: int | None) -> str:
    if kib is None:
        return "-"
    return f"{kib / 1024:.1f}M" if kib >= 1024 else f"{kib}K"


@module.command("list")
def module_list() -> int:
    """Each module: name, what implements it, state, pending work, memory."""
    from strato import module as api

    data = api.list_modules(handle())
    click.echo(f"{'NAME':<12} {'MODULE':<14} {'STATE':<9} {'PENDING':>7} {'MEMORY':>7} WHERE")
    for m in data["modules"]:
        click.echo(f"{m['name']:<12} {m['module']:<14} {m['state']:<9} {m['pending']:>7} "
                   f"{_memory(m['memory']):>7} {m['where']}")
    click.echo(f"(broker memory {_memory(data['broker_memory'])})")
    return 0


def _load(verb: str, name: str, args: tuple) -> int:
    from strato import module as api

    out = getattr(api, verb)(handle(), name, list(args))
    click.echo(f"{verb}ed {out['module']} in {out['seconds']:.3f}s")
    return 0


@module.command("load")
@click.argument("name")
@click.argument("args", nargs=-1)
def module_load(name, args) -> int:
    """Load scheduler NAME (switching from the current one) with KEY=VAL settings."""
    return _load("load", name, args)


@module.command("reload")
@click.argument("name")
@click.argument("args", nargs=-1)
def module_reload(name, args) -> int:
    """Replace module NAME (``sched``) with a fresh one; KEY=VAL settings apply."""
    return _load("reload", name, args)


@module.command("remove")
@click.argument("name")
def module_remove(name) -> int:
    """Unload module NAME (``sched``): pending jobs wait until one is loaded."""
    from strato import module as api

    api.remove(handle(), name)
    return 0
