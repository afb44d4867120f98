"""strato start: the instance lives as long as its initial program."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import STRATO


def start(*args, input=None, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    env.update(env_extra or {})
    return subprocess.run([*STRATO, "start", *args], env=env, capture_output=True, text=True,
                          input=input, timeout=60, cwd=cwd)


def test_exit_code_of_the_initial_program(tmp_path):
    assert start("sh", "-c", "exit 7", cwd=tmp_path).returncode == 7
    res = start("sh", "-c", "kill -TERM $$", cwd=tmp_path)
    assert res.returncode == 128 + 15


def test_default_is_a_shell_reading_stdin(tmp_path):
    res = start(input="strato run echo from-a-job\nexit 3\n",
                env_extra={"SHELL": "/bin/sh"}, cwd=tmp_path)
    assert res.stdout == "from-a-job\n"
    assert res.returncode == 3


def test_rundir_is_private_and_removed(tmp_path):
    res = start("sh", "-c", 'stat -c %a "$(dirname "${STRATO_URI#local://}")"; '
                "echo $STRATO_URI", cwd=tmp_path)
    mode, uri = res.stdout.split()
    assert mode == "700"
    assert not os.path.exists(uri[len("local://"):])


def test_dry_run_prints_the_jobspec_without_an_instance(tmp_path):
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    res = subprocess.run([*STRATO, "submit", "--dry-run", "-n4", "-c2", "-t", "1m",
                          "--job-name=x", "hostname"], env=env, capture_output=True, text=True)
    js = json.loads(res.stdout)
    assert js["resources"][0] == {"type": "slot", "count": 4, "label": "task",
                                  "with": [{"type": "core", "count": 2}]}
    assert js["attributes"]["system"]["duration"] == 60
    assert js["attributes"]["system"]["job"]["name"] == "x"
