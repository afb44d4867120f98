"""``strato jobs --stats`` and ``--stats-only`` as Flux's flux-jobs(1): the line
``N running, N completed, N failed, N pending, N inactive purged`` (failed counts
canceled and timed-out jobs too), of one queue's jobs with ``--queue``; with
``--stats-only`` nothing else, and exit 1 when no job is active, so that ``while
strato jobs --stats-only; do sleep 1; done`` waits for the queue to empty."""

from __future__ import annotations

import pytest

CONFIG = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-1]"
cores = "0-3"
[queues.a]
[queues.b]
"""
HOUR = "--setattr=system.exec.test.run_duration=1h"


@pytest.fixture
def queues(make_instance):
    return make_instance(config=CONFIG)


def stats_only(inst, *args: str) -> tuple[int, str]:
    res = inst.strato("jobs", "--stats-only", *args)
    assert res.stderr == ""
    return res.returncode, res.stdout


def test_stats_lines_by_queue_and_exit_status(queues):
    s = queues.strato
    assert stats_only(queues) == (
        1, "0 running, 0 completed, 0 failed, 0 pending, 0 inactive purged\n")
    running = s("submit", "-q", "a", HOUR, "sleep", check=True).stdout.strip()
    s("run", "-q", "a", "true", check=True)
    held = s("submit", "-q", "b", "--urgency=0", "true", check=True).stdout.strip()
    s("job", "wait-event", "-q", running, "start", check=True)

    assert stats_only(queues) == (
        0, "1 running, 1 completed, 0 failed, 1 pending, 0 inactive purged\n")
    assert stats_only(queues, "--queue", "a") == (
        0, "1 running, 1 completed, 0 failed, 0 pending, 0 inactive purged\n")
    # every other option is ignored, as Flux does
    assert stats_only(queues, "-q", "b", "-a", "-o", "{id}") == (
        0, "0 running, 0 completed, 0 failed, 1 pending, 0 inactive purged\n")
    assert stats_only(queues, "-q", "nosuch") == (
        1, "0 running, 0 completed, 0 failed, 0 pending, 0 inactive purged\n")

    # --stats: the line, then the listing as usual
    out = s("jobs", "--stats", "-q", "a", "-a", "-n", "-o", "{name}", check=True).stdout
    assert out.splitlines() == [
        "1 running, 1 completed, 0 failed, 0 pending, 0 inactive purged", "true", "sleep"]

    s("cancel", running, held, check=True)
    s("job", "wait", running)
    assert stats_only(queues) == (
        1, "0 running, 1 completed, 2 failed, 0 pending, 0 inactive purged\n")
    assert stats_only(queues, "-q", "b") == (
        1, "0 running, 0 completed, 1 failed, 0 pending, 0 inactive purged\n")
