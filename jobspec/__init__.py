"""strato.jobspec: the jobspec model, RFC 25 validation, builders, and the small
libraries for durations (RFC 23), idsets (RFC 22) and hostlists (RFC 29).

The names most callers need are re-exported here.  Importing this package stays cheap
(no YAML, no lark, no networkx): YAML is imported only when a YAML jobspec is read.
"""

from .fsd import format_fsd, parse_fsd
from .model import JobspecError, JobspecV1, summarize, validate_v1

__all__ = [
    "JobspecError",
    "JobspecV1",
    "format_fsd",
    "parse_fsd",
    "summarize",
    "validate_v1",
]
