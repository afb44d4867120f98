"""The graph library's exceptions: one class per way a match or graph operation fails.

Why: Fluxion reports failures through a return code plus ``errno`` and an
accumulated message, and callers must remember to look at both. Here every public
operation of the traverser (``run``, ``run_update``, ``partial_cancel``, graph
edits, ``find``) either succeeds or raises a ``MatchError`` whose class says what
kind of failure it is and whose ``str()`` is exactly the message text Fluxion's
``resource-query`` prints (possibly empty).

The walk itself still records the reason of the last failed branch in a private
code (``EBUSY``, ``ENODEV``, ...), because which branch's reason wins is part of
Fluxion's observable behaviour; ``error_for`` turns that code into the exception
at the API boundary.
"""

from __future__ import annotations

# Fluxion's errno names, used only inside the walk (see the module docstring).
EBUSY, ENODEV, EINVAL, ENOENT, ERANGE, EOVERFLOW = (
    "EBUSY", "ENODEV", "EINVAL", "ENOENT", "ERANGE", "EOVERFLOW")


class MatchError(Exception):
    """A graph operation failed; the message is Fluxion's error text (may be empty).

    Raised as such (not as a subclass) when the walk failed without naming a reason.
    """


class Unsatisfiable(MatchError):
    """The request can never be met by this graph, or names no such resource
    (Fluxion's ENODEV / ENOENT): reject the job rather than retry it."""


class Busy(MatchError):
    """Not now (Fluxion's EBUSY): the request fits the graph but not its current
    schedule; retrying later may succeed."""


class InvalidRequest(MatchError, ValueError):
    """Invalid argument or state (Fluxion's EINVAL): a bad duration, an exclusivity
    conflict, an R or graph edit that does not fit the graph. Also a ValueError, so
    configuration code that catches ValueError keeps working."""


class Overflow(MatchError):
    """The request expands into too many alternatives (Fluxion's EOVERFLOW: more
    xor-slot variants than the flexible traverser tries)."""


_BY_CODE: dict[str, type[MatchError]] = {
    ENODEV: Unsatisfiable, ENOENT: Unsatisfiable, EBUSY: Busy, EINVAL: InvalidRequest,
    EOVERFLOW: Overflow,
}


def error_for(code: object, message: str) -> MatchError:
    """The exception for the walk's failure ``code`` (an errno name, or anything
    else for "no reason given"), carrying ``message``."""
    return _BY_CODE.get(code, MatchError)(message)  # type: ignore[call-overload]
