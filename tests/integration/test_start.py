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


def test_an_instance_that_exits_while_jobs_run_prints_nothing(tmp_path):
    """Its initial program exits while 16 tasks run (half of them ignoring SIGTERM):
    the instance ends them and exits 0 with nothing on stderr. A SIGCHLD or SIGTERM
    arriving while asyncio closed its loop used to print "Exception ignored when
    trying to write to the signal wakeup fd: ... Bad file descriptor" (one run in
    several): each process now takes its signals back before its loop closes."""
    (tmp_path / "c.toml").write_text('[[resource.config]]\nhosts = "node[0-3]"\n'
                                     'cores = "0-3"\n[exec]\nkill-timeout = "0.2s"\n')
    script = ("strato submit --cc=1-8 sh -c 'trap \"\" TERM; sleep 60' > /dev/null\n"
              "last=$(strato submit --cc=1-8 sleep 60 | tail -1)\n"
              "strato job wait-event -t 30 $last start > /dev/null\n")
    for _ in range(4):
        res = subprocess.run([*STRATO, "start", "--config", "c.toml", "sh", "-c", script],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert (res.returncode, res.stderr) == (0, "")
