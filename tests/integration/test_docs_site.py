"""make docs: the site builds with --strict, and a broken link or a missing API
reference fails the build naming the page and the link (needs the [docs] extra,
which make docs installs; skipped with that reason without it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

mkdocs = pytest.importorskip("mkdocs", reason="the [docs] extra is not installed (make docs)")
pytest.importorskip("mkdocstrings", reason="the [docs] extra is not installed (make docs)")

#: every build copies the sources to the repository's build/api-src (tools/docs_hooks.py):
#: two at once in `make test`'s two workers would remove each other's copy
pytestmark = pytest.mark.xdist_group("docs-site")


def _build(tmp_path: Path, edit=None) -> subprocess.CompletedProcess:
    """Build a copy of docs/ (changed by `edit`) with the repository's mkdocs.yml."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    if edit is not None:
        edit(docs)
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    config["site_dir"] = str(tmp_path / "site")
    config["hooks"] = [str(REPO / h) for h in config["hooks"]]
    handler = config["plugins"][2]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(REPO / p) for p in handler["paths"]]
    cfg = tmp_path / "mkdocs.yml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(cfg)],
                          capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})


def test_the_site_builds_strict_with_the_generated_pages(tmp_path):
    r = _build(tmp_path)
    assert r.returncode == 0, r.stderr
    site = tmp_path / "site"
    reference = (site / "admin" / "config-reference" / "index.html").read_text()
    assert "kill-timeout" in reference and "queue-depth" in reference
    assert "strato job eventlog" in (site / "reference" / "cli" / "index.html").read_text()
    assert 'id="strato.job.submit"' in (site / "api" / "job" / "index.html").read_text()
    assert "core_declare_config" in (site / "api" / "hookspecs" / "index.html").read_text()


def test_a_broken_link_fails_naming_page_and_link(tmp_path):
    def edit(docs: Path) -> None:
        with open(docs / "guide" / "kvs.md", "a") as f:
            f.write("\nSee [the missing page](nosuch.md).\n")

    r = _build(tmp_path, edit)
    assert r.returncode != 0
    assert "Doc file 'guide/kvs.md' contains a link 'nosuch.md'" in r.stderr


def test_a_missing_api_reference_fails_naming_it(tmp_path):
    def edit(docs: Path) -> None:
        with open(docs / "api" / "job.md", "a") as f:
            f.write("\n::: strato.job.nosuch\n")

    r = _build(tmp_path, edit)
    assert r.returncode != 0
    assert "Could not collect 'strato.job.nosuch'" in r.stderr
    assert "api/job.md" in r.stderr
