"""Multi-broker instances on this machine: real broker processes joined over tcp on
127.0.0.1 with CURVE, as ``strato start --test-size=N`` and ``[bootstrap]`` make them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq
from conftest import STRATO

import strato
from strato.core import proto
from strato.core.cert import keygen, load_cert
from strato.core.errors import RPCError

HOST = socket.gethostname()


def _env() -> dict:
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return env


def _rank_uri(inst, rank: int) -> str:
    rundir = inst.strato("getattr", "rundir", check=True).stdout.strip()
    return f"local://{rundir}/{rank}/local"


def _wait_for(what, check, timeout: float = 60.0):
    """Poll `check` until it returns something true (a state the instance reaches
    asynchronously, such as a lost broker being noticed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_test_size_starts_and_stops(size):
    """Every broker joins before the initial program runs, and none outlives it, nor
    any shell host (woken by a job, or still parked: size 4 runs one, the others none)."""
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    script = ("R=$(strato getattr rundir); strato getattr size; "
              "for r in $(seq 1 $(($(strato getattr size) - 1))); do "
              "STRATO_URI=local://$R/$r/local strato getattr broker.pid; done; "
              + ("strato run -N4 true; " if size == 4 else "") + f"# {marker}")
    res = subprocess.run([*STRATO, "start", f"--test-size={size}", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[0] == str(size)
    pids = [int(p) for p in lines[1:]]
    assert len(set(pids)) == size - 1
    for pid in pids:  # they were our children's children: gone, not zombies left around
        assert not os.path.exists(f"/proc/{pid}") or \
            "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert res.stderr == ""
    assert _processes_with(marker) == []


def test_attributes_of_each_rank(make_instance):
    inst = make_instance(args=("--test-size=4",))
    attrs = inst.handle().rpc("attr.list")["attrs"]
    assert attrs["rank"] == 0 and attrs["size"] == 4
    assert attrs["hostlist"] == ",".join([HOST] * 4)
    assert attrs["broker.mapping"] == '{"version":1,"map":[[0,1,4,1]]}'
    assert attrs["tbon.fanout"] == 2 and attrs["tbon.parent-endpoint"] == ""
    assert attrs["tbon.endpoint"].startswith("tcp://127.0.0.1:")
    with strato.Handle(_rank_uri(inst, 3)) as h:
        a3 = h.rpc("attr.list")["attrs"]
        assert a3["rank"] == 3 and a3["size"] == 4
        # rank 3's parent is rank 1 (kary:2): its endpoint is rank 1's
        assert a3["tbon.parent-endpoint"] == \
            h.rpc("attr.get", {"name": "tbon.endpoint"}, nodeid=1)["value"]
        assert a3["tbon.endpoint"] == ""  # a leaf listens for no one


def test_client_on_rank3_reaches_rank0(make_instance):
    """Requests from a client on rank 3 go up the tree to the job manager and back,
    and addressed requests reach any rank."""
    inst = make_instance(args=("--test-size=4",))
    env = dict(inst.env, STRATO_URI=_rank_uri(inst, 3))
    res = subprocess.run([*STRATO, "run", "echo", "hello"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, "hello\n", "")
    res = subprocess.run([*STRATO, "jobs", "-a", "-n", "-o", "{state}"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["INACTIVE"]
    with strato.Handle(env["STRATO_URI"]) as h:
        assert h.rpc("attr.get", {"name": "rank"})["value"] == 3
        for rank in range(4):  # up to 1, 0 and down again to 2
            assert h.rpc("attr.get", {"name": "rank"}, nodeid=rank)["value"] == rank
        assert h.rpc("attr.get", {"name": "rank"}, nodeid=proto.NODEID_UPSTREAM)["value"] == 1
        with pytest.raises(RPCError, match=r"no route to rank 9 \(instance size is 4\)"):
            h.rpc("broker.ping", {}, nodeid=9)
        with pytest.raises(RPCError, match="no service matches no-such.service"):
            h.rpc("no-such.service", {})


def test_events_in_order_on_every_rank(make_instance):
    inst = make_instance(args=("--test-size=8",))
    handles = [strato.Handle(_rank_uri(inst, r)) for r in range(1, 8)] + [inst.handle()]
    tags = []
    for h in handles:
        tag = h.send("event.subscribe", {"prefix": "test."}, stream=True)
        first, err, _ = h.recv(tag, timeout=30)
        assert err is None and first["topic"] == "event.subscribed"
        tags.append(tag)
    with strato.Handle(_rank_uri(inst, 7)) as pub:  # published from a leaf: rank 0 numbers
        seqs = [pub.rpc("event.publish", {"topic": f"test.{i}", "body": i})["seq"]
                for i in range(50)]
    assert seqs == list(range(seqs[0], seqs[0] + 50))
    for h, tag in zip(handles, tags, strict=True):
        got = [h.recv(tag, timeout=30)[0] for _ in range(50)]
        assert [e["topic"] for e in got] == [f"test.{i}" for i in range(50)]
        assert [e["seq"] for e in got] == seqs
        assert [e["body"] for e in got] == list(range(50))
        h.close()


def test_overlay_status_and_a_lost_broker(make_instance):
    inst = make_instance(args=("--test-size=4",))
    res = inst.strato("overlay", "status", check=True)
    assert res.stdout == (f"0 {HOST}: full\n"
                          f"├─ 1 {HOST}: full\n"
                          f"│  └─ 3 {HOST}: full\n"
                          f"└─ 2 {HOST}: full\n")
    with strato.Handle(_rank_uri(inst, 3)) as h:
        pid = h.rpc("attr.get", {"name": "broker.pid"})["value"]
    os.kill(pid, 9)
    lost = (f"0 {HOST}: degraded\n"
            f"├─ 1 {HOST}: degraded\n"
            f"│  └─ 3 {HOST}: lost\n"
            f"└─ 2 {HOST}: full\n")
    _wait_for("rank 3 to be lost",
              lambda: inst.strato("overlay", "status", check=True).stdout == lost)
    res = inst.strato("ping", "--count=1")
    assert res.returncode == 0
    with inst.handle() as h:
        with pytest.raises(RPCError, match="no route to rank 3: broker 3 is lost"):
            h.rpc("broker.ping", {}, nodeid=3)
    res = inst.strato("run", "echo", "still")
    assert res.stdout == "still\n"
    inst.proc.stdin.close()
    assert inst.proc.wait(timeout=60) == 0
    assert "strato-broker[1]: overlay: lost broker rank 3\n" in inst.proc.stderr.read()


def test_fanout_and_single_broker_status(make_instance):
    inst = make_instance(args=("--test-size=4", "-S", "tbon.topo=kary:3"))
    res = inst.strato("overlay", "status", check=True)
    assert res.stdout.splitlines()[1:] == [f"├─ 1 {HOST}: full", f"├─ 2 {HOST}: full",
                                           f"└─ 3 {HOST}: full"]
    assert inst.strato("getattr", "tbon.fanout").stdout == "3\n"
    single = make_instance()
    assert single.strato("overlay", "status", check=True).stdout == f"0 {HOST}: full\n"


def _run_start(*args, env=None, timeout=60):
    return subprocess.run([*STRATO, "start", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def test_foreign_certificate_is_refused_and_logged(tmp_path):
    """A broker holding another instance's certificate cannot join rank 0, and a peer
    that knows rank 0's public key but presents its own is refused by ZAP: both are
    logged by rank 0, and the broker says it was refused."""
    run = Path(tempfile.mkdtemp(prefix="st-"))
    hold = "import sys; print('up', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([*STRATO, "start", "--rundir", str(run), "--test-size=2",
                             sys.executable, "-c", hold], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        assert proc.stdout.readline() == "up\n"
        with strato.Handle(f"local://{run}/local") as h:
            endpoint = h.rpc("attr.get", {"name": "tbon.endpoint"})["value"]
        # 1. a real broker, rank 1 of a [bootstrap] config whose cert is another one
        other = tmp_path / "other.cert"
        keygen(str(other))
        (tmp_path / "rogue.toml").write_text(f"""
[bootstrap]
curve_cert = "{other}"
hosts = [{{host = "fake0", connect = "{endpoint}"}}, {{host = "fake1"}}]
""")
        env = dict(_env(), STRATO_FAKE_HOSTNAME="fake1")
        res = _run_start("--config", str(tmp_path / "rogue.toml"), "true", env=env)
        assert res.returncode == 1
        assert res.stderr.strip().endswith(
            f"broker rank 1 was refused by its parent (rank 0) at {endpoint}: not the "
            "same CURVE certificate")
        # 2. a peer with the right server key and its own client key: ZAP says no
        server = load_cert(str(run / "curve.cert"))
        pub, sec = zmq.curve_keypair()
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = \
            server.public, pub, sec
        mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        sock.connect(endpoint)
        assert mon.poll(30000), "the handshake was not refused"
        sock.close()
        mon.close()
        # the instance is unharmed
        with strato.Handle(f"local://{run}/local") as h:
            assert h.rpc("attr.get", {"name": "rank"}, nodeid=1)["value"] == 1
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert "overlay: refused a peer on tcp://127.0.0.1:" in err
    assert "CURVE handshake failed" in err
    assert f"overlay: refused a peer from 127.0.0.1: its CURVE key {pub.decode()} is not " \
           "this instance's certificate" in err


def test_impostors_are_refused_and_logged(tmp_path):
    """Brokers holding the instance's own certificate but not fit to join are refused
    by their parent, which logs why, and each ends with that reason in one line: a
    second broker for rank 1 (online already), a broker of another instance's config
    (another size), and a rank that is not the parent's child. The instance goes on."""
    run = Path(tempfile.mkdtemp(prefix="st-"))
    hold = "import sys; print('up', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([*STRATO, "start", "--rundir", str(run), "--test-size=2",
                             "--test-hosts=fake[0-1]", sys.executable, "-c", hold],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline() == "up\n"
        with strato.Handle(f"local://{run}/local") as h:
            endpoint = h.rpc("attr.get", {"name": "tbon.endpoint"})["value"]
            pid1 = h.rpc("attr.get", {"name": "broker.pid"}, nodeid=1)["value"]
        cases = [  # (hosts of the impostor's config, its hostname, why it is refused);
            # every host's connect is rank 0's endpoint, so rank 3 takes it for rank 1's
            ("fake[0-1]", "fake1", 0, "rank 1 is already online"),
            ("fake[0-2]", "fake1", 0, "started with another instance's config (3 brokers "
             "on fake[0-2], fanout 2; this instance: 2 brokers on fake[0-1], fanout 2)"),
            ("fake[0-3]", "fake3", 1, "not a child of rank 0"),
        ]
        for hosts, me, parent, why in cases:
            config = tmp_path / f"{me}-{hosts}.toml"
            config.write_text(f"""
[bootstrap]
curve_cert = "{run / 'curve.cert'}"
default_connect = "{endpoint}"
hosts = [{{host = "{hosts}"}}]
""")
            rank = me.removeprefix("fake")
            res = _run_start("--config", str(config), "--rundir",
                             tempfile.mkdtemp(prefix="st-"), "true",
                             env=dict(_env(), STRATO_FAKE_HOSTNAME=me))
            assert res.returncode == 1
            assert res.stderr.splitlines()[-1].endswith(
                f"broker rank {rank} was refused by its parent (rank {parent}) at {endpoint}: "
                f"{why}")
        # the instance is unharmed: the first rank 1 still serves, and jobs use it
        with strato.Handle(f"local://{run}/local") as h:
            assert h.rpc("attr.get", {"name": "broker.pid"}, nodeid=1)["value"] == pid1
        env = dict(_env(), STRATO_URI=f"local://{run}/local")
        res = subprocess.run([*STRATO, "overlay", "status"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert res.stdout == "0 fake0: full\n└─ 1 fake1: full\n"
        res = subprocess.run([*STRATO, "run", "-N2", "sh", "-c", "strato getattr rank"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert sorted(res.stdout.split()) == ["0", "1"]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    for _, me, _, why in cases:
        rank = me.removeprefix("fake")
        assert f"overlay: refused a broker calling itself rank {rank}: {why}\n" in err


def test_bootstrap_config_two_hosts(tmp_path):
    """Two brokers started separately from one [bootstrap] config (ipc endpoints, so no
    port is needed), each finding its rank by its (fake) hostname."""
    cert = tmp_path / "curve.cert"
    assert subprocess.run([*STRATO, "keygen", str(cert)], timeout=30).returncode == 0
    sockdir = Path(tempfile.mkdtemp(prefix="st-"))
    config = tmp_path / "boot.toml"
    config.write_text(f"""
[bootstrap]
curve_cert = "{cert}"
default_bind = "ipc://{sockdir}/tbon-%h"
default_connect = "ipc://{sockdir}/tbon-%h"
hosts = [{{host = "fake[0-1]"}}]
""")
    run1 = Path(tempfile.mkdtemp(prefix="st-"))
    peer = subprocess.Popen([*STRATO, "start", "--config", str(config), "--rundir", str(run1)],
                            env=dict(_env(), STRATO_FAKE_HOSTNAME="fake1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait = ("import strato, strato.core.errors, time\n"
            "h = strato.Handle()\n"
            "deadline = time.monotonic() + 60\n"
            "while True:\n"
            "    try:\n"
            "        print(h.rpc('attr.get', {'name': 'hostlist'}, nodeid=1)['value'])\n"
            "        break\n"
            "    except strato.core.errors.RPCError:\n"
            "        assert time.monotonic() < deadline\n"
            "        time.sleep(0.1)\n")
    try:
        res = _run_start("--config", str(config), sys.executable, "-c", wait,
                         env=dict(_env(), STRATO_FAKE_HOSTNAME="fake0"))
        assert (res.returncode, res.stdout, res.stderr) == (0, "fake[0-1]\n", "")
        assert peer.wait(timeout=60) == 0  # rank 0 ended the instance: rank 1 ends too
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
        peer.stdout.close()
        peer.stderr.close()


def test_restarted_broker_rejoins(make_instance, tmp_path, monkeypatch):
    """Rank 1 of a [bootstrap] instance is killed (its node goes down) and started
    again: it rejoins, its node comes back, and jobs run on it again."""
    cert = tmp_path / "curve.cert"
    keygen(str(cert))
    sockdir = Path(tempfile.mkdtemp(prefix="st-"))
    config = f"""
[bootstrap]
curve_cert = "{cert}"
default_bind = "ipc://{sockdir}/tbon-%h"
default_connect = "ipc://{sockdir}/tbon-%h"
hosts = [{{host = "fake[0-1]"}}]
"""
    (tmp_path / "boot.toml").write_text(config)
    monkeypatch.setenv("STRATO_FAKE_HOSTNAME", "fake0")
    inst = make_instance(config=config)
    env1 = dict(_env(), STRATO_FAKE_HOSTNAME="fake1")

    def start_rank1() -> subprocess.Popen:
        return subprocess.Popen([*STRATO, "start", "--config", str(tmp_path / "boot.toml"),
                                 "--rundir", tempfile.mkdtemp(prefix="st-")], env=env1,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status() -> str:
        return inst.strato("overlay", "status", check=True).stdout

    def free_and_down() -> tuple[list, list]:
        rows = json.loads(inst.strato("resource", "list", "--json", check=True).stdout)
        return rows["free"]["ranks"], rows["down"]["ranks"]

    peers = [start_rank1()]
    try:
        _wait_for("rank 1 to join", lambda: status() == "0 fake0: full\n└─ 1 fake1: full\n")
        res = inst.strato("run", "-N2", "-n2", "sh", "-c", "strato getattr rank", check=True)
        assert sorted(res.stdout.split()) == ["0", "1"]
        peers[0].kill()
        peers[0].wait(timeout=30)
        _wait_for("rank 1 to be lost",
                  lambda: status() == "0 fake0: degraded\n└─ 1 fake1: lost\n")
        _wait_for("rank 1's node to go down", lambda: free_and_down() == ([0], [1]))
        peers.append(start_rank1())
        _wait_for("rank 1 to rejoin", lambda: status() == "0 fake0: full\n└─ 1 fake1: full\n")
        _wait_for("rank 1's node to return", lambda: free_and_down() == ([0, 1], []))
        res = inst.strato("run", "-N2", "-n2", "sh", "-c", "strato getattr rank", check=True)
        assert sorted(res.stdout.split()) == ["0", "1"]
    finally:
        inst.stop()
        for peer in peers:
            if peer.poll() is None:
                try:
                    peer.wait(timeout=30)  # rank 0 ended the instance
                except subprocess.TimeoutExpired:
                    peer.kill()
                    peer.wait()
    assert peers[-1].returncode == 0


@pytest.mark.parametrize("args, env, message", [
    (["--test-size=0"], {}, "strato-start: --test-size must be from 1 to 1024 (got 0)"),
    (["--test-size=10000"], {},
     "strato-start: --test-size must be from 1 to 1024 (got 10000)"),
    (["--test-size=2", "-S", "tbon.fanout=0"], {},
     "strato-start: tbon.fanout must be an integer >= 1 (got 0)"),
    (["--test-size=2", "-S", "tbon.topo=binomial"], {},
     "strato-start: tbon.topo: unknown topology 'binomial' (expected kary:K, K >= 1)"),
    (["--test-hosts=a,b", "--test-size=3"], {},
     "strato-start: --test-hosts names 2 hosts for --test-size=3"),
    (["-S", 'bootstrap.hosts=[{host="n[0-1]"}]', "-S", "bootstrap.curve_cert=/no/such"],
     {"STRATO_FAKE_HOSTNAME": "n0"},
     "strato-start: cannot read CURVE certificate /no/such: No such file or directory"),
    (["-S", 'bootstrap.hosts=[{host="n[0-1]"}]', "-S", "bootstrap.curve_cert=GARBLED"],
     {"STRATO_FAKE_HOSTNAME": "n0"},
     "strato-start: GARBLED: not a CURVE certificate (no public-key)"),
    (["-S", 'bootstrap.hosts=[{host="n[0-1]"}]'], {"STRATO_FAKE_HOSTNAME": "n0"},
     "strato-start: bootstrap.curve_cert is required for more than one host (strato keygen "
     "writes one)"),
    (["-S", 'bootstrap.hosts=[{host="n[0-1]"}]'], {"STRATO_FAKE_HOSTNAME": "elsewhere"},
     "strato-start: bootstrap.hosts does not name this host (elsewhere)"),
    (["-S", 'bootstrap.hosts=[{host="n[0-1]"},{host="n1"}]'], {"STRATO_FAKE_HOSTNAME": "n0"},
     "strato-start: bootstrap.hosts[1]: host n1 appears twice in bootstrap.hosts"),
])
def test_bad_input(tmp_path, args, env, message):
    garbled = tmp_path / "garbled.cert"
    garbled.write_text("metadata\n    name = x\n")
    args = [a.replace("GARBLED", str(garbled)) for a in args]
    message = message.replace("GARBLED", str(garbled))
    res = _run_start(*args, "true", env=dict(_env(), **env), timeout=60)
    assert res.returncode != 0
    assert res.stderr.splitlines() == [message]


def test_failed_start_leaves_no_broker():
    """Rank 0 fails after it forked the others (a config its instance refuses): one
    line, and none of the brokers or shell hosts it forked is left behind."""
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    res = _run_start("--test-size=8", "-S", "sched.plugin=nonexistent", "echo", marker)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "strato-start: sched.plugin: unknown scheduler 'nonexistent' (installed: "
        "sched-graph, sched-simple)"]
    # the brokers are reaped by then; a parked shell host ends once its broker is gone
    _wait_for("every forked process to end", lambda: _processes_with(marker) == [])


def _processes_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (forked brokers and shell hosts
    carry rank 0's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_keygen_bad_input(tmp_path):
    path = tmp_path / "c.cert"
    path.write_text("x")
    res = subprocess.run([*STRATO, "keygen", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 1
    assert res.stderr == f"strato-keygen: cannot write {path}: File exists\n"
    res = subprocess.run([*STRATO, "keygen"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and 'secret-key = "' in res.stdout


def test_job_tasks_run_on_each_rank(make_instance):
    """A 2-node job runs one shell per rank, each started by its own broker: tasks
    see their own broker's URI, global task ranks, and output gathered at rank 0."""
    inst = make_instance(args=("--test-size=4",))
    res = inst.strato("run", "-N4", "-n8", "sh", "-c",
                      'echo $STRATO_TASK_RANK $(strato getattr rank) $STRATO_JOB_SIZE '
                      '$STRATO_TASK_LOCAL_ID', check=True)
    rows = sorted(tuple(int(x) for x in line.split()) for line in res.stdout.splitlines())
    # block layout: tasks 0-1 on rank 0, 2-3 on rank 1, ...
    assert rows == [(t, t // 2, 8, t % 2) for t in range(8)]
    res = inst.strato("run", "-N2", "-n2", "--label-io", "sh", "-c",
                      "echo from $(strato getattr rank)", check=True)
    assert sorted(res.stdout.splitlines()) == ["0: from 0", "1: from 1"]
    # the job's exit status is the largest of its tasks', whichever rank ran them
    res = inst.strato("run", "-N2", "-n2", "sh", "-c", "exit $((STRATO_TASK_RANK * 3))")
    assert res.returncode == 3


def test_64_brokers_run_a_64_node_job():
    """64 brokers on this one machine (each with its own sockets, tcp port and shell
    host) start, and a job runs one task on each."""
    res = subprocess.run([*STRATO, "start", "--test-size=64", "sh", "-c",
                          "strato getattr rundir; strato run -N64 sh -c 'echo $STRATO_URI'"],
                         capture_output=True, text=True, timeout=600, env=_env())
    assert (res.returncode, res.stderr) == (0, "")
    rundir, *uris = res.stdout.split()
    # each task has its own broker's URI: local://RUNDIR/local, local://RUNDIR/R/local
    assert sorted(uris) == sorted([f"local://{rundir}/local"]
                                  + [f"local://{rundir}/{r}/local" for r in range(1, 64)])


def test_lost_broker_ends_its_jobs(make_instance, tmp_path):
    inst = make_instance(args=("--test-size=4",))
    marker = tmp_path / "started"
    jobid = inst.strato("submit", "-N4", "-n4", "sh", "-c",
                        f"echo $STRATO_TASK_RANK >> {marker}; exec sleep 300",
                        check=True).stdout.strip()
    _wait_for("every task to start",
              lambda: marker.exists() and len(marker.read_text().split()) == 4)
    with strato.Handle(_rank_uri(inst, 3)) as h:
        pid = h.rpc("attr.get", {"name": "broker.pid"})["value"]
    os.kill(pid, 9)
    inst.strato("job", "wait-event", "-t", "60", jobid, "clean", check=True)
    log = inst.strato("job", "eventlog", jobid, check=True).stdout
    assert 'exception type="node failure" severity=0 note="lost broker rank 3 running ' \
           'the job"' in log
    assert "finish status=9" in log
    rows = json.loads(inst.strato("resource", "list", "--json", check=True).stdout)
    assert (rows["free"]["ranks"], rows["down"]["ranks"]) == ([0, 1, 2], [3])
    assert rows["drained"]["3"]["reason"] == "broker lost"
    # the other ranks' tasks were killed, and the instance goes on with 3 nodes
    res = inst.strato("run", "-N3", "echo", "ok", check=True)
    assert res.stdout == "ok\nok\nok\n"


def test_address_that_cannot_be_bound(tmp_path):
    cert = tmp_path / "c.cert"
    keygen(str(cert))
    res = _run_start("-S", 'bootstrap.hosts=[{host="n[0-1]"}]', "-S",
                     f"bootstrap.curve_cert={cert}", "-S",
                     "bootstrap.default_bind=tcp://no-such-iface0:%p", "true",
                     env=dict(_env(), STRATO_FAKE_HOSTNAME="n0"))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "strato-start: overlay: cannot listen on tcp://no-such-iface0:8050: No such device"]
    with socket.socket() as taken:  # a port another program listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _run_start("-S", 'bootstrap.hosts=[{host="n[0-1]"}]', "-S",
                         f"bootstrap.curve_cert={cert}", "-S", f"bootstrap.default_port={port}",
                         "-S", "bootstrap.default_bind=tcp://127.0.0.1:%p", "true",
                         env=dict(_env(), STRATO_FAKE_HOSTNAME="n0"))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"strato-start: overlay: cannot listen on tcp://127.0.0.1:{port}: Address already in use"]


def test_task_layout_output_attach_and_signals_across_brokers(make_instance):
    """Multi-node jobs over 4 brokers: --tasks-per-node and --taskmap=cyclic place
    global task ranks on the brokers the jobspec asks; each task's lines of each
    stream reach the output log in their order; `strato job attach` shows every
    rank's output and `strato job kill` reaches the tasks of every broker."""
    inst = make_instance(args=("--test-size=4",))
    where = 'echo $STRATO_TASK_RANK $(strato getattr rank)'
    res = inst.strato("run", "-N2", "--tasks-per-node=3", "sh", "-c", where, check=True)
    assert sorted(res.stdout.split("\n")[:-1]) == ["0 0", "1 0", "2 0", "3 1", "4 1", "5 1"]
    res = inst.strato("run", "-N2", "-n4", "--taskmap=cyclic", "sh", "-c", where, check=True)
    assert sorted(res.stdout.split("\n")[:-1]) == ["0 0", "1 1", "2 0", "3 1"]

    res = inst.strato("run", "-N4", "-n4", "--label-io", "sh", "-c",
                      'for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done', check=True)
    for stream, text in (("out", res.stdout), ("err", res.stderr)):
        for rank in range(4):
            mine = [ln.split(": ", 1)[1] for ln in text.splitlines()
                    if ln.startswith(f"{rank}: ")]
            assert mine == [f"{stream}{i}" for i in range(1, 6)], (stream, rank, text)

    jobid = inst.strato("submit", "-N4", "-n4", "sh", "-c",
                        'echo up $(strato getattr rank); exec sleep 300',
                        check=True).stdout.strip()
    _wait_for("every task's first line", lambda: inst.strato(
        "job", "eventlog", jobid, "output").stdout.count("up ") == 4)
    inst.strato("job", "kill", jobid, check=True)
    res = inst.strato("job", "attach", jobid)
    assert sorted(res.stdout.split()) == sorted(["up", "up", "up", "up", "0", "1", "2", "3"])
    assert res.returncode == 128 + 15  # the tasks of every broker got SIGTERM
