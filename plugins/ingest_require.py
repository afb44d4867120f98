"""ingest-require: jobs must set the attributes a site names.

Config::

    [plugins]
    load = ["ingest-require"]
    [ingest-require]
    attributes = ["system.project", "user.experiment"]
"""

from __future__ import annotations

from collections.abc import Callable

from strato.core.errors import ConfigError
from strato.core.hookspecs import hookimpl


def _attribute_names(value) -> None:
    """A list of dotted jobspec attribute names such as ``"system.project"``."""
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise ValueError("must be a list of attribute names")


class Plugin:
    """One per instance (the loader registers ``Plugin()``): the attributes it requires."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, list[str]]] = []

    @hookimpl
    def core_declare_config(self, declare: Callable[..., None]) -> None:
        declare("ingest-require", "attributes", default=[], check=_attribute_names,
                help="jobspec attributes every job must set, e.g. \"system.project\"")

    @hookimpl
    def core_configure(self, instance, config):
        names = config.get("attributes", [])
        try:
            _attribute_names(names)
        except ValueError as exc:
            raise ConfigError(f"ingest-require.attributes {exc}") from None
        self.paths = [(n, n.split(".")) for n in names]

    @hookimpl
    def ingest_validate(self, jobspec, user):
        attrs = jobspec.get("attributes", {})
        for name, path in self.paths:
            node = attrs
            for part in path:
                if not isinstance(node, dict) or part not in node:
                    raise ValueError(f"attribute {name} is required "
                                     f"(e.g. --setattr={name}=VALUE)")
                node = node[part]
