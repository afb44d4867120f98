"""strato.shell: the job shell and the long-lived shell host that runs each job's
shell (a plain object driven by callbacks) and spawns its tasks."""
