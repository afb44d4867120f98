"""Instance config: a TOML file plus ``-S key=value`` overrides, and its checks.

Overrides use dotted keys (``-S exec.backend=sim``, ``-S sched-simple.mode=x``) and
TOML values (``-S plugins.load='["x"]'``); a value that is not valid TOML is a string.

Every key an instance reads is declared, by the core (`declare_core`) or by the
plugin that reads it (the ``core_declare_config`` hook), with its default, a check
of its value and one line of help. `config_errors` walks a whole config against
those declarations, so a misspelt key or table is reported with the nearest
declared name instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from strato.core import proto
from strato.core.errors import ConfigError, PluginError
from strato.core.plugins import (
    ConfigKey,
    declared_keys,
    installed_plugin_manager,
    registry,
    unknown_name,
)
from strato.core.queues import SIZE_KEYS
from strato.jobspec.fsd import parse_fsd
from strato.jobspec.hostlist import expand_hostlist
from strato.jobspec.idset import decode_idset


def read_config_file(path: str) -> dict:
    """A config file: TOML, or JSON if its name ends in ``.json`` (what ``strato
    batch --conf`` hands its child instance); ConfigError names what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    try:
        config = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config must be a table (a JSON object)")
    return config


def load_config(path: str | None, overrides: list[str] = ()) -> dict:
    """Read the config file (if any) and apply overrides; ConfigError on bad input."""
    config: dict = read_config_file(path) if path else {}
    for item in overrides:
        apply_override(config, item)
    _check(config)
    return config


def apply_override(config: dict, item: str) -> None:
    """Set one ``key=value`` override in `config`, creating tables on the way."""
    key, sep, text = item.partition("=")
    shown = f"'{item}'" if item.isprintable() else repr(item)
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError(f"invalid override {shown} (expected key=value)")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.split(".")
    d = config
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"invalid override {shown}: {_key_text(p)} is not a table")
        d = nxt
    d[parts[-1]] = value


def _check(config: dict) -> None:
    """What must hold before plugins can even be loaded: a sane [plugins] table."""
    plugins = config.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError("[plugins] must be a table")
    for name in ("load", "block", "searchpath"):
        try:
            strings(plugins.get(name, []))
        except ValueError as exc:
            raise ConfigError(f"plugins.{name} {exc}") from None


# -- checks a declaration can use -----------------------------------------------------------
# Each raises ValueError with a message that reads after the key's name.


def _key_text(name: str) -> str:
    """A key as TOML writes it: bare if it can be, else quoted (so a newline in a key's
    name shows as ``\\n`` and the message stays one line)."""
    if name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        return name
    return json.dumps(name, ensure_ascii=False).replace("\u2028", "\\u2028") \
        .replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def string(value: Any) -> None:
    """A string."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {value!r})")


def strings(value: Any) -> None:
    """A list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of strings (got {value!r})")


def integer(minimum: int | None = None) -> Callable[[Any], None]:
    """An integer, at least `minimum` if given."""
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) \
                or (minimum is not None and value < minimum):
            at_least = f" >= {minimum}" if minimum is not None else ""
            raise ValueError(f"must be an integer{at_least} (got {value!r})")

    check.__doc__ = f"An integer >= {minimum}." if minimum is not None else "An integer."
    return check


def duration(value: Any) -> None:
    """A duration: seconds as a number, or an RFC 23 string such as ``"30m"``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a duration such as \"30m\" (got {value!r})")
    parse_fsd(str(value))


def idset(value: Any) -> None:
    """An RFC 22 idset such as ``"0-31"``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be an idset such as \"0-3\" (got {value!r})")
    decode_idset(str(value))


def hostlist(value: Any) -> None:
    """An RFC 29 hostlist such as ``"node[0-15]"``."""
    string(value)
    expand_hostlist(value)


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"([0-9]{1,18})([kKmMgGtT]?)")


def parse_size(value: Any) -> int:
    """Bytes from a size: an integer, or a string with an optional binary suffix
    (``"64M"``, ``"512k"``, ``"1G"``: K, M, G, T, either case, as Flux writes sizes).
    ValueError if it is neither."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        return int(match[1]) * _SIZE_UNITS[match[2].lower()]
    raise ValueError(f"must be a size such as \"64M\" or a number of bytes (got {value!r})")


def size(minimum: int = 0) -> Callable[[Any], None]:
    """A size in bytes, at least `minimum`."""
    def check(value: Any) -> None:
        if parse_size(value) < minimum:
            raise ValueError(f"must be at least {minimum} bytes (got {value!r})")

    check.__doc__ = f"A size: bytes, or a number with K, M, G or T (binary), at least {minimum}."
    return check


def one_of(what: str, choices: list[str]) -> Callable[[Any], None]:
    """One of a fixed set of names."""
    def check(value: Any) -> None:
        if value not in choices:
            shown = value if isinstance(value, str) and value.isprintable() else repr(value)
            raise ValueError(f"unknown {what} '{shown}' (have: {', '.join(sorted(choices))})")

    check.__doc__ = f"One of: {', '.join(sorted(choices))}."
    return check


class Registered:
    """A name registered through a registration hook, e.g. the scheduler.

    Called like the other checks it only wants a string; the config check then
    looks the name up in what the loaded plugins register through `hookname`
    and, if it is not there, names what every installed plugin registers.
    """

    def __init__(self, what: str, hookname: str) -> None:
        self.what = what
        self.hookname = hookname

    def __call__(self, value: Any) -> None:
        string(value)

    def unknown(self, value: str, config: dict, pm: pluggy.PluginManager) -> str | None:
        """Why `value` is not a registered name (None if it is)."""
        if value in registry(getattr(pm.hook, self.hookname), self.what):
            return None
        return unknown_name(self.what, value, config, self.hookname)


def describe_check(check: Callable[[Any], None] | None) -> str:
    """What a declared key's check accepts, in words (for the config reference):
    the first line of the check's docstring, which every check here has."""
    if check is None:
        return "Any value."
    if isinstance(check, Registered):
        return f"Name of a registered {check.what} " \
               f"(by a loaded plugin, through ``{check.hookname}``)."
    doc = (getattr(check, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else "Checked by the plugin."


# -- what the core itself reads --------------------------------------------------------------


def _declare_policy(declare: Callable, prefix: str) -> None:
    limits = f"{prefix}.limits"
    declare(limits, "duration", default="inf", check=duration,
            help="longest time limit a job may ask for (ingest-limits rejects longer ones)")
    for bound, what in (("max", "most"), ("min", "fewest")):
        for key in SIZE_KEYS:
            declare(f"{limits}.job-size.{bound}", key, default=-1, check=integer(-1),
                    help=f"the {what} {key} a job may ask for (-1: no limit)")
    declare(f"{prefix}.jobspec.defaults.system", "duration", default=0, check=duration,
            help="time limit of a job submitted without one (0: none)")


def declare_core(declare: Callable) -> None:
    """The config keys the core reads (plugins, sched, exec, job-manager, resource,
    policy, queues)."""
    declare("plugins", "load", default=[], check=strings,
            help="plugins to load besides the defaults: entry-point names, modules, .py files")
    declare("plugins", "block", default=[], check=strings,
            help="default plugins not to load")
    declare("plugins", "searchpath", default=[], check=strings,
            help="directories where the modules named in load are found")
    declare("sched", "plugin", default="sched-simple",
            check=Registered("scheduler", "sched_register_schedulers"),
            help="the scheduler (a name registered by sched_register_schedulers)")
    declare("broker", "message-size-limit", default="64M",
            check=size(proto.MIN_MESSAGE_SIZE_LIMIT),
            help="largest message a client may send: the connection of a client that "
                 "sends a larger one is closed (the client library refuses it first)")
    declare("exec", "backend", default="local",
            check=Registered("exec backend", "exec_register_backends"),
            help="the exec backend (a name registered by exec_register_backends)")
    declare("exec", "kill-timeout", default=5.0, check=duration,
            help="how long a cancelled job's tasks get between SIGTERM and SIGKILL")
    declare("exec", "orphan-timeout", default="1d", check=duration,
            help="with a statedir, how long running jobs outlive a stopped broker waiting"
                 " for it to come back (0: they end when it stops)")
    declare("exec", "orphan-memory", default=32 << 20, check=integer(1 << 16),
            help="bytes of output and events a shell host keeps in memory while its"
                 " broker is away, before it spills them to a file in the statedir")
    declare("exec", "adopt-timeout", default="10s", check=duration,
            help="how long a restarting broker waits for a surviving shell host to answer")
    declare("job-manager", "inactive-age-limit", check=duration,
            help="purge inactive jobs once they have been inactive this long, e.g. \"7d\""
                 " (default: never)")
    declare("job-manager", "inactive-num-limit", check=integer(0),
            help="keep at most this many inactive jobs, purging the oldest"
                 " (default: no limit)")
    declare("resource.config", "hosts", check=hostlist,
            help="the hosts of this entry, e.g. \"node[0-15]\" (ranks in order)")
    declare("resource.config", "cores", default="0", check=idset,
            help="the core ids of each host, e.g. \"0-31\"")
    declare("resource.config", "gpus", default="", check=idset,
            help="the gpu ids of each host, e.g. \"0-3\"")
    declare("resource.config", "properties", default=[], check=strings,
            help="properties of these hosts, for --requires and queue requires")
    declare("tbon", "fanout", default=2, check=integer(1),
            help="children per broker in the overlay tree (kary:FANOUT)")
    declare("tbon", "topo", check=string,
            help="overlay tree shape, \"kary:K\" (wins over tbon.fanout)")
    declare("tbon", "interface-hint", default="default-router", check=string,
            help="where a broker bootstrapped by PMI listens: default-router, hostname"
                 " or an interface name such as \"eth0\"")
    declare("bootstrap", "curve_cert", check=string,
            help="the instance's CURVE certificate (strato keygen writes one)")
    declare("bootstrap", "default_port", default=8050, check=integer(1),
            help="the port that %p stands for in bind and connect endpoints")
    declare("bootstrap", "default_bind", default="tcp://*:%p", check=string,
            help="where a broker listens for its overlay children (%h host, %p port)")
    declare("bootstrap", "default_connect", default="tcp://%h:%p", check=string,
            help="how children reach a broker (%h its host, %p the port)")
    declare("bootstrap.hosts", "host", check=hostlist,
            help="hosts of this entry, in rank order, e.g. \"node[0-15]\"")
    declare("bootstrap.hosts", "bind", check=string,
            help="this entry's bind endpoint (instead of default_bind)")
    declare("bootstrap.hosts", "connect", check=string,
            help="this entry's connect endpoint (instead of default_connect)")
    _declare_policy(declare, "policy")
    declare("policy.jobspec.defaults.system", "queue", check=string,
            help="queue of a job submitted without -q")
    declare("queues.*", "requires", default=[], check=strings,
            help="properties a node must have to run this queue's jobs")
    _declare_policy(declare, "queues.*.policy")


# -- checking a whole config -----------------------------------------------------------------

Parts = tuple[str, ...]


def _matches(pattern: Parts, path: Parts) -> bool:
    return len(pattern) == len(path) \
        and all(p in ("*", s) for p, s in zip(pattern, path, strict=True))


class _Schema:
    """The declared keys, looked up by the path of the table they are in."""

    def __init__(self, keys: list[ConfigKey]) -> None:
        self.keys = keys
        self.by_table: dict[Parts, dict[str, ConfigKey]] = {}
        self.tables: set[Parts] = set()
        for k in keys:
            parts = tuple(k.table.split("."))
            self.by_table.setdefault(parts, {})[k.key] = k
            self.tables.update(parts[:i] for i in range(1, len(parts) + 1))

    def key(self, table: Parts, name: str) -> ConfigKey | None:
        for pattern, keys in self.by_table.items():
            if name in keys and _matches(pattern, table):
                return keys[name]
        return None

    def is_table(self, path: Parts) -> bool:
        return any(_matches(t, path) for t in self.tables)

    def names(self, table: Parts) -> set[str]:
        """The keys and sub-tables declared in `table` (for "did you mean")."""
        out = {name for pattern, keys in self.by_table.items() if _matches(pattern, table)
               for name in keys}
        out.update(t[-1] for t in self.tables
                   if t[-1] != "*" and _matches(t[:-1], table))
        return out

    def owner(self, path: Parts) -> str | None:
        """The plugin declaring the key at `path`, or a key below the table at `path`."""
        for k in self.keys:
            full = (*k.table.split("."), k.key)
            if len(path) <= len(full) and _matches(full[:len(path)], path):
                return k.plugin
        return None


class _Checker:
    def __init__(self, config: dict, pm: pluggy.PluginManager) -> None:
        self.config = config
        self.pm = pm
        self.schema = _Schema(declared_keys(pm, core=declare_core))
        self._installed: _Schema | None = None
        self.errors: list[str] = []

    def installed(self) -> _Schema | None:
        """Declarations of every installed plugin, loaded or not (built on first need)."""
        if self._installed is None:
            try:
                pm = installed_plugin_manager(self.config)
                self._installed = _Schema(declared_keys(pm, core=declare_core))
            except PluginError:
                return None  # conflicting declarations among unloaded plugins: no hint
        return self._installed

    def walk(self, parts: Parts, shown: str, table: dict) -> None:
        for name, value in table.items():
            key = _key_text(name)
            where = f"{shown}.{key}" if shown else key
            decl = self.schema.key(parts, name)
            path = (*parts, name)
            if decl is not None:
                if decl.check is not None:
                    try:
                        decl.check(value)
                    except (ValueError, TypeError) as exc:
                        self.errors.append(f"{where}: {exc}")
                        continue
                if isinstance(decl.check, Registered):
                    why = decl.check.unknown(value, self.config, self.pm)
                    if why is not None:
                        self.errors.append(f"{where}: {why}")
            elif not self.schema.is_table(path):
                is_table = isinstance(value, dict) or (
                    isinstance(value, list) and bool(value)
                    and all(isinstance(v, dict) for v in value))
                self.errors.append(self.unknown(parts, name, where, is_table))
            elif isinstance(value, dict):
                self.walk(path, where, value)
            elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
                for i, entry in enumerate(value):  # [[table]]: each entry is the table
                    self.walk(path, f"{where}[{i}]", entry)
            else:
                self.errors.append(f"{where} must be a table (got {value!r})")

    def unknown(self, parts: Parts, name: str, where: str, is_table: bool) -> str:
        what = f"table '[{where}]'" if is_table else f"key '{where}'"
        installed = self.installed()
        owner = installed.owner((*parts, name)) if installed is not None else None
        if owner is not None and not self.pm.has_plugin(owner):
            blocked = owner in self.config.get("plugins", {}).get("block", [])
            fix = "it is in [plugins] block" if blocked else "add it to [plugins] load"
            return f"{what} is for plugin '{owner}', which is not loaded ({fix})"
        if not parts and self.pm.has_plugin(name):
            return f"unknown {what}: plugin '{name}' declares no config keys"
        names = self.schema.names(parts)
        near = difflib.get_close_matches(name, sorted(names), n=1)
        if near and is_table:
            prefix = where[: len(where) - len(name)]
            return f"unknown {what} (did you mean '[{prefix}{near[0]}]'?)"
        if near:
            return f"unknown {what} (did you mean '{near[0]}'?)"
        return f"unknown {what} (known: {', '.join(sorted(names))})" if names \
            else f"unknown {what}"


def config_errors(config: dict, pm: pluggy.PluginManager) -> list[str]:
    """Every problem of `config` against what the core and `pm`'s plugins declare.

    One message per unknown key or table (with the nearest declared name, or the
    plugin that would declare it if it were loaded) and per value its check refuses.
    """
    checker = _Checker(config, pm)
    checker.walk((), "", config)
    return checker.errors


def check_config(config: dict, pm: pluggy.PluginManager) -> None:
    """Raise ConfigError (one line: the first problem) if `config` has any problem."""
    errors = config_errors(config, pm)
    if errors:
        more = f" (and {len(errors) - 1} more: see strato config check)" \
            if len(errors) > 1 else ""
        raise ConfigError(errors[0] + more)
