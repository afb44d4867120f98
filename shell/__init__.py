"""strato.shell: the job shell and the long-lived shell host that runs each job's
shell as a coroutine and spawns its tasks."""
