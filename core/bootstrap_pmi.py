"""Bootstrap from PMI: brokers started by a parallel launcher find each other.

``strato run -N4 strato start ...`` (strato's own job shell), ``srun -N4
--mpi=pmi2 strato start ...`` (Slurm) and ``mpiexec -n 4 strato start ...``
(MPICH's Hydra) each start one broker per task with ``PMI_FD``, ``PMI_RANK``
and ``PMI_SIZE`` set. Each broker then, over the simple PMI-1 wire protocol
(`strato.core.pmi`):

1. takes its rank and the instance size from PMI;
2. makes a CURVE keypair of its own and, if it has children in the tree, a
   listening tcp socket on this host's address (``tbon.interface-hint``);
3. puts its *business card* ``strato.bc.RANK`` = ``HOST,ENDPOINT,PUBLIC-KEY``
   (the key in hex: only word characters travel through every PMI);
4. enters a barrier, then reads every rank's card: the hostnames (the
   ``hostlist`` attribute), its parent's endpoint and key (it connects to that
   and nothing else) and its children's keys (the only ones it lets in);
5. finalizes, and forgets the launcher's ``PMI_*`` variables, so that nothing
   it starts mistakes them for its own.

So there is no certificate to copy around: each instance's keys are made for it
and die with it, as in Flux's PMI bootstrap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct

import zmq

from strato.core.bootstrap import Bootstrap, children_of, hostname, tbon_fanout
from strato.core.cert import Cert
from strato.core.errors import ConfigError
from strato.core.pmi import PMIError, SimplePMI

#: how long a broker waits for each PMI answer (a barrier waits for every broker)
PMI_TIMEOUT = 120.0
#: the launcher's variables a bootstrapped broker removes from its environment
PMI_VARIABLES = ("PMI_FD", "PMI_RANK", "PMI_SIZE", "PMI_SPAWNED", "PMI_JOBID",
                 "PMI_APPNUM", "PMI_PORT", "PMI_ID")


def from_pmi(config: dict, level: int = 0, env: dict[str, str] | None = None) -> \
        Bootstrap | None:
    """This broker's bootstrap from the PMI of its launcher (module docstring), or
    None when there is no PMI (``PMI_FD`` unset) or it is the only broker.
    ConfigError (one line) if PMI fails."""
    env = os.environ if env is None else env
    try:
        client = SimplePMI.from_environment(env, timeout=PMI_TIMEOUT)
    except PMIError as exc:
        raise ConfigError(f"PMI bootstrap: {exc}") from None
    if client is None:
        _refuse_srun_without_pmi(env, level)
        return None
    try:
        boot = _exchange(client, config, level)
    except (PMIError, ConfigError) as exc:
        why = str(exc) if isinstance(exc, ConfigError) else f"PMI bootstrap: {exc}"
        # the other brokers wait in the barrier for this one: ask the launcher to end
        # them now rather than after PMI_TIMEOUT (closed after finalize: nothing waits)
        with contextlib.suppress(OSError, PMIError):
            client.abort(1, why)
        client.close()
        raise ConfigError(why) from None
    finally:
        forget_pmi(env)
    return boot


def forget_pmi(env: dict[str, str]) -> None:
    """Remove a launcher's PMI variables from `env` (once a broker is bootstrapped,
    by PMI or not, nothing it starts may take them for its own)."""
    for name in PMI_VARIABLES:
        env.pop(name, None)


def _refuse_srun_without_pmi(env: dict[str, str], level: int) -> None:
    """ConfigError if Slurm started this broker as one task of several but gave it no
    PMI (``srun`` without ``--mpi=pmi2``, where the site's MpiDefault is none or pmix):
    each task would otherwise run an instance of its own, the script once per task.
    A child instance (level > 0) was started by strato, whatever its environment says."""
    tasks = env.get("SLURM_STEP_NUM_TASKS", "")
    if level == 0 and tasks.isdigit() and int(tasks) > 1:
        raise ConfigError(f"started as one of {tasks} Slurm tasks (srun) without PMI: "
                          "use srun --mpi=pmi2")


def _exchange(client: SimplePMI, config: dict, level: int) -> Bootstrap | None:
    client.init()
    if client.size == 1:
        client.finalize()
        return None
    public, secret = zmq.curve_keypair()
    boot = Bootstrap(rank=client.rank, size=client.size, level=level, mode="pmi",
                     fanout=tbon_fanout(config), cert=Cert(public, secret))
    endpoint = "-"
    if children_of(boot.rank, boot.size, boot.fanout):
        address = tbon_address(config)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((address, 0))
        except OSError as exc:
            listener.close()
            raise ConfigError(f"PMI bootstrap: cannot listen on {address}: "
                              f"{exc.strerror}") from None
        listener.listen(128)
        endpoint = boot.bind = f"tcp://{address}:{listener.getsockname()[1]}"
        boot.bind_fd = listener.detach()  # the overlay's from now on (ZMQ_USE_FD)
    me = hostname()
    client.put(f"strato.bc.{boot.rank}", f"{me},{endpoint},{_hex(public)}")
    client.barrier()
    cards = [_card(client, rank) for rank in range(boot.size)]
    client.finalize()
    _refuse_loopback_across_hosts(cards)
    boot.hosts = [host for host, _, _ in cards]
    if boot.parent is not None:
        _, boot.parent_endpoint, boot.parent_key = cards[boot.parent]
    boot.peer_keys = {cards[r][2] for r in boot.children}
    return boot


def _refuse_loopback_across_hosts(cards: list[tuple[str, str, bytes]]) -> None:
    """ConfigError if a broker listens on a loopback address while brokers run on
    other hosts (no default route, and a hostname that does not resolve or resolves
    to 127.0.1.1): they could never reach it, and would say so only after a timeout.
    Every broker sees every card, so every one of them says this at once. Fake
    hostnames (``STRATO_FAKE_HOSTNAME``: test "hosts" on one machine) are exempt."""
    if len({host for host, _, _ in cards}) < 2 or os.environ.get("STRATO_FAKE_HOSTNAME"):
        return
    for rank, (host, endpoint, _) in enumerate(cards):
        if endpoint.startswith("tcp://127.") or endpoint.startswith("tcp://[::1]"):
            raise ConfigError(
                f"PMI bootstrap: rank {rank} ({host}) listens on {endpoint}, a loopback "
                "address that brokers on other hosts cannot reach: set "
                "tbon.interface-hint to the network interface the nodes share "
                "(e.g. -S tbon.interface-hint=eth0)")


def _card(client: SimplePMI, rank: int) -> tuple[str, str, bytes]:
    """Rank `rank`'s business card: (host, endpoint, Z85 public key)."""
    value = client.get(f"strato.bc.{rank}")
    parts = (value or "").split(",")
    try:
        if len(parts) != 3 or not parts[0]:
            raise ValueError
        key = zmq.utils.z85.encode(bytes.fromhex(parts[2]))
        if len(key) != 40:
            raise ValueError
    except ValueError:
        raise PMIError(f"rank {rank} put no business card (strato.bc.{rank}) or a "
                       f"garbled one: {value!r}") from None
    return parts[0], parts[1], key


def _hex(z85_key: bytes) -> str:
    return zmq.utils.z85.decode(z85_key).hex()


def tbon_address(config: dict) -> str:
    """The IPv4 address this broker listens on for its children, chosen by
    ``tbon.interface-hint`` (as Flux's): ``default-router`` (the default: the
    address of the interface that leads to the default route; this host's
    name's address without one), ``hostname`` (the address this host's name
    resolves to), or the name of a network interface (``eth0``)."""
    hint = config.get("tbon", {}).get("interface-hint", "default-router")
    if hint == "default-router":
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("192.0.2.1", 9))  # sends nothing: only picks a route
            return probe.getsockname()[0]
        except OSError:
            hint = "hostname"
        finally:
            probe.close()
    if hint == "hostname":
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    return _interface_address(str(hint))


def _interface_address(name: str) -> str:
    """The IPv4 address of network interface `name` (ConfigError if it has none)."""
    siocgifaddr = 0x8915
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(sock.fileno(), siocgifaddr,
                             struct.pack("256s", name.encode()[:15]))
    except OSError:
        raise ConfigError(f"tbon.interface-hint: no interface '{name}' with an IPv4 "
                          "address (or use default-router, hostname)") from None
    finally:
        sock.close()
    return socket.inet_ntoa(packed[20:24])
