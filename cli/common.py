"""Small helpers the CLI commands share."""

from __future__ import annotations

import click


def handle():
    """A handle to the enclosing instance (one-line error if there is none)."""
    from strato.handle import Handle

    return Handle()


class JobIdType(click.ParamType):
    name = "JOBID"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            from strato.core.ids import parse

            return parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


JOBID = JobIdType()


def format_event(entry: dict) -> str:
    """An eventlog entry as Flux prints it: ``TIMESTAMP NAME key=value ...``."""
    import json

    parts = [f"{entry['timestamp']:.6f}", entry["name"]]
    for k, v in (entry.get("context") or {}).items():
        parts.append(f"{k}={json.dumps(v)}")
    return " ".join(parts)


def short_fsd(seconds: float) -> str:
    """A duration in Flux Standard Duration to three significant digits
    (``0.042s``, ``42.1s``, ``3.5m``, ``1.2h``, ``2d``), for summaries people read."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s" if seconds >= 1 else f"{seconds:.3f}s"


def color_option(help: str):
    """``--color[=WHEN]`` as Flux's commands take it: auto (the default), never or
    always, and always when given without WHEN."""
    return click.option("--color", type=click.Choice(["auto", "never", "always"]),
                        is_flag=False, flag_value="always", default="auto",
                        metavar="[WHEN]", help=help)
