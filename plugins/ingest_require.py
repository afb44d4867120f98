"""ingest-require: jobs must set the attributes a site names.

Config::

    [plugins]
    load = ["ingest-require"]
    [ingest-require]
    attributes = ["system.project", "user.experiment"]
"""

from __future__ import annotations

from strato.core.errors import ConfigError
from strato.core.hookspecs import hookimpl

_state: dict = {"paths": []}


@hookimpl
def core_configure(instance, config):
    names = config.get("attributes", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError("ingest-require.attributes must be a list of attribute names")
    _state["paths"] = [(n, n.split(".")) for n in names]


@hookimpl
def ingest_validate(jobspec, user):
    attrs = jobspec.get("attributes", {})
    for name, path in _state["paths"]:
        node = attrs
        for part in path:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"attribute {name} is required (e.g. --setattr={name}=VALUE)")
            node = node[part]
