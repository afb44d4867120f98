"""Bad input: one clear line, a non-zero exit, and nothing in the instance lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, STRATO


def one_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def run_outside(*args, env_uri: str | None = None, tmp=None):
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    if env_uri:
        env["STRATO_URI"] = env_uri
    return subprocess.run([*STRATO, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp)


def test_no_instance(tmp_path):
    res = run_outside("jobs", tmp=tmp_path)
    assert res.returncode == 1
    line = one_line(res)
    assert line.startswith("strato-jobs: no strato instance") and "strato start" in line


def test_dead_instance(make_instance, tmp_path):
    inst = make_instance()
    uri = inst.uri
    inst.stop()
    res = run_outside("submit", "true", env_uri=uri, tmp=tmp_path)
    assert res.returncode == 1
    assert "no instance at" in one_line(res)
    res = run_outside("ping", env_uri="local:///nonexistent/dir/local", tmp=tmp_path)
    assert res.returncode == 1 and "not running" in one_line(res)


def test_unknown_options_and_commands(instance):
    res = instance.strato("submit", "--bogus", "true")
    assert res.returncode == 2
    assert one_line(res).startswith("strato-submit: No such option '--bogus'.")
    res = instance.strato("frobnicate")
    assert res.returncode == 2 and "No such command" in one_line(res)
    res = instance.strato("job", "urgency", "ƒ2", "99")
    assert res.returncode == 2 and "urgency" in one_line(res)


def test_bad_option_values_submit_nothing(instance):
    for args in (["-t", "soon", "true"], ["--cc=3-1", "true"], ["-n", "0", "true"],
                 ["--urgency=40", "true"], ["-S", "=novalue", "true"],
                 ["-N", "2", "-n", "1", "true"], ["-c", "x", "true"]):
        res = instance.strato("submit", *args)
        assert res.returncode != 0, args
        one_line(res)
    assert json.loads(instance.strato("jobs", "-a", "--json").stdout)["jobs"] == []


def test_unknown_job_ids(instance):
    res = instance.strato("job", "eventlog", "ƒ2Xm")
    assert res.returncode == 1 and "unknown job id" in one_line(res)
    res = instance.strato("cancel", "notanid")
    assert res.returncode == 2 and "invalid job id 'notanid'" in one_line(res)
    res = instance.strato("job", "wait-event", "-t", "1", "12345", "start")
    assert res.returncode == 1 and "unknown job id" in one_line(res)


def test_malformed_jobspec_is_rejected_without_an_id(instance):
    import strato
    from strato.core.errors import RPCError

    h = strato.Handle(instance.uri)
    bad = {"version": 1, "resources": [{"type": "slot", "count": 0, "label": "task",
                                        "with": [{"type": "core", "count": 1}]}],
           "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}],
           "attributes": {"system": {"duration": 0}}}
    try:
        strato.job.submit(h, bad)
        raise AssertionError("accepted a slot count of 0")
    except RPCError as exc:
        assert "resources[0].count" in str(exc)
    try:
        strato.job.submit(h, {"version": 1})
        raise AssertionError("accepted an empty jobspec")
    except RPCError as exc:
        assert "\n" not in str(exc)
    assert strato.job.list_jobs(h, states=0x7F) == []


def test_unsatisfiable_request(instance):
    instance.strato("submit", "--urgency=hold", "true", check=True)
    res = instance.strato("run", "-n", "100000", "true")
    assert res.returncode == 1
    assert "unsatisfiable" in res.stderr
    # the held job is still there
    out = instance.strato("jobs", "-n", "-o", "{state}", check=True).stdout.split()
    assert out == ["SCHED"]


def test_bad_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[plugins\nload = 3")
    res = run_outside("start", "--config", str(cfg), "true", tmp=tmp_path)
    assert res.returncode == 1 and one_line(res).startswith("strato-start: ")
    res = run_outside("start", "-S", "exec.backend=warp", "true", tmp=tmp_path)
    assert res.returncode == 1 and "unknown exec backend 'warp'" in one_line(res)
    res = run_outside("start", "-S", "=x", "true", tmp=tmp_path)
    assert res.returncode == 1 and "invalid override" in one_line(res)
    res = run_outside("start", "-S", 'resource.config=[{hosts="n[1-"}]', "true", tmp=tmp_path)
    assert res.returncode == 1 and "resource.config[0]" in one_line(res)
    res = run_outside("start", "-S", 'plugins.load=["no-such-plugin"]', "true", tmp=tmp_path)
    assert res.returncode == 1 and "plugin 'no-such-plugin' failed to load" in one_line(res)


def test_corrupt_statedir(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "content.sqlite").write_bytes(b"this is not a database" * 100)
    res = run_outside("start", "--statedir", str(state), "true", tmp=tmp_path)
    assert res.returncode == 1
    assert "cannot use state database" in one_line(res)
    assert (state / "content.sqlite").read_bytes().startswith(b"this is not")


def test_start_command_not_found(tmp_path):
    res = run_outside("start", "no-such-command-xyz", tmp=tmp_path)
    assert res.returncode == 1 and "command not found" in one_line(res)


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from strato.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('zmq', 'networkx', 'lark', 'msgspec') if m in sys.modules]\n"
            "print(bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_a_command_talks_to_its_instance_without_zmq_or_asyncio(instance):
    """A client's connection is a plain Unix socket: `strato run` loads no messaging
    library and no event loop (each cost a command ~10-20 ms to import)."""
    code = ("import sys; from strato.cli.main import main\n"
            "try:\n    main(['run', 'true'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, [m for m in ('zmq', 'asyncio', 'networkx', 'lark') if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "STRATO_URI": instance.uri})
    assert res.stdout.strip().splitlines()[-1] == "0 []", res.stderr


def test_plain_run_loads_neither_click_nor_the_heavy_modules(instance):
    """The console script runs `strato run CMD` (no options) without click, msgspec,
    dataclasses (inspect), typing or json: each would cost it 2-20 ms."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print([m for m in ('click', 'msgspec', 'zmq', 'asyncio',"
            " 'dataclasses', 'inspect', 'typing', 'json') if m in sys.modules]))\n"
            "sys.argv = ['strato', 'run', 'sh', '-c', 'echo out']\n"
            "from strato.cli.script import run\nrun()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "STRATO_URI": instance.uri})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["out", "[]"], res.stdout


def test_start_rejects_unusable_dirs_and_values(tmp_path):
    long_dir = tmp_path / ("x" * 120)
    for args, message in (
        (["--statedir", "/proc/nope"], "cannot use statedir"),
        (["--rundir", "/proc/x"], "cannot use rundir"),
        (["--rundir", str(long_dir)], "too long"),
        (["-S", "exec.kill-timeout=abc"], "exec.kill-timeout: invalid duration"),
        (["-S", "exec.sim-duration=abc"], "exec.sim-duration: invalid duration"),
    ):
        res = run_outside("start", *args, "true", tmp=tmp_path)
        assert res.returncode == 1, args
        assert message in one_line(res), args


def test_unsatisfiable_is_rejected_at_submission(instance):
    res = instance.strato("submit", "-N", "2", "true")
    assert res.returncode == 1 and "unsatisfiable" in one_line(res)
    assert instance.strato("jobs", "-a", "-n", check=True).stdout == ""


def test_conformance_setting_naming_no_folder_is_a_one_line_error(tmp_path):
    """STRATO_CONFORMANCE=/no/such/dir stops pytest before collecting, with one line."""
    env = dict(os.environ, STRATO_CONFORMANCE=str(tmp_path / "nope"))
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--collect-only", "tests/unit/test_ids.py"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 4  # pytest's usage error
    assert res.stderr.strip() == (f"ERROR: STRATO_CONFORMANCE={tmp_path / 'nope'}: no such "
                                  "directory (unset it to skip the tests that need the corpora)")
