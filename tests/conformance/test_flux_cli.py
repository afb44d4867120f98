"""strato's submission commands print the jobspec Flux's print (``--dry-run``).

Two proofs (see flux_cli_compare.py for the generator, the runs and every
normalisation): against recorded Flux outputs, always (CI has no Flux), and
against a live ``flux`` when one is on PATH or named by ``STRATO_FLUX``.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import flux_cli_compare as fcc  # noqa: E402

GOLDEN = Path(__file__).parents[1] / "data" / "flux-dry-run" / "cases.jsonl"
FLUX = os.environ.get("STRATO_FLUX") or shutil.which("flux")
LIVE_COUNT = int(os.environ.get("STRATO_FLUX_CASES", "60"))


def _report(bad: list) -> str:
    return "\n".join(f"{c['kind']} {' '.join(c['args'])}\n    " + "\n    ".join(d)
                     for c, d in bad[:20])


def test_recorded_flux_outputs():
    """Every recorded command line gives Flux's jobspec (or is refused, as by Flux)."""
    total, bad = fcc.replay(GOLDEN)
    assert total >= 300
    assert not bad, f"{len(bad)}/{total} differ from Flux:\n{_report(bad)}"


@pytest.mark.skipif(FLUX is None, reason="no flux on PATH (set STRATO_FLUX=/path/to/flux"
                                         " to compare with a live Flux)")
def test_live_flux_on_generated_option_sets():
    """Fresh option sets (a new seed each run) against the flux found here."""
    seed = random.randrange(1 << 30)
    injected = fcc.flux_injected(FLUX)
    bad = []
    for case in fcc.generate(LIVE_COUNT, seed):
        diffs = fcc.compare(case, fcc.run_flux(FLUX, case["kind"], case["args"]), injected)
        if diffs:
            bad.append((case, diffs))
    assert not bad, f"seed {seed}: {len(bad)}/{LIVE_COUNT} differ:\n{_report(bad)}"


def test_comparison_can_fail():
    """The comparator sees a real difference (a time limit in seconds, not minutes)."""
    header = {"kind": "submit", "args": ["-t", "30", "true"]}
    mine = fcc.run_strato("submit", header["args"])
    flux_like = {"jobspec": dict(mine["jobspec"]), "when": mine["when"]}
    flux_like["jobspec"]["attributes"] = {"system": dict(mine["jobspec"]["attributes"]["system"],
                                                         duration=30.0)}
    assert fcc.compare(header, flux_like, []) == [
        ".attributes.system.duration: flux 30.0 != strato 1800.0"]
