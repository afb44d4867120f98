"""The optional extras stay out of the CLI's way: urwid (``strato top``) and
matplotlib (``--plot``) are imported only by the commands that draw, so every
other command starts as fast without them."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["--help"], ["top", "--help"], ["report", "--help"],
                                  ["job", "timeline", "--help"], ["jobs", "--help"]])
def test_commands_do_not_import_the_drawing_libraries(argv):
    code = ("import sys; from strato.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('urwid', 'matplotlib', 'numpy') if m in sys.modules]\n"
            "print(bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stderr
