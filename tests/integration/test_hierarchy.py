"""Issue 9 end to end: child instances (batch, alloc, strato start as a job) with
real brokers and processes, over a parent of 1024 virtual nodes whose own jobs
are simulated (an instance job always runs for real, so only the processes that
matter here are started).

What the tests prove: a child owns exactly its grant and schedules its own jobs
with its own config; ``uri``/``proxy``/``getattr`` find any instance of the tree;
anyone holding a URI can submit into it; cancelling, timing out or killing an
instance job leaves no process of the tree behind (checked in the process table
through a marker every process of the tree inherits); bad input gets one line
and a non-zero exit while the parent keeps running.

Nothing here sleeps: every wait is on an event (a job's end or eventlog entry, a
line a child prints, a process exit).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import STRATO, Instance

import strato
from strato import job, resource
from strato import module as modapi
from strato.core import ids

SIM_PARENT = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-1023]"
cores = "0-31"
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One parent for the whole module: 1024 virtual nodes x 32 cores, exec-sim.

    Shared, because every test also checks that the parent is left untouched."""
    inst = Instance(tmp_path_factory.mktemp("root"), SIM_PARENT)
    yield inst
    if inst.proc.poll() is None:
        inst.stop()


def strato_at(uri: str, *args: str, cwd: Path, timeout: float = 30,
              input: str | None = None) -> subprocess.CompletedProcess:
    """A strato command against the instance at `uri` (as ``STRATO_URI=uri strato``)."""
    env = dict(os.environ, STRATO_URI=uri)
    return subprocess.run([*STRATO, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, input=input)


def script(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text.lstrip())
    path.chmod(0o755)
    return path


def one_line_error(res: subprocess.CompletedProcess, *needles: str, rc: int | None = None):
    """The command failed with exactly one line on stderr naming every needle."""
    assert res.returncode != 0, res.stdout
    if rc is not None:
        assert res.returncode == rc, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def parent_untouched(inst: Instance) -> None:
    """The parent still runs jobs: a new one completes, nothing is left allocated."""
    res = inst.strato("run", "true")
    assert res.returncode == 0, res.stderr
    with inst.handle() as h:
        st = resource.status(h)
    assert st["allocated"]["ncores"] == 0 and st["free"]["nnodes"] == 1024


def jid(text: str) -> int:
    return job.id_parse(text.strip())


def only_active(uri: str) -> int:
    """The one active job of the instance at `uri`."""
    with strato.Handle(uri) as h:
        jobs = job.list(h)
    assert len(jobs) == 1, jobs
    return jobs[0]["id"]


# -- the process table ----------------------------------------------------------------------
def marked(mark: str) -> dict[int, str]:
    """Every live process whose environment has ``STRATO_TEST_MARK=<mark>``: a tree's
    brokers, shell hosts, initial programs and tasks inherit it from the first
    child's job environment, and nothing else on the machine has it."""
    want = f"STRATO_TEST_MARK={mark}".encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    continue  # exited, only waiting for its parent to reap it
            with open(f"/proc/{name}/cmdline", "rb") as f:
                found[int(name)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone while we looked
    return found


def wait_exited(pids, timeout: float) -> dict[int, str]:
    """Wait (on pidfds, no polling) until every pid has exited; those still alive
    after `timeout` seconds, with their command lines."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    try:
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                del fds[fd]
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
    alive = {}
    for pid in fds.values():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                alive[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            pass
    return alive


class Tree:
    """A chain of ``depth`` instances started by ``strato alloc`` from the test (the
    first under `root`, each next one its child's initial program), whose deepest
    instance runs a real ``sleep`` job (unless not `leaf_job`) and then holds. Every
    process of it carries the marker. `jobids[i]`/`uris[i]` are level i+1's job (in
    level i) and URI."""

    def __init__(self, root: Instance, depth: int, *opts: str, leaf_job: bool = True) -> None:
        self.root = root
        self.mark = uuid.uuid4().hex
        self.name = f"tree-{self.mark}"
        leaf = "echo ready && exec sleep 300"
        if leaf_job:
            leaf = ("id=$(strato submit --job-name=leaf sleep 300) &&"
                    " strato job wait-event $id start >/dev/null && " + leaf)
        # two cores each: the leaf's job takes one, a test's job may take the other
        argv = [*STRATO, "alloc", f"--env=STRATO_TEST_MARK={self.mark}",
                f"-n{2 * depth}", f"--job-name={self.name}", *opts]
        for level in range(depth - 1, 0, -1):
            argv += ["strato", "alloc", f"-n{2 * level}"]
        argv += ["sh", "-c", leaf]
        self.depth = depth
        self.proc = subprocess.Popen(argv, env=root.env, cwd=root.tmp, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        """Block until the deepest instance says ``ready`` (through every alloc's
        output stream), then find each level's job and URI."""
        line = self.proc.stdout.readline()
        assert line == "ready\n", self.proc.stderr.read() if not line else line
        with self.root.handle() as h:
            (rec,) = job.list(h, name=self.name)
            self.jobids = [rec["id"]]
            self.uris = [job.uri(h, rec["id"])]
        for _ in range(self.depth - 1):
            self.jobids.append(only_active(self.uris[-1]))
            with strato.Handle(self.uris[-1]) as h:
                self.uris.append(job.uri(h, self.jobids[-1]))

    def path(self, level: int) -> str:
        """``ID1/ID2/...`` down to `level` (1-based), as ``strato uri`` takes it."""
        return "/".join(ids.f58(j) for j in self.jobids[:level])

    def end(self) -> tuple[int, str]:
        """The alloc command's exit code and stderr, once it has ended."""
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


@pytest.fixture
def make_tree(root):
    """``make_tree(depth, *alloc_opts, leaf_job=True)``: a ready `Tree`. One a test
    leaves running (it failed half way) is cancelled, so the shared parent is idle
    for the next test."""
    trees = []

    def make(depth: int, *opts: str, leaf_job: bool = True) -> Tree:
        tree = Tree(root, depth, *opts, leaf_job=leaf_job)
        trees.append(tree)
        tree.wait_ready()
        return tree

    yield make
    with root.handle() as h:
        for tree in trees:
            for rec in job.list(h, name=tree.name):
                job.cancel(h, rec["id"])
                job.wait(h, rec["id"])
            if tree.proc.returncode is None:
                tree.end()


# -- batch ------------------------------------------------------------------------------------
def test_batch_script_is_the_child_initial_program(root, tmp_path):
    """The script runs inside its own instance: its jobs land there, the job's result is
    the script's exit status, and what it leaves behind is cancelled at its end
    (the --dump archive shows it). Directives, --output/--error templates too."""
    with root.handle() as h:
        before = len(job.list(h, states=0xFF))
    script(tmp_path, "job.sh", """
#!/bin/sh
#STRATO: -n2
#STRATO: --job-name=directed
echo level=$(strato getattr instance-level) uri=$STRATO_URI
strato run sh -c 'echo job-uri=$STRATO_URI'
strato submit --job-name=leftover sleep 300 >/dev/null
strato submit --job-name=held --urgency=hold true >/dev/null
strato run -n3 true
exit 3
""")
    res = root.strato("batch", "--output=out.{{id}}", "--error=err.{{id}}", "--dump=dump.tgz",
                      "job.sh", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    jobid = jid(res.stdout)
    with root.handle() as h:
        result = job.wait(h, jobid)
        info = job.info(h, jobid)
        after = len(job.list(h, states=0xFF))
    assert result.returncode == 3 and result.result == "FAILED" and result.exception is None
    assert after == before + 1  # the script's own jobs went to the child
    assert info["name"] == "directed" and info["ncores"] == 2
    child_uri = info["memo"]["uri"]
    f58 = ids.f58(jobid)
    out = (tmp_path / f"out.{f58}").read_text().splitlines()
    assert out == [f"level=1 uri={child_uri}", f"job-uri={child_uri}"]
    err = (tmp_path / f"err.{f58}").read_text()
    assert "unsatisfiable" in err and "the instance has 1 node(s), 2 core(s)" in err
    # the child's jobs, from its archive: the leftover ones were cancelled at its end
    with tarfile.open(tmp_path / "dump.tgz") as tar:
        logs = {m.name: json.load(tar.extractfile(m)) for m in tar.getmembers()
                if m.name.startswith("job/") and m.name.endswith("/eventlog")
                and "/exec/" not in m.name}
    assert len(logs) == 3  # `run -n3` was refused: no job
    for log in logs.values():
        assert log[-1]["name"] == "clean", log  # every job of the child ended
    cancelled = [log for log in logs.values()
                 if any(e["name"] == "exception" and e["context"]["type"] == "cancel"
                        for e in log)]
    assert len(cancelled) == 2  # the leftover sleep and the held job
    parent_untouched(root)


def test_wrap_and_conf_give_each_child_its_own_config(root, tmp_path):
    """--conf (KEY=VAL, a TOML file), --broker-opts and --wrap: each child runs the
    scheduler and exec backend it was given, whatever the parent runs."""
    (tmp_path / "child.toml").write_text('[sched]\nplugin = "sched-graph"\n'
                                         '[sched-graph]\nmatch-policy = "lonode"\n')
    runs = {
        "kv": ["--conf", "sched.plugin=sched-graph", "--wrap", "strato", "module", "list"],
        "file": ["--conf=child.toml", "--wrap", "strato", "plugins", "list"],
        "opts": ["--broker-opts=-S exec.backend=sim", "--wrap", "strato module list;"
                 " strato run sh -c 'echo simulated-not'"],
    }
    jobids = {}
    for name, args in runs.items():
        res = root.strato("batch", f"--output={name}.out", *args, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        jobids[name] = jid(res.stdout)
    with root.handle() as h:
        for name, jobid in jobids.items():
            assert job.wait(h, jobid).success, (tmp_path / f"{name}.out").read_text()
    kv = (tmp_path / "kv.out").read_text()
    assert any(ln.split()[:2] == ["sched", "sched-graph"] for ln in kv.splitlines()), kv
    assert "sched-graph:" in (tmp_path / "file.out").read_text()
    opts = (tmp_path / "opts.out").read_text()
    assert any(ln.split()[:2] == ["exec", "sim"] for ln in opts.splitlines()), opts
    assert "simulated-not" not in opts
    parent = root.strato("module", "list", check=True).stdout
    assert any(ln.split()[:2] == ["sched", "sched-simple"] for ln in parent.splitlines())


def test_child_of_1024_nodes_owns_exactly_its_64(root, tmp_path):
    """Bounding: a child given -N64 of a 1024-node parent has those 64 nodes and no
    more; a job asking for more is refused there with the reason; its own jobs are
    simulated (--conf exec.backend=sim) while it is a real process."""
    script(tmp_path, "inner.sh", """
#!/bin/sh
strato resource list --json
strato resource info
strato run -N65 true && exit 10
strato run -N64 -n64 sh -c 'echo real' || exit 11
""")
    res = root.strato("alloc", "-N64", "--conf", "exec.backend=sim", "sh", "inner.sh",
                      cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    status = json.loads(lines[0])
    assert status["free"]["nnodes"] == 64 and status["free"]["ncores"] == 64 * 32
    assert status["allocated"]["nnodes"] == 0
    assert lines[1:] == ["64 Nodes, 2048 Cores, 0 GPUs"]  # and no 'real': simulated
    assert "unsatisfiable request" in res.stderr and "has 64 node(s)" in res.stderr
    parent_untouched(root)


def test_strato_start_as_a_job_is_a_child(root, tmp_path):
    """`strato run strato start CMD` (no batch/alloc) yields a child too."""
    res = root.strato("run", "-n1", "strato", "start", "strato", "getattr", "instance-level",
                      cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == "1\n", res.stderr


# -- alloc ------------------------------------------------------------------------------------
def test_alloc_streams_and_returns_the_command_exit_code(root, tmp_path):
    """alloc CMD behaves like run CMD: output streamed here, CMD's exit code returned."""
    res = root.strato("alloc", "-n1", "sh", "-c", "echo out; echo err >&2; exit 7",
                      cwd=tmp_path)
    assert res.returncode == 7
    assert res.stdout == "out\n" and "err\n" in res.stderr


def test_alloc_interactive_on_a_terminal(root, tmp_path):
    """Without CMD, on a terminal: a shell inside the child; its exit code is alloc's."""
    primary, secondary = os.openpty()
    env = dict(root.env, SHELL="/bin/sh", PS1="")
    proc = subprocess.Popen([*STRATO, "alloc", "-n1"], stdin=secondary, stdout=secondary,
                            stderr=secondary, env=env, cwd=tmp_path, start_new_session=True)
    os.close(secondary)
    os.write(primary, b"echo level=$(strato getattr instance-level); exit 5\n")
    seen = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        assert ready, f"no output from the interactive shell: {seen!r}"
        try:
            data = os.read(primary, 4096)
        except OSError:  # EIO: every holder of the terminal is gone
            break
        if not data:
            break
        seen += data
    os.close(primary)
    assert proc.wait(timeout=60) == 5
    assert b"level=1" in seen


def test_depth_four(root, tmp_path):
    """Arbitrary recursion: each level is a child of the one above, down to level 4."""
    res = root.strato("alloc", "-N1", "strato", "alloc", "-n1", "strato", "alloc", "-n1",
                      "strato", "alloc", "-n1", "strato", "getattr", "instance-level",
                      cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "4\n"


# -- where am I, remote submission ------------------------------------------------------------
def test_uri_proxy_getattr_and_remote_submission(root, make_tree, tmp_path):
    """Every instance of a tree can be found from anywhere in it (job id paths, /ID
    from the root, --parent), tells where it is (getattr, lsattr), and takes jobs
    from anyone who holds its URI, from the CLI or from Python."""
    tree = make_tree(2, leaf_job=False)
    one, two = tree.path(1), tree.path(2)
    uri1, uri2 = tree.uris

    def out(*args, uri=root.uri):
        res = strato_at(uri, *args, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    assert out("uri", one) == uri1 and out("uri", "--wait", one) == uri1
    assert out("uri", "--local", one) == uri1
    assert out("uri", two) == uri2
    assert out("uri", "--parent", two) == uri1
    assert out("uri", f"/{one}", uri=uri2) == uri1  # from the root, wherever we are
    assert out("uri", "--parent", uri=uri2) == uri1
    assert out("uri", "--parent", uri=uri1) == root.uri
    assert out("getattr", "instance-level", uri=uri2) == "2"
    assert out("getattr", "parent-uri", uri=uri2) == uri1
    assert out("getattr", "jobid", uri=uri2) == ids.f58(tree.jobids[1])
    assert out("getattr", "size", uri=uri2) == "1"
    attrs = dict(ln.split(None, 1) for ln in out("lsattr", "-v", uri=uri2).splitlines()
                 if len(ln.split(None, 1)) == 2)
    assert attrs["instance-level"] == "2" and attrs["local-uri"] == uri2
    assert out("getattr", "instance-level") == "0"
    # inside any job, STRATO_URI is the instance the job runs in
    assert out("run", "printenv", "STRATO_URI", uri=uri2) == uri2
    # proxy: a command connected to a job's instance
    assert ids.f58(tree.jobids[1]) in out("proxy", one, "strato", "jobs", "-a")
    assert out("proxy", two, "strato", "getattr", "instance-level") == "2"
    # remote submission into the deepest child, holding only its URI
    remote = jid(out("submit", "--job-name=remote", "true", uri=out("uri", two)))
    out("proxy", two, "strato", "queue", "drain")
    with strato.Handle(uri2) as h:
        assert job.wait(h, remote).success
        assert job.info(h, remote)["name"] == "remote"
        spec = strato.JobspecV1.from_command(["true"])
        assert job.wait(h, job.submit(h, spec)).success
    with root.handle() as h:
        assert not job.list(h, states=0xFF, name="remote")
        job.cancel(h, tree.jobids[0])
    tree.end()
    parent_untouched(root)


def test_uri_wait_waits_for_a_held_instance(root, tmp_path):
    """--wait returns once the instance is up; strato shutdown ends it."""
    res = root.strato("submit", "--urgency=hold", "strato", "start", "sleep", "300",
                      cwd=tmp_path)
    held = res.stdout.strip()
    one_line_error(root.strato("uri", held), "has not started", rc=1)
    waiter = subprocess.Popen([*STRATO, "uri", "--wait", held], env=root.env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root.strato("job", "urgency", held, "default", check=True)
    uri, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert strato_at(uri.strip(), "getattr", "jobid", cwd=tmp_path).stdout.strip() == held
    root.strato("shutdown", held, check=True)
    with root.handle() as h:
        result = job.wait(h, jid(held))
    assert result.returncode == 128 + signal.SIGTERM and result.exception is None


# -- teardown ---------------------------------------------------------------------------------
def test_cancel_tears_down_a_three_level_tree(root, make_tree, tmp_path):
    """Cancelling the top job ends every instance, shell host, initial program and task
    below it before the job is inactive: the process table has none left."""
    tree = make_tree(3)
    procs = marked(tree.mark)
    # 3 brokers, 3 shell hosts, 2 alloc clients, the leaf's program and its job
    assert len(procs) >= 10, procs
    assert sum(cmd.split() == ["sleep", "300"] for cmd in procs.values()) == 2
    root.strato("cancel", ids.f58(tree.jobids[0]), check=True)
    with root.handle() as h:
        result = job.wait(h, tree.jobids[0])
    assert result.result == "CANCELED"
    assert marked(tree.mark) == {}
    rc, err = tree.end()
    assert rc != 0
    parent_untouched(root)


def test_time_limit_tears_down_everything_below(root, make_tree, tmp_path):
    """An instance job that runs out of time ends as a cancelled one does: with
    nothing of its tree left (the limit leaves time for the tree to start)."""
    tree = make_tree(2, "-t", "10s")
    with root.handle() as h:
        result = job.wait(h, tree.jobids[0])
    assert result.exception["type"] == "timeout"
    assert marked(tree.mark) == {}
    tree.end()
    parent_untouched(root)


def test_killed_child_broker_ends_its_job_and_frees_its_resources(root, make_tree, tmp_path):
    """A child that dies unexpectedly is not mistaken for a failed command: its job
    says it was killed, its grant returns to the parent, and what it ran goes too."""
    tree = make_tree(1)
    procs = marked(tree.mark)
    pid = int(strato_at(tree.uris[0], "getattr", "broker.pid", cwd=tmp_path).stdout)
    assert pid in procs
    with root.handle() as h:
        assert resource.status(h)["allocated"]["ncores"] == 2
        os.kill(pid, signal.SIGKILL)
        result = job.wait(h, tree.jobids[0])
    assert result.exception["type"] == "exec"
    assert result.exception["note"] == "child instance terminated by signal 9"
    # its initial program, shell host and the job inside go too (not waited for by the
    # parent: nothing below a killed broker can report to it)
    assert wait_exited(procs, 30) == {}
    rc, err = tree.end()
    assert rc != 0 and "terminated by signal 9" in err
    parent_untouched(root)


def test_killed_shell_host_of_a_child_takes_its_tasks(root, make_tree, tmp_path):
    """If a child's shell host dies, the child ends the jobs it ran and kills their
    processes: they must not keep running on resources the child now reuses."""
    tree = make_tree(1)
    with strato.Handle(tree.uris[0]) as h:
        (leaf,) = job.list(h)
        mods = {m["name"]: m for m in modapi.list_modules(h)["modules"]}
    host = int(mods["shell-host"]["where"].split()[1])
    tasks = [pid for pid, cmd in marked(tree.mark).items()
             if cmd.split() == ["sleep", "300"] and _ppid(pid) == host]
    assert len(tasks) == 1
    os.kill(host, signal.SIGKILL)
    with strato.Handle(tree.uris[0]) as h:
        result = job.wait(h, leaf["id"])
    assert "the shell host exited (killed by signal 9)" in result.exception["note"]
    assert wait_exited(tasks, 30) == {}
    with root.handle() as h:
        job.cancel(h, tree.jobids[0])
        job.wait(h, tree.jobids[0])
    tree.end()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


# -- bad input --------------------------------------------------------------------------------
def test_uri_and_proxy_of_what_is_not_a_running_instance(root, tmp_path):
    """Each says why there is no instance to reach, in one line."""
    plain = root.strato("submit", "true").stdout.strip()
    done = root.strato("submit", "strato", "start", "true").stdout.strip()
    with root.handle() as h:
        job.wait(h, jid(plain))
        job.wait(h, jid(done))
    one_line_error(root.strato("uri", plain), "not a strato instance", rc=1)
    one_line_error(root.strato("uri", done), "has finished", rc=1)
    one_line_error(root.strato("proxy", done, "true"), "has finished", rc=1)
    one_line_error(root.strato("proxy", "local:///nonexistent/local", "true"),
                   "local:///nonexistent/local", rc=1)
    one_line_error(root.strato("uri", "nope"), "not a job id", rc=1)
    one_line_error(root.strato("uri", "--parent"), "no parent", rc=1)
    # --wait on an instance that never starts says so instead of waiting forever
    held = root.strato("submit", "--urgency=hold", "strato", "start", "true").stdout.strip()
    waiter = subprocess.Popen([*STRATO, "uri", "--wait", held], env=root.env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root.strato("cancel", held, check=True)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 1 and "ended before its instance started" in err
    parent_untouched(root)


def test_child_that_cannot_start_fails_its_job_with_its_error(root, tmp_path):
    """The child's own one-line error becomes its job's exception note."""
    cases = {
        # --broker-opts are the child's own to check
        ("--broker-opts=-S sched.plugin=nope", "--wrap", "true"):
            "unknown scheduler 'nope'",
        # a valid config, but not for a child: its resources are its grant
        ("--conf", 'resource.config=[{hosts="n0", cores="0"}]', "--wrap", "true"):
            "remove the [resource] table",
    }
    for args, why in cases.items():
        res = root.strato("batch", *args, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        jobid = res.stdout.strip()
        wait = root.strato("job", "wait", jobid)
        one_line_error(wait, why, jobid, rc=1)
        with root.handle() as h:
            exc = job.info(h, jid(jobid))["exception"]
        assert exc["type"] == "exec" and exc["note"].startswith("child instance: ")
    # alloc streams the child's stderr (as run streams a task's), then says why in one line
    res = root.strato("alloc", "-n1", "nosuchcommand")
    assert res.returncode == 1
    child, mine = res.stderr.splitlines()
    assert child == "strato-start: nosuchcommand: command not found"
    assert mine.startswith("strato-alloc: job ƒ")
    assert mine.endswith(": exec: child instance: nosuchcommand: command not found")
    parent_untouched(root)


def test_bad_submissions_are_refused_with_one_line(root, tmp_path):
    """Refused before anything is submitted: the parent has no new job."""
    script(tmp_path, "ok.sh", "#!/bin/sh\ntrue\n")
    (tmp_path / "bad.json").write_text("{x")
    (tmp_path / "bad.toml").write_text("[x")
    (tmp_path / "noshebang.sh").write_text("true\n")
    with root.handle() as h:
        before = len(job.list(h, states=0xFF))
    for args, why in [
        (("batch", "--conf=/nonexistent/c.toml", "ok.sh"), "cannot read config"),
        (("batch", "--conf=bad.json", "ok.sh"), "bad.json"),
        (("batch", "--conf=bad.toml", "ok.sh"), "bad.toml"),
        (("batch", "--conf={x", "ok.sh"), "invalid JSON"),
        (("batch", "--conf=junk", "ok.sh"), "not a config file, KEY=VAL or JSON"),
        (("batch", "--conf==1", "ok.sh"), "invalid override"),
        (("alloc", "--conf=sched.plugn=x", "true"), "unknown key 'sched.plugn'"),
        (("batch", "--conf=exec.backend=warp", "ok.sh"), "unknown exec backend 'warp'"),
        (("batch", "noshebang.sh"), "noshebang.sh: not a script: it does not start with '#!'"),
        # --dump took ok.sh as its FILE, so the script is stdin: say so
        (("batch", "--dump", "ok.sh"), "--dump took 'ok.sh' as its archive"),
        (("batch", "--wrap"), "--wrap"),
        (("alloc",), "stdin is not a terminal"),
    ]:
        res = root.strato(*args, input="", cwd=tmp_path)
        one_line_error(res, why, rc=2)
    with root.handle() as h:
        assert len(job.list(h, states=0xFF)) == before
    parent_untouched(root)
