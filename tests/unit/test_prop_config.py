"""Property tests of instance configs (what `strato config check` and `strato start`
read): any file text, any -S override and any decoded config either passes or is
reported as one-line problems (ConfigError/PluginError, or config_errors' list), never
another exception.

Why: a config is the admin's input to every instance; a typo must be named, not crash
the check.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import one_line, parse_or_error

from strato.core.config import (
    apply_override,
    config_errors,
    load_config,
    parse_size,
    read_config_file,
)
from strato.core.errors import StratoError
from strato.core.plugins import make_plugin_manager

toml_text = st.lists(st.sampled_from(
    ["[exec]", "[plugins]", "[[resource.config]]", "[sched-graph]", "[queues.q]", "backend =",
     "hosts =", "cores =", ' "sim"', ' "node[0-3]"', ' "0-3"', " 1", " 1e999", " nan", " [",
     " ]", " {", " }", " true", ' "x\\ny"', '"a\\nb" = 1', "=", "\n", "\n", "#", " '", '"'],
), max_size=14).map("".join) | st.text(max_size=40)

_DIR = Path(tempfile.mkdtemp(prefix="strato-prop-config-"))


def _file(text: str, suffix: str = ".toml") -> str:
    path = _DIR / f"c{suffix}"
    path.write_text(text, errors="surrogatepass")
    return str(path)


@given(toml_text, st.sampled_from([".toml", ".json"]))
@example("[" * 100000 + "\n", ".json")  # nested too deeply for the JSON decoder
@example("a = " + "[" * 100000, ".toml")
@example('"a\\nb" = 1', ".toml")
def test_read_any_file(text: str, suffix: str) -> None:
    ok, config = parse_or_error(read_config_file, _file(text, suffix), error=StratoError)
    if ok:
        assert isinstance(config, dict)


values = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | \
    st.sampled_from(["sim", "local", "node[0-3]", "0-3", "0-99999999999", "n[", "30m", "x",
                     "sched-graph", "first", "fcfs", ""]) | st.text(max_size=8)
# plugin names are drawn from a fixed list: a random one would be imported as a module
plugin_names = st.sampled_from(["sched-graph", "ingest-limits", "dependency-after",
                                "no-such-plugin-here", "exec-sim"])
known = st.fixed_dictionaries({}, optional={
    "plugins": st.fixed_dictionaries({}, optional={
        "load": st.lists(plugin_names, max_size=2) | values,
        "block": st.lists(plugin_names, max_size=2) | values}) | values,
    "exec": st.dictionaries(st.sampled_from(["backend", "kill-timeout", "sim-duration", "x\n"]),
                            values, max_size=3) | values,
    "sched": st.dictionaries(st.sampled_from(["plugin", "queue-depth"]), values, max_size=2),
    "resource": st.fixed_dictionaries({}, optional={"config": st.lists(st.dictionaries(
        st.sampled_from(["hosts", "cores", "gpus", "properties", "bogus"]),
        values | st.lists(values, max_size=2), max_size=4), max_size=2) | values}),
    "sched-graph": st.dictionaries(st.sampled_from(
        ["match-policy", "traverser", "queue-policy", "queue-depth", "prune-filters"]),
        values, max_size=3),
    "queues": st.dictionaries(st.text(max_size=4), st.dictionaries(
        st.sampled_from(["requires", "policy"]), values | st.lists(values, max_size=2),
        max_size=2) | values, max_size=2),
})
configs = st.builds(lambda a, b: {**b, **a}, known,
                    st.dictionaries(st.text(max_size=6), values, max_size=2))


@given(configs)
@example({"x\ny": 1})  # an unknown key with a line break in its name
@example({"exec": {"backend": "a\nb"}})
@example({"sched-graph": {"traverser": "a\nb"}, "plugins": {"load": ["sched-graph"]}})
@example({"plugins": {"load": ["no-such-plugin-here"]}, "no-such-plugin-here": 1})
@example({"plugins": 5, "x": 1})
@example({"plugins": {"block": 5}, "exec": {"bogus": 1}})
@example({"resource": {"config": [{"hosts": "n[0-99999999999]"}]}})
def test_check_any_config(config: dict) -> None:
    """What `strato config check FILE` does, the file being JSON (as `strato batch
    --conf` writes it) so that any decoded config can be written."""
    path = _file(json.dumps(config), ".json")
    try:
        config = load_config(path)
        pm = make_plugin_manager(config)
    except StratoError as exc:
        assert one_line(str(exc)), str(exc)
        return
    for problem in config_errors(config, pm):
        assert one_line(problem), problem


@given(st.text(max_size=30) | st.sampled_from(["a.b=1", "a..b=1", "=1", "a=", "a.b=[",
                                                "plugins.load=3", "a=1\nb=2"]))
def test_any_override(item: str) -> None:
    config: dict = {"a": 1}
    ok, _ = parse_or_error(apply_override, config, item, error=StratoError)
    if ok:
        parse_or_error(load_config, None, [item], error=StratoError)


@given(st.integers(0, 10**12) | st.text(alphabet="0123456789kKmMgGtTbB .-", max_size=8)
       | st.floats() | st.booleans() | st.none())
@example("64M")
@example("1" * 5000 + "k")
def test_any_size(value) -> None:
    """broker.message-size-limit and any other size: bytes, or a one-line error."""
    ok, size = parse_or_error(parse_size, value)
    if ok:
        assert isinstance(size, int) and size >= 0
        for unit, factor in (("k", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
            assert parse_size(f"{size}{unit}") == size * factor
