"""``-o output.limit=SIZE``: a job's output kept in the KVS is bounded per stream,
with one warning line; output to files is not; bad sizes are refused at
submission; and a job printing far more than its limit no longer grows the
broker by what it prints."""

from __future__ import annotations

import sys

import pytest

import strato
from strato import instance as instance_api
from strato import job
from strato.core.errors import RPCError

PY = sys.executable
WARNING = ("strato-shell: {stream} reached output.limit={limit}; the rest of it is dropped"
           " (use --output=FILE to keep it all)")


def _kept(h, jobid) -> dict[str, str]:
    """What the KVS holds of each stream of a job's output."""
    out = {"stdout": "", "stderr": ""}
    for e in job.eventlog(h, jobid, "output"):
        if e["name"] == "data":
            out[e["context"]["stream"]] += e["context"]["data"]
    return out


def test_stdout_is_kept_up_to_the_limit_with_one_warning(instance):
    code = "import sys; sys.stdout.write('x' * 200000); sys.stderr.write('fine')"
    res = instance.strato("run", "-o", "output.limit=64k", PY, "-c", code, check=True)
    assert res.stdout == "x" * 65536
    assert res.stderr.splitlines() == ["fine", WARNING.format(stream="stdout", limit="64K")] \
        or res.stderr.splitlines() == [WARNING.format(stream="stdout", limit="64K"), "fine"]
    jobid = job.list_jobs(instance.handle(), states=job.STATES["INACTIVE"])[0]["id"]
    kept = _kept(instance.handle(), jobid)
    assert kept["stdout"] == "x" * 65536
    assert kept["stderr"].count("reached output.limit") == 1


def test_tasks_share_their_streams_limit_and_stderr_has_its_own(instance):
    code = "import sys; print('o' * 999); sys.stderr.write('e' * 3000)"
    res = instance.strato("run", "-n2", "-o", "output.limit=1k", PY, "-c", code, check=True)
    assert len(res.stdout) == 1024  # two tasks' 1000 bytes each, 1k in all
    err = res.stderr.splitlines()
    assert WARNING.format(stream="stdout", limit="1K") in err
    assert WARNING.format(stream="stderr", limit="1K") in err
    assert sum(len(line) for line in err if line.startswith("e")) == 1024


def test_output_to_a_file_is_not_limited(instance, tmp_path):
    out = tmp_path / "out.txt"
    instance.strato("run", "-o", "output.limit=10", f"--output={out}", PY, "-c",
                    "print('y' * 100000)", check=True)
    assert out.read_text() == "y" * 100000 + "\n"


@pytest.mark.parametrize("value", ["0", "2G", "x", "-1", "1.5MB"])
def test_a_bad_limit_is_refused_at_submission(instance, value):
    res = instance.strato("submit", "-o", f"output.limit={value}", "true")
    shown = repr(int(value)) if value.lstrip("-").isdigit() else repr(value)
    assert (res.returncode, res.stderr.splitlines(), res.stdout) == (1, [
        "strato-submit: attributes.system.shell.options.output.limit: must be a size from"
        f" 1 to 1G such as \"10M\" (got {shown})"], "")
    assert job.list_jobs(instance.handle(), states=0x7F) == []


def test_python_api_refuses_a_bad_limit(instance):
    js = strato.JobspecV1.from_command(["true"])
    js.setattr("system.shell.options.output.limit", 0)
    with pytest.raises(RPCError, match="output.limit: must be a size"):
        job.submit(instance.handle(), js)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_job_printing_60MB_does_not_grow_the_broker_by_it(instance):
    """Without the limit the broker keeps all 60 MB (it grows by more than that);
    with a 1M limit it keeps 1M, and grows by a few MB at most."""
    h = instance.handle()
    pid = instance_api.info(h)["pid"]
    before = _rss_kb(pid)
    code = "import sys; sys.stdout.write(('z' * 1023 + '\\n') * 60000)"
    res = instance.strato("run", "-o", "output.limit=1M", PY, "-c", code, check=True,
                          timeout=300)
    assert len(res.stdout) == 1 << 20
    growth_mb = (_rss_kb(pid) - before) / 1024
    assert growth_mb < 20, f"broker grew by {growth_mb:.1f} MB"
