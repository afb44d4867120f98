"""RFC 21 job states and their bit masks: the one place they are defined.

The job manager, the job services, the public API (`strato.job`) and the CLI's
``--filter`` all use these, so a state name and its bit never disagree. The
module imports nothing, so the CLI can use it without loading the core.
"""

NEW, DEPEND, PRIORITY, SCHED, RUN, CLEANUP, INACTIVE = 1, 2, 4, 8, 16, 32, 64

#: state name -> bit, in the order a job passes through them
STATES: dict[str, int] = {"NEW": NEW, "DEPEND": DEPEND, "PRIORITY": PRIORITY, "SCHED": SCHED,
                          "RUN": RUN, "CLEANUP": CLEANUP, "INACTIVE": INACTIVE}
#: bit -> state name
STATE_NAMES: dict[int, str] = {bit: name for name, bit in STATES.items()}

PENDING = DEPEND | PRIORITY | SCHED
RUNNING = RUN | CLEANUP
ACTIVE = NEW | PENDING | RUNNING
ALL = ACTIVE | INACTIVE

RESULTS = ("COMPLETED", "FAILED", "CANCELED", "TIMEOUT")
