"""sched-graph parses a job's jobspec from `match_text`: what the parser ignores
(commands, environment, files, user attributes) is left out, so jobs that differ
only there share one parse (and the matcher's subtree cache), while everything
the parser reads or checks still decides."""

from __future__ import annotations

import copy

import pytest

from strato.plugins.sched_graph.jobspec import JobspecError, match_text, parse_jobspec


def _spec(command, env=None, nodes=2, **system) -> dict:
    return {
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "exclusive": True, "with": [
            {"type": "slot", "count": 1, "label": "task",
             "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": command, "slot": "task", "count": {"total": 1}}],
        "attributes": {"system": {"duration": 0.0, "environment": env or {}, **system},
                       "user": {"tag": command[-1]}},
    }


def test_jobs_differing_only_in_what_the_parser_ignores_share_a_parse():
    a = _spec(["strato", "start", "python", "drv.py", "--path", "0.1"], {"A": "1"},
              files={"conf.json": {"data": "{}"}})
    b = _spec(["strato", "start", "python", "drv.py", "--path", "0.2"], {"B": "2"})
    assert match_text(a) == match_text(b)
    assert parse_jobspec(match_text(a)) is parse_jobspec(match_text(b))


def test_what_the_parser_reads_still_differs():
    base = _spec(["true"])
    assert match_text(base) != match_text(_spec(["true"], nodes=3))
    assert match_text(base) != match_text(_spec(["true"], queue="debug"))
    assert match_text(base) != match_text(_spec(["true"], constraints={"properties": ["x"]}))
    longer = copy.deepcopy(base)
    longer["attributes"]["system"]["duration"] = 60.0
    js = parse_jobspec(match_text(longer))
    assert js.duration == 60.0 and parse_jobspec(match_text(base)).duration == 0.0


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["tasks"][0].update(command="true"), '"command" value must be a sequence'),
    (lambda s: s["tasks"][0].pop("slot"), 'Key "slot" missing from task'),
    (lambda s: s["attributes"].update(other={}), 'Unknown key in "attributes"'),
    (lambda s: s.update(tasks={}), '"tasks" is not a sequence'),
])
def test_bad_jobspecs_fail_as_before(edit, message):
    spec = _spec(["true"])
    edit(spec)
    with pytest.raises(JobspecError, match=message):
        parse_jobspec(match_text(spec))
