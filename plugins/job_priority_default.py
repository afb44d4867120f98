"""job-priority-default: priority is the urgency, with 0 held and 31 expedited."""

from __future__ import annotations

from strato.core.hookspecs import hookimpl
from strato.core.jobmanager import PRIORITY_MAX, URGENCY_EXPEDITE


@hookimpl
def job_priority(job):
    return PRIORITY_MAX if job.urgency == URGENCY_EXPEDITE else job.urgency
