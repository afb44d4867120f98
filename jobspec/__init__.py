"""strato.jobspec: the jobspec model, RFC 25 validation, builders, and the small
libraries for durations (RFC 23), idsets (RFC 22) and hostlists (RFC 29)."""
