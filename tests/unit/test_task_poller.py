"""The shell host's TaskPoller (strato.shell.spawn): the tasks' pipes and exits in one
epoll, with real pipes and processes."""

from __future__ import annotations

import asyncio
import os
import subprocess

from strato.shell.spawn import TaskPoller


def test_a_closed_pipe_is_not_reported_while_a_child_holds_a_copy():
    """close_fd takes the pipe out of the epoll even when another process holds a
    copy of it, as a task just spawned does until its close-on-exec: its end was
    otherwise reported on every poll, to whatever pipe took its number next."""

    async def main() -> None:
        poller = TaskPoller(asyncio.get_running_loop())
        r, w = os.pipe2(os.O_CLOEXEC)
        poller.watch(r, lambda events: None)
        holder = subprocess.Popen(["sleep", "60"], pass_fds=[r])
        try:
            os.close(w)  # the pipe's end: its reader is ready
            poller.close_fd(r)
            r2, w2 = os.pipe2(os.O_CLOEXEC)
            assert r2 == r  # the number is used again, as in the shell host
            seen: list[int] = []
            poller.watch(r2, seen.append)
            poller._ready()
            assert seen == []  # empty, its writer open: nothing to report
            os.write(w2, b"x")
            poller._ready()
            assert len(seen) == 1
            poller.close_fd(r2)
            os.close(w2)
        finally:
            holder.kill()
            holder.wait()
            poller.close()

    asyncio.run(main())
