"""`FluxCommand`: a click command that records the order of its options, as Flux's
argparse does, for the options whose meaning depends on it (``--env`` rules,
``--dependency``...; see `strato.cli.submitopts`)."""

from __future__ import annotations

import click


class FluxCommand(click.Command):
    """A click command that keeps the command-line order of its options in
    ``option_order`` (a list of parameter names, one per use), as Flux's argparse
    does for the options whose meaning depends on order."""

    def make_parser(self, ctx: click.Context):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_and_record(args):
            opts, largs, order = parse(args)
            ctx.meta["strato.option_order"] = [p.name for p in order]
            return opts, largs, order

        parser.parse_args = parse_and_record
        return parser

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        ctx.params["option_order"] = ctx.meta.get("strato.option_order", [])
        return rest
