"""PMI-1 served by the job shell: real tasks speaking the wire protocol to real
shells, on one broker and across the brokers of a ``--test-size=2`` instance, with
``strato pmi`` (the test client) and with hand-written clients that misbehave."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import STRATO, Instance

FOUR_CORES = """
[[resource.config]]
hosts = "n[0-1]"
cores = "0-3"
"""


@pytest.fixture(scope="module")
def two_brokers(tmp_path_factory):
    """One instance of two brokers (two nodes of this machine's cores) for the module."""
    inst = Instance(tmp_path_factory.mktemp("pmi2"), args=("--test-size=2",))
    yield inst
    inst.stop()


@pytest.fixture(scope="module")
def one_broker(tmp_path_factory):
    """One broker over two virtual nodes of four cores."""
    inst = Instance(tmp_path_factory.mktemp("pmi1"), config=FOUR_CORES)
    yield inst
    inst.stop()


def _script(text: str) -> list[str]:
    """A task running Python `text` (with os, sys, PMI_FD as fd)."""
    return [sys.executable, "-c", "import os, sys\nfd = int(os.environ['PMI_FD'])\n" + text]


@pytest.mark.parametrize("shape", [("-n4",), ("-N2", "-n4")])
def test_exchange_on_one_broker(one_broker, shape):
    """One shell runs every task, virtual nodes or not: no message leaves it."""
    res = one_broker.strato("run", *shape, "strato", "pmi", "exchange", check=True)
    assert "completed pmi exchange on 4 tasks" in res.stdout


def test_exchange_across_brokers(two_brokers):
    """Two tasks on each broker: every rank gets every other rank's key (the
    exchange goes through rank 0), three times over."""
    res = two_brokers.strato("run", "-N2", "-n4", "strato", "pmi", "exchange", "--count=3",
                             check=True)
    assert res.stdout.count("completed pmi exchange on 4 tasks") == 3


def test_barriers_across_brokers(two_brokers):
    res = two_brokers.strato("run", "-N2", "-n4", "strato", "pmi", "barrier",
                             "--test-count=5", check=True)
    assert res.stdout.count("completed pmi barrier on 4 tasks") == 5


def test_environment_of_the_tasks(two_brokers):
    res = two_brokers.strato("run", "-N2", "-n4", "--label-io", "sh", "-c",
                             "echo $PMI_FD $PMI_RANK $PMI_SIZE", check=True)
    assert sorted(res.stdout.splitlines()) == [f"{r}: 3 {r} 4" for r in range(4)]


@pytest.mark.parametrize("taskmap, mapping", [
    ("block", "(vector,(0,2,2))"),
    ("cyclic", "(vector,(0,2,1),(0,2,1))"),
])
def test_process_mapping(two_brokers, taskmap, mapping):
    """MPICH's map of which ranks share a node, as the task map laid them out."""
    res = two_brokers.strato("run", "-N2", "-n4", f"--taskmap={taskmap}", "strato", "pmi",
                             "get", "--ranks=all", "PMI_process_mapping", check=True)
    assert res.stdout.splitlines() == [mapping] * 4


@pytest.mark.parametrize("args", [("-n1",), ("-n2", "-o", "pmi=off")])
def test_no_pmi(one_broker, args):
    """One task gets no PMI by default; -o pmi=off turns it off for any job."""
    res = one_broker.strato("run", *args, "sh", "-c", 'echo "fd=${PMI_FD-none}"', check=True)
    assert set(res.stdout.splitlines()) == {"fd=none"}


def test_pmi_on_for_one_task(one_broker):
    res = one_broker.strato("run", "-n1", "-o", "pmi=simple", "strato", "pmi", "exchange",
                            check=True)
    assert "completed pmi exchange on 1 tasks" in res.stdout


def test_unknown_pmi_option(one_broker):
    res = one_broker.strato("run", "-n2", "-o", "pmi=pmix", "true")
    assert res.returncode != 0
    assert "-o pmi=pmix: unknown PMI 'pmix' (this shell offers: simple, off)" in res.stderr


def test_protocol_answers(one_broker):
    """The requests MPICH and Slurm's clients make, answered as the protocol says."""
    text = r"""
def ask(line):
    os.write(fd, line.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        data += os.read(fd, 4096)
    print(data.decode().strip())
rank = os.environ['PMI_RANK']
if rank == '0':
    ask("cmd=init pmi_version=2 pmi_subversion=0")
    ask("cmd=init pmi_version=1 pmi_subversion=1")
    ask("cmd=put kvsname=x key=a value=one two")
    ask("cmd=put kvsname=x key=" + "k" * 65 + " value=v")
    ask("cmd=get kvsname=x key=a")
    ask("cmd=publish_name service=s port=p")
    ask("cmd=barrier_in")
    ask("cmd=get kvsname=x key=a")
    ask("cmd=getbyidx kvsname=x idx=0")
    ask("cmd=getbyidx kvsname=x idx=1")
    os.write(fd, b"mcmd=spawn\nexecname=x\n")
    ask("endcmd")
    ask("cmd=finalize")
else:
    os.write(fd, b"cmd=init pmi_version=1 pmi_subversion=1\n"); os.read(fd, 4096)
    os.write(fd, b"cmd=barrier_in\n"); os.read(fd, 4096)
    os.write(fd, b"cmd=finalize\n"); os.read(fd, 4096)
"""
    res = one_broker.strato("run", "-n2", *_script(text), check=True)
    assert res.stdout.splitlines() == [
        "cmd=response_to_init rc=-1",
        "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1",
        "cmd=put_result rc=0 msg=success",
        "cmd=put_result rc=5 msg=key_too_long",
        "cmd=get_result rc=-1 msg=key_not_found",  # not before the barrier
        "cmd=publish_result rc=-1 msg=not_supported",
        "cmd=barrier_out rc=0",
        "cmd=get_result rc=0 msg=success value=one two",
        "cmd=getbyidx_results rc=0 nextidx=1 key=a val=one two",
        "cmd=getbyidx_results rc=-2 reason=no_more_keyvals",
        "cmd=spawn_result rc=-1",
        "cmd=finalize_ack rc=0",
    ]


# -- misbehaving clients: the job ends with a clear exception, the instance goes on ------
def _still_works(inst) -> None:
    res = inst.strato("run", "-N2", "-n2", "strato", "pmi", "barrier", check=True)
    assert "completed pmi barrier on 2 tasks" in res.stdout


@pytest.mark.parametrize("line, why", [
    (b"hello there\n", "PMI protocol error: 'hello' is not key=value"),
    (b"cmd=frobnicate\n", "PMI protocol error: unknown request cmd=frobnicate"),
    (b"cmd=put kvsname=x key=a\n", "PMI protocol error: cmd=put without value="),
    (b"cmd=get key=a\xff\n", "PMI protocol error: a request that is not UTF-8 text"),
    (b"x" * 5000, "PMI protocol error: a request line longer than 4096 bytes"),
])
def test_garbage_ends_the_job(two_brokers, line, why):
    text = f"""
os.write(fd, b"cmd=init pmi_version=1 pmi_subversion=1\\n"); os.read(fd, 4096)
if os.environ['PMI_RANK'] == '1':
    os.write(fd, {line!r})
while os.read(fd, 4096):  # until the shell hangs up (rank 1) or the job is killed
    pass
"""
    res = two_brokers.strato("run", "-N2", "-n2", *_script(text), timeout=60)
    assert res.returncode != 0
    assert f"task 1: {why}" in res.stderr
    _still_works(two_brokers)


def test_disconnect_mid_fence_ends_the_job(two_brokers):
    """Rank 0 waits in a barrier on one broker; rank 1, on the other, closes its
    connection without finalize: the barrier can never complete."""
    text = """
os.write(fd, b"cmd=init pmi_version=1 pmi_subversion=1\\n"); os.read(fd, 4096)
if os.environ['PMI_RANK'] == '0':
    os.write(fd, b"cmd=barrier_in\\n")
    while os.read(fd, 4096):  # barrier_out rc=-1, then the job is killed
        pass
else:
    os.close(fd)
"""
    res = two_brokers.strato("run", "-N2", "-n2", "--label-io", *_script(text), timeout=60)
    assert res.returncode != 0
    assert "the PMI barrier failed: task 1 closed its PMI connection before finalize" \
        in res.stderr
    _still_works(two_brokers)


def test_abort_ends_the_job(two_brokers):
    res = two_brokers.strato("run", "-N2", "-n2", "strato", "pmi", "barrier",
                             "--test-abort=1", timeout=60)
    assert res.returncode != 0
    assert "task 1: PMI abort (exit code 1): strato-pmi: rank 1 is aborting" in res.stderr
    _still_works(two_brokers)


def test_exchange_service_refuses_strangers(two_brokers):
    """pmi.exchange answers only the shells of running spread jobs."""
    from strato.core.errors import RPCError

    with two_brokers.handle() as h:
        for body, why in (({"id": 1, "rank": 0, "kvs": {}}, "is not running here"),
                          ({"id": "x"}, "needs a job id and a broker rank"),
                          ([], "must be a mapping")):
            with pytest.raises(RPCError, match=why):
                h.rpc("pmi.exchange", body)


# -- strato pmi outside a launcher, and its bad input ------------------------------------
def _pmi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "STRATO_"))}
    return subprocess.run([*STRATO, "pmi", *args], capture_output=True, text=True,
                          timeout=60, env=dict(base, **(env or {})))


def test_singleton():
    res = _pmi("exchange")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0: completed pmi exchange on 1 tasks in ")


@pytest.mark.parametrize("args, env, message", [
    (("--method=simple", "barrier"), {},
     "strato-pmi: simple: PMI_FD is not set (not started by a PMI launcher)"),
    (("barrier",), {"PMI_FD": "x", "PMI_RANK": "0", "PMI_SIZE": "1"},
     "strato-pmi: PMI_FD=x is not a number (the PMI launcher's environment is incomplete)"),
    (("barrier",), {"PMI_FD": "3"},
     "strato-pmi: PMI_RANK= is not a number (the PMI launcher's environment is incomplete)"),
    (("barrier",), {"PMI_FD": "3", "PMI_RANK": "2", "PMI_SIZE": "2"},
     "strato-pmi: PMI_RANK=2 is not below PMI_SIZE=2"),
    (("barrier",), {"PMI_FD": "999", "PMI_RANK": "0", "PMI_SIZE": "1"},
     "strato-pmi: PMI_FD=999 is not an open file descriptor"),
    (("barrier",), {"PMI_FD": "1", "PMI_RANK": "0", "PMI_SIZE": "1"},  # stdout: a pipe
     "strato-pmi: PMI_FD=1 is not a socket (the launcher's PMI connection is elsewhere)"),
    (("--method=pmix", "barrier"), {}, "strato-pmi: Invalid value for '--method'"),
    (("get",), {}, "strato-pmi: Missing argument 'KEYS...'"),
    (("get", "--ranks=x", "k"), {}, "strato-pmi: Invalid value for '--ranks'"),
    (("get", "nokey"), {}, "strato-pmi: get nokey: no such key"),
    (("get", "a=b"), {}, "strato-pmi: PMI get: invalid key 'a=b'"),
    (("-t", "soon", "barrier"), {}, "strato-pmi: Invalid value for '-t/--timeout'"),
    (("barrier", "--test-count=0"), {}, "strato-pmi: Invalid value for '--test-count'"),
    (("exchange", "--count=x"), {}, "strato-pmi: Invalid value for '--count'"),
    (("frob",), {}, "strato-pmi: No such command 'frob'"),
])
def test_bad_input(args, env, message):
    res = _pmi(*args, env=env)
    assert res.returncode != 0
    assert res.stderr.startswith(message), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
