"""A --test-size start that cannot fork all its brokers ends the ones it forked."""

from __future__ import annotations

import errno
import os
import time

import pytest

from strato.core import peer
from strato.core.bootstrap import for_test
from strato.core.errors import ConfigError


def test_a_fork_that_fails_ends_the_brokers_already_forked(tmp_path, monkeypatch):
    """The third fork fails (EAGAIN, as under a process limit): one line naming the
    rank, and the two brokers forked before it are killed and reaped, not left
    waiting for a parent that never starts."""
    real_fork, forked = os.fork, []

    def fork() -> int:
        if len(forked) == 2:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        pid = real_fork()
        if pid == 0:  # stands for a broker: it would wait for rank 0 this long
            time.sleep(60)
            os._exit(0)
        forked.append(pid)
        return pid

    monkeypatch.setattr(peer.os, "fork", fork)
    boot = for_test(4, {}, None, "")
    with pytest.raises(ConfigError, match="cannot start broker rank 3: Resource "
                                          "temporarily unavailable"):
        peer.fork_test_brokers(boot, tmp_path, {})
    for pid in forked:
        with pytest.raises(ChildProcessError):  # reaped already
            os.waitpid(pid, os.WNOHANG)
