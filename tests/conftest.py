"""Shared fixtures: real instances in real processes, talked to over real sockets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _conformance() -> Path | None:
    """The public conformance corpora (Flux jobspecs, RFC examples, batch directives,
    Fluxion graphs): ``STRATO_CONFORMANCE``, else the default beside this repository
    when it exists. The one place that names that default."""
    env = os.environ.get("STRATO_CONFORMANCE")
    if env:
        return Path(env)
    default = REPO.parent / "shared" / "conformance"
    return default if default.is_dir() else None


CONFORMANCE = _conformance()


def pytest_configure(config):
    """STRATO_CONFORMANCE naming a folder that is not there is a mistake to report in
    one line (a usage error, before anything runs), not corpora to skip silently."""
    env = os.environ.get("STRATO_CONFORMANCE")
    if env and not Path(env).is_dir():
        raise pytest.UsageError(f"STRATO_CONFORMANCE={env}: no such directory "
                                "(unset it to skip the tests that need the corpora)")


# Property-based tests (tests/unit/test_prop_*.py): the "ci" profile is derandomized, so
# every run (CI included) tries the same examples and a failure reproduces; it keeps no
# example database (nothing written into the repository) and no deadline, since one
# example's time means little on a loaded machine. HYPOTHESIS_PROFILE=explore searches
# with fresh random examples, many more of them, when hunting for bugs.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # only the property tests need it; they import it themselves
    pass
else:
    settings.register_profile("ci", max_examples=60, derandomize=True, database=None,
                              deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("explore", max_examples=2000, deadline=None, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: tests that read the corpora are skipped, with this reason, when there are none
needs_corpora = pytest.mark.skipif(
    CONFORMANCE is None, reason="conformance corpora not found (set STRATO_CONFORMANCE=DIR)")


#: tests that use machine-wide state (Slurm's daemons, network namespaces, mounts).
#: `make test` runs the suite in two pytest-xdist workers (``--dist loadgroup``): all
#: of these go to one worker, so no two of them ever run at the same time.
machine_wide = pytest.mark.xdist_group("machine-wide")


def exits(pid: int, timeout: float = 60) -> bool:
    """Wait until process `pid` has exited (True), or `timeout` seconds (False)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def end_shell_hosts_under(path: Path) -> None:
    """SIGTERM every shell host that a statedir below `path` names (which ends its
    tasks): one a test left holding jobs would wait a day for its broker."""
    import json
    import signal

    for record in path.glob("**/shell-host.*.json"):
        try:
            pid = json.loads(record.read_text())["pid"]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"shell-host" in f.read():
                    os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass


def bench_inputs() -> Path:
    """The benchmark inputs beside the corpora (``grug-gen.py`` and its jobspecs)."""
    return corpus_path().parent / "bench"


def corpus_path(*parts: str) -> Path:
    """A path in the corpora (a path that does not exist when they are absent, so
    globbing it at import time collects nothing)."""
    return (CONFORMANCE or REPO / "no-conformance-corpora").joinpath(*parts)
STRATO = [sys.executable, "-m", "strato.cli.main"]
# Jobs and initial programs that call `strato` find the one installed with this Python.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# The initial program of a test instance: report the URI, then live until stdin closes.
_HOLD = "import os, sys; print(os.environ['STRATO_URI'], flush=True); sys.stdin.read()"


class Instance:
    """A running ``strato start`` in a subprocess, and ways to talk to it."""

    def __init__(self, tmp: Path, config: str | None = None, args: tuple = (),
                 statedir: Path | None = None, prefix: tuple = ()) -> None:
        self.tmp = tmp
        # Socket paths are limited to ~107 bytes: keep the rundir short.
        self.rundir = Path(tempfile.mkdtemp(prefix="st-"))
        # `prefix` runs it elsewhere: ("ip", "netns", "exec", NS, ...) for another "host"
        cmd = [*prefix, *STRATO, "start", "--rundir", str(self.rundir)]
        if config is not None:
            path = tmp / "config.toml"
            path.write_text(config)
            cmd += ["--config", str(path)]
        if statedir is not None:
            cmd += ["--statedir", str(statedir)]
        cmd += [*args, sys.executable, "-c", _HOLD]
        env = dict(os.environ)
        env.pop("STRATO_URI", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
        line = self.proc.stdout.readline().strip()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"instance failed to start: {err}")
        self.uri = line
        self.env = dict(env, STRATO_URI=self.uri)

    def strato(self, *args: str, check: bool = False, input: str | None = None,
               timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run a strato CLI command against this instance."""
        res = subprocess.run([*STRATO, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, input=input, cwd=cwd or self.tmp)
        if check and res.returncode != 0:
            raise AssertionError(f"strato {' '.join(args)} failed: {res.stderr}")
        return res

    def handle(self):
        import strato

        return strato.Handle(self.uri)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            if not self.proc.stdin.closed:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.rundir, ignore_errors=True)
        return self.proc.returncode


@pytest.fixture
def make_instance(tmp_path):
    """Factory: ``make_instance(config=TOML, args=(...), statedir=...)``."""
    made = []

    def make(config: str | None = None, args: tuple = (), statedir: Path | None = None,
             sub: str | None = None, prefix: tuple = ()) -> Instance:
        d = tmp_path / (sub or f"i{len(made)}")
        d.mkdir(exist_ok=True)
        inst = Instance(d, config, args, statedir, prefix)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        # End it as a user would (its initial program exits), so it cleans up after
        # itself and, under `make coverage`, writes its data; SIGKILL only if it hangs.
        try:
            inst.stop()
        except subprocess.TimeoutExpired:
            inst.proc.kill()
            inst.proc.wait()
            inst.stop()


@pytest.fixture
def instance(make_instance):
    """One instance over this machine's own resources."""
    return make_instance()


@pytest.fixture
def sim_instance(make_instance):
    """An instance of 16 virtual nodes x 4 cores whose jobs run simulated."""
    return make_instance(config="""
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-15]"
cores = "0-3"
""")
