"""Every code example of the documentation, run as a reader would run it.

Each fenced block of ``README.md`` and ``docs/**/*.md`` is extracted and run
against a real instance (``strato start`` over 16 virtual nodes whose tasks run
as real processes on this machine), so an example that stops working fails
here, naming its page and line:

- ``sh``: the block is the initial program of the instance (``bash -e -o
  pipefail``, stdin from /dev/null). A block whose lines start with ``$ `` is a
  transcript: each command runs and its output must be the lines shown under it.
- ``python``: a block with ``@hookimpl`` is a plugin module: it is loaded by path
  into an instance and must show up in ``strato plugins list`` with its hooks.
  Any other block is client code: the page's client blocks run in order in one
  interpreter inside the instance (later blocks use names earlier ones define).
- ``toml``: a config, checked with ``strato config check``.

Other fences (none: diagrams and sample output; ``yaml``, ``json``, ...) are not
run. HTML comment lines directly above a fence steer a block:

- ``<!-- not run: REASON -->``: not run (an interactive shell, a site's paths);
- ``<!-- file: NAME -->``: the block is also saved as NAME in the page's working
  folder, where later blocks of the page find it;
- ``<!-- instance: ARGS -->``: more ``strato start`` arguments for this block
  (``-S exec.backend=sim`` where thousands of real processes are not the point,
  ``--config NAME`` for a config saved by an earlier block);
- ``<!-- check: ARGS -->``: more ``strato config check`` arguments for a ``toml`` block.

The folder is also on PYTHONPATH, so a plugin module saved there is found by name,
as it would be on a site's ``searchpath``.

The working folder of a page holds the files the examples name (``job.sh``,
``script.sh``, ``job.yaml``, ``cmds``) and an ``app`` command on PATH.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, STRATO

#: pages whose examples are run elsewhere, and why
ELSEWHERE = {
    "docs/performance.md": "its examples are the benchmarks (`make bench`, minutes long)",
}
PAGES = [p for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
         if str(p.relative_to(REPO)) not in ELSEWHERE]
RUN_LANGS = {"sh", "python", "toml"}
TIMEOUT = 120

#: the instance every example runs in: 16 virtual nodes of 4 cores and 2 gpus
#: (properties for --requires), tasks as real processes on this machine
CONFIG = """\
[[resource.config]]
hosts = "node[0-15]"
cores = "0-3"
gpus = "0-1"
properties = ["amd64"]
"""

#: files the examples name, in each page's working folder
FILES = {
    "job.sh": "#!/bin/sh\n#STRATO: -t 10m\n#STRATO: --job-name=job\n"
              "strato run -N2 -n2 hostname\n",
    "script.sh": "#!/bin/sh\nstrato resource info\n",
    "job.yaml": """\
version: 1
resources:
  - type: slot
    count: 2
    label: default
    with:
      - type: core
        count: 1
tasks:
  - command: [ "app" ]
    slot: default
    count:
      per_slot: 1
attributes:
  system:
    duration: 3600
""",
    "cmds": "match allocate job.yaml\nquit\n",
    "my_site_policy.py": '"""A site plugin (README\'s config loads it): no hooks yet."""\n',
    "bin/app": "#!/bin/sh\necho \"app ${STRATO_TASK_RANK:-} $*\"\n",
}


@dataclass
class Block:
    page: Path
    line: int                       # line of the opening fence
    lang: str
    text: str
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def is_plugin(self) -> bool:
        return self.lang == "python" and "@hookimpl" in self.text


FENCE = re.compile(r"^```(\S*)\s*$")
NOTE = re.compile(r"^<!--\s*([\w ]+?)\s*:\s*(.*?)\s*-->\s*$")


def extract(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the comment lines right above each."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        notes, k = {}, start - 1
        while k >= 0 and (n := NOTE.match(lines[k])):
            notes[n.group(1)] = n.group(2)
            k -= 1
        blocks.append(Block(page, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                            notes))
        i = j + 1
    return blocks


BLOCKS = [b for p in PAGES for b in extract(p)]


class Page:
    """A page's working folder: the fixture files plus the files its blocks save."""

    def __init__(self, tmp: Path, page: Path) -> None:
        self.dir = tmp
        for name, text in FILES.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            p.chmod(0o755)
        (tmp / "config.toml").write_text(CONFIG)
        for b in extract(page):
            if "file" in b.notes:
                (tmp / b.notes["file"]).write_text(b.text)
        self.env = dict(os.environ)
        self.env.pop("STRATO_URI", None)
        self.env["PATH"] = f"{tmp / 'bin'}{os.pathsep}{self.env['PATH']}"
        # plugins the examples load by module name (a site's searchpath) are found here
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(tmp), *filter(None, [os.environ.get("PYTHONPATH")])])

    def start(self, block: Block, *command: str,
              extra: tuple = ()) -> subprocess.CompletedProcess:
        """``strato start`` with the example config, running COMMAND as initial program."""
        rundir = tempfile.mkdtemp(prefix="st-")
        args = [*STRATO, "start", "--rundir", rundir, "--config", "config.toml",
                *extra, *shlex.split(block.notes.get("instance", "")), *command]
        try:
            return subprocess.run(args, cwd=self.dir, env=self.env, capture_output=True,
                                  text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        finally:
            subprocess.run(["rm", "-rf", rundir])


def _tail(text: str, n: int = 30) -> str:
    lines = text.splitlines()
    return "\n".join((["..."] if len(lines) > n else []) + lines[-n:]) + "\n"


def fail(block: Block, what: str, res: subprocess.CompletedProcess) -> None:
    pytest.fail(f"{block.where}: {what} (exit {res.returncode})\n"
                f"--- stdout ---\n{_tail(res.stdout)}--- stderr ---\n{_tail(res.stderr)}",
                pytrace=False)


# -- sh --------------------------------------------------------------------------------

def transcript(text: str) -> list[tuple[str, list[str]]]:
    """``$ cmd`` lines and the output lines under each."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    return steps


def run_sh(block: Block, page: Page) -> None:
    steps = transcript(block.text)
    if not steps:
        script = page.dir / f"block{block.line}.sh"
        script.write_text(block.text)
        res = page.start(block, "bash", "-e", "-o", "pipefail", str(script))
        if res.returncode != 0:
            fail(block, "the example failed", res)
        return
    # A transcript: run each command, its stdout and stderr together, and compare.
    marker = "@@strato-docs-step@@"
    script = "".join(f"echo {marker}\n{cmd} 2>&1 || true\n" for cmd, _ in steps)
    (page.dir / f"block{block.line}.sh").write_text(script)
    res = page.start(block, "bash", str(page.dir / f"block{block.line}.sh"))
    outs = res.stdout.split(marker + "\n")[1:]
    if res.returncode != 0 or len(outs) != len(steps):
        fail(block, "the transcript did not run", res)
    for (cmd, want), got in zip(steps, outs, strict=True):
        got_lines = [x.rstrip() for x in got.splitlines()]
        if got_lines != want:
            pytest.fail(f"{block.where}: `$ {cmd}` printed\n" + "\n".join(got_lines)
                        + "\ninstead of\n" + "\n".join(want), pytrace=False)


# -- python ----------------------------------------------------------------------------

#: runs client blocks in order in one namespace; a block's line numbers are the page's
DRIVER = """\
import sys, traceback
ns = {"__name__": "__main__"}
for where, line, path in [tuple(a.rsplit(":", 2)) for a in sys.argv[1:]]:
    src = "\\n" * int(line) + open(path).read()
    try:
        exec(compile(src, where, "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"docs example {where}:{line} failed", file=sys.stderr)
        sys.exit(1)
"""


def run_python_client(blocks: list[Block], page: Page) -> None:
    driver = page.dir / "driver.py"
    driver.write_text(DRIVER)
    args = []
    for b in blocks:
        path = page.dir / f"block{b.line}.py"
        path.write_text(b.text)
        args.append(f"{b.page.relative_to(REPO)}:{b.line}:{path}")
    res = page.start(blocks[0], sys.executable, str(driver), *args)
    if res.returncode != 0:
        fail(blocks[-1] if "failed" not in res.stderr else _failed(blocks, res.stderr),
             "the example failed", res)


def _failed(blocks: list[Block], stderr: str) -> Block:
    for b in blocks:
        if f"docs example {b.where} failed" in stderr:
            return b
    return blocks[-1]


def hooks_of(text: str) -> list[str]:
    return sorted(set(re.findall(r"@hookimpl\s+def (\w+)", text)))


def run_plugin(block: Block, page: Page) -> None:
    path = page.dir / f"doc_plugin_{block.line}.py"
    path.write_text(block.text)
    res = page.start(block, "strato", "plugins", "list",
                     extra=("-S", f"plugins.load=[\"{path}\"]"))
    if res.returncode != 0:
        fail(block, "the plugin did not load", res)
    line = next((x for x in res.stdout.splitlines() if x.startswith(str(path))), None)
    if line is None:
        fail(block, "the plugin is not in `strato plugins list`", res)
    for hook in hooks_of(block.text):
        if hook not in line:
            fail(block, f"`strato plugins list` does not show its hook {hook}", res)


# -- toml ------------------------------------------------------------------------------

def run_toml(block: Block, page: Page) -> None:
    path = page.dir / f"block{block.line}.toml"
    path.write_text(block.text)
    res = subprocess.run([*STRATO, "config", "check", str(path),
                          *shlex.split(block.notes.get("check", ""))],
                         cwd=page.dir, env=page.env, capture_output=True, text=True,
                         timeout=TIMEOUT)
    if res.returncode != 0:
        fail(block, "`strato config check` refused it", res)


# -- the tests -------------------------------------------------------------------------

def _runnable(b: Block) -> bool:
    return b.lang in RUN_LANGS and "not run" not in b.notes


SINGLE = [b for b in BLOCKS if _runnable(b) and (b.lang != "python" or b.is_plugin)]
CLIENT_PAGES = sorted({b.page for b in BLOCKS
                       if _runnable(b) and b.lang == "python" and not b.is_plugin})


def test_blocks_not_run_say_why():
    """A runnable block (sh, python, toml) is skipped only with a reason; notes that
    steer a block are ones this file knows."""
    known = {"not run", "file", "instance", "check"}
    for b in BLOCKS:
        assert set(b.notes) <= known, f"{b.where}: unknown notes {set(b.notes) - known}"
        if "not run" in b.notes:
            assert b.notes["not run"], f"{b.where}: `not run` needs a reason"
    assert len(SINGLE) + len(CLIENT_PAGES) >= 20  # the extraction found the examples


@pytest.mark.parametrize("block", SINGLE, ids=[b.where for b in SINGLE])
def test_example(block, tmp_path):
    page = Page(tmp_path, block.page)
    if block.lang == "sh":
        run_sh(block, page)
    elif block.lang == "toml":
        run_toml(block, page)
    else:
        run_plugin(block, page)


@pytest.mark.parametrize("page", CLIENT_PAGES,
                         ids=[str(p.relative_to(REPO)) for p in CLIENT_PAGES])
def test_python_examples(page, tmp_path):
    blocks = [b for b in extract(page)
              if _runnable(b) and b.lang == "python" and not b.is_plugin]
    run_python_client(blocks, Page(tmp_path, page))
