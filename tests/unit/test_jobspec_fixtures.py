"""The project's own jobspec fixtures (tests/data/jobspec): jobspec parsing,
validation and summaries keep real coverage on a fresh clone, where the external
conformance corpora are absent and their tests skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from strato.jobspec import JobspecError, JobspecV1, summarize

DATA = Path(__file__).resolve().parents[1] / "data" / "jobspec"

VALID = {
    "one_task": (1, None, 1, 1, 0, 0.0),
    "nodes_gpus": (16, 4, 8, 4, 1, 3600.0),
}
INVALID = {
    "version_wrong": "version: must be 1",
    "no_tasks": "tasks: is required",
    "slot_label_unknown": "tasks[0].slot: must name the slot label 'task'",
    "count_zero": "resources[0].count: must be an integer >= 1",
    "duration_negative": "attributes.system.duration: must be a number >= 0",
}


def test_every_fixture_is_named_here():
    """A fixture added to tests/data without an expectation would test nothing."""
    assert sorted(p.stem for p in (DATA / "valid_v1").glob("*.yaml")) == sorted(VALID)
    assert sorted(p.stem for p in (DATA / "invalid_v1").glob("*.yaml")) == sorted(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_fixture_summary(name):
    js = JobspecV1.from_yaml_file(DATA / "valid_v1" / f"{name}.yaml")
    s = summarize(js.jobspec)
    got = tuple(s[k] for k in ("ntasks", "nnodes", "nslots", "cores_per_slot",
                               "gpus_per_slot", "duration"))
    assert got == VALID[name]
    assert JobspecV1.from_json(js.dumps()) == js  # and it round-trips through JSON


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_message(name):
    with pytest.raises(JobspecError) as exc:
        JobspecV1.from_yaml_file(DATA / "invalid_v1" / f"{name}.yaml")
    assert str(exc.value) == INVALID[name]
