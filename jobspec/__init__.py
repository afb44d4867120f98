"""strato.jobspec: the jobspec model, RFC 25 validation, builders, and the small
libraries for durations (RFC 23), idsets (RFC 22) and hostlists (RFC 29).

The names most callers need are re-exported here, imported on first use, so that
importing one small library (``strato.jobspec.idset``, as the shell host does)
loads nothing else: no model, no YAML, no lark, no networkx.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "JobspecError": "model",
    "JobspecV1": "model",
    "summarize": "model",
    "validate_v1": "model",
    "format_fsd": "fsd",
    "parse_fsd": "fsd",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strato.jobspec' has no attribute {name!r}")
    return getattr(importlib.import_module(f"strato.jobspec.{module}"), name)
