"""strato config reference: generated from the declarations, so it lists every key
the core and every installed plugin declare, with its default and accepted values."""

from __future__ import annotations

import re

from click.testing import CliRunner

from strato.cli.cmd_config import config_reference
from strato.cli.main import cli
from strato.core.config import (
    Registered,
    declare_core,
    describe_check,
    duration,
    integer,
    one_of,
    strings,
)
from strato.core.plugins import declared_keys, installed_plugin_manager, show_value


def _sections(text: str) -> dict[tuple[str, str], list[str]]:
    """(plugin, table) -> the table rows under it."""
    out: dict[tuple[str, str], list[str]] = {}
    plugin = table = None
    for line in text.splitlines():
        if line.startswith("## "):
            m = re.match(r"## Plugin `(.+)`", line)
            plugin = m.group(1) if m else "core"
        elif line.startswith("### "):
            table = re.match(r"### `\[(.+)\]`", line).group(1)
        elif line.startswith("| `"):
            out.setdefault((plugin, table), []).append(line)
    return out


def test_every_declared_key_has_a_row_with_its_default():
    text = config_reference()
    sections = _sections(text)
    keys = declared_keys(installed_plugin_manager({}), core=declare_core)
    assert len(keys) > 30
    for k in keys:
        table = k.table.replace("*", "NAME")
        rows = [r for r in sections[(k.plugin, table)] if r.startswith(f"| `{k.key}` |")]
        assert len(rows) == 1, (k.plugin, table, k.key)
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        default = "(none)" if k.default is None else f"`{show_value(k.default)}`"
        assert cells[1] == default
        assert cells[3] == k.help.replace("``", "`")
    assert sum(len(rows) for rows in sections.values()) == len(keys)


def test_known_keys_read_as_expected():
    sections = _sections(config_reference())
    (kill,) = [r for r in sections[("core", "exec")] if "`kill-timeout`" in r]
    assert kill.startswith("| `kill-timeout` | `5.0` | A duration")
    (depth,) = [r for r in sections[("sched-graph", "sched-graph")] if "`queue-depth`" in r]
    assert "| `32` | An integer >= 1. |" in depth
    (sched,) = sections[("core", "sched")]
    assert "Installed: `sched-graph`, `sched-simple`." in sched
    assert ("core", "queues.NAME.policy.limits") in sections


def test_plugin_sections_say_how_to_load_the_plugin():
    text = config_reference()
    assert 'load it with `[plugins] load = ["ingest-require"]`' in text
    assert "Declared by the `exec-sim` plugin, loaded by default" in text


def test_describe_check_gives_words_for_every_kind_of_check():
    assert describe_check(None) == "Any value."
    assert describe_check(strings) == "A list of strings."
    assert describe_check(integer(1)) == "An integer >= 1."
    assert describe_check(integer()) == "An integer."
    assert describe_check(one_of("x", ["b", "a"])) == "One of: a, b."
    assert describe_check(duration).startswith("A duration: seconds")
    assert describe_check(Registered("scheduler", "sched_register_schedulers")) == \
        "Name of a registered scheduler (by a loaded plugin, through " \
        "``sched_register_schedulers``)."


def test_the_command_prints_the_reference():
    r = CliRunner().invoke(cli, ["config", "reference"], prog_name="strato")
    assert r.exit_code == 0
    assert r.output == config_reference()
