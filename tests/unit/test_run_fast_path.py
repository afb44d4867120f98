"""``strato run CMD...`` without options runs without click (strato.cli.runjob): its
options must be exactly what click gives the same command line."""

from __future__ import annotations

from strato.cli.cmd_submit import run
from strato.cli.submitopts import JOB_OPTIONS, RUN_OPTIONS, TASK_OPTIONS, Option, defaults


def test_defaults_are_clicks():
    ctx = run.make_context("run", ["true", "-n", "2"])
    params = dict(ctx.params)
    assert params.pop("command") == ("true", "-n", "2")  # all of it is the command
    assert params.pop("option_order") == ["command"]  # no option, whose order would matter
    mine = defaults(JOB_OPTIONS + TASK_OPTIONS + RUN_OPTIONS)
    assert mine.pop("option_order") == []
    assert mine == params


def test_option_names_follow_clicks_rule():
    assert Option(("-N", "--nodes"), {}).name == "nodes"
    assert Option(("--dry-run", "--dry", "dry_run"), {}).name == "dry_run"
    assert Option(("-x",), {"is_flag": True}).name == "x"
    assert Option(("--env-remove",), {"multiple": True}).default == ()
    assert Option(("-v", "--verbose"), {"count": True}).default == 0
    assert Option(("--urgency",), {"default": "16"}).default == "16"
