"""exec-local: runs a job's tasks as real processes through this node's shell host.

With virtual nodes in R every task still runs on this machine, which is what
lets a laptop test a thousand-node layout with real processes.
"""

from __future__ import annotations

from strato.core.hookspecs import hookimpl
from strato.shell.host import ShellHost


class LocalExec:
    """Exec backend ``local`` (see module docstring)."""

    name = "local"

    def __init__(self, instance, config: dict) -> None:
        self.host = ShellHost(instance)

    def start(self, job) -> None:
        self.host.start(job)

    def kill(self, job, signum: int) -> None:
        self.host.kill(job, signum)

    def shutdown(self) -> None:
        self.host.kill_all()


@hookimpl
def exec_register_backends(register):
    register("local", LocalExec)
