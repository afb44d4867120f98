"""Spawning processes and reaping them.

Spawning is a single ``posix_spawn`` into a new process group (so a job's tasks
can be signalled as a group); there is no thread per child and no Python in the
child. The call returns once the child has exec'd: typically 50 us here, with a
tail of some hundreds when the child starts on an idle CPU; a spawning thread
was measured to cost more than that wait (docs/performance.md).

Two ways to learn of exits: the shell host watches its tasks through `TaskPoller`
(a pidfd each, in one epoll of its own); a broker, whose children are few (its
shell host, a forked peer), uses one `Reaper` per process, which handles SIGCHLD,
collects every exited child with ``waitpid(-1, WNOHANG)`` and calls the callback
registered for that pid.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
from collections.abc import Callable


class Reaper:
    """Dispatch child exit statuses to callbacks (see module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self._early: dict[int, int] = {}
        loop.add_signal_handler(signal.SIGCHLD, self.reap)

    def watch(self, pid: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(waitstatus)`` when `pid` exits."""
        status = self._early.pop(pid, None)
        if status is not None:
            callback(status)
        else:
            self.callbacks[pid] = callback

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            cb = self.callbacks.pop(pid, None)
            if cb is None:
                self._early[pid] = status
            else:
                cb(status)

    def close(self) -> None:
        self.loop.remove_signal_handler(signal.SIGCHLD)


class TaskPoller:
    """The tasks' output pipes and exits, watched through one epoll of its own.

    The event loop watches this epoll's descriptor, not every pipe: asyncio's
    ``add_reader``/``remove_reader`` cost a handle, two selector look-ups and a
    KeyError each, and two pipes per task made them a fifth of a short job's
    cost in the shell host. Level-triggered: a pipe not read to its end is
    reported again on the next turn.

    A task's exit is seen through a pidfd in the same epoll, not SIGCHLD: no
    signal, wakeup byte and extra loop turn per task, and a task's exit and the
    end of its output usually come in one poll. The process must reap only
    the children it watches here (the shell host spawns nothing else).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 wrap: Callable[[Callable[[], None]], None] | None = None) -> None:
        """`wrap`, if given, runs each poll's callbacks, as ``wrap(dispatch)``: the
        shell host sends what they produced at their end (`ShellHost._batch`)."""
        self.loop = loop
        self.epoll = select.epoll()
        self.callbacks: dict[int, Callable[[int], None]] = {}
        if wrap is None:
            loop.add_reader(self.epoll.fileno(), self._ready)
        else:
            loop.add_reader(self.epoll.fileno(), wrap, self._ready)

    def watch(self, fd: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(events)`` while `fd` has something to read (or its end).

        `events` is the epoll mask: for a pipe, ``EPOLLHUP`` alone says that the
        writers have closed it and nothing is left, so its reader knows the end
        without a read that returns nothing."""
        self.epoll.register(fd, select.EPOLLIN)
        self.callbacks[fd] = callback

    def close_fd(self, fd: int) -> None:
        """Stop watching `fd` and close it.

        Closing alone would not do: the epoll drops a file when its last
        descriptor goes, and a task just spawned may still hold a copy of every
        descriptor here (``posix_spawn`` returns once the child has replaced its
        memory, before it closes its close-on-exec descriptors). The file's entry
        then stayed, reporting a closed pipe's end on every poll (tens of wakeups
        per job under load) under a number that a new pipe may have taken.
        """
        del self.callbacks[fd]
        self.epoll.unregister(fd)
        os.close(fd)

    def watch_exit(self, pid: int, callback: Callable[[int], None]) -> None:
        """Reap `pid` when it exits and call ``callback(waitstatus)``."""
        fd = os.pidfd_open(pid)

        def exited(_events: int) -> None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                done, status = pid, 255 << 8
            if not done:  # still running: never make up an exit status of 0
                return
            self.close_fd(fd)
            callback(status)

        self.watch(fd, exited)

    def _ready(self) -> None:
        callbacks = self.callbacks
        for fd, events in self.epoll.poll(0):
            callback = callbacks.get(fd)
            if callback is not None:  # not forgotten by an earlier callback of this turn
                callback(events)

    def close(self) -> None:
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()


def release_signals(loop: asyncio.AbstractEventLoop, *signums: int) -> None:
    """Take back `signums` from `loop` (their handlers removed, each then ignored)
    before the loop closes.

    asyncio's loop closes its self-pipe *before* it removes its signal handlers, so a
    signal arriving in between (SIGCHLD from a task just killed, a second SIGTERM) has
    Python write to a closed wakeup fd: "Exception ignored when trying to write to the
    signal wakeup fd: ... Bad file descriptor" on stderr. Once the last handler is
    removed here, the wakeup fd is unset while the pipe is still open. The process is
    ending: a late SIGTERM or SIGHUP is ignored rather than killing its last steps.
    """
    for signum in signums:
        loop.remove_signal_handler(signum)
        if signum not in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)


_which_cache: dict[tuple[str, str], str | None] = {}


def resolve(command: str, path: str | None) -> str | None:
    """Find `command` on the job's PATH (not the shell host's), cached."""
    if "/" in command:
        return command
    key = (command, path or "")
    found = _which_cache.get(key)
    if found is None or not os.access(found, os.X_OK):
        # misses are not cached: a program installed later is found then
        found = shutil.which(command, path=path or os.defpath)
        if found is not None and os.path.isabs(found):
            _which_cache[key] = found
    return found


def spawn(argv: list[str], env: dict[str, str], cwd: str | None,
          stdin: int, stdout: int, stderr: int, rlimits: list[tuple[int, int]] = (),
          fds: list[tuple[int, int]] = ()) -> int:
    """posix_spawn `argv` in a new process group with the given fds; returns the pid.

    `rlimits` are (RLIMIT_x, soft limit) pairs the child starts with; `fds` are
    (descriptor here, number in the child) pairs of further descriptors the child
    gets (its PMI socket), each a number above 2 that no other pair names. Raises
    OSError (with the reason) if the program cannot be found or started.
    """
    if rlimits:
        return _with_rlimits(rlimits, spawn, argv, env, cwd, stdin, stdout, stderr, (), fds)
    exe = resolve(argv[0], env.get("PATH"))
    if exe is None:
        raise FileNotFoundError(2, "No such file or directory", argv[0])
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
               (os.POSIX_SPAWN_DUP2, stderr, 2)]
    if not fds:  # most tasks: no PMI socket
        return _spawn(exe, argv, env, cwd, actions)
    # dup2 onto itself would leave close-on-exec set: such a descriptor is copied first
    moved = [os.dup(src) if src == target else None for src, target in fds]
    actions += [(os.POSIX_SPAWN_DUP2, src if m is None else m, target)
                for (src, target), m in zip(fds, moved, strict=True)]
    try:
        return _spawn(exe, argv, env, cwd, actions)
    finally:
        for fd in moved:
            if fd is not None:
                os.close(fd)


def _spawn(exe: str, argv: list[str], env: dict[str, str], cwd: str | None,
           actions: list) -> int:
    if not cwd:
        return os.posix_spawn(exe, argv, env, file_actions=actions, setpgroup=0,
                              setsigdef=_SIGDEF)
    # posix_spawn has no chdir action before Python 3.13; the shell host is one
    # thread, so changing its directory around the spawn is safe and costs two syscalls.
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return os.posix_spawn(exe, argv, env, file_actions=actions, setpgroup=0,
                              setsigdef=_SIGDEF)
    finally:
        os.chdir(here)


def _with_rlimits(rlimits, fn, *args) -> int:
    """Run `fn` with this process's soft limits set as given, then restore them.

    posix_spawn has no rlimit action and a child inherits its parent's limits; the
    shell host is one thread, so a set-spawn-restore window affects no one else.
    A limit already in force is left alone (jobs carry all the submitter's limits,
    as with Flux, and most are the same here); one above this process's hard limit
    is lowered to it, as Flux's shell goes on when it cannot raise a limit.
    """
    import resource

    saved = []
    try:
        for res, soft in rlimits:
            old = resource.getrlimit(res)
            hard = old[1]
            if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY
                                                   or soft > hard):
                soft = hard
            if soft == old[0]:
                continue
            resource.setrlimit(res, (soft, hard))
            saved.append((res, old))
        return fn(*args)
    finally:
        for res, old in reversed(saved):
            resource.setrlimit(res, old)


_SIGDEF = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE, signal.SIGHUP)
