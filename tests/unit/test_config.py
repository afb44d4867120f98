"""Instance config: TOML file plus -S overrides."""

from __future__ import annotations

import pytest

from strato.core.config import load_config
from strato.core.errors import ConfigError


def test_file_and_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[exec]\nbackend = "local"\n[plugins]\nload = ["a"]\n')
    cfg = load_config(str(f), ["exec.backend=sim", "sched.queue-depth=8", 'x.y=["p", "q"]',
                               "name=some words"])
    assert cfg["exec"]["backend"] == "sim"
    assert cfg["sched"]["queue-depth"] == 8
    assert cfg["x"]["y"] == ["p", "q"]
    assert cfg["name"] == "some words"
    assert cfg["plugins"]["load"] == ["a"]


@pytest.mark.parametrize("override,message", [
    ("novalue", "invalid override"),
    ("a..b=1", "invalid override"),
    ("plugins.load=3", "plugins.load must be a list"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(str(bad))
