"""Several "hosts" on this machine for tests: one network namespace per host, each with
its own hostname (a UTS namespace) and an address on its ``eth0``, a veth on a private
bridge, so that processes of different hosts talk over network interfaces, not
loopback. A host has no default route and its name resolves nowhere.

    with Hosts(3) as hosts:             # or the `netns_hosts` fixture
        hosts.addr(1)                   # "10.250.X.2": host 1's address
        subprocess.Popen([*hosts.prefix(1), "strato", "start", ...])

Every name is unique to this process (its pid), so tests in parallel never meet, and
``close`` removes all of it: the processes left in the namespaces, the veth pairs, the
namespaces and the bridge. The addresses exist only inside the namespaces.
Making namespaces needs root and ``ip`` (iproute2); `unavailable()` says why they
cannot be made, for a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

#: each host's network interface: the same name on every host, as on a cluster
IFACE = "eth0"


def _ip(*args: str, netns: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def _must(res: subprocess.CompletedProcess) -> None:
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(res.args)}: {res.stderr.strip()}")


def _pids(netns: str) -> list[int]:
    res = _ip("netns", "pids", netns)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command (iproute2 and util-linux make the namespaces)"
    name = f"strato-probe-{os.getpid()}"
    res = _ip("netns", "add", name)
    if res.returncode != 0:
        return f"ip netns add failed: {res.stderr.strip()}"
    _ip("netns", "del", name)
    return None


class Hosts:
    """`count` hosts named ``host0..`` in namespaces on one bridge (see module docstring)."""

    def __init__(self, count: int, names: list[str] | None = None) -> None:
        pid = os.getpid()
        self.names = names or [f"host{i}" for i in range(count)]
        self.namespaces = [f"strato-{pid}-{i}" for i in range(count)]
        self.bridge = f"stb{pid}"
        self._host_ends = [f"stv{pid}h{i}" for i in range(count)]
        self._subnet = f"10.250.{pid % 250}"
        self._made: list[tuple[str, str]] = []  # what close() removes, in reverse order
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def _make(self) -> None:
        _must(_ip("link", "add", self.bridge, "type", "bridge"))
        self._made.append(("link", self.bridge))
        _must(_ip("link", "set", self.bridge, "up"))
        for i, ns in enumerate(self.namespaces):
            _must(_ip("netns", "add", ns))
            self._made.append(("netns", ns))
            host_end, ns_end = self._host_ends[i], f"stv{os.getpid()}n{i}"
            _must(_ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end))
            self._made.append(("link", host_end))
            _must(_ip("link", "set", ns_end, "netns", ns))
            _must(_ip("link", "set", ns_end, "name", IFACE, netns=ns))
            _must(_ip("link", "set", host_end, "master", self.bridge))
            _must(_ip("link", "set", host_end, "up"))
            _must(_ip("addr", "add", f"{self.addr(i)}/24", "dev", IFACE, netns=ns))
            _must(_ip("link", "set", IFACE, "up", netns=ns))
            _must(_ip("link", "set", "lo", "up", netns=ns))

    def addr(self, i: int) -> str:
        """Host i's IPv4 address (on its veth, inside its namespace only)."""
        return f"{self._subnet}.{i + 1}"

    def prefix(self, i: int) -> list[str]:
        """The command prefix that runs a command on host i: in its namespace, with its
        hostname (``exec``s all the way, so the process started is the command's).
        nsenter, not ``ip netns exec``, which would mount a /sys of its own, without
        the cgroup file systems (slurmd needs them)."""
        return ["nsenter", f"--net=/run/netns/{self.namespaces[i]}", "unshare", "--uts",
                "--", "sh", "-c", 'hostname "$0" && exec "$@"', self.names[i]]

    def pids(self, i: int) -> list[int]:
        """The processes running in host i's namespace."""
        return _pids(self.namespaces[i])

    def peers_on_port(self, i: int, port: int) -> set[str]:
        """The addresses connected to host i's local tcp `port` (established IPv4
        connections, from its namespace's /proc/net/tcp)."""
        res = subprocess.run(["ip", "netns", "exec", self.namespaces[i], "cat",
                              "/proc/net/tcp"], capture_output=True, text=True, timeout=30)
        _must(res)
        peers = set()
        for row in res.stdout.splitlines()[1:]:
            local, remote, state = row.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                peers.add(socket.inet_ntoa(bytes.fromhex(remote.split(":")[0])[::-1]))
        return peers

    def close(self) -> None:
        """Kill what still runs in the namespaces, then remove the veths, namespaces and
        bridge this object made (each step even if an earlier one failed)."""
        for kind, name in self._made:
            if kind == "netns":
                for pid in _pids(name):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for kind, name in reversed(self._made):
            _ip(kind, "del", name)
        self._made = []
        # a deleted namespace's veth ends can linger a moment: make sure they go
        deadline = time.monotonic() + 10
        while any(_ip("link", "show", n).returncode == 0 for n in self._host_ends):
            if time.monotonic() > deadline:
                break
            for name in self._host_ends:
                _ip("link", "del", name)
            time.sleep(0.1)

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
