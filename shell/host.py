"""The shell host: one long-lived per node, running each job's shell as a coroutine.

No new Python interpreter starts for a job: the host is part of the node's broker,
spawns tasks with one ``posix_spawn`` each, and reaps them from one SIGCHLD handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from strato.shell.shell import JobShell
from strato.shell.spawn import Reaper, spawn

log = logging.getLogger("strato.shell-host")


class ShellHost:
    """Starts, signals and reports on the job shells of one node."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.loop = asyncio.get_running_loop()
        self.hook = instance.pm.hook
        self.reaper: Reaper = instance.reaper
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.shells: dict[int, JobShell] = {}
        self.spawn = spawn

    def start(self, job) -> None:
        shell = JobShell(self, job)
        self.shells[job.id] = shell
        self.loop.create_task(self._run(shell))

    async def _run(self, shell: JobShell) -> None:
        job = shell.job
        try:
            status = await shell.run()
        except Exception as exc:
            log.exception("job shell failed")
            try:
                shell.write_output("stderr", 0, f"strato-shell: {exc}\n")
                self.instance.jobs.raise_exception(job, "exec", 0, f"job shell: {exc}")
            except Exception:
                pass
            status = 1 << 8
        finally:
            shell.cleanup()
        self.shells.pop(job.id, None)
        self.instance.jobs.exec_finished(job, status)

    def kill_all(self) -> None:
        """SIGKILL every task of every job (the instance is shutting down)."""
        for shell in list(self.shells.values()):
            shell.kill(signal.SIGKILL)

    def kill(self, job, signum: int) -> None:
        shell = self.shells.get(job.id)
        if shell is not None:
            shell.kill(signum)
