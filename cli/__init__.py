"""strato.cli: the ``strato`` command, thin click clients over the Python API."""
