"""The text of ``strato top``'s summary pane, from made-up answers (the screen
itself is driven in a terminal by tests/integration/test_top.py)."""

from __future__ import annotations

import strato
from strato.cli.top import Snapshot, bar, summary_lines
from strato.instance import InstanceInfo

STATS = {"job_states": {"new": 0, "depend": 1, "priority": 0, "sched": 2, "run": 3,
                        "cleanup": 1, "inactive": 9, "total": 16},
         "successful": 5, "failed": 1, "canceled": 2, "timeout": 1, "inactive_purged": 0}


def row(ranks, ncores, ngpus=0):
    return {"ranks": ranks, "ncores": ncores, "ngpus": ngpus, "nnodes": len(ranks)}


# 10 nodes x 4 cores: 4 allocated, 2 down, 4 free
STATUS = {"allocated": row([0, 1, 2, 3], 16, 2), "down": row([8, 9], 8),
          "free": row([4, 5, 6, 7], 16, 6), "drained": {}}


def test_bar_fills_used_from_the_left_and_down_from_the_right():
    assert bar(4, 2, 10, width=10) == "[||||    xx]"
    assert bar(0, 0, 0, width=4) == "[    ]"
    assert bar(10, 0, 10, width=4) == "[||||]"
    assert bar(9, 9, 10, width=4) == "[||||]"  # never wider than the bar


def test_summary_lines_counts_resources_and_jobs():
    snap = Snapshot(InstanceInfo.from_answers("local:///x", STATS, STATUS), [], 10, 150.0)
    lines = summary_lines(snap, "ƒA/ƒB", 2, 1000.0 + 90, now=1000.0)
    assert lines[0] == "ƒA/ƒB" + " " * 59 + "expires 1.5m"
    assert lines[1:5] == [
        "nodes [||||||||||||            xxxxxx]    4/10   2 down          3 pending",
        "cores [||||||||||||            xxxxxx]   16/40   8 down          4 running",
        " gpus [||||||||                      ]    2/8                    5 completed",
        # failed counts canceled and timed-out jobs too
        " " * 65 + "4 failed"]
    assert lines[5] == f"size 10  depth 2  uptime 2.5m  strato {strato.__version__}"
    folded = summary_lines(snap, "", 0, None, split_inactive=False, queue="debug")
    assert folded[0].startswith(".  queue debug") and folded[0].endswith(" expires ∞")
    assert folded[3].endswith("     9 inactive") and len(folded) == 5
