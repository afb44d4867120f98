"""``python -m strato``: the strato command, for where ``strato`` is not on PATH."""

from strato.cli.script import run

run()
