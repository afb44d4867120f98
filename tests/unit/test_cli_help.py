"""Every strato command and option has help text, and strato help CMD [SUB] prints
exactly what strato CMD [SUB] --help prints."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from strato.cli.main import COMMANDS, cli


def _walk(cmd: click.Command, path: tuple[str, ...], ctx: click.Context):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            yield from _walk(cmd.get_command(ctx, name), (*path, name), ctx)


ALL = list(_walk(cli, (), click.Context(cli)))
PATHS = [path for path, _ in ALL if path]


def test_walk_sees_every_command_and_the_groups_subcommands():
    top = {path[0] for path in PATHS}
    assert top == set(COMMANDS)
    assert ("job", "eventlog") in PATHS and ("queue", "stop") in PATHS
    assert ("config", "reference") in PATHS and ("kvs", "put") in PATHS


def test_every_command_has_help_text():
    missing = [" ".join(path) for path, cmd in ALL if not (cmd.help or "").strip()]
    assert missing == []


def test_every_option_has_help_text():
    missing = [f"strato {' '.join(path)} {'/'.join(p.opts)}"
               for path, cmd in ALL for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert missing == []


def test_the_short_help_in_the_command_list_is_set_for_every_command():
    assert all(entry[2].strip() for entry in COMMANDS.values())


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_strato_help_prints_what_dash_dash_help_prints(path):
    runner = CliRunner()
    direct = runner.invoke(cli, [*path, "--help"], prog_name="strato",
                             env={"COLUMNS": "100"})
    via_help = runner.invoke(cli, ["help", *path], prog_name="strato",
                             env={"COLUMNS": "100"})
    assert direct.exit_code == 0, direct.output
    assert via_help.exit_code == 0, via_help.output
    assert via_help.output == direct.output
    assert direct.output.startswith(f"Usage: strato {' '.join(path)} ")


def test_strato_help_alone_lists_every_command():
    out = CliRunner().invoke(cli, ["help"], prog_name="strato").output
    assert out == CliRunner().invoke(cli, ["--help"], prog_name="strato").output
    listed = out.split("Commands:", 1)[1]
    for name in COMMANDS:
        assert f"\n  {name} " in listed


def _strato(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "strato", *args],
                          capture_output=True, text=True, timeout=60)


def test_help_of_an_unknown_command_is_one_line_and_fails():
    r = _strato("help", "nosuch")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == "strato-help: no such command 'nosuch' (see strato help)\n"


def test_help_of_an_unknown_subcommand_names_the_group():
    r = _strato("help", "job", "nosuch")
    assert r.returncode == 2
    assert r.stderr == "strato-help: no such command 'nosuch' in 'strato job' (see strato help)\n"


def test_help_of_a_subcommand_of_a_plain_command_fails():
    r = _strato("help", "submit", "extra")
    assert r.returncode == 2
    assert r.stderr == "strato-help: 'strato submit' has no subcommands (no 'extra')\n"


def test_help_in_a_real_process_matches_dash_dash_help():
    assert _strato("help", "job", "raise").stdout == _strato("job", "raise", "--help").stdout
    assert "--severity INTEGER RANGE" in _strato("help", "job", "raise").stdout
