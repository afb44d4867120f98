"""The cyclic collector's settings in strato's service processes (core/gcpolicy.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from strato.core import gcpolicy


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_restores_the_collector_as_it_was(enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError):
            with gcpolicy.paused():
                assert not gc.isenabled()
                raise RuntimeError("a failed build")
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_tuned_service_freezes_its_start_up_objects_and_collects_less_often():
    code = ("import gc; from strato.core import gcpolicy; gcpolicy.tune_service(); "
            "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(gcpolicy.SERVICE_GEN0_THRESHOLD), "True"]
