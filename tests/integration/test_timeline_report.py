"""``strato report`` and ``strato job timeline`` over a real instance of 16
virtual nodes x 4 cores: the numbers, the text timeline, the pictures (valid
PNGs that are not blank), the data behind them (`strato.timeline.build`)
checked against each job's own R and eventlog, and their bad input."""

from __future__ import annotations

import struct

import pytest

import strato
from strato.core.resource import nodes_from_R

pytest.importorskip("matplotlib", reason="the pictures need matplotlib (strato[plot])")
HOUR = "--setattr=system.exec.test.run_duration=1h"


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG, after checking its signature and first chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


def colours(path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return len(img.convert("RGB").getcolors(maxcolors=1 << 20) or ())


def one_line_error(res, code: int = 1) -> str:
    assert res.returncode == code and res.stdout == "", (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_report_and_timeline_of_jobs_that_ran(sim_instance, tmp_path):
    inst = sim_instance
    s = inst.strato
    # nothing has run: nothing to report, and no picture is written
    assert one_line_error(s("report", "--plot", str(tmp_path / "none.png"))) == \
        "strato-report: no job has run in this instance: nothing to report"
    assert not (tmp_path / "none.png").exists()

    wide = s("submit", "--cc=1-2", "-N2", "--job-name=wide", HOUR, "sleep",
             check=True).stdout.split()
    small = s("submit", "-n3", "--job-name=small", HOUR, "sleep", check=True).stdout.strip()
    held = s("submit", "--urgency=0", "--job-name=held", "true", check=True).stdout.strip()
    ran = [*wide, small]
    for jobid in ran:
        s("job", "wait-event", "-q", jobid, "start", check=True)

    with inst.handle() as h:
        line = strato.timeline.build(h)
        # every job that ran, on the nodes of its R, with the cores R gives it there,
        # from its start event, still running
        assert sorted(line.jobs) == sorted(strato.job.id_parse(j) for j in ran)
        assert line.ncores == 64 and len(line.hosts) == 16
        for jobid in line.jobs:
            info = strato.job.info(h, jobid)
            start = next(e["timestamp"] for e in info["eventlog"] if e["name"] == "start")
            mine = [iv for iv in line.intervals if iv.jobid == jobid]
            assert {(iv.host, iv.ncores) for iv in mine} == \
                {(n.hostname, len(n.cores)) for n in nodes_from_R(info["R"])}
            assert all(iv.start == start and iv.end is None for iv in mine)
        # the -N2 jobs hold whole nodes (2 x 4 cores each), the -n3 one 3 cores
        in_use = sum(iv.ncores for iv in line.intervals)
        assert in_use == 2 * 8 + 3
        assert line.utilisation()[-1] == (line.now, in_use) and line.peak() == in_use

    s("cancel", *ran, check=True)
    for jobid in ran:
        s("job", "wait", jobid)
    with inst.handle() as h:
        line = strato.timeline.build(h)
        assert line.utilisation()[-1][1] == 0 and line.peak() == in_use
        finish = {}
        for jobid in line.jobs:
            log = strato.job.info(h, jobid)["eventlog"]
            finish[jobid] = next(e["timestamp"] for e in log if e["name"] == "finish")
        assert all(iv.end == finish[iv.jobid] for iv in line.intervals)
        assert line.core_seconds() == pytest.approx(
            sum(iv.ncores * (finish[iv.jobid] - iv.start) for iv in line.intervals))

    out = s("report", check=True).stdout.splitlines()
    assert out[0] == "jobs:      3 ran"
    assert out[1] == "resources: 16 nodes, 64 cores"
    assert out[4] == f"peak:      {in_use} cores ({100 * in_use / 64:.0f}%)"

    picture = tmp_path / "report.png"
    assert s("report", "--plot", str(picture), check=True).stdout.splitlines() == out
    width, height = png_size(picture)
    assert width == 1000 and 400 <= height <= 2500
    assert picture.stat().st_size > 20_000 and colours(picture) > 10

    # the text timeline: a heading per job, then its events since its submission
    text = s("job", "timeline", wide[0], small, check=True).stdout.splitlines()
    heads = [i for i, ln in enumerate(text) if not ln.startswith(" ")]
    assert [text[i].split()[:2] for i in heads] == [[wide[0], "wide"], [small, "small"]]
    events = [ln.split()[1] for ln in text[heads[0] + 1:heads[1]]]
    assert events[0] == "submit" and text[heads[0] + 1].split()[0] == "+0.000000s"
    assert {"alloc", "start", "exception", "finish", "clean"} <= set(events)
    times = [float(ln.split()[0][:-1]) for ln in text[heads[0] + 1:heads[1]]]
    assert times == sorted(times)

    picture = tmp_path / "timeline.svg"  # another format, by its extension
    s("job", "timeline", "--plot", str(picture), *wide, check=True)
    assert picture.read_text().lstrip().startswith("<?xml") and "wide" in picture.read_text()

    # a job that has not run has events but nothing to draw
    assert s("job", "timeline", held, check=True).stdout.split()[:2] == [held, "held"]
    assert one_line_error(s("job", "timeline", "--plot", str(tmp_path / "h.png"), held)) == \
        "strato-job: none of these jobs has run yet: nothing to draw"


@pytest.mark.parametrize("args, code, message", [
    (("job", "timeline"), 2, "strato-job: Missing argument 'JOBIDS...'."),
    (("job", "timeline", "nojob"), 2,
     "strato-job: Invalid value for 'JOBIDS...': invalid job id 'nojob'"),
    (("job", "timeline", "ƒ2Xm"), 1, "strato-job: unknown job id ƒ2Xm"),
    (("job", "timeline", "--plot"), 2, "strato-job: Option '--plot' requires an argument."),
    (("report", "--plot", "/no/such/dir/r.png"), 1,
     "strato-report: cannot write /no/such/dir/r.png: No such file or directory"),
    (("report", "--plot", "."), 1, "strato-report: cannot write .: "),
    (("report", "--plot", "r.nosuchformat"), 1,
     "strato-report: cannot write r.nosuchformat: Format 'nosuchformat' is not supported"),
    (("job", "timeline", "--plot", "/no/such/dir/t.png", "{job}"), 1,
     "strato-job: cannot write /no/such/dir/t.png: No such file or directory"),
    (("top", "nojob"), 1, "strato-top: nojob: not a job id or URI"),
    (("top", "ƒ2Xm"), 1, "strato-top: unknown job id ƒ2Xm"),
    (("top", "{job}"), 1, "strato-top: job {job} is not a strato instance (it has no URI)"),
    (("top",), 1, "strato-top: needs a terminal (standard input and output are not both one)"),
    (("top", "a", "b"), 2, "strato-top: Got unexpected extra argument (b)"),
    (("top", "-q", "nosuch"), 1, "strato-top: queue 'nosuch' does not exist"),
])
def test_bad_input(sim_instance, args, code, message):
    job = sim_instance.strato("run", "true", check=True)
    jobid = sim_instance.strato("jobs", "-a", "-n", "-o", "{id.f58}", check=True).stdout.strip()
    assert job.returncode == 0
    args = [a.format(job=jobid) for a in args]
    line = one_line_error(sim_instance.strato(*args), code)
    assert line.startswith(message.format(job=jobid)), line
