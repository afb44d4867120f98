"""Config checks: every unknown key or table, bad value, unknown name or broken plugin is
one line naming it (with the nearest known name), at `strato start` and in
`strato config check`; valid configs pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, STRATO


def strato(*args: str, tmp: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full.pop("STRATO_URI", None)
    return subprocess.run([*STRATO, *args], env=full, capture_output=True, text=True,
                          timeout=60, cwd=tmp)


def start_error(tmp: Path, config: str | None = None, *args: str,
                env: dict | None = None) -> str:
    """The one line `strato start` fails with (it must fail, with exactly one line)."""
    if config is not None:
        (tmp / "c.toml").write_text(config)
        args = ("--config", str(tmp / "c.toml"), *args)
    res = strato("start", *args, "true", tmp=tmp, env=env)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("strato-start: ") and "Traceback" not in res.stderr
    return lines[0].removeprefix("strato-start: ")


def check(tmp: Path, config: str, *args: str, env: dict | None = None):
    (tmp / "c.toml").write_text(config)
    return strato("config", "check", str(tmp / "c.toml"), *args, tmp=tmp, env=env)


GRAPH = '[sched]\nplugin = "sched-graph"\n'


@pytest.mark.parametrize("config,args,message", [
    (GRAPH + '[sched-graph]\nmatch-polcy = "lonode"\n', (),
     "unknown key 'sched-graph.match-polcy' (did you mean 'match-policy'?)"),
    (GRAPH + '[sched_graph]\nmatch-policy = "lonode"\n', (),
     "unknown table '[sched_graph]' (did you mean '[sched-graph]'?)"),
    (None, ("-S", "sched.plugn=sched-graph"),
     "unknown key 'sched.plugn' (did you mean 'plugin'?)"),
    ('[plugins]\nlaod = ["ingest-require"]\n', (),
     "unknown key 'plugins.laod' (did you mean 'load'?)"),
    ('[[resource.config]]\nhosts = "n[0-1]"\ncore = "0-3"\n', (),
     "unknown key 'resource.config[0].core' (did you mean 'cores'?)"),
    ('[queues.batch]\npolicy.limts.duration = "1h"\n', (),
     "unknown table '[queues.batch.policy.limts]' (did you mean "
     "'[queues.batch.policy.limits]'?)"),
    ('[sched-graph]\nmatch-policy = "lonode"\n', (),
     "table '[sched-graph]' is for plugin 'sched-graph', which is not loaded "
     "(add it to [plugins] load)"),
    ('[plugins]\nblock = ["exec-sim"]\n[exec]\nsim-duration = 1\n', (),
     "key 'exec.sim-duration' is for plugin 'exec-sim', which is not loaded "
     "(it is in [plugins] block)"),
    (GRAPH + '[sched-graph]\nqueue-depth = "deep"\n', (),
     "sched-graph.queue-depth: must be an integer >= 1 (got 'deep')"),
    (None, ("-S", "exec.kill-timeout=true"),
     "exec.kill-timeout: must be a duration such as \"30m\" (got True)"),
    ('[[resource.config]]\nhosts = "n[0-1]"\nproperties = "amd64"\n', (),
     "resource.config[0].properties: must be a list of strings (got 'amd64')"),
    ("[policy.limits.job-size.max]\nnnodes = 1.5\n", (),
     "policy.limits.job-size.max.nnodes: must be an integer >= -1 (got 1.5)"),
    ("[exec]\nbackend = 3\n", (), "exec.backend: must be a string (got 3)"),
])
def test_bad_config_is_one_line_at_start_and_in_check(tmp_path, config, args, message):
    assert start_error(tmp_path, config, *args) == message
    res = check(tmp_path, config or "", *args)
    assert res.returncode == 1 and res.stderr.strip() == f"strato-config: {message}"


def test_config_check_reports_every_problem(tmp_path):
    res = check(tmp_path, GRAPH + textwrap.dedent("""
        [sched_graph]
        [sched-graph]
        match-polcy = "lonode"
        queue-depth = 0
        [exec]
        backend = "sim"
        sim-duraton = 3
    """), "-S", "plugins.laod=[]")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [  # in the order of the file, then the -S overrides
        "strato-config: unknown table '[sched_graph]' (did you mean '[sched-graph]'?)",
        "strato-config: unknown key 'sched-graph.match-polcy' (did you mean 'match-policy'?)",
        "strato-config: sched-graph.queue-depth: must be an integer >= 1 (got 0)",
        "strato-config: unknown key 'exec.sim-duraton' (did you mean 'sim-duration'?)",
        "strato-config: unknown key 'plugins.laod' (did you mean 'load'?)",
    ]
    start = start_error(tmp_path, (tmp_path / "c.toml").read_text(), "-S", "plugins.laod=[]")
    assert start.endswith("(and 4 more: see strato config check)")


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.toml")),
                         ids=lambda p: p.name)
def test_examples_pass(tmp_path, example):
    res = strato("config", "check", str(example), tmp=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"{example}: ok", res.stderr


def _toml_after(text: str, marker: str) -> str:
    return re.search(re.escape(marker) + r".*?```toml\n(.*?)```", text, re.S).group(1)


def test_readme_config_example_passes(tmp_path):
    """The README's example, with its site plugin (declaring nothing) on a searchpath."""
    config = _toml_after((REPO / "README.md").read_text(), "An instance's config is TOML")
    (tmp_path / "my_site_policy.py").write_text('"""A site plugin."""\n')
    config = config.replace('"/etc/strato/plugins"', f'"{tmp_path}"')
    res = check(tmp_path, config)
    assert res.returncode == 0 and res.stdout.strip().endswith(": ok"), res.stderr


SITE_PLUGIN = textwrap.dedent('''
    """A site plugin with one config key, as in docs/plugins.md."""
    from strato.core.config import integer
    from strato.core.hookspecs import hookimpl
    from strato.jobspec.model import summarize


    class Plugin:
        def __init__(self):
            self.max_tasks = 1024

        @hookimpl
        def core_declare_config(self, declare):
            declare("site_policy", "max-tasks", default=1024, check=integer(1),
                    help="most tasks a job may have")

        @hookimpl
        def core_configure(self, instance, config):
            self.max_tasks = config.get("max-tasks", 1024)

        @hookimpl
        def core_register_services(self, register):
            register("site.limits", lambda req: req.respond({"max-tasks": self.max_tasks}))

        @hookimpl
        def ingest_validate(self, jobspec, user):
            if summarize(jobspec)["ntasks"] > self.max_tasks:
                raise ValueError(f"at most {self.max_tasks} tasks per job")
''')


def test_a_plugins_own_keys_are_known_once_it_is_loaded(make_instance, tmp_path):
    (tmp_path / "site_policy.py").write_text(SITE_PLUGIN)
    load = f'[plugins]\nsearchpath = ["{tmp_path}"]\nload = ["site_policy"]\n'
    assert start_error(tmp_path, load + "[site_policy]\nmax-task = 3\n") == \
        "unknown key 'site_policy.max-task' (did you mean 'max-tasks'?)"
    assert start_error(tmp_path, load + "[site_policy]\nmax-tasks = 0\n") == \
        "site_policy.max-tasks: must be an integer >= 1 (got 0)"
    assert start_error(tmp_path, "[site_policy]\nmax-tasks = 2\n") == \
        "unknown table '[site_policy]' (did you mean '[policy]'?)"
    inst = make_instance(config=load + "[site_policy]\nmax-tasks = 2\n"
                         '[[resource.config]]\nhosts = "n0"\ncores = "0-7"\n')
    assert inst.handle().rpc("site.limits") == {"max-tasks": 2}
    res = inst.strato("submit", "-n", "3", "true")
    assert res.returncode == 1 and "at most 2 tasks per job" in res.stderr
    listed = inst.strato("plugins", "list", "-v", check=True).stdout
    assert "    site_policy.max-tasks = 1024  # most tasks a job may have" in listed


def test_a_plugin_that_declares_nothing_has_no_table(tmp_path):
    (tmp_path / "quiet.py").write_text('"""Declares no keys."""\n')
    assert start_error(tmp_path, f'[plugins]\nsearchpath = ["{tmp_path}"]\nload = ["quiet"]\n'
                                 "[quiet]\nx = 1\n") == \
        "unknown table '[quiet]': plugin 'quiet' declares no config keys"


def test_plugins_list_verbose_shows_declared_keys(make_instance):
    inst = make_instance(config=GRAPH)
    listed = inst.strato("plugins", "list", "-v", check=True).stdout
    assert 'sched-graph (strato.plugins.sched_graph.plugin): ' in listed
    assert '    sched-graph.match-policy = "first"  # which resources' in listed
    assert '    exec.sim-duration = 0  # how long a simulated job' in listed
    assert "match-policy" not in inst.strato("plugins", "list", check=True).stdout


# -- unknown names list every installed plugin's ---------------------------------------------


def _site_packages(tmp: Path) -> dict:
    """A directory on PYTHONPATH holding an installed (entry point) distribution with two
    plugins that no config loads: one registers a match policy, one fails to import."""
    site = tmp / "site"
    dist = site / "sitepolicies-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sitepolicies\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[strato.plugins]\nsite-policies = site_policies\nbroken-ep = broken_ep\n")
    (site / "site_policies.py").write_text(textwrap.dedent('''
        from strato.core.hookspecs import hookimpl
        from strato.plugins.sched_graph.policies import create_policy

        @hookimpl
        def sched_register_match_policies(register):
            register("sitefirst", lambda: create_policy("first"))
    '''))
    (site / "broken_ep.py").write_text('"""Broken."""\n\nimport os\nvalue = os.nope\n')
    return {"PYTHONPATH": str(site)}


def test_unknown_scheduler_lists_every_installed_one(tmp_path):
    assert start_error(tmp_path, None, "-S", "sched.plugin=sched-grpah") == \
        "sched.plugin: unknown scheduler 'sched-grpah' (did you mean 'sched-graph'? " \
        "installed: sched-graph, sched-simple)"
    assert start_error(tmp_path, None, "-S", "exec.backend=warp") == \
        "exec.backend: unknown exec backend 'warp' (installed: local, sim)"
    assert start_error(tmp_path, '[plugins]\nblock = ["exec-sim"]\n[exec]\nbackend = "sim"\n') \
        == "exec.backend: exec backend 'sim' is registered by plugin 'exec-sim', which is " \
        "not loaded (it is in [plugins] block)"
    res = check(tmp_path, "", "-S", "sched.plugin=sched-grpah")
    assert res.returncode == 1 and "installed: sched-graph, sched-simple" in res.stderr


def test_unknown_policy_lists_installed_plugins_policies(tmp_path):
    env = _site_packages(tmp_path)
    line = start_error(tmp_path, GRAPH + '[sched-graph]\nmatch-policy = "lownode"\n', env=env)
    assert line.startswith("sched-graph.match-policy: unknown match-policy 'lownode' "
                           "(did you mean 'lonode'? installed: ")
    assert "sitefirst" in line and "variation" in line
    assert start_error(tmp_path, GRAPH + '[sched-graph]\nmatch-policy = "sitefirst"\n',
                       env=env) == \
        "sched-graph.match-policy: match-policy 'sitefirst' is registered by plugin " \
        "'site-policies', which is not loaded (add it to [plugins] load)"
    assert start_error(tmp_path, GRAPH + '[sched-graph]\nqueue-policy = "lifo"\n') == \
        "sched-graph.queue-policy: unknown queue-policy 'lifo' (installed: conservative, " \
        "easy, fcfs, hybrid)"
    line = start_error(tmp_path, GRAPH + '[sched-graph]\nprune-filters = "ALL:gpus"\n')
    assert line.startswith("sched-graph: invalid prune filter 'ALL:gpus': unknown prune "
                           "filter type 'gpus' (did you mean 'gpu'? installed: cluster, core")


# -- plugins that fail to import: file and line ----------------------------------------------


def test_entry_point_plugin_that_fails_to_import(tmp_path):
    env = _site_packages(tmp_path)
    path = tmp_path / "site" / "broken_ep.py"
    assert start_error(tmp_path, '[plugins]\nload = ["broken-ep"]\n', env=env) == \
        f"plugin 'broken-ep' failed to load: {path}:4: AttributeError: module 'os' " \
        "has no attribute 'nope'"


def test_searchpath_plugin_with_a_syntax_error(tmp_path):
    (tmp_path / "mysite.py").write_text('"""Site."""\n\ndef f(:\n    pass\n')
    assert start_error(tmp_path, f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                                 'load = ["mysite"]\n') == \
        f"plugin 'mysite' failed to load: {tmp_path / 'mysite.py'}:3: SyntaxError: " \
        "invalid syntax"


def test_py_file_plugin_with_a_runtime_error(tmp_path):
    path = tmp_path / "mysite.py"
    path.write_text('"""Site."""\nimport sys\n\nlimit = x + 1\n')
    assert start_error(tmp_path, f'[plugins]\nload = ["{path}"]\n') == \
        f"plugin '{path}' failed to load: {path}:4: NameError: name 'x' is not defined"


def test_plugin_whose_import_fails_inside_a_module_it_imports(tmp_path):
    (tmp_path / "helper.py").write_text("\n\nraise RuntimeError('no licence server')\n")
    (tmp_path / "outer.py").write_text("import helper\n")
    assert start_error(tmp_path, f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                                 'load = ["outer"]\n') == \
        f"plugin 'outer' failed to load: {tmp_path / 'helper.py'}:3: RuntimeError: " \
        "no licence server"


# -- a name registered twice names both plugins ----------------------------------------------


@pytest.mark.parametrize("hook,registration,extra,message", [
    ("exec_register_backends", 'register("sim", object)', "",
     "exec backend 'sim' is registered by both 'exec-sim' and 'dup'"),
    ("job_register_dependency_schemes", 'register("singleton", object())', "",
     "dependency scheme 'singleton' is registered by both 'dependency-singleton' and 'dup'"),
    ("sched_register_match_policies", 'register("lonode", object)', GRAPH,
     "match policy 'lonode' is registered by both 'dup' and 'sched-graph'"),
    ("sched_register_schedulers", 'register("sched-simple", object)', "",
     "scheduler 'sched-simple' is registered by both 'sched-simple' and 'dup'"),
    ("core_declare_config", 'register("exec", "backend")', "",
     "config key 'exec.backend' is declared by both 'core' and 'dup'"),
])
def test_a_name_registered_twice_names_both_plugins(tmp_path, hook, registration, extra,
                                                    message):
    arg = "declare" if hook == "core_declare_config" else "register"
    (tmp_path / "dup.py").write_text(
        "from strato.core.hookspecs import hookimpl\n\n@hookimpl\n"
        f"def {hook}({arg}):\n    {registration.replace('register', arg)}\n")
    line = start_error(tmp_path, extra + f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                                         'load = ["dup"]\n')
    assert line == message


def test_a_hook_implementation_with_wrong_arguments_is_one_line(tmp_path):
    path = tmp_path / "badsig.py"
    path.write_text("from strato.core.hookspecs import hookimpl\n\n@hookimpl\n"
                    "def ingest_validate(jobspec, usr):\n    pass\n")
    line = start_error(tmp_path, f'[plugins]\nload = ["{path}"]\n')
    assert line.startswith(f"plugin '{path}': Plugin '{path}' for hook 'ingest_validate'; ")
    assert line.endswith("Argument(s) {'usr'} are declared in the hookimpl but can not be "
                         "found in the hookspec")


@pytest.mark.parametrize("config,message", [
    ({"sched": {"plugin": "sched-grpah"}},
     "sched.plugin: unknown scheduler 'sched-grpah' (did you mean 'sched-graph'? installed: "
     "sched-graph, sched-simple)"),
    ({"exec": {"backend": "warp"}},
     "exec.backend: unknown exec backend 'warp' (installed: local, sim)"),
    ({"sched": {"plugin": "sched-graph"}, "sched-graph": {"queue-policy": "lifo"}},
     "sched-graph.queue-policy: unknown queue-policy 'lifo' (installed: conservative, easy, "
     "fcfs, hybrid)"),
])
def test_an_instance_started_from_python_names_every_installed_one(tmp_path, config, message):
    """run_instance() (the Python way in, which runs the same config check) says what
    is installed, naming the key."""
    code = ("import sys\nfrom strato.core.errors import StratoError\n"
            "from strato.core.instance import run_instance\n"
            f"try:\n    run_instance({config!r}, ['true'])\n"
            "except StratoError as exc:\n    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.stdout.strip() == message, res.stderr
