"""The example workflows `make demo` runs, run here as a user would, so a change
that breaks them fails the suite (the hierarchy of issue 9 end to end)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO


def test_hierarchical_workflows_conventional_emerging_coupling(make_instance):
    inst = make_instance(config=(REPO / "examples" / "demo.toml").read_text())
    out = subprocess.run(["sh", str(REPO / "examples" / "hierarchy" / "coupling.sh")],
                         env=inst.env, capture_output=True, text=True, timeout=120,
                         cwd=inst.tmp)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # conventional: 64 tasks over the 16 nodes of a child at level 1
    assert "app: 64 tasks over 16 nodes, at instance level 1" in text
    # emerging: each sub-instance ran all its jobs
    assert "docking: 600 COMPLETED" in text
    assert "md+analysis: 200 analysis:COMPLETED 200 md:COMPLETED" in text
    # coupling: the retrain batch job reached the AI instance by URI, two levels down
    assert re.search(r"ai instance: job ƒ\w+/ƒ\w+ at local://", text)
    assert "retrain: new model trained at instance level 3" in text
    assert "ai: 100 infer:COMPLETED 1 retrain:COMPLETED; model v2" in text
    # Python: JobExecutors spread jobs over three child instances
    assert "executors: 300/300 jobs completed over 3 child instances (100, 100, 100)" in text
    # the top instance saw the instance jobs, all complete
    jobs = inst.strato("jobs", "-a", "-n", "-o", "{name} {result}", check=True).stdout
    assert sorted(jobs.split("\n")[:-1]) == ["batch COMPLETED", "emerging COMPLETED"] \
        + ["leaf COMPLETED"] * 3


def _run_example(inst, name: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "examples" / name)], env=inst.env,
                         capture_output=True, text=True, timeout=150, cwd=inst.tmp)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_psij_example(make_instance):
    pytest.importorskip("psij", reason="psij-python is not installed (pip install "
                                       "'strato[psij]')")
    inst = make_instance(config=(REPO / "examples" / "demo.toml").read_text())
    assert _run_example(inst, "psij_example.py").splitlines() == [
        "psij: hello COMPLETED (exit code 0)",
        "psij: fails FAILED (exit code 3)",
        "psij: too-long FAILED (timeout: resource allocation expired)",
        "psij: canceled CANCELED (cancel: canceled through PSI/J)",
        "psij: states of hello: QUEUED ACTIVE COMPLETED",
        "psij: refused: queue 'gpu' does not exist (no queues are configured)",
    ]


@pytest.mark.timeout(180)
def test_parsl_example(make_instance):
    pytest.importorskip("parsl", reason="parsl is not installed (pip install 'strato[parsl]')")
    inst = make_instance(config=(REPO / "examples" / "demo.toml").read_text())
    assert _run_example(inst, "parsl_example.py") == (
        "parsl: sum of squares 0..99 = 328350, computed in 1 block(s) run as strato jobs\n")
    # the block was a strato job, canceled by Parsl when the workflow was done
    jobs = inst.strato("jobs", "-a", "-n", "-o", "{name} {result}", check=True).stdout
    assert jobs == "parsl.htex.block-0 CANCELED\n"
