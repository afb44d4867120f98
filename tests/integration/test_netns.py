"""A multi-broker instance whose brokers are on different "hosts": each in its own network
namespace with its own hostname, joined by veth pairs on a bridge, so the overlay's
CURVE-encrypted tcp crosses real network interfaces and addresses the test assigns
(tests/netns.py), not loopback. Skipped, saying why, where namespaces cannot be made."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import netns
import pytest
from conftest import STRATO, machine_wide

PORT = 8050
WHY_NOT = netns.unavailable()
pytestmark = [pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}"),
              machine_wide]


@pytest.fixture
def netns_hosts():
    """Factory of `netns.Hosts`; every namespace, veth and bridge made is removed after
    the test, whether it passed or not."""
    made: list[netns.Hosts] = []

    def make(count: int) -> netns.Hosts:
        made.append(netns.Hosts(count))
        return made[-1]

    yield make
    for hosts in made:
        hosts.close()


def _wait_for(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _bootstrap_config(hosts: netns.Hosts, cert: Path) -> str:
    """A [bootstrap] table naming each host with its own bind and connect address (the
    address is only on that host's veth: a broker elsewhere reaches it across the
    bridge or not at all)."""
    entries = ",\n".join(
        f'  {{host = "{name}", bind = "tcp://{hosts.addr(i)}:{PORT}", '
        f'connect = "tcp://{hosts.addr(i)}:{PORT}"}}' for i, name in enumerate(hosts.names))
    return f'[bootstrap]\ncurve_cert = "{cert}"\nhosts = [\n{entries}\n]\n'


def test_overlay_across_namespaces(netns_hosts, make_instance, tmp_path):
    hosts = netns_hosts(3)
    cert = tmp_path / "curve.cert"
    res = subprocess.run([*STRATO, "keygen", str(cert)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    config = _bootstrap_config(hosts, cert)
    (tmp_path / "boot.toml").write_text(config)
    env = dict(os.environ)
    env.pop("STRATO_URI", None)

    def start_broker(i: int) -> subprocess.Popen:
        with open(tmp_path / f"broker{i}.err", "a") as err:
            return subprocess.Popen([*hosts.prefix(i), *STRATO, "start", "--config",
                                     str(tmp_path / "boot.toml"), "--rundir",
                                     tempfile.mkdtemp(prefix="st-")],
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)

    peers = {1: start_broker(1), 2: start_broker(2)}
    inst = make_instance(config=config, prefix=tuple(hosts.prefix(0)))

    def status() -> str:
        return inst.strato("overlay", "status", check=True).stdout

    full = "0 host0: full\n├─ 1 host1: full\n└─ 2 host2: full\n"
    try:
        _wait_for("every broker to join", lambda: status() == full)
        with inst.handle() as h:
            attrs = [h.rpc("attr.list", {}, nodeid=r)["attrs"] for r in range(3)]
        assert [a["rank"] for a in attrs] == [0, 1, 2]
        assert attrs[0]["hostlist"] == "host[0-2]"
        assert attrs[0]["tbon.endpoint"] == f"tcp://{hosts.addr(0)}:{PORT}"
        for a in attrs[1:]:  # both children reached rank 0 at its namespace's address
            assert a["tbon.parent-endpoint"] == f"tcp://{hosts.addr(0)}:{PORT}"
        # ... from their own addresses, across the bridge
        assert hosts.peers_on_port(0, PORT) == {hosts.addr(1), hosts.addr(2)}
        # each job shell runs on its own host: the task's hostname is that namespace's
        res = inst.strato("run", "-N2", "hostname", check=True)
        assert sorted(res.stdout.split()) == ["host0", "host1"]
        res = inst.strato("run", "-N3", "--label-io", "sh", "-c",
                          "echo $(hostname) $(strato getattr rank)", check=True)
        assert sorted(res.stdout.splitlines()) == ["0: host0 0", "1: host1 1", "2: host2 2"]

        # a non-root broker dies: its node goes down, and the instance goes on without it
        with inst.handle() as h:
            pid = h.rpc("attr.get", {"name": "broker.pid"}, nodeid=2)["value"]
        assert pid in hosts.pids(2)
        peers[2].kill()
        peers[2].wait(timeout=30)
        _wait_for("rank 2 to be lost",
                  lambda: status() == "0 host0: degraded\n├─ 1 host1: full\n"
                                      "└─ 2 host2: lost\n")

        def free_and_down() -> tuple[list, list]:
            rows = json.loads(inst.strato("resource", "list", "--json", check=True).stdout)
            return rows["free"]["ranks"], rows["down"]["ranks"]

        _wait_for("rank 2's node to go down", lambda: free_and_down() == ([0, 1], [2]))
        res = inst.strato("run", "-N2", "hostname", check=True)
        assert sorted(res.stdout.split()) == ["host0", "host1"]

        # started again on its host, it rejoins across the bridge and its node returns
        peers[2] = start_broker(2)
        _wait_for("rank 2 to rejoin", lambda: status() == full)
        _wait_for("rank 2's node to return", lambda: free_and_down() == ([0, 1, 2], []))
        res = inst.strato("run", "-N3", "hostname", check=True)
        assert sorted(res.stdout.split()) == ["host0", "host1", "host2"]
    finally:
        inst.stop()
        for peer in peers.values():  # rank 0 ended the instance: the others end too
            try:
                peer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
    assert [peers[1].returncode, peers[2].returncode] == [0, 0], \
        (tmp_path / "broker1.err").read_text() + (tmp_path / "broker2.err").read_text()


def test_hosts_are_removed(netns_hosts):
    """The helper leaves nothing behind: namespaces, veths and bridge are gone after
    close, even with a process still running in a namespace."""
    hosts = netns_hosts(2)
    sleeper = subprocess.Popen([*hosts.prefix(1), "sleep", "300"])
    _wait_for("the sleeper to be in host1's namespace", lambda: sleeper.pid in hosts.pids(1))
    hosts.close()
    assert sleeper.wait(timeout=30) == -9
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in names for ns in hosts.namespaces)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert hosts.bridge not in links and f"stv{os.getpid()}" not in links
