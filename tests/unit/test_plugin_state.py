"""Each instance owns its plugins' state: two plugin managers in one process share none."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import strato
from strato.core.plugins import make_plugin_manager
from strato.core.queues import Queues


def _configure(pm, config: dict) -> None:
    instance = SimpleNamespace(queues=Queues(config))
    for impl in pm.hook.core_configure.get_hookimpls():
        impl.function(instance=instance, config=config.get(impl.plugin_name, {}))


def test_two_plugin_managers_do_not_share_plugin_state():
    strict_cfg = {"plugins": {"load": ["ingest-require"]},
                  "policy": {"limits": {"duration": "1m"},
                             "jobspec": {"defaults": {"system": {"duration": "30s"}}}},
                  "ingest-require": {"attributes": ["system.project"]}}
    loose_cfg = {"plugins": {"load": ["ingest-require"]}}
    strict, loose = make_plugin_manager(strict_cfg), make_plugin_manager(loose_cfg)
    _configure(strict, strict_cfg)
    _configure(loose, loose_cfg)  # configured last: module globals would now be loose's

    def submit(pm, duration: float, project: bool = False) -> dict:
        js = strato.JobspecV1.from_command(["true"], duration=duration).jobspec
        if project:
            js["attributes"]["system"]["project"] = "p"
        pm.hook.ingest_frobnicate(jobspec=js, user=0)
        pm.hook.ingest_validate(jobspec=js, user=0)
        return js

    loose_js = submit(loose, 0)  # no defaults, no limits, nothing required
    assert not loose_js["attributes"]["system"].get("duration")
    with pytest.raises(ValueError, match="attribute system.project is required"):
        submit(strict, 0)
    with pytest.raises(ValueError, match="exceeds the limit"):
        submit(strict, 3600, project=True)
    assert submit(strict, 0, project=True)["attributes"]["system"]["duration"] == 30
    submit(loose, 3600)
    plugin = strict.get_plugin("ingest-limits")
    assert plugin is not loose.get_plugin("ingest-limits")
