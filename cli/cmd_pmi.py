"""strato pmi: a PMI-1 client to test the PMI a launcher offers (as ``flux pmi``).

Run as the tasks of a parallel job (``strato run -N2 -n4 strato pmi exchange``,
or under ``srun --mpi=pmi2`` or Hydra's ``mpiexec``), each process initializes
PMI, runs the subcommand's pattern of barriers, puts and gets, and finalizes.
"""

from __future__ import annotations

import os
import sys
import time

import click


def _label() -> str:
    return os.environ.get("STRATO_JOB_CC") or os.environ.get("STRATO_JOB_ID") or "0"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Trace the PMI protocol on stderr.")
@click.option("--method", type=click.Choice(["simple", "single"]), metavar="METHOD",
              help="simple: the PMI-1 wire protocol (PMI_FD); single: a singleton. "
                   "Default: simple if PMI_FD is set, else single.")
@click.option("-t", "--timeout", metavar="FSD",
              help="Give up on an answer after this long (e.g. 30s).")
@click.pass_context
def pmi(ctx, verbose, method, timeout) -> None:
    """Exercise the PMI offered to this process by its launcher."""
    ctx.obj = {"verbose": verbose, "method": method, "timeout": timeout}


def _connect(ctx):
    """The PMI client the options ask for, initialized."""
    from strato.core.pmi import PMIError, SimplePMI, SingletonPMI
    from strato.jobspec.fsd import parse_fsd

    opts = ctx.obj
    timeout = None
    if opts["timeout"] is not None:
        try:
            timeout = parse_fsd(opts["timeout"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-t/--timeout'") from None
    trace = (lambda line: print(line, file=sys.stderr, flush=True)) if opts["verbose"] \
        else None
    client = None
    if opts["method"] != "single":
        client = SimplePMI.from_environment(timeout=timeout, trace=trace)
        if client is None and opts["method"] == "simple":
            raise PMIError("simple: PMI_FD is not set (not started by a PMI launcher)")
    if client is None:
        client = SingletonPMI()
    try:
        client.init()
    except PMIError:
        client.close()
        raise
    return client


@pmi.command()
@click.option("--test-count", type=click.IntRange(min=1), default=1, metavar="N",
              help="Run N barriers.")
@click.option("--test-timing", is_flag=True,
              help="Enter one barrier first, then time the test barriers.")
@click.option("--test-abort", type=click.IntRange(min=0), metavar="RANK",
              help="RANK calls PMI abort instead of entering the barrier.")
@click.pass_context
def barrier(ctx, test_count, test_timing, test_abort) -> int:
    """Run a PMI barrier; rank 0 says when it completes."""
    from strato.core.pmi import PMIError

    client = _connect(ctx)
    label = _label()
    if test_timing:
        client.barrier()
    if test_abort is not None and client.rank == test_abort:
        client.abort(1, f"strato-pmi: rank {client.rank} is aborting")
        client.close()
        raise PMIError(f"rank {client.rank} is aborting")
    for _ in range(test_count):
        t0 = time.monotonic()
        client.barrier()
        if client.rank == 0:
            timing = f" in {time.monotonic() - t0:.3f}s." if test_timing else ""
            click.echo(f"{label}: completed pmi barrier on {client.size} tasks{timing}")
            sys.stdout.flush()
    client.finalize()
    return 0


@pmi.command()
@click.option("--count", type=click.IntRange(min=1), default=1, metavar="N",
              help="Run N exchanges.")
@click.pass_context
def exchange(ctx, count) -> int:
    """Each rank puts a key, all meet in a barrier, each gets every rank's key and
    checks it; rank 0 says when it completes."""
    from strato.core.pmi import PMIError

    client = _connect(ctx)
    label = _label()
    client.barrier()  # launch stragglers must not count in the time
    for _ in range(count):
        t0 = time.monotonic()
        client.put(f"key.{client.rank}", f"{client.kvsname}-{client.rank}-{client.size}")
        client.barrier()
        for rank in range(client.size):
            want = f"{client.kvsname}-{rank}-{client.size}"
            got = client.get(f"key.{rank}")
            if got != want:
                client.close()
                raise PMIError(f"get key.{rank}: expected {want}, got "
                               f"{'nothing' if got is None else got}")
        client.barrier()
        if client.rank == 0:
            click.echo(f"{label}: completed pmi exchange on {client.size} tasks in "
                       f"{time.monotonic() - t0:.3f}s.")
            sys.stdout.flush()
    client.finalize()
    return 0


@pmi.command()
@click.option("--ranks", default="0", show_default=True, metavar="IDSET|all",
              help="The ranks that print the values.")
@click.argument("keys", nargs=-1, required=True)
@click.pass_context
def get(ctx, ranks, keys) -> int:
    """Print the value of each KEY (one preset by the launcher, such as
    PMI_process_mapping), on the given ranks."""
    from strato.core.pmi import PMIError
    from strato.jobspec.idset import decode_idset

    wanted = None
    if ranks != "all":
        try:
            wanted = set(decode_idset(ranks))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--ranks'") from None
    client = _connect(ctx)
    if wanted is None or client.rank in wanted:
        for key in keys:
            value = client.get(key)
            if value is None:
                client.close()
                raise PMIError(f"get {key}: no such key")
            click.echo(value)
    client.finalize()
    return 0
