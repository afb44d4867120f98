"""The typed plugin contract: built-in plugins implement the Protocols of hookspecs.py
with the same method names and parameters, so the documented interface is the real one."""

from __future__ import annotations

import inspect

import pytest

from strato.core import hookspecs
from strato.plugins.exec_local import LocalExec
from strato.plugins.exec_sim import SimExec
from strato.plugins.sched_graph.plugin import GraphScheduler
from strato.plugins.sched_simple import SimpleScheduler


def _methods(proto) -> dict[str, list[str]]:
    out = {}
    for name, fn in vars(proto).items():
        if callable(fn) and not name.startswith("_"):
            out[name] = list(inspect.signature(fn).parameters)
    return out


@pytest.mark.parametrize("proto,impl", [
    (hookspecs.Scheduler, SimpleScheduler),
    (hookspecs.Scheduler, GraphScheduler),
    (hookspecs.ExecBackend, SimExec),
    (hookspecs.ExecBackend, LocalExec),
])
def test_builtin_plugins_implement_the_protocols(proto, impl):
    assert isinstance(getattr(impl, "name", None), str)
    for name, params in _methods(proto).items():
        method = getattr(impl, name, None)
        assert callable(method), f"{impl.__name__} lacks {name}"
        assert list(inspect.signature(method).parameters) == params, (impl.__name__, name)


def test_every_hook_says_what_an_exception_means():
    for name, fn in vars(hookspecs).items():
        if hasattr(fn, "strato_spec"):
            doc = inspect.getdoc(fn) or ""
            assert "rais" in doc.lower() or "exception" in doc.lower(), name


def test_every_event_hook_has_an_error_rule():
    specs = {name for name, fn in vars(hookspecs).items() if hasattr(fn, "strato_spec")}
    registration = {n for n in specs if "_register_" in n or n == "core_declare_config"
                    or n == "core_register_services"}
    assert set(hookspecs.ON_ERROR) == specs - registration
    assert set(hookspecs.ON_ERROR.values()) <= {"raise", "log"}


def test_call_hook_logs_what_a_log_hook_raises_and_passes_on_a_raise_hook(caplog):
    import pluggy

    from strato.core.plugins import call_hook

    class Broken:
        @hookspecs.hookimpl
        def acct_job_end(self, job, usage):
            raise RuntimeError("ledger full")

        @hookspecs.hookimpl
        def ingest_validate(self, jobspec, user):
            raise ValueError("too big")

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Broken())
    assert call_hook(pm.hook, "acct_job_end", job=None, usage={}) is None
    assert "hook acct_job_end failed" in caplog.text and "ledger full" in caplog.text
    with pytest.raises(ValueError, match="too big"):
        call_hook(pm.hook, "ingest_validate", jobspec={}, user=0)
