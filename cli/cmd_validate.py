"""strato job validate: check jobspec files without an instance.

Why this exists: users and tools write jobspecs by hand or by program and want to know
whether strato will take them before they submit (and the conformance corpora are
checked with it).  By default a file is checked as a submitted jobspec (version 1,
RFC 25); with ``--canonical`` as a canonical jobspec of any version (RFC 14).

One line per file on stdout, in the order given: ``FILE: ok`` or ``FILE: <problem>``;
the exit code is 1 if any file is invalid or unreadable.  Only click and
``strato.jobspec`` are imported (YAML when the first file is read): no instance, no zmq.
"""

from __future__ import annotations

import sys

import click


def check_text(data: str | bytes, name: str, canonical: bool) -> str | None:
    """Return None if ``data`` is a valid jobspec, else a one-line reason.

    The reason does not repeat ``name`` unless the YAML itself is bad (``load_jobspec``
    names the file in that message, which is then returned without its prefix).
    """
    from strato.jobspec.canonical import load_jobspec, validate_canonical
    from strato.jobspec.model import JobspecError, validate_v1

    try:
        js = load_jobspec(data, name)
    except JobspecError as exc:
        message = str(exc)
        return message[len(name) + 2:] if message.startswith(f"{name}: ") else message
    try:
        (validate_canonical if canonical else validate_v1)(js)
    except JobspecError as exc:
        return str(exc)
    return None


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as stream:
        return stream.read()


@click.command()
@click.option(
    "--canonical",
    is_flag=True,
    help="Check against RFC 14 (canonical jobspec, any version) instead of RFC 25 (version 1).",
)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def validate(canonical: bool, files: tuple[str, ...]) -> None:
    """Check that each FILE (YAML or JSON; '-' for stdin) is a valid jobspec.

    Prints 'FILE: ok' or 'FILE: <problem>' for each, and exits 1 if any is not valid.
    """
    failed = False
    for path in files:
        try:
            data = _read(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        else:
            reason = check_text(data, path, canonical)
        if reason is None:
            click.echo(f"{path}: ok")
        else:
            failed = True
            click.echo(f"{path}: {reason}")
    if failed:
        click.get_current_context().exit(1)


if __name__ == "__main__":
    validate()
