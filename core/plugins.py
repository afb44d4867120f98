"""Building an instance's own plugin manager from its config.

Built-in plugins are modules listed in the ``strato.plugins`` entry-point group
(strato's own are known without reading it, see `OWN_PLUGINS`).
An instance loads the defaults plus ``[plugins] load`` minus ``[plugins] block``.
``load`` entries may also name a module found on ``[plugins] searchpath`` or a
``.py`` file, which is how a site adds its own plugin without packaging it.

A module that defines a class ``Plugin`` is registered as ``Plugin()``, a fresh
object per plugin manager, instead of as the module: that object holds the
plugin's state, so two instances in one process never share it.

Registration hooks (``sched_register_schedulers``, ``core_declare_config``, ...)
are run here implementation by implementation (`call_each`, `registry`), so that
a name registered twice is an error naming both plugins, and an unknown name
can be answered with every name an installed plugin registers (`unknown_name`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from strato.core import hookspecs
from strato.core.errors import PluginError

_log = logging.getLogger("strato.plugins")

DEFAULT_PLUGINS = (
    "ingest-basic",
    "ingest-defaults",
    "ingest-limits",
    "job-priority-default",
    "sched-simple",
    "exec-local",
    "exec-sim",
    "dependency-after",
    "dependency-singleton",
    "dependency-begin-time",
)

# Frames of these files are the loader's own, not where a plugin failed.
_LOADER_FILES = (__file__, str(Path(importlib.__file__).parent))


# strato's own plugins, as pyproject.toml declares them in the strato.plugins
# entry-point group (a test keeps the two equal). Looking these up needs no scan of
# the installed distributions: importing importlib.metadata and reading the entry
# points cost every broker ~25 ms of its start-up, a child instance's included.
OWN_PLUGINS = {
    "sched-simple": "strato.plugins.sched_simple",
    "exec-local": "strato.plugins.exec_local",
    "exec-sim": "strato.plugins.exec_sim",
    "ingest-basic": "strato.plugins.ingest_basic",
    "job-priority-default": "strato.plugins.job_priority_default",
    "ingest-defaults": "strato.plugins.ingest_defaults",
    "ingest-limits": "strato.plugins.ingest_limits",
    "ingest-require": "strato.plugins.ingest_require",
    "sched-graph": "strato.plugins.sched_graph.plugin",
    "dependency-after": "strato.plugins.dependency_after",
    "dependency-singleton": "strato.plugins.dependency_singleton",
    "dependency-begin-time": "strato.plugins.dependency_begin_time",
}


class _Installed(Mapping):
    """Plugin name -> module path for the ``strato.plugins`` group. strato's own
    names are answered from `OWN_PLUGINS`; any other name, iterating or counting
    reads the entry points (once per object)."""

    def __init__(self) -> None:
        self._all: dict[str, str] | None = None

    def _scan(self) -> dict[str, str]:
        if self._all is None:
            from importlib.metadata import entry_points

            found = {ep.name: ep.value for ep in entry_points(group="strato.plugins")}
            self._all = {**found, **OWN_PLUGINS}
        return self._all

    def __getitem__(self, name: str) -> str:
        own = OWN_PLUGINS.get(name)
        return own if own is not None else self._scan()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scan())

    def __len__(self) -> int:
        return len(self._scan())


def builtin_plugins() -> Mapping[str, str]:
    """Map each plugin name in the ``strato.plugins`` group to its module path."""
    return _Installed()


def _import(name: str, builtins: dict[str, str], searchpath: list[str]):
    if name in builtins:
        return importlib.import_module(builtins[name])
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no such file {name}")
        spec = importlib.util.spec_from_file_location(f"strato_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    for entry in reversed(searchpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return importlib.import_module(name)


def _failure(exc: BaseException) -> str:
    """Why a plugin failed to import, with the file and line of the failure.

    A plugin author needs the place in their own code, not the loader's: that is
    the deepest frame outside this module and importlib, or for a SyntaxError the
    place the parser reports.
    """
    kind = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {kind}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and not f.filename.startswith(_LOADER_FILES)]
    if not frames:
        return str(exc)  # the loader's own complaint: no such module or file
    return f"{frames[-1].filename}:{frames[-1].lineno}: {kind}: {exc}"


def _one_line(exc: Exception) -> str:
    """pluggy's multi-line validation messages as the one line a user error is."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _plugin_object(module) -> object:
    """What to register for a module: a fresh ``Plugin()`` if it defines one, else itself."""
    cls = getattr(module, "Plugin", None)
    return cls() if isinstance(cls, type) else module


def _plugin_names(config: dict, builtins: dict[str, str]) -> list[str]:
    pconf = config.get("plugins", {})
    blocked = set(pconf.get("block", []))
    names = [n for n in DEFAULT_PLUGINS if n not in blocked]
    names += [n for n in pconf.get("load", []) if n not in names and n not in blocked]
    sched = config.get("sched", {}).get("plugin") if isinstance(config.get("sched"), dict) \
        else None
    if isinstance(sched, str) and sched in builtins and sched not in names:
        names.append(sched)  # the chosen scheduler's plugin is loaded on demand
    return names


def config_table(plugin_name: str) -> str:
    """The config table a plugin's ``core_configure`` gets: its name, or for a plugin
    loaded by path (``load = ["/site/site_policy.py"]``) the file's stem
    (``[site_policy]``), the same table it gets when loaded by module name."""
    return Path(plugin_name).stem if plugin_name.endswith(".py") else plugin_name


def _searchpath(config: dict) -> list[str]:
    return [str(Path(p).resolve()) for p in config.get("plugins", {}).get("searchpath", [])]


def make_plugin_manager(config: dict) -> pluggy.PluginManager:
    """Create the plugin manager of one instance; PluginError names a failing plugin."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    builtins = builtin_plugins()
    searchpath = _searchpath(config)
    for name in _plugin_names(config, builtins):
        try:
            plugin = _plugin_object(_import(name, builtins, searchpath))
        except Exception as exc:
            raise PluginError(f"plugin '{name}' failed to load: {_failure(exc)}") from None
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # a bad hook implementation: pluggy says which
            raise PluginError(f"plugin '{name}': {_one_line(exc)}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or str(exc.plugin)
        raise PluginError(f"plugin '{name}': {_one_line(exc)}") from None
    return pm


def installed_plugin_manager(config: dict) -> pluggy.PluginManager:
    """A plugin manager holding every plugin this config could load, blocked or not.

    Every ``strato.plugins`` entry point plus the config's own ``load`` entries; one
    that fails to import is left out (loading it for real reports that). Used to
    answer "which names exist at all" when a config names something unknown.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    builtins = builtin_plugins()
    searchpath = _searchpath(config)
    load = config.get("plugins", {}).get("load", [])
    for name in dict.fromkeys([*builtins, *load]):
        try:
            pm.register(_plugin_object(_import(name, builtins, searchpath)), name=name)
        except Exception:
            continue  # reported where the plugin is really loaded
    return pm


def call_each(hook: pluggy.HookCaller, argname: str,
              make_callable: Callable[[str], Callable]) -> None:
    """Run a registration hook one implementation at a time, in load order.

    Each implementation gets ``make_callable(plugin_name)`` as its `argname`
    argument, so whatever it registers is known to come from that plugin. An
    exception in an implementation becomes a PluginError naming the plugin.
    """
    for impl in hook.get_hookimpls():
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            impl.function(**{argname: make_callable(impl.plugin_name)})
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin '{impl.plugin_name}': {hook.name}: {exc}") from None


def registry(hook: pluggy.HookCaller, what: str) -> dict[str, Any]:
    """Collect the ``name -> object`` pairs a registration hook hands out.

    Implementations call ``register(name, obj)`` (or ``register(name)`` for a bare
    name, stored as None). Every registry goes through here so that a name
    registered twice is the same error everywhere, naming both plugins.
    """
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}

    def make(plugin: str) -> Callable:
        def register(name: str, obj: Any = None) -> None:
            if name in owner:
                raise PluginError(f"{what} '{name}' is registered by both '{owner[name]}' "
                                  f"and '{plugin}'")
            owner[name] = plugin
            found[name] = obj

        return register

    call_each(hook, "register", make)
    return found


def installed_names(config: dict, hookname: str) -> dict[str, str]:
    """Every name any installed plugin registers through `hookname`, with its plugin.

    Looks beyond the loaded plugins, so an error can say what exists. A plugin
    whose hook fails is skipped: its own error is reported where it is loaded.
    """
    names: dict[str, str] = {}
    for impl in getattr(installed_plugin_manager(config).hook, hookname).get_hookimpls():
        def register(name: str, obj: Any = None, _plugin: str = impl.plugin_name) -> None:
            names.setdefault(name, _plugin)

        try:
            impl.function(register=register)
        except Exception:
            continue  # reported where the plugin is really loaded
    return names


def unknown_name(what: str, name: str, config: dict, hookname: str) -> str:
    """The message for a config naming a `what` nobody loaded registers.

    Names what every installed plugin registers (not only the loaded ones), the
    nearest of them, and, if an installed plugin has it, that it must be loaded.
    """
    installed = installed_names(config, hookname)
    if not name.isprintable():  # a newline in it would split the message
        return f"unknown {what} {name!r} (installed: {', '.join(sorted(installed))})"
    if name in installed:
        plugin = installed[name]
        fix = "it is in [plugins] block" if plugin in config.get("plugins", {}).get("block", []) \
            else "add it to [plugins] load"
        return f"{what} '{name}' is registered by plugin '{plugin}', which is not loaded ({fix})"
    near = difflib.get_close_matches(name, list(installed), n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"unknown {what} '{name}' ({hint}installed: {', '.join(sorted(installed))})"


@dataclass(frozen=True)
class ConfigKey:
    """One config key a plugin declared through ``core_declare_config``."""

    table: str  # dotted, "*" for any one name: "sched-graph", "queues.*.policy.limits"
    key: str
    default: Any
    check: Callable[[Any], None] | None
    help: str
    plugin: str


def declared_keys(pm: pluggy.PluginManager,
                  core: Callable[[Callable], None] | None = None) -> list[ConfigKey]:
    """Every config key the plugins of `pm` declare; a key declared twice is an error.

    `core`, if given, is called first with a ``declare`` of its own (plugin name
    ``core``), so that a plugin cannot take over a key of the core unnoticed.
    """
    keys: dict[tuple[str, str], ConfigKey] = {}

    def make(plugin: str) -> Callable:
        def declare(table: str, key: str, default: Any = None,
                    check: Callable[[Any], None] | None = None, help: str = "") -> None:
            if not table or not key or not isinstance(table, str) or not isinstance(key, str):
                raise TypeError("declare(table, key, ...) needs a table and a key")
            if check is not None and not callable(check):
                raise TypeError(f"{table}.{key}: check must be callable")
            other = keys.get((table, key))
            if other is not None:
                raise PluginError(f"config key '{table}.{key}' is declared by both "
                                  f"'{other.plugin}' and '{plugin}'")
            keys[(table, key)] = ConfigKey(table, key, default, check, help, plugin)

        return declare

    if core is not None:
        core(make("core"))
    call_each(pm.hook.core_declare_config, "declare", make)
    return list(keys.values())


def show_value(value: Any) -> str:
    """A value as it would be written in TOML (JSON is close enough), for help output."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def describe(pm: pluggy.PluginManager) -> list[dict]:
    """Each loaded plugin with its hooks and config keys (for ``strato plugins list``)."""
    config: dict[str, list[dict]] = {}
    for k in declared_keys(pm):
        config.setdefault(k.plugin, []).append({"table": k.table, "key": k.key,
                                                "default": None if k.default is None
                                                else show_value(k.default),
                                                "help": k.help})
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        out.append({"name": name, "module": module, "hooks": hooks,
                    "config": config.get(name, [])})
    return out


def load_plugin(pm: pluggy.PluginManager, name: str) -> None:
    """Load one more built-in plugin into a running instance's plugin manager
    (a scheduler switched to with ``strato module load``)."""
    try:
        pm.register(_import(name, builtin_plugins(), []), name=name)
        pm.check_pending()
    except Exception as exc:
        raise PluginError(f"plugin '{name}' failed to load: {exc}") from None


def call_hook(hook: Any, name: str, **kwargs: Any) -> Any:
    """Call event hook `name` under the rule its spec declares (`hookspecs.ON_ERROR`).

    The one place that decides what a plugin's exception means: ``"raise"`` hooks
    let it reach the caller (which rejects or fails the job, or stops startup),
    ``"log"`` hooks log it and return None, so a broken accounting or
    task-exit plugin cannot wedge a job or the instance.
    """
    caller = getattr(hook, name)
    if hookspecs.ON_ERROR[name] == "raise":
        return caller(**kwargs)
    try:
        return caller(**kwargs)
    except Exception:
        _log.exception("hook %s failed (ignored)", name)
        return None
