"""strato: a hierarchical workload manager. The public Python API.

``strato.Handle`` (and ``AsyncHandle``) connect to an instance; the verbs over a
handle live in ``strato.job``, ``strato.queue``, ``strato.resource``,
``strato.instance`` and ``strato.kvs``; ``strato.JobspecV1`` builds jobspecs.
Attributes are imported on first use so that ``strato --help`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Handle": ("strato.handle", "Handle"),
    "AsyncHandle": ("strato.async_handle", "AsyncHandle"),
    "JobspecV1": ("strato.jobspec.model", "JobspecV1"),
}
_MODULES = ("job", "kvs", "queue", "resource", "instance", "module", "timeline")


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _MODULES:
        return importlib.import_module(f"strato.{name}")
    raise AttributeError(f"module 'strato' has no attribute {name!r}")
