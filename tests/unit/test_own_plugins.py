"""strato's own plugins are found without reading the installed distributions'
entry points (importlib.metadata costs a broker ~25 ms of its start-up), so the
table in core/plugins.py must say what pyproject.toml declares."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from strato.core.plugins import OWN_PLUGINS, builtin_plugins

ROOT = Path(__file__).resolve().parents[2]


def test_own_plugins_are_the_declared_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert OWN_PLUGINS == project["project"]["entry-points"]["strato.plugins"]


def test_the_whole_group_still_includes_them():
    installed = builtin_plugins()
    assert installed["sched-graph"] == OWN_PLUGINS["sched-graph"]
    assert set(OWN_PLUGINS) <= set(installed)
    assert "no-such-plugin" not in installed


def test_an_instance_starts_without_importlib_metadata():
    code = ("import sys\n"
            "from strato.core.plugins import make_plugin_manager\n"
            "make_plugin_manager({'sched': {'plugin': 'sched-graph'}})\n"
            "print('importlib.metadata' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
