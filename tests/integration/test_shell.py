"""The job shell (shell/): task layout and environment, rlimits, input, output files,
and the shell plugin hooks of docs/plugins.md, with real task processes."""

from __future__ import annotations

import textwrap

CONFIG = """
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""

SHELL_PLUGIN = textwrap.dedent('''
    from strato.core.hookspecs import hookimpl


    @hookimpl
    def shell_task_init(shell, task):
        task.env["OMP_NUM_THREADS"] = str(shell.job.summary["cores_per_slot"])


    @hookimpl
    def shell_task_exit(shell, task):
        if task.status:
            shell.write_output("stderr", task.rank, f"task {task.rank} failed\\n")
''')


def test_tasks_are_laid_out_over_slots_and_nodes(make_instance):
    """-N2 -n6: three slots on each node; ranks 0-2 on the first, 3-5 on the second,
    local ids counting from 0 on each."""
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "-N2", "-n6", "sh", "-c", "echo $STRATO_TASK_RANK "
                      "$STRATO_TASK_LOCAL_ID $STRATO_JOB_SIZE $STRATO_JOB_NNODES", check=True)
    assert sorted(res.stdout.splitlines()) == [
        "0 0 6 2", "1 1 6 2", "2 2 6 2", "3 0 6 2", "4 1 6 2", "5 2 6 2"]


def test_rlimit_input_and_output_files(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "--rlimit=nofile=64", "sh", "-c", "ulimit -n", check=True)
    assert res.stdout == "64\n"
    (tmp_path / "in.txt").write_text("line one\nline two\n")
    res = inst.strato("run", f"--input={tmp_path / 'in.txt'}", "wc", "-l", check=True)
    assert res.stdout.split() == ["2"]
    # every task reads the whole file (no offset shared between them)
    res = inst.strato("run", "-n3", "--label-io", f"--input={tmp_path / 'in.txt'}", "wc", "-l",
                      check=True)
    assert sorted(res.stdout.splitlines()) == ["0: 2", "1: 2", "2: 2"]
    res = inst.strato("run", f"--output={tmp_path}/out-{{{{name}}}}.txt", "--job-name=x",
                      "echo", "to file", check=True)
    assert (res.stdout, (tmp_path / "out-x.txt").read_text()) == ("", "to file\n")


def test_shell_refuses_what_it_cannot_do_as_the_jobs_exception(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "-o", "rlimit.nosuch=1", "true")  # past the CLI's own check
    assert res.returncode == 127
    shell, run = res.stderr.splitlines()
    assert shell == "strato-shell: invalid rlimit nosuch=1"
    assert run.startswith("strato-run: job ƒ") and run.endswith(": exec: invalid rlimit nosuch=1")
    res = inst.strato("run", f"--output={tmp_path}/no/such/dir/out", "true")
    assert res.returncode != 0
    assert f"cannot open output file: No such file or directory: {tmp_path}/no/such/dir/out" \
        in res.stderr
    res = inst.strato("run", f"--input={tmp_path}/missing", "true")
    assert res.returncode != 0 and "cannot open input file" in res.stderr


def test_shell_plugin_hooks_of_the_docs_fire(make_instance, tmp_path):
    """docs/plugins.md's shell example: shell_task_init sets each task's environment,
    shell_task_exit writes to the job's stderr when a task failed."""
    path = tmp_path / "omp.py"
    path.write_text(SHELL_PLUGIN)
    inst = make_instance(config=CONFIG + f'[plugins]\nload = ["{path}"]\n')
    res = inst.strato("run", "-n2", "-c2", "sh", "-c",
                      'echo $OMP_NUM_THREADS; exit $STRATO_TASK_RANK')
    assert res.returncode == 1
    assert res.stdout == "2\n2\n"
    assert "task 1 failed" in res.stderr and "task 0 failed" not in res.stderr


def test_shell_host_whose_broker_goes_before_the_hello_exits_quietly():
    """An instance whose initial program ends at once may stop before its shell host's
    hello is answered: the host then exits 0 without an ERROR line (nothing was
    handed to it). Here the "broker" reads the hello and closes its end."""
    import socket
    import subprocess
    import sys

    ours, theirs = socket.socketpair()
    host = subprocess.Popen(
        [sys.executable, "-m", "strato.shell.host", "shell-host", "--fd", str(theirs.fileno())],
        pass_fds=[theirs.fileno()], stderr=subprocess.PIPE, text=True)
    theirs.close()
    try:
        assert ours.recv(65536)  # the hello (or its first bytes) arrived
        ours.close()
        _, err = host.communicate(timeout=60)
    finally:
        if host.poll() is None:
            host.kill()
    assert (host.returncode, err) == (0, "")


def test_what_a_task_holds_back_at_its_end_is_passed_on(make_instance):
    """The end of a stream flushes what the shell held back: an unfinished last line
    under --label-io (the task wrote it before exiting, the pipe then only closes)
    and a UTF-8 character cut off by the end (one replacement character)."""
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "--label-io", "printf", "one\\ntwo", check=True)
    assert res.stdout == "0: one\n0: two\n"
    res = inst.strato("run", "printf", "caf\\303", check=True)
    assert res.stdout == "caf\ufffd"
