"""Building an instance's own plugin manager from its config.

Built-in plugins are modules listed in the ``strato.plugins`` entry-point group.
An instance loads the defaults plus ``[plugins] load`` minus ``[plugins] block``.
``load`` entries may also name a module found on ``[plugins] searchpath`` or a
``.py`` file, which is how a site adds its own plugin without packaging it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from strato.core import hookspecs
from strato.core.errors import PluginError

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


def builtin_plugins() -> dict[str, str]:
    """Map each plugin name in the ``strato.plugins`` group to its module path."""
    return {ep.name: ep.value for ep in entry_points(group="strato.plugins")}


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


def make_plugin_manager(config: dict) -> pluggy.PluginManager:
    """Create the plugin manager of one instance; PluginError names a failing plugin."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pconf = config.get("plugins", {})
    blocked = set(pconf.get("block", []))
    names = [n for n in DEFAULT_PLUGINS if n not in blocked]
    names += [n for n in pconf.get("load", []) if n not in names and n not in blocked]
    sched = config.get("sched", {}).get("plugin") if isinstance(config.get("sched"), dict) \
        else None
    builtins = builtin_plugins()
    if isinstance(sched, str) and sched in builtins and sched not in names:
        names.append(sched)  # the chosen scheduler's plugin is loaded on demand
    searchpath = [str(Path(p).resolve()) for p in pconf.get("searchpath", [])]
    for name in names:
        try:
            module = _import(name, builtins, searchpath)
            pm.register(module, name=name)
        except Exception as exc:
            raise PluginError(f"plugin '{name}' failed to load: {exc}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or str(exc.plugin)
        raise PluginError(f"plugin '{name}': {exc}") from None
    return pm


def describe(pm: pluggy.PluginManager) -> list[dict]:
    """Each loaded plugin with the hooks it implements (for ``strato plugins list``)."""
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append({"name": name, "module": getattr(plugin, "__name__", str(plugin)),
                    "hooks": hooks})
    return out


def load_plugin(pm: pluggy.PluginManager, name: str) -> None:
    """Load one more built-in plugin into a running instance's plugin manager
    (a scheduler switched to with ``strato module load``)."""
    try:
        pm.register(_import(name, builtin_plugins(), []), name=name)
        pm.check_pending()
    except Exception as exc:
        raise PluginError(f"plugin '{name}' failed to load: {exc}") from None
