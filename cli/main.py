"""The ``strato`` command: a click group whose subcommands are imported on use.

``strato --help`` imports nothing but click: each subcommand's module is loaded
only when that subcommand runs. Errors reach the user as one line,
``strato-<cmd>: <what went wrong>``, and a non-zero exit.

`main` can be called in-process (it ends with SystemExit); the console script is
`strato.cli.script`, which makes a command's start and end cheaper.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module under strato.cli, attribute, short help)
COMMANDS = {
    "start": ("cmd_start", "start", "Start an instance and run a command in it."),
    "run": ("cmd_submit", "run", "Run a job interactively and wait for it."),
    "submit": ("cmd_submit", "submit", "Submit a job (or many with --cc) and print its id."),
    "batch": ("cmd_batch", "batch", "Submit a batch script: a child instance runs it."),
    "alloc": ("cmd_batch", "alloc", "Run a command or shell in a new child instance."),
    "bulksubmit": ("cmd_bulksubmit", "bulksubmit", "Submit a job per input (::: lists, stdin)."),
    "cancel": ("cmd_job", "cancel", "Cancel jobs."),
    "job": ("cmd_job", "job", "Inspect and control one job."),
    "jobs": ("cmd_jobs", "jobs", "List jobs."),
    "pstree": ("cmd_pstree", "pstree", "Draw the tree of instances and their jobs."),
    "top": ("cmd_top", "top", "Show an instance live: resources, job counts, running jobs."),
    "queue": ("cmd_admin", "queue", "Control and inspect the queue."),
    "report": ("cmd_report", "report",
               "How the jobs used the instance over time (--plot FILE: as a picture)."),
    "resource": ("cmd_admin", "resource", "List, drain and undrain resources."),
    "kvs": ("cmd_kvs", "kvs", "Read and write the key-value store."),
    "config": ("cmd_config", "config",
               "Check an instance config; print the config reference."),
    "help": ("cmd_help", "help_", "Show the help of a command (as CMD [SUB] --help does)."),
    "uri": ("cmd_admin", "uri", "Print the URI of the instance or of a job's instance."),
    "proxy": ("cmd_admin", "proxy", "Run a command connected to another instance."),
    "getattr": ("cmd_admin", "getattr", "Print a broker attribute."),
    "lsattr": ("cmd_admin", "lsattr", "List broker attributes."),
    "shutdown": ("cmd_admin", "shutdown", "Stop an instance."),
    "ping": ("cmd_admin", "ping", "Check that the instance answers."),
    "uptime": ("cmd_admin", "uptime", "Show how long the instance has been up."),
    "plugins": ("cmd_admin", "plugins", "Show loaded plugins and their hooks."),
    "module": ("cmd_module", "module", "List modules; load, reload or remove the scheduler."),
    "keygen": ("cmd_overlay", "keygen", "Write a CURVE certificate for a multi-broker instance."),
    "overlay": ("cmd_overlay", "overlay", "Show the tree of brokers and their health."),
    "pmi": ("cmd_pmi", "pmi", "Test the PMI a launcher offers: barrier, exchange, get."),
    "resource-query": ("cmd_resource_query", "resource_query",
                       "Fluxion resource-query compatible matcher."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f"strato.cli.{entry[0]}")
        from strato.cli.script import imported

        imported()  # the collector was off for the imports (strato.cli.script)
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="strato", prog_name="strato")
def cli() -> None:
    """strato: a hierarchical workload manager."""


def _cmd_name(argv: list[str]) -> str:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return ""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    name = _cmd_name(argv)
    prog = f"strato-{name}" if name in COMMANDS else "strato"
    from strato.core.errors import StratoError

    try:
        rc = cli.main(argv, prog_name="strato", standalone_mode=False)
    except click.exceptions.NoSuchOption as exc:
        click.echo(f"{prog}: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.UsageError as exc:
        click.echo(f"{prog}: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"{prog}: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except StratoError as exc:
        click.echo(f"{prog}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    from strato.cli.script import run

    run()
