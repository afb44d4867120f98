"""strato keygen and strato overlay: the certificate and the tree of a multi-broker
instance."""

from __future__ import annotations

import click

from strato.cli.common import handle


@click.command()
@click.option("--name", metavar="NAME", help="Name recorded in the certificate's metadata.")
@click.argument("path", required=False)
def keygen(name, path) -> int:
    """Write a new CURVE certificate to PATH (standard output if none), for the
    [bootstrap] curve_cert of a multi-broker instance. PATH must not exist; it is
    made readable by its owner only."""
    from strato.core.cert import keygen as write_cert
    from strato.core.cert import new_cert

    if path is None:
        click.echo(new_cert(name)[1], nl=False)
    else:
        write_cert(path, name)
    return 0


@click.group()
def overlay() -> None:
    """Show the overlay: the tree of brokers of this instance."""


@overlay.command()
@click.option("-r", "--rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="Show the subtree below this rank.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds to wait for each broker's answer.")
def status(rank, timeout) -> int:
    """Show each broker of the tree and its state: full (it and its subtree are up),
    partial (a broker below is offline: never joined), degraded (one below is
    lost), offline or lost."""
    from strato.instance import overlay_tree

    h = handle()
    for line in render_tree(overlay_tree(h, rank, timeout)):
        click.echo(line)
    return 0


def render_tree(node: dict) -> list[str]:
    """Lines of the tree as ``RANK HOST: STATE``, children indented under their parent."""
    lines = [f"{node['rank']} {node['host']}: {node['status']}"]

    def walk(children: list[dict], prefix: str) -> None:
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{child['rank']} "
                         f"{child['host']}: {child['status']}")
            walk(child.get("children", []), prefix + ("   " if last else "│  "))

    walk(node.get("children", []), "")
    return lines
