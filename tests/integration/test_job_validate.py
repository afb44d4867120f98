"""``strato job validate FILE...``: check jobspec files from the command line.

Why: users check jobspecs before submitting them and the conformance corpora are run
through the command, so its output lines, exit codes, stdin and ``--canonical`` must
behave as documented, with no instance running.  Each test runs the command in a
subprocess, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import corpus_path, needs_corpora

CONFORMANCE = corpus_path()
JOBSPEC = CONFORMANCE / "jobspec"
# Until `validate` is attached to `strato job`, run its module directly; then this becomes
# [sys.executable, "-m", "strato.cli.main", "job", "validate"].
VALIDATE = [sys.executable, "-m", "strato.cli.main", "job", "validate"]

V1_JOBSPEC = """\
version: 1
resources:
  - type: slot
    count: 2
    label: task
    with:
      - type: core
        count: 1
tasks:
  - command: [hostname]
    slot: task
    count: {per_slot: 1}
attributes:
  system: {duration: 0}
"""


def run(*args: str, stdin: str | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("STRATO_URI", None)  # no instance is needed, nor looked for
    return subprocess.run(
        [*VALIDATE, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
        timeout=60,
    )


def corpus(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.glob("*.y*ml"))]


@pytest.fixture
def v1_file(tmp_path: Path) -> Path:
    path = tmp_path / "v1.yaml"
    path.write_text(V1_JOBSPEC)
    return path


@pytest.fixture
def v2_file(tmp_path: Path) -> Path:
    path = tmp_path / "v2.yaml"
    path.write_text(V1_JOBSPEC.replace("version: 1", "version: 2"))
    return path


def test_valid_file(v1_file: Path) -> None:
    proc = run(str(v1_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{v1_file}: ok\n"
    assert proc.stderr == ""


def test_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(V1_JOBSPEC.replace("count: 2", "count: 0"))
    proc = run(str(path))
    assert proc.returncode == 1
    assert proc.stdout == f"{path}: resources[0].count: must be an integer >= 1\n"


def test_lines_in_order_and_exit_1_if_any_invalid(v1_file: Path, v2_file: Path) -> None:
    proc = run(str(v1_file), str(v2_file), str(v1_file))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{v1_file}: ok",
        f"{v2_file}: version: must be 1",
        f"{v1_file}: ok",
    ]


def test_canonical_versus_default(v2_file: Path) -> None:
    default = run(str(v2_file))
    assert default.returncode == 1
    assert default.stdout == f"{v2_file}: version: must be 1\n"
    canonical = run("--canonical", str(v2_file))
    assert canonical.returncode == 0
    assert canonical.stdout == f"{v2_file}: ok\n"


@needs_corpora
def test_canonical_rfc_use_case_is_not_v1() -> None:
    path = str(CONFORMANCE / "rfc" / "spec_14" / "use_case_1.2.yaml")
    assert run(path).stdout == f"{path}: version: must be 1\n"
    assert run(path, "--canonical").stdout == f"{path}: ok\n"


def test_stdin(v1_file: Path) -> None:
    proc = run("-", stdin=V1_JOBSPEC)
    assert (proc.returncode, proc.stdout) == (0, "-: ok\n")
    proc = run(str(v1_file), "-", stdin="version: 1\n")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{v1_file}: ok", "-: resources: is required"]


def test_json_file(tmp_path: Path) -> None:
    import json

    import yaml

    path = tmp_path / "job.json"
    path.write_text(json.dumps(yaml.safe_load(V1_JOBSPEC)))
    proc = run(str(path))
    assert (proc.returncode, proc.stdout) == (0, f"{path}: ok\n")


@needs_corpora
def test_yaml_syntax_error() -> None:
    path = str(JOBSPEC / "invalid" / "invalid_yaml1.yaml")
    for args in ([path], ["--canonical", path]):
        proc = run(*args)
        assert proc.returncode == 1
        assert proc.stdout == (
            f"{path}: invalid YAML: mapping values are not allowed here at line 1\n"
        )
    proc = run("-", stdin="foo: bar: baz\n")
    assert proc.stdout == "-: invalid YAML: mapping values are not allowed here at line 1\n"


def test_not_a_mapping_and_empty(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    proc = run(str(listing), str(empty))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{listing}: jobspec must be a mapping, not a list",
        f"{empty}: empty document (a jobspec is a mapping)",
    ]


def test_unreadable_files(tmp_path: Path, v1_file: Path) -> None:
    missing = tmp_path / "missing.yaml"
    proc = run(str(missing), str(tmp_path), str(v1_file))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{missing}: No such file or directory",
        f"{tmp_path}: Is a directory",
        f"{v1_file}: ok",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(v1_file: Path) -> None:
    v1_file.chmod(0)
    proc = run(str(v1_file))
    assert (proc.returncode, proc.stdout) == (1, f"{v1_file}: Permission denied\n")


def test_no_files_is_a_usage_error() -> None:
    proc = run()
    assert proc.returncode == 2
    assert "FILE" in proc.stderr


def test_help() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    assert "--canonical" in proc.stdout


# -- the corpora through the command ---------------------------------------------------


def _check_all(files: list[str], canonical: bool, valid: bool) -> None:
    assert files
    proc = run(*(["--canonical"] if canonical else []), *files)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(files), proc.stdout + proc.stderr
    for name, line in zip(files, lines, strict=True):
        assert line.startswith(f"{name}: ")
        assert (line == f"{name}: ok") is valid, line
    assert proc.returncode == (0 if valid else 1)


@needs_corpora
def test_canonical_corpora() -> None:
    _check_all(corpus(JOBSPEC / "valid") + corpus(CONFORMANCE / "rfc" / "spec_14"),
               canonical=True, valid=True)
    _check_all(corpus(JOBSPEC / "invalid"), canonical=True, valid=False)


@needs_corpora
def test_v1_corpora() -> None:
    _check_all(corpus(JOBSPEC / "valid_v1") + corpus(CONFORMANCE / "rfc" / "spec_25"),
               canonical=False, valid=True)
    _check_all(corpus(JOBSPEC / "invalid_v1"), canonical=False, valid=False)
    # every canonically invalid jobspec is invalid as version 1 as well
    _check_all(corpus(JOBSPEC / "invalid"), canonical=False, valid=False)


def test_imports_nothing_heavy() -> None:
    code = (
        "import sys, strato.cli.cmd_validate as m; "
        "heavy = [n for n in ('zmq', 'msgspec', 'networkx', 'lark', 'yaml', 'strato.core') "
        "if n in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
