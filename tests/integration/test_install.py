"""The installed layout: strato.<part> only, no top-level core/shell/cli modules."""

from __future__ import annotations

import subprocess
import sys


def test_layout_from_outside_the_repo(tmp_path):
    code = (
        "import importlib.util, strato, strato.core, strato.plugins, strato.jobspec, "
        "strato.shell, strato.cli\n"
        "print([m for m in ('core', 'plugins', 'jobspec', 'shell', 'cli') "
        "if importlib.util.find_spec(m) is not None])\n"
        "print(strato.core.__file__)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    top, core_file = res.stdout.splitlines()
    assert top == "[]"
    assert core_file.endswith("core/__init__.py")


def test_console_script_entry_point(tmp_path):
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert eps["strato"] == "strato.cli.script:run"
    plugins = {ep.name for ep in entry_points(group="strato.plugins")}
    assert {"sched-simple", "exec-local", "exec-sim", "ingest-basic",
            "job-priority-default"} <= plugins
