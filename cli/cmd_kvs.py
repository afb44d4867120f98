"""strato kvs: read and write the instance's key-value store."""

from __future__ import annotations

import json

import click

from strato.cli.common import handle
from strato.core.errors import StratoError

#: every kvs command's -N option
namespace_option = click.option("-N", "--namespace", default="primary", show_default=True,
                                help="KVS namespace.")


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@click.group()
def kvs() -> None:
    """Read and write the key-value store."""


@kvs.command()
@namespace_option
@click.argument("keys", nargs=-1, required=True)
def get(namespace, keys) -> int:
    """Print the value of each KEY (strings raw, others as JSON)."""
    from strato import kvs as api

    h = handle()
    for key in keys:
        click.echo(_show(api.get(h, key, namespace)))
    return 0


@kvs.command()
@namespace_option
@click.option("-A", "--append", is_flag=True, help="Append to a list value.")
@click.argument("pairs", nargs=-1, required=True)
def put(namespace, append, pairs) -> int:
    """Store KEY=VALUE pairs atomically (VALUE is JSON if it parses, else a string)."""
    from strato import kvs as api

    ops = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        ops.append(("append" if append else "put", key, value))
    api.commit(handle(), ops, namespace)
    return 0


@kvs.command()
@namespace_option
@click.option("-R", "--recursive", is_flag=True, help="List subdirectories too.")
@click.argument("key", default=".")
def ls(namespace, recursive, key) -> int:
    """List a directory."""
    from strato import kvs as api

    h = handle()

    def walk(path: str, indent: str) -> None:
        for name, isdir in api.ls(h, path, namespace).items():
            click.echo(f"{indent}{name}{'.' if isdir else ''}")
            if isdir and recursive:
                walk(name if path == "." else f"{path}.{name}", indent + "  ")

    walk(key, "")
    return 0


@kvs.command("dir")
@namespace_option
@click.argument("key", default=".")
def dir_(namespace, key) -> int:
    """Print every key under a directory with its value."""
    from strato import kvs as api

    h = handle()

    def walk(path: str) -> None:
        for name, isdir in api.ls(h, path, namespace).items():
            full = name if path == "." else f"{path}.{name}"
            if isdir:
                walk(full)
            else:
                click.echo(f"{full} = {_show(api.get(h, full, namespace))}")

    walk(key)
    return 0


@kvs.command()
@namespace_option
@click.option("-f", "--force", is_flag=True, help="No error for a key that does not exist.")
@click.argument("keys", nargs=-1, required=True)
def unlink(namespace, force, keys) -> int:
    """Remove keys (and what lies below them)."""
    from strato import kvs as api

    h = handle()
    if not force:
        for k in keys:
            parent, _, name = k.rpartition(".")
            try:
                present = name in api.ls(h, parent or ".", namespace)
            except StratoError:
                present = False
            if not present:
                raise StratoError(f"{k}: no such key")
    api.commit(h, [("unlink", k, None) for k in keys], namespace)
    return 0
