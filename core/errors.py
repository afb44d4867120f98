"""One exception hierarchy for strato.

Errors are exceptions inside and one-line messages at the edges: the CLI catches
`StratoError`, prints ``strato-<cmd>: <message>`` and exits with `exit_code`.
"""


class StratoError(Exception):
    """Base of every error strato reports to a user."""

    exit_code = 1


class NoInstanceError(StratoError):
    """No instance can be reached at the URI (unset, dead, or wrong)."""


class RPCError(StratoError):
    """A service answered a request with an error."""

    def __init__(self, message: str, errnum: str = "EINVAL") -> None:
        super().__init__(message)
        self.errnum = errnum


class ConfigError(StratoError):
    """The instance config (file or -S override) is invalid."""


class PluginError(StratoError):
    """A plugin named in the config failed to load or register."""


class StateError(StratoError):
    """The state directory cannot be used (corrupt or unreadable)."""
