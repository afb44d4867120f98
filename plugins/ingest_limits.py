"""ingest-limits: reject jobs beyond the limits of their queue (or the instance).

Limits are ``policy.limits`` in the config, per queue or for the instance:
``duration`` (a job with no time limit counts as over any duration limit) and
``job-size.max``/``job-size.min`` of ``nnodes``, ``ncores`` and ``ngpus``
(-1 means no limit).
"""

from __future__ import annotations

from strato.core.hookspecs import hookimpl
from strato.jobspec.fsd import format_fsd
from strato.jobspec.model import summarize


def _sizes(js: dict) -> dict:
    s = summarize(js)
    return {"nnodes": s["nnodes"], "ncores": s["nslots"] * s["cores_per_slot"],
            "ngpus": s["nslots"] * s["gpus_per_slot"]}


class Plugin:
    """One per instance (the loader registers ``Plugin()``): that instance's queues."""

    def __init__(self) -> None:
        self.queues = None

    @hookimpl
    def core_configure(self, instance, config):
        self.queues = instance.queues

    @hookimpl(trylast=True)
    def ingest_validate(self, jobspec, user):
        queues = self.queues
        if queues is None:
            return
        name = jobspec["attributes"]["system"].get("queue")
        queue = queues.queues.get(name)
        limits = queue.limits if queue is not None else queues.limits
        where = f" of queue {name}" if queue is not None else ""
        if limits.duration:
            duration = jobspec["attributes"]["system"].get("duration", 0)
            if not duration:
                raise ValueError(f"a time limit is required: the limit{where} is "
                                 f"{format_fsd(limits.duration)}")
            if duration > limits.duration:
                raise ValueError(f"duration {format_fsd(duration)} exceeds the limit{where} "
                                 f"of {format_fsd(limits.duration)}")
        if not limits.max and not limits.min:
            return
        sizes = _sizes(jobspec)
        for key, most in limits.max.items():
            value = sizes[key]
            if most >= 0 and value is not None and value > most:
                raise ValueError(f"{key} {value} exceeds the limit{where} of {most}")
        for key, least in limits.min.items():
            value = sizes[key]
            if least >= 0 and value is not None and value < least:
                raise ValueError(f"{key} {value} is below the minimum{where} of {least}")
