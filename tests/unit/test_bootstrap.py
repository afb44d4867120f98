"""The bootstrap of a multi-broker instance: tree shape, [bootstrap] tables, certificates."""

from __future__ import annotations

import os

import pytest

from strato.core.bootstrap import (
    children_of,
    expand_endpoint,
    for_test,
    from_config,
    parent_of,
    parse_bootstrap,
    subtree_child,
    tbon_fanout,
)
from strato.core.cert import keygen, load_cert
from strato.core.errors import ConfigError


def test_kary_tree():
    assert [parent_of(r, 2) for r in range(7)] == [None, 0, 0, 1, 1, 2, 2]
    assert children_of(0, 8, 2) == [1, 2]
    assert children_of(3, 8, 2) == [7]
    assert children_of(3, 7, 2) == []
    assert children_of(0, 5, 3) == [1, 2, 3]
    # next hop down from 0 to 7 (0 -> 1 -> 3 -> 7), and nothing for a rank not below
    assert subtree_child(0, 7, 2) == 1
    assert subtree_child(1, 7, 2) == 3
    assert subtree_child(3, 7, 2) == 7
    assert subtree_child(2, 7, 2) is None
    assert subtree_child(5, 3, 2) is None


def test_fanout_from_tbon_table():
    assert tbon_fanout({}) == 2
    assert tbon_fanout({"tbon": {"fanout": 4}}) == 4
    assert tbon_fanout({"tbon": {"fanout": 4, "topo": "kary:3"}}) == 3
    for bad, msg in (({"fanout": 0}, "tbon.fanout must be an integer >= 1 (got 0)"),
                     ({"fanout": "x"}, "tbon.fanout must be an integer >= 1 (got 'x')"),
                     ({"topo": "binomial"}, "tbon.topo: unknown topology 'binomial'"),
                     ({"topo": "kary:0"}, "tbon.topo: unknown topology 'kary:0'")):
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            tbon_fanout({"tbon": bad})


def test_test_size_bounds():
    for size in (0, -1, 10000):
        with pytest.raises(ConfigError, match=f"--test-size must be from 1 to 1024 "
                                              rf"\(got {size}\)"):
            for_test(size, {}, None, "")


def test_endpoint_templates():
    assert expand_endpoint("tcp://%h:%p", "node3", 8050) == "tcp://node3:8050"
    assert expand_endpoint("tcp://*:%p", "x", 1) == "tcp://*:1"
    assert expand_endpoint("ipc:///tmp/100%%-%h", "n", 1) == "ipc:///tmp/100%-n"


def test_parse_good_table():
    entries, defaults = parse_bootstrap({
        "default_port": 9000, "curve_cert": "/c",
        "hosts": [{"host": "node0", "bind": "tcp://eth0:%p"}, {"host": "node[1-3]"}]})
    assert [e["host"] for e in entries] == ["node0", "node1", "node2", "node3"]
    assert entries[0]["bind"] == "tcp://eth0:%p"
    assert entries[1]["bind"] == "tcp://*:%p" and entries[1]["connect"] == "tcp://%h:%p"
    assert defaults["port"] == 9000


@pytest.mark.parametrize("table, message", [
    ([], "[bootstrap] must be a table"),
    ({"hosts": "node[0-3]"}, "bootstrap.hosts must be a list of tables"),
    ({"hosts": ["node0"]}, "bootstrap.hosts[0] must be a table"),
    ({"hosts": [{"bind": "tcp://*:1"}]}, "bootstrap.hosts[0]: missing 'host'"),
    ({"hosts": [{"host": "n[0-1", "bind": "x"}]}, "bootstrap.hosts[0]: invalid hostlist"),
    ({"hosts": [{"host": "n0", "port": 5}]}, "bootstrap.hosts[0]: unknown key 'port'"),
    ({"hosts": [{"host": "n[0-1]"}, {"host": "n1"}]},
     "bootstrap.hosts[1]: host n1 appears twice in bootstrap.hosts"),
    ({"hosts": [{"host": "n[0-1]", "bind": "tcp://10.0.0.1:9"}]},
     "bootstrap.hosts[0]: a bind or connect shared by 2 hosts must name the host with %h"),
    ({"default_port": 70000}, "bootstrap.default_port must be a port number (got 70000)"),
    ({"default_bind": 5}, "bootstrap.default_bind must be a string (got 5)"),
    ({"curvecert": "/c"}, "bootstrap: unknown key 'curvecert'"),
])
def test_parse_bad_tables(table, message):
    with pytest.raises(ConfigError) as info:
        parse_bootstrap(table)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_rank_from_hostname(tmp_path, monkeypatch):
    cert = str(tmp_path / "c.cert")
    keygen(cert)
    config = {"bootstrap": {"curve_cert": cert, "default_port": 9000,
                            "hosts": [{"host": "node[0-4]"}]}}
    monkeypatch.setenv("STRATO_FAKE_HOSTNAME", "node3")
    boot = from_config(config)
    assert (boot.rank, boot.size, boot.parent, boot.children) == (3, 5, 1, [])
    assert boot.parent_endpoint == "tcp://node1:9000"
    assert boot.hostlist == "node[0-4]"
    monkeypatch.setenv("STRATO_FAKE_HOSTNAME", "node1")
    boot = from_config(config)
    assert boot.bind == "tcp://*:9000" and boot.children == [3, 4]
    monkeypatch.setenv("STRATO_FAKE_HOSTNAME", "elsewhere")
    with pytest.raises(ConfigError, match=r"bootstrap.hosts does not name this host "
                                          r"\(elsewhere\)"):
        from_config(config)
    monkeypatch.setenv("STRATO_FAKE_HOSTNAME", "node0")
    del config["bootstrap"]["curve_cert"]
    with pytest.raises(ConfigError, match="bootstrap.curve_cert is required"):
        from_config(config)
    assert from_config({"bootstrap": {"hosts": []}}) is None
    assert from_config({"bootstrap": {"hosts": [{"host": "node0"}]}}).size == 1


def test_keygen_and_load(tmp_path):
    path = tmp_path / "curve.cert"
    cert = keygen(str(path), name="test")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_cert(str(path)) == cert
    with pytest.raises(ConfigError, match="cannot write .*: File exists"):
        keygen(str(path))


@pytest.mark.parametrize("text, message", [
    (None, "cannot read CURVE certificate {path}: No such file or directory"),
    ("hello\n", "{path}: not a CURVE certificate (no public-key)"),
    ('curve\n    public-key = "abc"\n    secret-key = "def"\n',
     "{path}: public-key is not a 40-character Z85 key"),
    (b"\xff\xfe\x00", "{path}: not a CURVE certificate (not text)"),
])
def test_bad_certs(tmp_path, text, message):
    path = tmp_path / "bad.cert"
    if isinstance(text, str):
        path.write_text(text)
    elif text is not None:
        path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_cert(str(path))
    assert str(info.value) == message.format(path=path)


def test_mismatched_keys(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    keygen(str(a))
    keygen(str(b))
    sec_b = b.read_text().split("secret-key")[1]
    a.write_text(a.read_text().split("secret-key")[0] + "secret-key" + sec_b)
    with pytest.raises(ConfigError, match="public-key does not belong to secret-key"):
        load_cert(str(a))
