"""The ``strato`` console script: `strato.cli.main.main`, started and ended cheaply.

A short command such as ``strato run true`` is mostly the interpreter's start-up and
end, so this entry keeps three costs out of it (docs/performance.md, "Where a
command's time goes"):

- click, for ``strato run CMD...`` without options (`strato.cli.runjob.fast_run`);
- the cyclic garbage collector scanning the objects imports create: it is off
  until the subcommand's modules are loaded, then those objects are frozen out of
  its sight (`imported`) and it runs as usual for the command's work;
- the interpreter's teardown of every module at exit (a fifth of ``strato run
  true``): `exit_now` flushes the output, runs the exit handlers, and ends.

`strato.cli.main.main` itself stays a plain function ending in SystemExit, for
callers inside a Python process.
"""

from __future__ import annotations

import gc
import os
import sys


def run() -> None:
    """Run the command named by ``sys.argv`` and end the process with its status."""
    gc.disable()
    argv = sys.argv[1:]
    # `strato run CMD...` without options: as the run command parses no option after
    # the first word that is not one, every option is at its default, and the job
    # can be run without loading click (strato.cli.runjob)
    if len(argv) >= 2 and argv[0] == "run" and not argv[1].startswith("-"):
        from strato.cli.runjob import fast_run

        imported()
        exit_now(fast_run(argv[1:]))
    from strato.cli.main import main

    try:
        main()
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            exit_now(code or 0)
        print(code, file=sys.stderr)
        exit_now(1)
    exit_now(0)


def imported() -> None:
    """The command's modules are loaded: the objects they made live to the end, so
    the collector (off until now) is turned on without ever scanning them."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def exit_now(rc: int) -> None:
    """End the process with `rc` once its output is written and its exit handlers
    have run, without the module-by-module teardown. A process that still has a
    non-daemon thread exits the ordinary way, which waits for that thread."""
    threading = sys.modules.get("threading")
    if threading is not None and any(not t.daemon and t is not threading.main_thread()
                                     for t in threading.enumerate()):
        sys.exit(rc)
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        rc = 141
    except OSError:
        rc = rc or 1
    os._exit(rc)
