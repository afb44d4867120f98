"""The CLI reaches an instance only through the public Python API.

Why: a service's topic and body shape are the core's business and change with
it; `strato.job`, `strato.queue`, `strato.resource`, `strato.instance` and
`strato.kvs` are the one place that knows them, so a CLI command and a Python
user doing the same thing call the same function. This test reads every
``cli/*.py`` with `ast` and fails on what would bypass the API: a string that
looks like a service topic (``job-manager.cancel``, ``queue.status``) passed to a
call or bound to a name, a handle's raw methods (``rpc``, ``rpc_stream``,
``send``, ``recv``), its private socket or inbox, or the wire protocol module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "cli"

# service.method: words of letters, digits, '-' or '_', joined by dots
TOPIC = re.compile(r"[A-Za-z][\w-]*(\.[A-Za-z][\w-]*)+")
# Dotted strings that are not topics: jobspec attribute paths (RFC 14) and keys of
# click's ctx.meta, which its docs ask to prefix with the package name.
NOT_TOPICS = ("system.", "user.", "strato.")
RAW_METHODS = {"rpc", "rpc_stream", "send", "recv"}
PRIVATE = {"_sock", "_inbox", "_tag"}


def _topics(node: ast.AST) -> list[ast.Constant]:
    """Topic-like string constants in an expression, dict keys aside (a key names a
    field, like ``"sched.t_estimate"`` in a table of annotation headings)."""
    if isinstance(node, ast.Constant):
        ok = isinstance(node.value, str) and TOPIC.fullmatch(node.value) \
            and not node.value.startswith(NOT_TOPICS)
        return [node] if ok else []
    if isinstance(node, ast.Dict):
        return [c for v in node.values for c in _topics(v)]
    return [c for child in ast.iter_child_nodes(node) for c in _topics(child)]


def violations(source: str, filename: str = "<cli>") -> list[str]:
    """Each way `source` talks to an instance other than through the API, as
    ``file:line: what``."""
    out: list[tuple[int, str]] = []
    seen: set[int] = set()  # a string inside nested calls is reported once

    def flag(node: ast.AST, what: str) -> None:
        if id(node) not in seen:
            seen.add(id(node))
            out.append((node.lineno, f"{filename}:{node.lineno}: {what}"))

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr in RAW_METHODS:
                flag(node, f"raw handle call .{node.func.attr}()")
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for c in _topics(arg):
                    flag(c, f"topic string {c.value!r} passed to a call")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            for c in _topics(node.value):
                flag(c, f"topic string {c.value!r} bound to a name")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            flag(node, f"private handle attribute {node.attr}")
        elif isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if node.module == "strato.core.proto" or \
                    (node.module == "strato.core" and "proto" in names):
                flag(node, "imports the wire protocol (strato.core.proto)")
        elif isinstance(node, ast.Import):
            if any(a.name == "strato.core.proto" for a in node.names):
                flag(node, "imports the wire protocol (strato.core.proto)")
    return [text for _, text in sorted(out)]


def test_cli_uses_only_the_public_api() -> None:
    files = sorted(CLI.glob("*.py"))
    assert files, f"no cli/*.py under {CLI}"
    found = [v for f in files for v in violations(f.read_text(), f"cli/{f.name}")]
    assert not found, "the CLI bypasses the public API:\n" + "\n".join(found)


# What the CLI did before it went through the API: each line must be caught.
@pytest.mark.parametrize("line", [
    'st = handle().rpc("queue.status")',
    'h.rpc("job-manager.cancel", {"ids": [1], "note": ""})',
    'stream = h.rpc_stream("job-manager.submit", body)',
    'tag = h.send("job-manager.events", {"id": jobid}, stream=True)',
    "body, err, more = h.recv(tag, timeout=left)",
    'h._sock.send(proto.request("broker.cancel", 0, tag))',
    "h._inbox.pop(tag, None)",
    "from strato.core import proto",
    "import strato.core.proto",
    'call(topic="resource.drain")',
    'TOPIC = "resource.R"',
    'do(TOPICS["x"], {"a": [f("plugins.list")]})',
])
def test_old_ways_are_caught(line: str) -> None:
    assert violations(line)


@pytest.mark.parametrize("line", [
    'js.setattr("system.queue", "batch")',
    'ctx.meta["strato.batch.script"] = text',
    'HEADINGS = {"sched.t_estimate": "T_ESTIMATE"}',
    'click.echo("Job submission is enabled.")',
    'queue_api.stop(h, queue, " ".join(reason))',
])
def test_ordinary_code_passes(line: str) -> None:
    assert violations(line) == []
