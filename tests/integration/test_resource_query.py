"""strato resource-query: bad input gets one-line errors and leaves the graph as it was."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import corpus_path, needs_corpora

from strato.cli.resource_query import Options, run_session

FLUXION = corpus_path("fluxion")
pytestmark = needs_corpora
TINY = FLUXION / "grugs" / "tiny.graphml"
RQ = [sys.executable, "-m", "strato.cli.main", "resource-query"]

CORE = """version: 9999
resources:
  - type: slot
    count: 1
    label: default
    with:
      - type: core
        count: 1
tasks:
  - command: [ "app" ]
    slot: default
    count:
      per_slot: 1
attributes:
  system:
    duration: {duration}
"""
HUGE = CORE.replace("count: 1\n    label", "count: 100000\n    label")


def session(commands: str, tmp: Path, **opts) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    o = Options(load_file=str(TINY), disable_prompt=True, **opts)
    run_session(o, io.StringIO(commands + "\nquit\n"), out=out, stdout=io.StringIO(),
                stderr=err, cwd=str(tmp))
    return out.getvalue(), err.getvalue()


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "core.yaml").write_text(CORE.format(duration=3600))
    (tmp_path / "huge.yaml").write_text(HUGE.format(duration=3600))
    (tmp_path / "forever.yaml").write_text(CORE.format(duration=10**12))
    (tmp_path / "bad.yaml").write_text("resources: [\n")
    return tmp_path


def test_errors_leave_the_graph_unchanged(specs):
    probe = "match allocate core.yaml\nfind sched-now=allocated"
    clean, _ = session("match allocate core.yaml\n" + probe, specs)
    noisy = ("match allocate core.yaml\n"
             "match allocate_with_satisfiability huge.yaml\n"  # can never be satisfied
             "match allocate_orelse_reserve forever.yaml\n"  # past the planner's horizon
             "match allocate missing.yaml\n"       # no such file
             "match allocate bad.yaml\n"           # malformed jobspec
             "cancel 999\n"                        # unknown job
             "set-status /tiny0/nowhere down\n"    # unknown path
             "match\n")                            # malformed command
    out, err = session(noisy + probe, specs)

    def allocations(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if "[" in ln and ":x]" in ln]

    # the same resources are allocated, in the same order, as without the errors
    assert allocations(out) == allocations(clean)
    assert "Unsatisfiable request" in out
    lines = err.splitlines()
    assert "ERROR: can't open missing.yaml" in lines
    assert "cancel: ERROR: nonexistent job 999" in lines
    assert "ERROR: malformed command" in lines
    assert any(ln.startswith("match_allocate: ERROR: Jobspec error") for ln in lines)


@pytest.mark.parametrize("args,message", [
    (["-L", "/nonexistent.graphml"], "file does not exist"),
    (["-L", str(TINY), "-P", "nopolicy"], "unknown match policy: nopolicy"),
    (["-L", str(TINY), "-f", "xml"], "unknown format for --load-format: xml"),
    (["-L", str(TINY), "-F", "fancy"], "unknown format for --match-format: fancy"),
    (["-L", str(TINY), "-S", "XX"], "unknown subsystems: XX"),
    (["-L", str(TINY), "-T", "weird"], "unknown traverser policy: weird"),
    (["-L", "/etc/hostname", "-f", "jgf"], "strato-resource-query:"),
])
def test_bad_options(args, message):
    res = subprocess.run([*RQ, *args, "-d"], input="quit\n", capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1
    assert message in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr


def test_command_line_reproduces_a_golden_case(tmp_path):
    """The CLI path (options, stdin, -t file) on one case the in-process suite also runs."""
    cmds = (FLUXION / "commands/basics/cmds01.in").read_text()
    cmds = cmds.replace("@TEST_SRCDIR@/data/resource/", f"{FLUXION}/")
    out = tmp_path / "R.out"
    res = subprocess.run([*RQ, "-L", str(TINY), "-S", "CA", "-P", "high", "-t", str(out)],
                         input=cmds, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == (FLUXION / "expected/basics/001.R.out").read_text()


def test_rlite_format_is_the_r_lite_array(specs):
    import json as _json

    out, _ = session("match allocate core.yaml", specs, match_format="rlite")
    rlite = _json.loads(out.splitlines()[0])
    assert isinstance(rlite, list) and rlite[0]["children"] == {"core": "35"}
    full, _ = session("match allocate core.yaml", specs, match_format="rv1_nosched")
    assert _json.loads(full.splitlines()[0])["execution"]["R_lite"] == rlite
