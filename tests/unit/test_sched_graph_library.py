"""The graph library stands without the CLI: ``strato resource-query`` is a client of it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import pkgutil, sys
import strato.plugins.sched_graph as pkg
names = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
assert "resource_query" not in names, names
for name in names:
    __import__(f"strato.plugins.sched_graph.{name}")
print(len(names), sorted(m for m in sys.modules if m.startswith("strato.cli")))
"""


def test_no_module_of_the_graph_library_imports_the_cli():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert int(out[0]) >= 15  # every module was imported
    assert out[1].strip() == "[]"
