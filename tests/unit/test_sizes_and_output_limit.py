"""Sizes (``-o output.limit=10M``) and the per-stream bound on output kept in the KVS."""

from __future__ import annotations

import os

import pytest

from strato.jobspec.model import JobspecError, JobspecV1, validate_v1
from strato.jobspec.size import OUTPUT_LIMIT_MAX, format_size, output_limit, parse_size
from strato.shell.output_limit import (
    MULTI_USER_LIMIT,
    SINGLE_USER_LIMIT,
    OutputLimit,
    job_output_limit,
)


@pytest.mark.parametrize("text,nbytes", [
    ("0", 0), ("512", 512), ("64k", 65536), ("64K", 65536), ("10M", 10 << 20),
    ("1.5G", 3 << 29), ("1G", 1 << 30), ("2T", 2 << 40), (".5k", 512), ("1e3", 1000),
    (4096, 4096),
])
def test_sizes_as_flux_writes_them(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "x", "-1", "1 M", "10MB", "1m", "M", "1e400", -5, 1.5,
                                  None, True, "inf", "nan"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError, match=r"^invalid size "):
        parse_size(text)


@pytest.mark.parametrize("nbytes,text", [(0, "0"), (1000, "1000"), (1024, "1K"),
                                          (10 << 20, "10M"), (3 << 29, "1.5G"), (1 << 30, "1G")])
def test_format_size_reads_back(nbytes, text):
    assert format_size(nbytes) == text
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("value", [0, "0", "2G", OUTPUT_LIMIT_MAX + 1, "x", -1, [1]])
def test_output_limit_is_1_byte_to_1G(value):
    with pytest.raises(ValueError, match=r"^must be a size from 1 to 1G such as \"10M\" "):
        output_limit(value)


def test_default_limit_depends_on_whose_job_it_is():
    assert job_output_limit({}, os.getuid()) == SINGLE_USER_LIMIT == 1 << 30
    assert job_output_limit({}, os.getuid() + 1) == MULTI_USER_LIMIT == 10 << 20
    assert job_output_limit({"output": {"limit": "1k"}}, os.getuid() + 1) == 1024
    with pytest.raises(ValueError, match=r"^output\.limit: must be a size"):
        job_output_limit({"output": {"limit": "lots"}}, os.getuid())


def test_each_stream_keeps_up_to_the_limit_then_warns_once():
    lim = OutputLimit(10)
    assert lim.admit("stdout", b"12345") == (b"12345", None)
    assert lim.admit("stdout", b"67890") == (b"67890", None)  # exactly at the limit
    kept, warning = lim.admit("stdout", b"more")
    assert kept == b"" and warning.startswith("strato-shell: stdout reached output.limit=10;")
    assert warning.count("\n") == 1 and warning.endswith("\n")
    assert lim.admit("stdout", b"and more") == (b"", None)  # said once
    assert lim.admit("stderr", b"0123456789abc")[0] == b"0123456789"  # its own budget
    assert lim.kept == {"stdout": 10, "stderr": 10}


def test_a_cut_never_splits_a_utf8_character():
    lim = OutputLimit(5)
    kept, warning = lim.admit("stdout", "aéé".encode())  # 1 + 2 + 2 bytes, then over
    assert (kept, warning) == ("aéé".encode(), None)
    lim = OutputLimit(4)
    kept, warning = lim.admit("stdout", "aéé".encode())
    assert kept.decode() == "aé" and warning is not None


def test_jobspec_validation_names_a_bad_limit():
    js = JobspecV1.from_command(["true"])
    js.setattr("system.shell.options.output.limit", "2G")
    with pytest.raises(JobspecError) as err:
        validate_v1(js.jobspec)
    assert str(err.value) == ("attributes.system.shell.options.output.limit: must be a size"
                              " from 1 to 1G such as \"10M\" (got '2G')")
    js.setattr("system.shell.options.output.limit", "10M")
    validate_v1(js.jobspec)
