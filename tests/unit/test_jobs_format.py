"""Tests for strato.cli.jobs_format: the ``flux jobs`` output format language.

Why: ``strato jobs`` must print what ``flux jobs`` prints (headers, status abbreviations,
the ``h``/``+`` suffixes, ``!F``/``!d`` conversions, ``?:`` columns) and accept the same
``--filter`` names, so that Flux users' habits and scripts keep working.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from datetime import datetime

import pytest

from strato.cli import jobs_format
from strato.cli.jobs_format import (
    NAMED_FORMATS,
    JobsFormatter,
    match_filter,
    parse_filter,
)
from strato.core.ids import encode

JOBID = 6787342413402046
NOW = 1_700_000_000.0

FLUX_DEFAULT = (
    "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} "
    "{status_abbrev:>2.2} {ntasks:>6} {nnodes:>6h} "
    "{contextual_time!F:>8h} {contextual_info}"
)
# flux jobs' header for the default format when no job has a queue
FLUX_DEFAULT_HEADER = "       JOBID USER     NAME       ST NTASKS NNODES     TIME INFO"


def job(state: str = "RUN", **kw) -> dict:
    rec = {
        "id": JOBID,
        "userid": 0,
        "urgency": 16,
        "priority": 1000,
        "state": state,
        "name": "sleep",
        "ntasks": 4,
        "nnodes": 2,
        "ncores": 4,
        "duration": 0.0,
        "t_submit": NOW - 100,
        "t_run": 0.0,
        "t_cleanup": 0.0,
        "t_inactive": 0.0,
        "result": None,
        "waitstatus": None,
        "success": None,
    }
    if state in ("RUN", "CLEANUP", "INACTIVE"):
        rec.update(t_run=NOW - 50, nodelist="node[0-1]", ranks="0-1")
    if state in ("CLEANUP", "INACTIVE"):
        rec["t_cleanup"] = NOW - 5
    if state == "INACTIVE":
        rec.update(t_inactive=NOW - 1, result="COMPLETED", waitstatus=0, success=True)
    rec.update(kw)
    return rec


def fmt(text: str, rec: dict) -> str:
    return JobsFormatter(text).format(rec)


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setattr(jobs_format, "_now", lambda: NOW)


# --- header and the default format ----------------------------------------------------


def test_default_format_is_flux_default():
    assert NAMED_FORMATS["default"] == FLUX_DEFAULT


def test_default_header_without_queue_matches_flux():
    f = JobsFormatter(NAMED_FORMATS["default"]).filter_empty([job(), job("SCHED")])
    assert f.header() == FLUX_DEFAULT_HEADER


def test_default_header_with_no_records_drops_queue():
    assert JobsFormatter(FLUX_DEFAULT).filter_empty([]).header() == FLUX_DEFAULT_HEADER


def test_queue_column_kept_when_a_job_has_a_queue():
    f = JobsFormatter(FLUX_DEFAULT).filter_empty([job(), job(queue="batch")])
    assert f.header() == (
        "       JOBID QUEUE    USER     NAME       ST NTASKS NNODES     TIME INFO"
    )
    assert f.format(job(queue="batch")).split()[1] == "batch"
    assert f.format(job())[13:21] == " " * 8  # empty queue cell keeps its width


def test_unfiltered_formatter_prints_column_without_sentinel():
    f = JobsFormatter("{id.dec} ?:{queue:<5}|")
    assert f.header() == "JOBID QUEUE|"
    assert f.format(job()) == f"{JOBID}      |"


def test_default_lines():
    user = pwd.getpwuid(0).pw_name[:8]
    f = JobsFormatter(FLUX_DEFAULT).filter_empty([job()])
    run = job(name="averyverylongname")
    assert f.format(run) == (
        f"{encode(JOBID):>12} {user:<8} averyvery+  R      4      2      50s node[0-1]"
    )
    pending = job("SCHED", nnodes=None, duration=3600.0)
    jobid = encode(JOBID)
    assert f.format(pending) == f"{jobid:>12} {user:<8} sleep       S      4      -       1h "
    done = job("INACTIVE")
    assert f.format(done).endswith(" CD      4      2      45s node[0-1]")


def test_named_formats_compile_and_render():
    recs = [job(s) for s in ("DEPEND", "PRIORITY", "SCHED", "RUN", "CLEANUP", "INACTIVE")]
    for name in ("default", "long", "deps", "endreason"):
        f = JobsFormatter(NAMED_FORMATS[name]).filter_empty(recs)
        assert "?:" not in f.format_string
        assert f.header().split()[0] == "JOBID"
        for rec in recs:
            # each line is a row of the table: the job's id first, as many columns as
            # the header (names and values here have no spaces)
            words = f.format(rec).split()
            assert words[0] == fmt("{id.f58}", rec)
            assert "sleep" in words


def test_headings():
    f = JobsFormatter(
        "{userid} {urgency} {priority} {state} {state_single} {result} {result_abbrev} "
        "{returncode} {waitstatus} {exception.type} {t_submit} {runtime} {ncores}"
    )
    assert f.header().split() == [
        "UID", "URG", "PRI", "STATE", "S", "RESULT", "RS", "RC", "WSTATUS",
        "EXCEPTION-TYPE", "T_SUBMIT", "RUNTIME", "NCORES",
    ]  # fmt: skip


def test_header_uses_align_and_width_only():
    assert JobsFormatter("{ntasks:*>+8d}|{name:<3.3}|").header() == "  NTASKS|NAME|"
    assert JobsFormatter("{t_submit!d:%H:%M::>10}|").header() == "  T_SUBMIT|"


# --- status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "result", "abbrev", "status"),
    [
        ("NEW", None, "N", "NEW"),
        ("DEPEND", None, "D", "DEPEND"),
        ("PRIORITY", None, "P", "PRIORITY"),
        ("SCHED", None, "S", "SCHED"),
        ("RUN", None, "R", "RUN"),
        ("CLEANUP", None, "C", "CLEANUP"),
        ("INACTIVE", "COMPLETED", "CD", "COMPLETED"),
        ("INACTIVE", "FAILED", "F", "FAILED"),
        ("INACTIVE", "CANCELED", "CA", "CANCELED"),
        ("INACTIVE", "TIMEOUT", "TO", "TIMEOUT"),
    ],
)
def test_status(state, result, abbrev, status):
    rec = job(state, result=result)
    assert fmt("{status_abbrev}", rec) == abbrev
    assert fmt("{status}", rec) == status
    assert fmt("{result}", rec) == (result or "")
    assert fmt("{result_abbrev}", rec) == (abbrev if result else "")


@pytest.mark.parametrize(
    ("state", "single"),
    [("NEW", "N"), ("DEPEND", "D"), ("PRIORITY", "P"), ("SCHED", "S"), ("RUN", "R"),
     ("CLEANUP", "C"), ("INACTIVE", "I")],
)  # fmt: skip
def test_state_single(state, single):
    assert fmt("{state_single}", job(state)) == single
    assert fmt("{state}", job(state)) == state


# --- h suffix and + truncation ---------------------------------------------------------


def test_h_suffix():
    pending = job("SCHED", nnodes=None)
    assert fmt("{nnodes:>6h}", pending) == "     -"
    assert fmt("{nnodes:>6}", pending) == "      "
    assert fmt("{nnodes:>6h}", job()) == "     2"
    assert fmt("{nodelist:h}", pending) == "-"
    assert fmt("{runtime!F:>4h}", pending) == "   -"  # 0s
    assert fmt("{t_run:h}", pending) == "-"  # 0.0
    assert fmt("{runtime!H:h}", pending) == "-"  # 0:00:00
    assert fmt("{t_run!D:h}", pending) == "-"
    assert fmt("{t_run!d:%H:%M::>6h}", pending) == "     -"
    assert fmt("{ntasks:h}", job(ntasks=0)) == "0"  # as Flux: an integer 0 is shown
    assert fmt("{runtime:.1fh}", job()) == "50.0"


def test_plus_truncation():
    assert fmt("{name:<10.10+}", job(name="averyverylongname")) == "averyvery+"
    assert fmt("{name:<10.10+}", job(name="exactly10c")) == "exactly10c"
    assert fmt("{name:<10.10+}", job(name="short")) == "short     "
    assert fmt("{name:>4.4+}|", job(name="sleep")) == "sle+|"
    assert fmt("{name:.3+}", job(name="abc")) == "abc"
    assert fmt("{nodelist:.3h+}", job("SCHED")) == "-"
    assert fmt("{nodelist:.3h+}", job()) == "no+"


# --- conversions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0001, "0s"),
        (0.5, "0.5s"),
        (1.23456, "1.235s"),
        (45.0, "45s"),
        (90.0, "1.5m"),
        (65.3, "1.088m"),
        (7200.0, "2h"),
        (5000.0, "1.389h"),
        (86400.0, "1d"),
        (float("inf"), "inf"),
        (-2.0, "0s"),
    ],
)
def test_F_conversion(seconds, text):
    assert fmt("{duration!F}", job(duration=seconds)) == text


def test_F_of_unset_value_is_empty():
    assert fmt("{annotations.sched.t_estimate!F}|", job()) == "|"


def test_contextual_time():
    assert fmt("{contextual_time!F}", job("SCHED", duration=120.0)) == "2m"
    assert fmt("{contextual_time!F:h}", job("SCHED")) == "-"
    assert fmt("{contextual_time!F}", job("RUN")) == "50s"  # NOW - t_run
    assert fmt("{contextual_time!F}", job("INACTIVE")) == "45s"  # t_cleanup - t_run
    assert fmt("{runtime:.0f}", job("RUN")) == "50"


def test_d_conversion():
    t = job("INACTIVE")["t_inactive"]
    local = datetime.fromtimestamp(t)
    assert fmt("{t_inactive!d:%H:%M:%S}", job("INACTIVE")) == local.strftime("%H:%M:%S")
    expect = local.strftime("%b%d %R").rjust(12)
    assert fmt("{t_inactive!d:%b%d %R::>12}", job("INACTIVE")) == expect
    assert fmt("{t_inactive!d}", job("INACTIVE")) == local.strftime("%Y-%m-%dT%H:%M:%S")
    assert fmt("{t_inactive!d:%H:%M}|", job()) == "|"
    assert fmt("{t_inactive!d:%b%d %R::>12h}", job()) == "           -"


def test_D_H_P_conversions():
    t = job()["t_submit"]
    assert fmt("{t_submit!D}", job()) == datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S")
    assert fmt("{t_inactive!D}|", job()) == "|"
    assert fmt("{duration!H}", job(duration=3661.0)) == "1:01:01"
    assert fmt("{duration!H}", job(duration=0.4)) == "0:00:01"
    assert fmt("{duration!P}", job(duration=0.5)) == "50%"
    assert fmt("{duration!P}", job(duration=0.015)) == "1.5%"
    assert fmt("{duration!P}", job(duration=0.0005)) == "0.05%"


# --- fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["f58", "dec", "hex", "dothex", "kvs", "words"])
def test_id_forms(form):
    assert fmt(f"{{id.{form}}}", job()) == encode(JOBID, form)


def test_id_default_and_plain():
    assert fmt("{id}", job()) == encode(JOBID, "f58")
    assert fmt("{id:>14}", job()) == encode(JOBID, "f58").rjust(14)
    assert fmt("{id.f58plain}", job()) == "f" + encode(JOBID, "f58")[1:]


def test_username():
    assert fmt("{username}", job(userid=0)) == pwd.getpwuid(0).pw_name
    unknown = 2**31 - 7
    with pytest.raises(KeyError):
        pwd.getpwuid(unknown)
    assert fmt("{username}", job(userid=unknown)) == str(unknown)


def test_returncode_and_waitstatus():
    assert fmt("{returncode}", job("INACTIVE", waitstatus=0)) == "0"
    assert fmt("{returncode}", job("INACTIVE", waitstatus=3 << 8, result="FAILED")) == "3"
    assert fmt("{returncode}", job("INACTIVE", waitstatus=9, result="FAILED")) == "-9"
    canceled = job("INACTIVE", waitstatus=None, result="CANCELED")
    assert fmt("{returncode}", canceled) == "-128"
    assert fmt("{returncode}|{waitstatus}|{success}", job("RUN")) == "||"
    assert fmt("{waitstatus} {success}", job("INACTIVE", waitstatus=256)) == "256 True"


def test_exception_fields():
    exc = {"type": "cancel", "note": "by user", "severity": 0}
    rec = job("INACTIVE", result="CANCELED", exception=exc, waitstatus=None)
    line = "{exception.occurred} {exception.type} {exception.severity} {exception.note}"
    assert fmt(line, rec) == "True cancel 0 by user"
    assert fmt(line + "|", job()) == "False   |"
    assert fmt("{inactive_reason}", rec) == "Canceled: by user"


def test_inactive_reason():
    assert fmt("{inactive_reason}|", job()) == "|"
    assert fmt("{inactive_reason}", job("INACTIVE")) == "Exit 0"
    assert fmt("{inactive_reason}", job("INACTIVE", result="TIMEOUT")) == "Timeout"
    failed = job("INACTIVE", result="FAILED", waitstatus=2 << 8)
    assert fmt("{inactive_reason}", failed) == "Exit 2"
    exc = {"type": "exec", "note": "x", "severity": 0}
    assert fmt("{inactive_reason}", dict(failed, exception=exc)) == "Exit 2"
    exc = {"type": "node-failure", "note": "lost", "severity": 0}
    assert (
        fmt("{inactive_reason}", dict(failed, exception=exc))
        == "Exception: type=node-failure note=lost"
    )


def test_contextual_info():
    assert fmt("{contextual_info}", job("PRIORITY")) == "priority-wait"
    assert fmt("{contextual_info}", job("DEPEND", dependencies=["afterok:f1"])) == (
        "depends:afterok:f1"
    )
    assert fmt("{contextual_info}|", job("SCHED")) == "|"
    assert fmt("{contextual_info}", job("SCHED", urgency=0)) == "held"
    assert fmt("{contextual_info}", job("SCHED", priority=0)) == "priority-hold"
    est = {"sched": {"t_estimate": NOW + 90}}
    assert fmt("{contextual_info}", job("SCHED", annotations=est)) == "eta:1.5m"
    late = {"sched": {"t_estimate": NOW - 1}}
    assert fmt("{contextual_info}", job("SCHED", annotations=late)) == "eta:now"
    assert fmt("{contextual_info}", job("RUN")) == "node[0-1]"
    assert fmt("{contextual_info}", job("INACTIVE")) == "node[0-1]"


def test_simple_fields():
    rec = job("RUN", expiration=NOW + 30)
    assert fmt("{ntasks} {nnodes} {ncores} {ranks} {nodelist}", rec) == "4 2 4 0-1 node[0-1]"
    assert fmt("{t_remaining!F} {expiration:.0f}", rec) == f"30s {NOW + 30:.0f}"
    assert fmt("{t_remaining}", job("INACTIVE", expiration=NOW + 30)) == "0.0"
    assert fmt("{queue}|{dependencies}|", rec) == "||"
    assert fmt("{priority:>5} {urgency}", rec) == " 1000 16"
    assert fmt("{annotations.user.note} {user.note}",
               job(annotations={"user": {"note": "hi"}})) == "hi hi"
    assert JobsFormatter("{annotations.user.note}").header() == "USER.NOTE"
    assert JobsFormatter("{sched.reason_pending}").header() == "REASON"


def test_literal_braces_and_text():
    f = JobsFormatter("{{{name}}} x")
    assert f.format(job()) == "{sleep} x"
    assert f.header() == "{NAME} x"
    assert f.filter_empty([job()]).format(job()) == "{sleep} x"


def test_mismatched_spec_falls_back_to_string():
    assert fmt("{ntasks:<6.3}|", job()) == "4     |"
    assert fmt("{nnodes:>4d}|", job("SCHED", nnodes=None)) == "    |"


# --- ?: and +: -------------------------------------------------------------------------


def test_filter_empty_drops_only_empty_columns():
    f = JobsFormatter("{id.dec} ?:{exception.type:<8} ?:{name} {ntasks}")
    g = f.filter_empty([job(), job()])
    assert g.format_string == "{id.dec} {name} {ntasks}"
    assert g.header() == "JOBID NAME NTASKS"
    assert f.filter_empty([]).format_string == "{id.dec} {ntasks}"


def test_plus_sentinel_expands_width():
    f = JobsFormatter("+:{name:<4.4}|?+:{queue:<2}|")
    g = f.filter_empty([job(name="averylongname"), job(name="x")])
    assert g.header() == "NAME         |"
    assert g.format(job(name="averylongname")) == "averylongname|"
    h = f.filter_empty([job(name="x", queue="q")])
    assert h.header() == "NAME|QUEUE|"
    assert h.format(job(name="x", queue="q")) == "x   |q    |"


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{foo}", "unknown field 'foo'"),
        ("{id.f59}", "unknown field 'id.f59'"),
        ("{name[0]}", "unknown field 'name[0]'"),
        ("{0}", "unknown field '0'"),
        ("{}", "empty field"),
        ("{name!x}", "unknown conversion '!x'"),
        ("{name:>>>}", "invalid format spec '>>>'"),
        ("{name:{width}}", "nested fields"),
        ("{name", "bad format"),
        ("name}", "bad format"),
        ("{t_submit:%H::>8}", "invalid format spec"),
    ],
)
def test_bad_format_raises(text, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[")) as err:
        JobsFormatter(text)
    assert "\n" not in str(err.value)


# --- filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mask", "results"),
    [
        ("new", 1, set()),
        ("depend", 2, set()),
        ("priority", 4, set()),
        ("sched", 8, set()),
        ("run", 16, set()),
        ("cleanup", 32, set()),
        ("inactive", 64, set()),
        ("pending", 2 | 4 | 8, set()),
        ("running", 16 | 32, set()),
        ("active", 63, set()),
        ("pending,running", 2 | 4 | 8 | 16 | 32, set()),
        ("pending,running,inactive", 126, set()),
        ("completed", 64, {"COMPLETED"}),
        ("FAILED,Canceled", 64, {"FAILED", "CANCELED"}),
        ("run, timeout", 16 | 64, {"TIMEOUT"}),
        ("inactive,failed", 64, set()),  # states OR results, as in Flux
        ("failed,pending,running,inactive", 126, set()),
        ("RUN,Run", 16, set()),
    ],
)
def test_parse_filter(text, mask, results):
    assert parse_filter(text) == (mask, results)


@pytest.mark.parametrize("text", ["", "bogus", "run,", "pending,,run", "PD", "all"])
def test_parse_filter_invalid(text):
    with pytest.raises(ValueError, match="^invalid filter '"):
        parse_filter(text)


def test_match_filter():
    mask, results = parse_filter("running,failed")
    assert match_filter(job("RUN"), mask, results)
    assert not match_filter(job("SCHED"), mask, results)
    assert match_filter(job("INACTIVE", result="FAILED"), mask, results)
    assert not match_filter(job("INACTIVE"), mask, results)
    mask, results = parse_filter("inactive,canceled")
    assert match_filter(job("INACTIVE"), mask, results)
    assert not match_filter(job("RUN"), mask, results)
    mask, results = parse_filter("completed")
    assert match_filter(job("INACTIVE"), mask, results)
    assert not match_filter(job("INACTIVE", result="TIMEOUT"), mask, results)


def test_import_is_light():
    # strato jobs imports this module on every call: no zmq, networkx, lark or yaml.
    code = (
        "import sys, strato.cli.jobs_format; "
        "print(sorted(m for m in ('zmq', 'networkx', 'lark', 'yaml') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_docs_list_every_field_and_named_format():
    """docs/jobs-format.md carries the generated tables: a field added to FIELDS (or a
    named format) without regenerating the page fails here."""
    from pathlib import Path

    from strato.cli.jobs_format import FIELDS, fields_markdown

    page = (Path(__file__).resolve().parents[2] / "docs" / "jobs-format.md").read_text()
    begin, end = "<!-- fields: begin -->\n", "<!-- fields: end -->"
    listed = page[page.index(begin) + len(begin):page.index(end)]
    assert listed == fields_markdown(), \
        "docs/jobs-format.md is stale: python -m strato.cli.jobs_format prints its tables"
    for name in FIELDS:
        assert f"| `{name}` |" in listed
