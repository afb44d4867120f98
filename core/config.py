"""Instance config: a TOML file plus ``-S key=value`` overrides.

Overrides use dotted keys (``-S exec.backend=sim``, ``-S sched-simple.mode=x``) and
TOML values (``-S plugins.load='["x"]'``); a value that is not valid TOML is a string.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from strato.core.errors import ConfigError


def load_config(path: str | None, overrides: list[str] = ()) -> dict:
    """Read the config file (if any) and apply overrides; ConfigError on bad input."""
    config: dict = {}
    if path:
        try:
            config = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for item in overrides:
        apply_override(config, item)
    _check(config)
    return config


def apply_override(config: dict, item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError(f"invalid override '{item}' (expected key=value)")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.split(".")
    d = config
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"invalid override '{item}': {p} is not a table")
        d = nxt
    d[parts[-1]] = value


def _check(config: dict) -> None:
    plugins = config.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError("[plugins] must be a table")
    for name in ("load", "block", "searchpath"):
        val = plugins.get(name, [])
        if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
            raise ConfigError(f"plugins.{name} must be a list of strings")
