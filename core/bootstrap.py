"""How a broker learns its place in its instance: rank, size, hosts and overlay peers.

Four ways, as in Flux:

- *single*: one broker, rank 0 of size 1 (the default; no overlay at all);
- *test*: ``strato start --test-size=N`` on this machine; rank 0 starts the
  other N-1 brokers itself and they meet over tcp on 127.0.0.1;
- *config*: a ``[bootstrap]`` table (Flux's flux-config-bootstrap(5) shape) lists
  the hosts in rank order; each broker finds its rank by its own hostname
  (``STRATO_FAKE_HOSTNAME`` stands in for it in tests) and its parent's
  address from the table::

      [bootstrap]
      curve_cert = "/etc/strato/curve.cert"
      default_port = 8050
      default_bind = "tcp://*:%p"       # %p: the port, %h: the host
      default_connect = "tcp://%h:%p"
      hosts = [{host = "node0", bind = "tcp://eth0:9000"}, {host = "node[1-3]"}]

- *pmi*: started by a parallel launcher (`strato.core.bootstrap_pmi`).

The tree is k-ary (``tbon.topo = "kary:K"``, or ``tbon.fanout = K``; default 2):
the parent of rank r > 0 is (r - 1) // K.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from strato.core.cert import Cert, load_cert
from strato.core.errors import ConfigError
from strato.jobspec.hostlist import compress_hostlist, expand_hostlist

DEFAULT_FANOUT = 2
DEFAULT_PORT = 8050
DEFAULT_BIND = "tcp://*:%p"
DEFAULT_CONNECT = "tcp://%h:%p"
#: the largest --test-size: every broker is a process on this one machine
MAX_TEST_SIZE = 1024
_HOST_KEYS = {"host", "bind", "connect"}
_BOOTSTRAP_KEYS = {"curve_cert", "default_port", "default_bind", "default_connect", "hosts"}


@dataclass
class Bootstrap:
    """One broker's view of its instance (see module docstring)."""

    rank: int = 0
    size: int = 1
    hosts: list[str] = field(default_factory=lambda: [hostname()])
    level: int = 0
    mode: str = "single"
    fanout: int = DEFAULT_FANOUT
    cert: Cert | None = None
    cert_path: str = ""
    bind: str = ""  # where this broker listens for its children ("" if it has none)
    bind_fd: int | None = None  # a listening socket made for it (--test-size)
    parent_endpoint: str = ""  # where its parent listens ("" on rank 0)
    # PMI bootstrap: each broker has a keypair of its own (`cert`), so it needs its
    # parent's public key and its children's (Z85); otherwise all share `cert`
    parent_key: bytes | None = None
    peer_keys: set[bytes] | None = None

    @property
    def hostlist(self) -> str:
        return compress_hostlist(self.hosts)

    @property
    def parent(self) -> int | None:
        return parent_of(self.rank, self.fanout)

    @property
    def children(self) -> list[int]:
        return children_of(self.rank, self.size, self.fanout)


def hostname() -> str:
    """This host's name as the bootstrap sees it (``STRATO_FAKE_HOSTNAME`` if set,
    so that tests can play several hosts on one machine)."""
    return os.environ.get("STRATO_FAKE_HOSTNAME") or socket.gethostname()


def parent_of(rank: int, fanout: int) -> int | None:
    """The overlay parent of `rank` in a k-ary tree (None for rank 0)."""
    return None if rank == 0 else (rank - 1) // fanout


def children_of(rank: int, size: int, fanout: int) -> list[int]:
    """The overlay children of `rank` in a k-ary tree of `size` brokers."""
    first = rank * fanout + 1
    return list(range(first, min(first + fanout, size)))


def subtree_child(rank: int, target: int, fanout: int) -> int | None:
    """The child of `rank` whose subtree holds `target` (None if `target` is not
    below `rank`): the next hop of a message going down the tree."""
    while target > rank:
        up = (target - 1) // fanout
        if up == rank:
            return target
        target = up
    return None


def tbon_fanout(config: dict) -> int:
    """The tree's fanout from ``[tbon]`` (``topo = "kary:K"`` wins over ``fanout``)."""
    tbon = config.get("tbon", {})
    if not isinstance(tbon, dict):
        raise ConfigError("[tbon] must be a table")
    topo = tbon.get("topo")
    if topo is not None:
        kind, _, k = str(topo).partition(":")
        if kind != "kary" or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"tbon.topo: unknown topology '{topo}' (expected kary:K, K >= 1)")
        return int(k)
    fanout = tbon.get("fanout", DEFAULT_FANOUT)
    if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < 1:
        raise ConfigError(f"tbon.fanout must be an integer >= 1 (got {fanout!r})")
    return fanout


def for_test(size: int, config: dict, cert: Cert | None, cert_path: str, rank: int = 0,
             level: int = 0, parent_endpoint: str = "", hosts: list[str] | None = None,
             bind: str = "", bind_fd: int | None = None) -> Bootstrap:
    """The bootstrap of rank `rank` of a ``--test-size`` instance on this machine
    (`bind`, `bind_fd`: the listening socket rank 0 made for it, if it has children)."""
    if not 1 <= size <= MAX_TEST_SIZE:
        raise ConfigError(f"--test-size must be from 1 to {MAX_TEST_SIZE} (got {size})")
    fanout = tbon_fanout(config)
    boot = Bootstrap(rank=rank, size=size, hosts=hosts or [hostname()] * size, level=level,
                     mode="test", fanout=fanout, cert=cert, cert_path=cert_path,
                     parent_endpoint=parent_endpoint)
    if boot.children:
        boot.bind = bind or "tcp://127.0.0.1:*"
        boot.bind_fd = bind_fd
    return boot


def parse_bootstrap(table: object) -> tuple[list[dict], dict]:
    """Check a ``[bootstrap]`` table; returns one entry per host in rank order
    (``{host, bind, connect}``) and the table's defaults. ConfigError (one line)
    names the first problem."""
    if not isinstance(table, dict):
        raise ConfigError("[bootstrap] must be a table")
    unknown = sorted(set(table) - _BOOTSTRAP_KEYS)
    if unknown:
        raise ConfigError(f"bootstrap: unknown key '{unknown[0]}' "
                          f"(known: {', '.join(sorted(_BOOTSTRAP_KEYS))})")
    port = table.get("default_port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"bootstrap.default_port must be a port number (got {port!r})")
    defaults = {"port": port}
    for key, default in (("default_bind", DEFAULT_BIND), ("default_connect", DEFAULT_CONNECT),
                         ("curve_cert", "")):
        value = table.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"bootstrap.{key} must be a string (got {value!r})")
        defaults[key] = value
    hosts = table.get("hosts", [])
    if not isinstance(hosts, list):
        raise ConfigError("bootstrap.hosts must be a list of tables such as "
                          "[{host = \"node[0-3]\"}]")
    entries: list[dict] = []
    seen: set[str] = set()
    for i, entry in enumerate(hosts):
        where = f"bootstrap.hosts[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table such as {{host = \"node[0-3]\"}}")
        bad = sorted(set(entry) - _HOST_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key '{bad[0]}' (known: bind, connect, host)")
        if not isinstance(entry.get("host"), str):
            raise ConfigError(f"{where}: missing 'host' (a hostlist such as \"node[0-3]\")")
        try:
            names = expand_hostlist(entry["host"])
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for key in ("bind", "connect"):
            if key in entry and not isinstance(entry[key], str):
                raise ConfigError(f"{where}.{key} must be a string")
        if len(names) > 1 and any("%h" not in entry.get(k, "%h") for k in ("bind", "connect")
                                  if k in entry):
            raise ConfigError(f"{where}: a bind or connect shared by {len(names)} hosts "
                              "must name the host with %h")
        for name in names:
            if name in seen:
                raise ConfigError(f"{where}: host {name} appears twice in bootstrap.hosts")
            seen.add(name)
            entries.append({"host": name, "bind": entry.get("bind", defaults["default_bind"]),
                            "connect": entry.get("connect", defaults["default_connect"])})
    return entries, defaults


def expand_endpoint(template: str, host: str, port: int) -> str:
    """Fill ``%h`` (the host) and ``%p`` (the port) in an endpoint template."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template) and template[i + 1] in "hp%":
            out.append({"h": host, "p": str(port), "%": "%"}[template[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def from_config(config: dict, level: int = 0) -> Bootstrap | None:
    """The bootstrap a ``[bootstrap]`` table gives this host (None without one, or
    with an empty hosts list: a single broker)."""
    if "bootstrap" not in config:
        return None
    entries, defaults = parse_bootstrap(config["bootstrap"])
    fanout = tbon_fanout(config)
    if not entries:
        return None
    me = hostname()
    names = [e["host"] for e in entries]
    if me not in names:
        raise ConfigError(f"bootstrap.hosts does not name this host ({me})")
    rank = names.index(me)
    boot = Bootstrap(rank=rank, size=len(entries), hosts=names, level=level, mode="config",
                     fanout=fanout)
    if boot.size == 1:
        return boot
    if not defaults["curve_cert"]:
        raise ConfigError("bootstrap.curve_cert is required for more than one host "
                          "(strato keygen writes one)")
    boot.cert_path = defaults["curve_cert"]
    boot.cert = load_cert(boot.cert_path)
    port = defaults["port"]
    if boot.children:
        boot.bind = expand_endpoint(entries[rank]["bind"], me, port)
    if boot.parent is not None:
        up = entries[boot.parent]
        boot.parent_endpoint = expand_endpoint(up["connect"], up["host"], port)
    return boot
