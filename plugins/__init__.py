"""strato.plugins: every feature that can be swapped, each a pluggy plugin module
listed in the ``strato.plugins`` entry-point group (schedulers, exec backends,
ingest validators, priority)."""
