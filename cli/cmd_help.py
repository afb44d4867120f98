"""strato help: the help of a command, exactly as ``strato CMD [SUB] --help`` prints it."""

from __future__ import annotations

import click


@click.command("help")
@click.argument("words", nargs=-1, metavar="[CMD [SUB]...]")
def help_(words) -> int:
    """Show the help of CMD (and SUB, for a command group such as job or queue),
    the same text as strato CMD [SUB] --help; with no CMD, the list of commands."""
    from strato.cli.main import cli

    ctx = click.Context(cli, info_name="strato", **cli.context_settings)
    cmd: click.Command = cli
    for word in words:
        if not isinstance(cmd, click.Group):
            raise click.UsageError(f"'{ctx.command_path}' has no subcommands (no '{word}')")
        sub = cmd.get_command(ctx, word)
        if sub is None:
            where = f" in '{ctx.command_path}'" if ctx.parent is not None else ""
            raise click.UsageError(f"no such command '{word}'{where} (see strato help)")
        ctx = click.Context(sub, info_name=word, parent=ctx, **sub.context_settings)
        cmd = sub
    click.echo(cmd.get_help(ctx))
    return 0
