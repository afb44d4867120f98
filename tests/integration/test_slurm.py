"""strato under Slurm: a real one-host Slurm cluster (Debian's slurm-wlm: slurmctld and one
slurmd on this machine, munge for authentication), set up by tools/slurm-up.sh, and
`srun --mpi=pmi2` starting strato brokers that find each other through Slurm's PMI.
Skipped, saying why, only where that cluster cannot be started (not root and no Slurm
running, no apt to install it, a slurmd that does not come up)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import netns
import pytest
from conftest import REPO, STRATO, machine_wide
from test_docs_examples import extract, transcript

pytestmark = machine_wide

HOST = socket.gethostname()
NODE = HOST.split(".")[0]  # Slurm's name for this node
#: every srun of this module carries this job name, so a hung one can be cancelled
JOB_NAME = f"strato-test-{os.getpid()}"
SLURM_UP = str(REPO / "tools" / "slurm-up.sh")


@pytest.fixture(scope="module")
def slurm() -> None:
    """A Slurm cluster whose node is idle. tools/slurm-up.sh is idempotent and leaves
    the daemons running afterwards (another run, or another worktree's, finds them up
    at once); `tools/slurm-up.sh --stop` stops them."""
    res = subprocess.run([SLURM_UP], capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"Slurm cannot be started here: {why}")
    yield
    subprocess.run(["scancel", f"--name={JOB_NAME}"], capture_output=True, timeout=60)


def srun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``srun ARGS`` (as this test's job, at most 5 minutes, without "queued and
    waiting" notes), from a clean environment (no STRATO_URI of an enclosing instance)."""
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return subprocess.run(["srun", "--quiet", f"--job-name={JOB_NAME}", "--time=5", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def test_srun_pmi2_gives_each_task_a_pmi_fd(slurm):
    """What the PMI bootstrap of `strato start` relies on: with --mpi=pmi2 each task gets
    PMI_FD (an open socket to its slurmstepd), PMI_RANK and PMI_SIZE."""
    res = srun("-n2", "--overcommit", "--mpi=pmi2", "sh", "-c",
               'echo "$PMI_RANK $PMI_SIZE $PMI_FD $(readlink /proc/self/fd/$PMI_FD)"')
    assert res.returncode == 0, res.stderr
    rows = sorted(line.split() for line in res.stdout.splitlines())
    assert [r[:2] for r in rows] == [["0", "2"], ["1", "2"]]
    for _, _, fd, target in rows:
        assert int(fd) > 2 and target.startswith("socket:")



def test_strato_pmi_client_speaks_slurms_pmi(slurm):
    """strato's PMI-1 client (what the broker bootstrap uses) against Slurm's server:
    Slurm orders an answer's fields its own way (rc first), says appnum=-1, and
    answers a get of a missing key with a bare rc=1."""
    res = srun("-n3", "--overcommit", "--mpi=pmi2", *STRATO, "pmi", "exchange")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0: completed pmi exchange on 3 tasks in ")
    res = srun("-n3", "--overcommit", "--mpi=pmi2", *STRATO, "pmi", "get",
               "PMI_process_mapping")
    assert (res.returncode, res.stdout) == (0, "(vector,(0,1,3))\n"), res.stderr
    res = srun("-n1", "--mpi=pmi2", *STRATO, "pmi", "get", "no-such-key")
    assert res.returncode == 1
    # srun's own "task 0: Exited with exit code 1" may come before or after it
    ours = [ln for ln in res.stderr.splitlines() if not ln.startswith("srun: ")]
    assert ours == ["strato-pmi: get no-such-key: no such key"], res.stderr

#: the initial program of the instance srun starts (as a user's script.sh would be)
SCRIPT = """\
#!/bin/sh
test "$(strato getattr size)" = 4 || { echo "size is $(strato getattr size)"; exit 1; }
strato overlay status
strato run -N4 -n4 --label-io sh -c 'echo rank $(strato getattr rank) of $STRATO_JOB_SIZE'
"""


def test_srun_starts_a_4_broker_instance(slurm, tmp_path):
    """`srun -n4 --mpi=pmi2 strato start script.sh`: four brokers, one per Slurm task,
    find each other through Slurm's PMI and form one instance; rank 0 runs the script,
    whose job spans all four brokers, and every broker ends when it does.
    (--overcommit: four tasks on this host's CPUs, as -N4 would be on four hosts.)"""
    script = tmp_path / "script.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    res = srun("-n4", "--overcommit", "--mpi=pmi2", *STRATO, "start", str(script))
    assert (res.returncode, res.stderr) == (0, "")
    lines = res.stdout.splitlines()
    assert lines[:4] == [f"0 {HOST}: full", f"├─ 1 {HOST}: full", f"│  └─ 3 {HOST}: full",
                         f"└─ 2 {HOST}: full"]
    assert sorted(lines[4:]) == [f"{r}: rank {r} of 4" for r in range(4)]


def test_srun_exit_status_is_the_scripts(slurm):
    """The script's exit status is rank 0's, so srun's; the other brokers end cleanly
    (srun reports no other task)."""
    res = srun("-n2", "--overcommit", "--mpi=pmi2", *STRATO, "start", "sh", "-c", "exit 3")
    assert (res.returncode, res.stderr) == \
        (3, f"srun: error: {NODE}: task 0: Exited with exit code 3\n")


def test_srun_without_pmi_is_refused(slurm):
    """srun without --mpi=pmi2 (MpiDefault=none) gives no PMI: rather than four
    unrelated one-broker instances each running the script, each broker says what to do."""
    res = srun("-n2", "--overcommit", *STRATO, "start", "true")
    assert res.returncode == 1
    refusals = [line for line in res.stderr.splitlines() if line.startswith("strato-start")]
    assert refusals == ["strato-start: started as one of 2 Slurm tasks (srun) without PMI: "
                        "use srun --mpi=pmi2"] * 2



def test_docs_example_on_one_machine(slurm, tmp_path):
    """docs/admin/slurm.md's one-machine transcript, run as a reader would run it on
    the cluster tools/slurm-up.sh made (the docs test cannot: it has no Slurm)."""
    blocks = [b for b in extract(REPO / "docs" / "admin" / "slurm.md")
              if "test_slurm.py" in b.notes.get("not run", "")]
    assert blocks, "the page lost its one-machine example"
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    for block in blocks:
        for command, expected in transcript(block.text):
            res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command],
                                 capture_output=True, text=True, timeout=120, env=env,
                                 cwd=tmp_path, stdin=subprocess.DEVNULL)
            assert (res.returncode, res.stdout.splitlines()) == (0, expected), \
                f"{block.where}: {command}\n{res.stderr}"

USAGE = ("usage: tools/slurm-up.sh [--stop | --print-config --dir DIR [--name CLUSTER] "
         "NODE=ADDR...]")


@pytest.mark.parametrize("args, env, message", [
    (["--bogus"], {}, f"slurm-up: unknown argument '--bogus' ({USAGE})"),
    ([], {"SLURM_CONF": "FOREIGN"},
     "slurm-up: FOREIGN exists and was not written by tools/slurm-up.sh: not touching it"),
    (["--print-config", "n0=10.0.0.1"], {}, f"slurm-up: --print-config needs --dir DIR ({USAGE})"),
    (["--print-config", "--dir"], {}, f"slurm-up: --dir needs a value ({USAGE})"),
    (["--print-config", "--dir", "/d"], {},
     f"slurm-up: --print-config needs at least one NODE=ADDR ({USAGE})"),
    (["--print-config", "--dir", "/d", "--ranks", "n0=10.0.0.1"], {},
     f"slurm-up: unknown argument '--ranks' ({USAGE})"),
    (["--print-config", "--dir", "/d", "n0=10.0.0.1", "n1"], {},
     f"slurm-up: 'n1' is not NODE=ADDR ({USAGE})"),
    (["--print-config", "--dir", "/d", "n0=10.0.0.1 n1=10.0.0.2"], {},
     f"slurm-up: 'n0=10.0.0.1 n1=10.0.0.2' is not NODE=ADDR ({USAGE})"),
])
def test_slurm_up_bad_input(tmp_path, args, env, message):
    """A wrong argument, or a slurm.conf someone else wrote (a real site's): one line,
    exit 1, nothing printed, and the file is left as it was."""
    foreign = tmp_path / "slurm.conf"
    foreign.write_text("ClusterName=theirs\n")
    env = {k: v.replace("FOREIGN", str(foreign)) for k, v in env.items()}
    if env and os.geteuid() != 0:
        pytest.skip("the config is only written as root")
    res = subprocess.run([SLURM_UP, *args], capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, **env))
    assert (res.returncode, res.stderr.splitlines()[-1:]) == \
        (1, [message.replace("FOREIGN", str(foreign))])
    assert foreign.read_text() == "ClusterName=theirs\n"
    if args[:1] == ["--print-config"]:
        assert res.stdout == ""


def test_slurm_up_print_config_is_the_one_host_config(slurm):
    """The one template: --print-config of this one node is the slurm.conf the script
    wrote for its own cluster but for the paths (all under --dir), and of three nodes
    gives each slurmd files of its own."""
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    written = open(conf).read()
    res = subprocess.run([SLURM_UP, "--print-config", "--dir", "/d", f"{NODE}=127.0.0.1"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for where in ("/var/spool/strato-slurm", "/run/strato-slurm", "/var/log/strato-slurm"):
        written = written.replace(where, "/d")
    assert res.stdout == written
    res = subprocess.run([SLURM_UP, "--print-config", "--dir", "/d", "--name", "three",
                          "a=10.0.0.1", "b=10.0.0.2", "c=10.0.0.3"],
                         capture_output=True, text=True, timeout=60)
    lines = res.stdout.splitlines()
    assert lines[0] == "# written by strato tools/slurm-up.sh: a cluster of 3 hosts for tests"
    assert {"ClusterName=three", "SlurmctldHost=a(10.0.0.1)", "SlurmdSpoolDir=/d/d.%n",
            "SlurmdPidFile=/d/slurmd.%n.pid", "SlurmdLogFile=/d/slurmd.%n.log"} <= set(lines)
    assert [line.split()[:2] for line in lines if line.startswith("NodeName=")] == [
        ["NodeName=a", "NodeAddr=10.0.0.1"], ["NodeName=b", "NodeAddr=10.0.0.2"],
        ["NodeName=c", "NodeAddr=10.0.0.3"]]


# -- several hosts: slurmd in network namespaces ---------------------------------------

#: the cluster of "hosts", each a network namespace (tests/netns.py) with its own slurmd
SLURM_HOSTS = ["node0", "node1", "node2"]


def _hosts_conf(hosts: netns.Hosts, state: str) -> str:
    """slurm.conf of the namespace cluster, as tools/slurm-up.sh writes its own:
    slurmctld on node0, every node at its own address, every file under `state`
    (each slurmd's apart)."""
    nodes = [f"{name}={hosts.addr(i)}" for i, name in enumerate(hosts.names)]
    res = subprocess.run([SLURM_UP, "--print-config", "--dir", state, "--name",
                          "strato-netns", *nodes], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def slurm_hosts(slurm):
    """A Slurm cluster of three hosts on this machine: each in its own network
    namespace with its own hostname and address, running its own slurmd (node0 runs
    slurmctld too), configured by a slurm.conf of its own (``SLURM_CONF``); munge is
    the machine's, its socket a file that every namespace reaches. Yields the hosts
    and the environment that selects this cluster; all of it is removed afterwards."""
    why_not = netns.unavailable()
    if why_not is not None:
        pytest.skip(f"no network namespaces: {why_not}")
    state = tempfile.mkdtemp(prefix="sl-")  # short: slurmd's sockets live in it
    hosts = netns.Hosts(len(SLURM_HOSTS), names=SLURM_HOSTS)
    try:
        for sub in ["ctld", *(f"d.{name}" for name in SLURM_HOSTS)]:
            os.mkdir(f"{state}/{sub}")
        with open(f"{state}/slurm.conf", "w") as f:
            f.write(_hosts_conf(hosts, state))
        env = dict(os.environ, SLURM_CONF=f"{state}/slurm.conf")
        env.pop("STRATO_URI", None)

        def on(i: int, *cmd: str) -> subprocess.CompletedProcess:
            return subprocess.run([*hosts.prefix(i), *cmd], env=env, capture_output=True,
                                  text=True, timeout=120, stdin=subprocess.DEVNULL)

        for i, name in enumerate(SLURM_HOSTS):
            daemons = [["slurmctld"]] if i == 0 else []
            for daemon in [*daemons, ["slurmd", "-N", name]]:
                res = on(i, *daemon)
                if res.returncode != 0:
                    log = f"{state}/{daemon[0]}" + (f".{name}" if daemon[0] == "slurmd" else "")
                    pytest.skip(f"{daemon[0]} does not start in a network namespace: "
                                f"{_last_line(log + '.log')}")
        deadline = time.monotonic() + 120
        while True:
            res = on(0, "sinfo", "-h", "-N", "-o", "%T")
            if res.stdout.split() == ["idle"] * len(SLURM_HOSTS):
                break
            if time.monotonic() > deadline:
                pytest.skip(f"the namespace cluster's nodes are not idle in 120s (sinfo: "
                            f"{res.stdout.split()}; {_last_line(state + '/slurmctld.log')})")
            time.sleep(0.2)
        yield hosts, env
    finally:
        hosts.close()  # slurmctld, the slurmds and all they started go with them
        shutil.rmtree(state, ignore_errors=True)


def _last_line(path: str) -> str:
    try:
        with open(path) as f:
            return (f.read().strip().splitlines() or ["(empty log)"])[-1]
    except OSError:
        return f"no log {path}"


def test_srun_across_hosts(slurm_hosts, tmp_path):
    """srun -N3 over three hosts: Slurm's PMI spans its slurmstepds on three network
    stacks, the brokers connect across the bridge (tbon.interface-hint=eth0: these
    hosts have no default route), and a job runs on every host."""
    hosts, env = slurm_hosts
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nstrato overlay status\nstrato getattr tbon.endpoint\n"
                      "strato run -N3 --label-io hostname\n")
    script.chmod(0o755)
    res = subprocess.run([*hosts.prefix(0), "srun", "--quiet", "-N3", "--time=5",
                          "--mpi=pmi2", *STRATO, "start", "-S", "tbon.interface-hint=eth0",
                          str(script)], env=env, capture_output=True, text=True,
                         timeout=180, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert (res.returncode, res.stderr) == (0, "")
    lines = res.stdout.splitlines()
    assert lines[:3] == ["0 node0: full", "├─ 1 node1: full", "└─ 2 node2: full"]
    assert lines[3].startswith(f"tcp://{hosts.addr(0)}:")
    assert sorted(lines[4:]) == ["0: node0", "1: node1", "2: node2"]


def test_srun_across_hosts_refuses_loopback(slurm_hosts, tmp_path):
    """Without a default route or a resolvable hostname a broker's address would be
    loopback, which no other host reaches: every broker says so at once, instead of
    timing out."""
    hosts, env = slurm_hosts
    res = subprocess.run([*hosts.prefix(0), "srun", "--quiet", "-N3", "--time=5",
                          "--mpi=pmi2", *STRATO, "start", "true"], env=env,
                         capture_output=True, text=True, timeout=180,
                         stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert res.returncode == 1
    said = [line for line in res.stderr.splitlines() if line.startswith("strato-start")]
    assert len(said) == 3
    assert said[0].startswith("strato-start: PMI bootstrap: rank 0 (node0) listens on "
                              "tcp://127.0.0.1:")
    assert said[0].endswith(", a loopback address that brokers on other hosts cannot "
                            "reach: set tbon.interface-hint to the network interface the "
                            "nodes share (e.g. -S tbon.interface-hint=eth0)")
