"""ingest-defaults: fill in a job's defaults from the instance's policy.

The default queue (``[policy.jobspec.defaults.system] queue``) when the job names
none, then the queue's ``policy.jobspec.defaults.system`` (falling back to the
instance's): e.g. a default ``duration`` for jobs submitted without ``-t``.
"""

from __future__ import annotations

from strato.core.hookspecs import hookimpl


class Plugin:
    """One per instance (the loader registers ``Plugin()``): that instance's queues."""

    def __init__(self) -> None:
        self.queues = None

    @hookimpl
    def core_configure(self, instance, config):
        self.queues = instance.queues

    @hookimpl
    def ingest_frobnicate(self, jobspec, user):
        queues = self.queues
        attrs = jobspec.get("attributes") if isinstance(jobspec, dict) else None
        if queues is None or not isinstance(attrs, dict):
            return
        system = attrs.setdefault("system", {})
        if not isinstance(system, dict):
            return
        if queues.default is not None and "queue" not in system:
            system["queue"] = queues.default
        defaults = queues.defaults
        queue = queues.queues.get(system.get("queue"))
        if queue is not None:
            defaults = {**defaults, **queue.defaults}
        for key, value in defaults.items():
            if key == "duration":
                if not system.get("duration"):
                    system["duration"] = value
            else:
                system.setdefault(key, value)
