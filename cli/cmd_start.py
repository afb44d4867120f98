"""strato start: run an instance in this process with a command inside it."""

from __future__ import annotations

import click


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--config", "config_path", metavar="FILE", help="Instance config (TOML).")
@click.option("-S", "--setattr", "overrides", multiple=True, metavar="KEY=VAL",
              help="Override a config key, e.g. -S exec.backend=sim.")
@click.option("--statedir", metavar="DIR",
              help="Keep the state here: a restart recovers every job (running ones keep"
                   " running meanwhile).")
@click.option("--rundir", metavar="DIR", help="Put the instance's socket here.")
@click.option("--exit-with", type=click.IntRange(min=1), metavar="PID",
              help="Run no command: stop when process PID exits (or on strato shutdown).")
@click.option("--no-program", is_flag=True,
              help="Run no command: stop on strato shutdown, a signal or the job's end "
                   "(what strato alloc --bg starts).")
@click.option("--test-size", type=int, metavar="N",
              help="Start N brokers on this machine, joined by the overlay (rank 0 runs "
                   "COMMAND).")
@click.option("--test-hosts", metavar="HOSTLIST",
              help="With --test-size: the brokers' hostnames (default: this host's).")
@click.option("--dump", metavar="FILE",
              help="At the end, archive the KVS to FILE (.tgz; {{id}} is the job id).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def start(config_path, overrides, statedir, rundir, exit_with, no_program, test_size,
          test_hosts, dump, command) -> int:
    """Start an instance and run COMMAND in it (default: an interactive shell).

    The instance exits when COMMAND does, with its exit code. Run as a job (by
    strato batch, strato alloc, or strato run strato start ...), it is a child
    instance: its resources are exactly the job's.
    """
    from strato.core.config import load_config
    from strato.core.instance import run_instance

    if exit_with is not None and command:
        raise click.UsageError("--exit-with runs no command; give one or the other")
    if no_program and (command or exit_with is not None):
        raise click.UsageError("--no-program runs no command and waits for no process; "
                               "give one or the other")
    if test_hosts is not None and test_size is None:
        raise click.UsageError("--test-hosts needs --test-size")
    config = load_config(config_path, list(overrides))
    hosts = None
    if test_hosts is not None:
        from strato.jobspec.hostlist import expand_hostlist

        try:
            hosts = expand_hostlist(test_hosts)
        except ValueError as exc:
            raise click.UsageError(f"--test-hosts: {exc}") from None
        if len(hosts) != test_size:
            raise click.UsageError(f"--test-hosts names {len(hosts)} hosts for "
                                   f"--test-size={test_size}")
    return run_instance(config, list(command), statedir=statedir, rundir=rundir,
                        exit_with=exit_with, dump=dump, test_size=test_size,
                        test_hosts=hosts, no_program=no_program)
