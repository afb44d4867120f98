"""ingest-basic: every submitted jobspec must be a valid version 1 jobspec (RFC 25)."""

from __future__ import annotations

from strato.core.hookspecs import hookimpl
from strato.jobspec.model import validate_v1


@hookimpl(tryfirst=True)
def ingest_validate(jobspec, user):
    validate_v1(jobspec)
